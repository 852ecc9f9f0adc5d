//! Offline verification of the server's audit log: the hash chain of stored entries (the whole
//! log, or one matter's own chain) and the checkpoints the server signed with its audit key.
//!
//! The verifier is given the entries exactly as stored (`version byte || JSON`, see
//! [`crate::wire::audit`]), the signed checkpoints and the server's Ed25519 key, and either
//! proves the chain intact — saying how much of it a signed checkpoint anchors — or names the
//! first broken link. It trusts nothing the server says about itself: every hash is
//! recomputed here.

use ring::signature::{ED25519, UnparsedPublicKey};

use super::sha256;
use crate::wire::audit::{AuditEntry, Checkpoint};
use crate::wire::{DecodeError, format_utc, to_hex};

/// The most entries one verification takes (a matter's log, or a whole firm's for years).
pub const MAX_VERIFIED_ENTRIES: usize = 10_000_000;

/// Which chain the entries form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    /// The whole log: sequence numbers from 0 without a gap, each `prev` the hash of the entry
    /// before.
    Log,
    /// One matter's chain: every entry belongs to the matter, sequence numbers increase, each
    /// `matter_prev` is the hash of the matter's entry before.
    Matter([u8; 16]),
}

/// A checkpoint as transported: its encoding and the server's signature over
/// [`Checkpoint::signed_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpointBytes {
    /// [`Checkpoint::encode`]'s output.
    pub checkpoint: Vec<u8>,
    /// The Ed25519 signature (64 bytes when well formed).
    pub signature: Vec<u8>,
}

/// What an intact chain proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: usize,
    /// Checkpoints checked (signature and head).
    pub checkpoints: usize,
    /// Entries anchored by a signed checkpoint: the first `covered` entries cannot be changed
    /// without the server's audit key.
    pub covered: u64,
    /// Entries after the last signed checkpoint (chained, but not yet anchored by a signature).
    pub after: u64,
    /// When the newest checkpoint was signed (server clock), if any.
    pub latest_checkpoint_at: Option<i64>,
    /// SHA-256 of the last entry (the head of the chain), if any.
    pub head: Option<[u8; 32]>,
}

/// The first broken link found. Entries are named by their sequence number where it is known,
/// by their position in the list otherwise; checkpoints by their position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// An entry is not a stored audit entry (bad version byte, not JSON, too long).
    #[error("entry at position {position} is malformed: {reason}")]
    Malformed {
        /// Position in the list, from 0.
        position: usize,
        /// Why it does not parse.
        reason: DecodeError,
    },
    /// Whole log: an entry's sequence number is not its position (an entry was removed,
    /// inserted or moved).
    #[error(
        "entry at position {position} has seq {found}, expected {expected}: an entry is missing, \
         inserted or out of order"
    )]
    Sequence {
        /// Position in the list.
        position: usize,
        /// The sequence number it should have.
        expected: u64,
        /// The one it has.
        found: u64,
    },
    /// Matter chain: sequence numbers do not increase (entries reordered or repeated).
    #[error("entry {seq} comes after entry {previous}: the entries are out of order")]
    OutOfOrder {
        /// The entry's sequence number.
        seq: u64,
        /// The sequence number of the entry listed before it.
        previous: u64,
    },
    /// Whole log: `prev` is not the hash of the entry before (that entry was altered, or one was
    /// removed or inserted).
    #[error(
        "entry {seq}: prev does not match the hash of the entry before it: an earlier entry was \
         altered, removed or inserted"
    )]
    PrevMismatch {
        /// The entry's sequence number.
        seq: u64,
    },
    /// Matter chain: the entry is not linked into the matter's chain.
    #[error("entry {seq}: {reason}")]
    MatterLink {
        /// The entry's sequence number.
        seq: u64,
        /// What does not match.
        reason: &'static str,
    },
    /// A checkpoint cannot be parsed, or its signature is not 64 bytes.
    #[error("checkpoint {index} is malformed: {reason}")]
    CheckpointMalformed {
        /// Position of the checkpoint in the list.
        index: usize,
        /// Why.
        reason: DecodeError,
    },
    /// A checkpoint's signature does not verify under the server's audit key.
    #[error("checkpoint {index}: the signature does not verify under the server's audit key")]
    CheckpointSignature {
        /// Position of the checkpoint in the list.
        index: usize,
    },
    /// A signed checkpoint names another hash for the entry it ends at: that entry (or one
    /// before it) was altered after the server signed.
    #[error(
        "checkpoint {index} (signed {}) covers {count} entries, but entry {seq} differs from the \
         head it signed: the log was rewritten",
        format_utc(*at)
    )]
    CheckpointHead {
        /// Position of the checkpoint in the list.
        index: usize,
        /// When it was signed.
        at: i64,
        /// How many entries it covers.
        count: u64,
        /// The sequence number of the entry at `count - 1`.
        seq: u64,
    },
    /// A signed checkpoint covers more entries than the log has: entries were removed from the
    /// end.
    #[error(
        "checkpoint {index} (signed {}) covers {count} entries, but only {entries} are present: \
         entries were removed",
        format_utc(*at)
    )]
    CheckpointBeyondLog {
        /// Position of the checkpoint in the list.
        index: usize,
        /// When it was signed.
        at: i64,
        /// How many entries it covers.
        count: u64,
        /// How many are present.
        entries: usize,
    },
    /// More entries than [`MAX_VERIFIED_ENTRIES`].
    #[error("more than {MAX_VERIFIED_ENTRIES} entries")]
    TooMany,
}

impl AuditError {
    /// The sequence number of the entry where the chain broke, when an entry is to blame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Self::OutOfOrder { seq, .. }
            | Self::PrevMismatch { seq }
            | Self::MatterLink { seq, .. }
            | Self::CheckpointHead { seq, .. } => Some(*seq),
            Self::Sequence { found, .. } => Some(*found),
            _ => None,
        }
    }
}

/// Verifies `entries` (stored bytes, in log order) as the chain `scope` says, then every
/// checkpoint against `server_key`. Returns what is proven, or the first broken link.
pub fn verify_audit<E: AsRef<[u8]>>(
    entries: &[E],
    checkpoints: &[SignedCheckpointBytes],
    server_key: &[u8; 32],
    scope: AuditScope,
) -> Result<AuditReport, AuditError> {
    if entries.len() > MAX_VERIFIED_ENTRIES {
        return Err(AuditError::TooMany);
    }
    let zero = to_hex(&[0u8; 32]);
    let matter_hex = match scope {
        AuditScope::Matter(m) => Some(to_hex(&m)),
        AuditScope::Log => None,
    };
    // The hash and sequence number of each entry, kept for the checkpoints.
    let mut chain: Vec<([u8; 32], u64)> = Vec::with_capacity(entries.len().min(1 << 20));
    for (position, raw) in entries.iter().enumerate() {
        let raw = raw.as_ref();
        let entry = AuditEntry::from_stored(raw)
            .map_err(|reason| AuditError::Malformed { position, reason })?;
        let previous = chain.last();
        let expected_prev = previous.map_or_else(|| zero.clone(), |(h, _)| to_hex(h));
        match &matter_hex {
            None => {
                if entry.seq != position as u64 {
                    return Err(AuditError::Sequence {
                        position,
                        expected: position as u64,
                        found: entry.seq,
                    });
                }
                if entry.prev != expected_prev {
                    return Err(AuditError::PrevMismatch { seq: entry.seq });
                }
            }
            Some(matter) => {
                if let Some(&(_, previous)) = previous {
                    if entry.seq <= previous {
                        return Err(AuditError::OutOfOrder {
                            seq: entry.seq,
                            previous,
                        });
                    }
                }
                if entry.matter.as_deref() != Some(matter.as_str()) {
                    return Err(AuditError::MatterLink {
                        seq: entry.seq,
                        reason: "the entry belongs to another matter",
                    });
                }
                match &entry.matter_prev {
                    None => {
                        return Err(AuditError::MatterLink {
                            seq: entry.seq,
                            reason: "the entry has no link to the matter's previous entry",
                        });
                    }
                    Some(p) if *p != expected_prev => {
                        return Err(AuditError::MatterLink {
                            seq: entry.seq,
                            reason: "matter_prev does not match the hash of the matter's entry \
                                     before it: an earlier entry was altered, removed or \
                                     inserted",
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        chain.push((sha256(&[raw]), entry.seq));
    }

    let key = UnparsedPublicKey::new(&ED25519, server_key);
    let mut covered: u64 = 0;
    let mut latest: Option<i64> = None;
    for (index, signed) in checkpoints.iter().enumerate() {
        let checkpoint = Checkpoint::decode(&signed.checkpoint)
            .map_err(|reason| AuditError::CheckpointMalformed { index, reason })?;
        if signed.signature.len() != 64 {
            return Err(AuditError::CheckpointMalformed {
                index,
                reason: DecodeError::Truncated("checkpoint signature"),
            });
        }
        if key
            .verify(&checkpoint.signed_message(), &signed.signature)
            .is_err()
        {
            return Err(AuditError::CheckpointSignature { index });
        }
        let (count, head) = match scope {
            AuditScope::Log => (checkpoint.count, checkpoint.head),
            AuditScope::Matter(m) => match checkpoint.matters.iter().find(|h| h.matter == m) {
                Some(h) => (h.count, h.head),
                // A checkpoint that does not name this matter anchors nothing of it.
                None => continue,
            },
        };
        latest = Some(latest.map_or(checkpoint.at, |l| l.max(checkpoint.at)));
        if count == 0 {
            continue;
        }
        let Some(&(hash, seq)) = usize::try_from(count - 1).ok().and_then(|i| chain.get(i)) else {
            return Err(AuditError::CheckpointBeyondLog {
                index,
                at: checkpoint.at,
                count,
                entries: chain.len(),
            });
        };
        if hash != head {
            return Err(AuditError::CheckpointHead {
                index,
                at: checkpoint.at,
                count,
                seq,
            });
        }
        covered = covered.max(count);
    }
    Ok(AuditReport {
        entries: chain.len(),
        checkpoints: checkpoints.len(),
        covered,
        after: chain.len() as u64 - covered,
        latest_checkpoint_at: latest,
        head: chain.last().map(|(h, _)| *h),
    })
}

/// The fingerprint under which a server's audit key is shown and compared: `sha256:` and the
/// hex SHA-256 of the 32-byte Ed25519 key.
pub fn server_key_fingerprint(server_key: &[u8; 32]) -> String {
    format!("sha256:{}", to_hex(&sha256(&[server_key])))
}

#[cfg(test)]
mod tests {
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;
    use crate::wire::audit::MatterHead;

    const MATTER: [u8; 16] = [7; 16];
    const OTHER: [u8; 16] = [8; 16];

    struct Log {
        raw: Vec<Vec<u8>>,
        entries: Vec<AuditEntry>,
    }

    /// A log of `n` entries; entries whose index is odd belong to MATTER, every fourth to OTHER.
    fn log(n: usize) -> Log {
        let mut raw: Vec<Vec<u8>> = Vec::new();
        let mut entries = Vec::new();
        let mut heads: std::collections::BTreeMap<[u8; 16], [u8; 32]> = Default::default();
        for i in 0..n {
            let matter = if i % 2 == 1 {
                Some(MATTER)
            } else if i % 4 == 0 {
                Some(OTHER)
            } else {
                None
            };
            let e = AuditEntry {
                seq: i as u64,
                at: 1_800_000_000 + i as i64,
                actor: "ann@firm.example".into(),
                addr: "127.0.0.1".into(),
                action: "ciphertext.release".into(),
                object: to_hex(&[i as u8; 16]),
                matter: matter.map(|m| to_hex(&m)),
                prev: to_hex(&raw.last().map_or([0; 32], |r: &Vec<u8>| sha256(&[r]))),
                matter_prev: matter.map(|m| to_hex(heads.get(&m).unwrap_or(&[0; 32]))),
            };
            let stored = e.to_stored();
            if let Some(m) = matter {
                heads.insert(m, sha256(&[&stored]));
            }
            raw.push(stored);
            entries.push(e);
        }
        Log { raw, entries }
    }

    fn server() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap()
    }

    fn server_key(k: &Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().unwrap()
    }

    /// A checkpoint over the first `count` entries of `log`, naming every matter's head there.
    fn checkpoint(k: &Ed25519KeyPair, log: &Log, count: usize) -> SignedCheckpointBytes {
        let mut matters = Vec::new();
        for m in [MATTER, OTHER] {
            let mine: Vec<usize> = (0..count)
                .filter(|&i| log.entries[i].matter.as_deref() == Some(to_hex(&m).as_str()))
                .collect();
            if let Some(&last) = mine.last() {
                matters.push(MatterHead {
                    matter: m,
                    count: mine.len() as u64,
                    head: sha256(&[&log.raw[last]]),
                });
            }
        }
        matters.sort_by_key(|h| h.matter);
        let c = Checkpoint {
            count: count as u64,
            head: if count == 0 {
                [0; 32]
            } else {
                sha256(&[&log.raw[count - 1]])
            },
            at: 1_900_000_000 + count as i64,
            matters,
        };
        SignedCheckpointBytes {
            checkpoint: c.encode(),
            signature: k.sign(&c.signed_message()).as_ref().to_vec(),
        }
    }

    fn matter_entries(log: &Log, m: [u8; 16]) -> Vec<Vec<u8>> {
        (0..log.raw.len())
            .filter(|&i| log.entries[i].matter.as_deref() == Some(to_hex(&m).as_str()))
            .map(|i| log.raw[i].clone())
            .collect()
    }

    /// `entry` re-stored after `change`, without fixing any link.
    fn altered(log: &Log, i: usize, change: impl Fn(&mut AuditEntry)) -> Vec<Vec<u8>> {
        let mut raw = log.raw.clone();
        let mut e = log.entries[i].clone();
        change(&mut e);
        raw[i] = e.to_stored();
        raw
    }

    #[test]
    fn an_intact_log_verifies_with_its_coverage() {
        let k = server();
        let l = log(10);
        let cps = vec![checkpoint(&k, &l, 4), checkpoint(&k, &l, 8)];
        let r = verify_audit(&l.raw, &cps, &server_key(&k), AuditScope::Log).unwrap();
        assert_eq!(
            (r.entries, r.checkpoints, r.covered, r.after),
            (10, 2, 8, 2)
        );
        assert_eq!(r.latest_checkpoint_at, Some(1_900_000_008));
        assert_eq!(r.head, Some(sha256(&[&l.raw[9]])));
        let empty: [Vec<u8>; 0] = [];
        let r = verify_audit(&empty, &[], &server_key(&k), AuditScope::Log).unwrap();
        assert_eq!((r.entries, r.covered, r.after, r.head), (0, 0, 0, None));
    }

    #[test]
    fn an_intact_matter_chain_verifies() {
        let k = server();
        let l = log(12);
        let mine = matter_entries(&l, MATTER);
        assert_eq!(mine.len(), 6);
        let cps = vec![checkpoint(&k, &l, 7), checkpoint(&k, &l, 12)];
        let r = verify_audit(&mine, &cps, &server_key(&k), AuditScope::Matter(MATTER)).unwrap();
        assert_eq!((r.entries, r.covered, r.after), (6, 6, 0));
        // A checkpoint that does not name the matter anchors nothing of it.
        let r = verify_audit(
            &mine,
            &[checkpoint(&k, &l, 1)],
            &server_key(&k),
            AuditScope::Matter(MATTER),
        )
        .unwrap();
        assert_eq!((r.covered, r.after, r.latest_checkpoint_at), (0, 6, None));
    }

    #[test]
    fn a_malformed_entry_is_named_by_position() {
        let k = server();
        let mut raw = log(3).raw;
        raw[1] = b"\x01{not json".to_vec();
        assert_eq!(
            verify_audit(&raw, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::Malformed {
                position: 1,
                reason: DecodeError::Unsupported("audit entry")
            })
        );
        raw[1] = vec![2, b'{', b'}'];
        assert_eq!(
            verify_audit(&raw, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::Malformed {
                position: 1,
                reason: DecodeError::Unsupported("audit entry version")
            })
        );
    }

    #[test]
    fn an_altered_entry_breaks_the_next_link() {
        let k = server();
        let l = log(6);
        let raw = altered(&l, 2, |e| e.actor = "mallory@example.com".into());
        assert_eq!(
            verify_audit(&raw, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::PrevMismatch { seq: 3 })
        );
        let raw = altered(&l, 3, |e| e.prev = to_hex(&[1; 32]));
        assert_eq!(
            verify_audit(&raw, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::PrevMismatch { seq: 3 })
        );
        // The first entry must point at zeros.
        let raw = altered(&l, 0, |e| e.prev = to_hex(&[1; 32]));
        assert_eq!(
            verify_audit(&raw, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::PrevMismatch { seq: 0 })
        );
    }

    #[test]
    fn the_last_entry_altered_is_caught_by_a_checkpoint() {
        let k = server();
        let l = log(6);
        let raw = altered(&l, 5, |e| e.action = "nothing".into());
        let cps = vec![checkpoint(&k, &l, 6)];
        assert_eq!(
            verify_audit(&raw, &cps, &server_key(&k), AuditScope::Log),
            Err(AuditError::CheckpointHead {
                index: 0,
                at: 1_900_000_006,
                count: 6,
                seq: 5
            })
        );
    }

    #[test]
    fn removed_and_reordered_entries_are_named() {
        let k = server();
        let l = log(6);
        let mut removed = l.raw.clone();
        removed.remove(2);
        assert_eq!(
            verify_audit(&removed, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::Sequence {
                position: 2,
                expected: 2,
                found: 3
            })
        );
        let mut swapped = l.raw.clone();
        swapped.swap(3, 4);
        assert_eq!(
            verify_audit(&swapped, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::Sequence {
                position: 3,
                expected: 3,
                found: 4
            })
        );
        // Removed from the end: only a checkpoint can tell.
        let cps = vec![checkpoint(&k, &l, 6)];
        assert_eq!(
            verify_audit(&l.raw[..4], &cps, &server_key(&k), AuditScope::Log),
            Err(AuditError::CheckpointBeyondLog {
                index: 0,
                at: 1_900_000_006,
                count: 6,
                entries: 4
            })
        );
        // Renumbered after a removal: the link breaks instead.
        let mut renumbered = l.raw[..2].to_vec();
        for i in 3..6 {
            let mut e = l.entries[i].clone();
            e.seq -= 1;
            renumbered.push(e.to_stored());
        }
        assert_eq!(
            verify_audit(&renumbered, &[], &server_key(&k), AuditScope::Log),
            Err(AuditError::PrevMismatch { seq: 2 })
        );
    }

    #[test]
    fn matter_chains_catch_foreign_unlinked_and_reordered_entries() {
        let k = server();
        let l = log(12);
        let key = server_key(&k);
        let scope = AuditScope::Matter(MATTER);
        let mine = matter_entries(&l, MATTER);

        let mut foreign = mine.clone();
        foreign.insert(1, l.raw[4].clone());
        assert_eq!(
            verify_audit(&foreign, &[], &key, scope),
            Err(AuditError::MatterLink {
                seq: 4,
                reason: "the entry belongs to another matter"
            })
        );
        // Swapped: the link of the entry moved forward breaks first.
        let mut swapped = mine.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify_audit(&swapped, &[], &key, scope),
            Err(AuditError::MatterLink { seq: 5, .. })
        ));
        let mut repeated = mine[..2].to_vec();
        repeated.push(mine[1].clone());
        assert_eq!(
            verify_audit(&repeated, &[], &key, scope),
            Err(AuditError::OutOfOrder {
                seq: 3,
                previous: 3
            })
        );
        let mut removed = mine.clone();
        removed.remove(1);
        assert_eq!(
            verify_audit(&removed, &[], &key, scope).unwrap_err().seq(),
            Some(5)
        );
        assert!(matches!(
            verify_audit(&removed, &[], &key, scope),
            Err(AuditError::MatterLink { seq: 5, .. })
        ));
        let mut unlinked = mine.clone();
        let mut e = AuditEntry::from_stored(&mine[2]).unwrap();
        e.matter_prev = None;
        unlinked[2] = e.to_stored();
        assert_eq!(
            verify_audit(&unlinked, &[], &key, scope),
            Err(AuditError::MatterLink {
                seq: 5,
                reason: "the entry has no link to the matter's previous entry"
            })
        );
        // The matter's last entry altered: its checkpoint head catches it.
        let mut last = mine.clone();
        let mut e = AuditEntry::from_stored(&mine[5]).unwrap();
        e.actor = "mallory@example.com".into();
        last[5] = e.to_stored();
        assert_eq!(
            verify_audit(&last, &[checkpoint(&k, &l, 12)], &key, scope),
            Err(AuditError::CheckpointHead {
                index: 0,
                at: 1_900_000_012,
                count: 6,
                seq: 11
            })
        );
        assert_eq!(
            verify_audit(&mine[..5], &[checkpoint(&k, &l, 12)], &key, scope),
            Err(AuditError::CheckpointBeyondLog {
                index: 0,
                at: 1_900_000_012,
                count: 6,
                entries: 5
            })
        );
    }

    #[test]
    fn checkpoints_must_be_signed_by_the_server_key() {
        let k = server();
        let l = log(4);
        let mut cp = checkpoint(&k, &l, 4);
        cp.signature[10] ^= 1;
        assert_eq!(
            verify_audit(&l.raw, &[cp], &server_key(&k), AuditScope::Log),
            Err(AuditError::CheckpointSignature { index: 0 })
        );
        let other = Ed25519KeyPair::from_seed_unchecked(&[10; 32]).unwrap();
        let cps = vec![checkpoint(&k, &l, 2), checkpoint(&other, &l, 4)];
        assert_eq!(
            verify_audit(&l.raw, &cps, &server_key(&k), AuditScope::Log),
            Err(AuditError::CheckpointSignature { index: 1 })
        );
        let mut cp = checkpoint(&k, &l, 4);
        cp.signature.truncate(63);
        assert!(matches!(
            verify_audit(&l.raw, &[cp], &server_key(&k), AuditScope::Log),
            Err(AuditError::CheckpointMalformed { index: 0, .. })
        ));
        let mut cp = checkpoint(&k, &l, 4);
        cp.checkpoint.push(0);
        assert_eq!(
            verify_audit(&l.raw, &[cp], &server_key(&k), AuditScope::Log),
            Err(AuditError::CheckpointMalformed {
                index: 0,
                reason: DecodeError::TrailingBytes(1)
            })
        );
    }

    #[test]
    fn server_key_fingerprints_are_sha256_hex() {
        let f = server_key_fingerprint(&[0; 32]);
        assert_eq!(f.len(), 7 + 64);
        assert!(f.starts_with("sha256:66687aad"));
    }
}
