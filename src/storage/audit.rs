//! The audit log: one hash chain over every entry (tree `audit`), one chain per matter
//! (`matter_heads` holds each matter's head; `matter_index` lists its entries), an index by
//! object (`audit_objects`) and the server's signed checkpoints of the heads (`checkpoints`).
//!
//! Entries are stored exactly as [`AuditEntry::to_stored`] writes them, and their hash is
//! SHA-256 over those bytes, so what verifiers hash is what is on disk. Entries hold ids,
//! emails, addresses, actions and times only. This module signs nothing itself: the server
//! hands [`Store::checkpoint`] a signing function, so no key ever reaches storage.

use std::collections::BTreeSet;

use super::records::MatterHeadRecord;
use super::{AuditEntry, AuditHead, Batch, StorageError, Store, encode, key_bytes, sha256};
use crate::wire::audit::{Checkpoint, MAX_ENTRY_LEN, MatterHead};
use crate::wire::{from_hex, to_hex};

/// A checkpoint as stored: its number, its encoding and the server's signature over
/// [`Checkpoint::signed_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Position among checkpoints, from 0.
    pub seq: u64,
    /// [`Checkpoint::encode`].
    pub checkpoint: Vec<u8>,
    /// Ed25519 signature by the server's audit key.
    pub signature: [u8; 64],
}

impl StoredCheckpoint {
    /// The decoded checkpoint.
    pub fn decoded(&self) -> Result<Checkpoint, StorageError> {
        Checkpoint::decode(&self.checkpoint).map_err(|_| StorageError::Corrupt {
            tree: "checkpoints",
        })
    }
}

/// Kind byte in `matter_index` of a checkpoint naming the matter.
pub(super) const MATTER_CHECKPOINT: u8 = 5;
/// Kind byte in `matter_index` of an audit entry in the matter's chain.
pub(super) const MATTER_AUDIT: u8 = 6;

/// Recovers the head of the log at start: the last entry's sequence and hash, and the matters
/// whose chains advanced since the last checkpoint (read from the entries after it only).
pub(super) fn head_at_open(
    audit: &sled::Tree,
    checkpoints: &sled::Tree,
) -> Result<AuditHead, StorageError> {
    let (next_seq, last_hash) = match audit.last()? {
        Some((k, v)) => (super::key_u64(&k).map_or(0, |s| s + 1), sha256(&v)),
        None => (0, [0; 32]),
    };
    let since = match checkpoints.last()? {
        Some((k, v)) => parse_checkpoint(&k, &v)?.decoded()?.count,
        None => 0,
    };
    let mut dirty = BTreeSet::new();
    for r in audit.range(super::key_u64_bytes(since)..) {
        let (_, v) = r?;
        if let Some(m) = entry_matter(&v)? {
            dirty.insert(m);
        }
    }
    Ok(AuditHead {
        next_seq,
        last_hash,
        dirty,
    })
}

fn entry_matter(stored: &[u8]) -> Result<Option<[u8; 16]>, StorageError> {
    let e = AuditEntry::from_stored(stored).map_err(|_| StorageError::Corrupt { tree: "audit" })?;
    match e.matter {
        Some(m) => Ok(Some(parse_id(&m, "audit")?)),
        None => Ok(None),
    }
}

fn parse_id(hex: &str, tree: &'static str) -> Result<[u8; 16], StorageError> {
    from_hex(hex)
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or(StorageError::Corrupt { tree })
}

fn parse_checkpoint(key: &[u8], value: &[u8]) -> Result<StoredCheckpoint, StorageError> {
    let corrupt = StorageError::Corrupt {
        tree: "checkpoints",
    };
    let seq = super::key_u64(key).ok_or(StorageError::Corrupt {
        tree: "checkpoints",
    })?;
    match value.split_first() {
        Some((&super::FORMAT_VERSION, rest)) if rest.len() > 64 => {
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&rest[..64]);
            Ok(StoredCheckpoint {
                seq,
                checkpoint: rest[64..].to_vec(),
                signature,
            })
        }
        _ => Err(corrupt),
    }
}

fn seq_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `version || object || 0x00`: objects (ids, emails) never hold a NUL byte.
fn object_prefix(object: &str) -> Vec<u8> {
    let mut k = key_bytes(object.as_bytes());
    k.push(0);
    k
}

fn tail_seq(key: &[u8]) -> Result<u64, StorageError> {
    key.len()
        .checked_sub(8)
        .and_then(|i| key.get(i..))
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(StorageError::Corrupt {
            tree: "audit index",
        })
}

/// One audit entry to append: what was done to which object, and in which matter.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    /// The action, such as `message.send`.
    pub action: &'a str,
    /// The object acted on: an id in hex or an email.
    pub object: &'a str,
    /// The matter, whose own chain the entry also joins.
    pub matter: Option<&'a [u8; 16]>,
}

/// A tree the audit chain writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChainTree {
    /// `audit`.
    Audit,
    /// `audit_objects`.
    Objects,
    /// `matter_heads`.
    MatterHeads,
    /// `matter_index`.
    MatterIndex,
}

/// A write of the audit chain: tree, key, value.
pub(super) type ChainWrite = (ChainTree, Vec<u8>, Vec<u8>);

/// The audit chain as the entries staged so far leave it.
pub(super) struct Chain {
    /// The next entry's sequence number.
    pub(super) seq: u64,
    last_hash: [u8; 32],
    /// The heads of the matters whose chains the staged entries advanced.
    matters: Vec<([u8; 16], MatterHeadRecord)>,
}

impl Chain {
    /// The chain as stored.
    pub(super) fn at(head: &AuditHead) -> Self {
        Self {
            seq: head.next_seq,
            last_hash: head.last_hash,
            matters: Vec::new(),
        }
    }

    /// The writes that append the entries of `events`, by `actor` from `addr` at `at`, in the
    /// order given, and the chain advanced past them. `stored_head` reads a matter's head as
    /// stored, for a matter no staged entry has advanced yet. On an error the chain is
    /// unchanged.
    pub(super) fn append(
        &mut self,
        at: i64,
        actor: &str,
        addr: &str,
        events: &[AuditEvent<'_>],
        mut stored_head: impl FnMut(&[u8; 16]) -> Result<Option<MatterHeadRecord>, StorageError>,
    ) -> Result<Vec<ChainWrite>, StorageError> {
        let (mut seq, mut last_hash) = (self.seq, self.last_hash);
        let mut matters = self.matters.clone();
        let mut writes = Vec::with_capacity(events.len() * 2);
        for e in events {
            let matter_head = match e.matter {
                Some(m) => Some(match matters.iter().find(|(id, _)| id == m) {
                    Some((_, h)) => *h,
                    None => stored_head(m)?.unwrap_or(MatterHeadRecord {
                        count: 0,
                        head: [0; 32],
                        last_seq: 0,
                    }),
                }),
                None => None,
            };
            let entry = AuditEntry {
                seq,
                at,
                actor: actor.to_owned(),
                addr: addr.to_owned(),
                action: e.action.to_owned(),
                object: e.object.to_owned(),
                matter: e.matter.map(|m| to_hex(m)),
                prev: to_hex(&last_hash),
                matter_prev: matter_head.map(|h| to_hex(&h.head)),
            };
            let stored = entry.to_stored();
            if stored.len() > MAX_ENTRY_LEN || e.object.as_bytes().contains(&0) {
                return Err(StorageError::TooLong { tree: "audit" });
            }
            let hash = sha256(&stored);
            writes.push((ChainTree::Audit, super::key_u64_bytes(seq), stored));
            writes.push((
                ChainTree::Objects,
                seq_key(&object_prefix(e.object), seq),
                Vec::new(),
            ));
            if let (Some(m), Some(h)) = (e.matter, matter_head) {
                let advanced = MatterHeadRecord {
                    count: h.count + 1,
                    head: hash,
                    last_seq: seq,
                };
                writes.push((ChainTree::MatterHeads, key_bytes(m), encode(&advanced)));
                writes.push((
                    ChainTree::MatterIndex,
                    super::legal::matter_key(m, MATTER_AUDIT, &seq.to_be_bytes()),
                    Vec::new(),
                ));
                matters.retain(|(id, _)| id != m);
                matters.push((*m, advanced));
            }
            seq += 1;
            last_hash = hash;
        }
        (self.seq, self.last_hash, self.matters) = (seq, last_hash, matters);
        Ok(writes)
    }

    /// Records in `head` that the staged entries are applied.
    pub(super) fn leave(self, head: &mut AuditHead) {
        head.next_seq = self.seq;
        head.last_hash = self.last_hash;
        head.dirty.extend(self.matters.iter().map(|(m, _)| *m));
    }
}

impl Store {
    /// Appends an entry to the audit log and, with a matter, to the matter's chain (not yet
    /// durable: call [`Store::commit`]). `addr` is the client's address, empty for the
    /// server's own actions. Returns the entry's sequence number.
    pub fn audit(
        &self,
        at: i64,
        actor: &str,
        addr: &str,
        action: &str,
        object: &str,
        matter: Option<&[u8; 16]>,
    ) -> Result<u64, StorageError> {
        let event = AuditEvent {
            action,
            object,
            matter,
        };
        self.apply_audited(Batch::default(), at, actor, addr, &[event])
    }

    /// Applies `b` and the audit entries of `events`, by
    /// `actor` from `addr` at `at`, in one transaction: one write to sled's log instead of one
    /// per part. The entries are chained in the order given; returns the first one's sequence
    /// number. If an expectation of `b` no longer holds, nothing is applied (`Conflict`).
    pub(super) fn apply_audited<'s>(
        &'s self,
        mut b: Batch<'s>,
        at: i64,
        actor: &str,
        addr: &str,
        events: &[AuditEvent<'_>],
    ) -> Result<u64, StorageError> {
        // The head lock is held for one transaction, never across an await.
        let mut head = self.lock_audit_head();
        let mut chain = Chain::at(&head);
        let first = chain.seq;
        for (t, k, v) in chain.append(at, actor, addr, events, |m| self.matter_head(m))? {
            b.put(self.chain_tree(t), k, v);
        }
        if !self.apply(b)? {
            return Err(StorageError::Conflict);
        }
        chain.leave(&mut head);
        Ok(first)
    }

    pub(super) fn lock_audit_head(&self) -> std::sync::MutexGuard<'_, AuditHead> {
        self.audit_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn chain_tree(&self, t: ChainTree) -> &sled::Tree {
        match t {
            ChainTree::Audit => &self.audit,
            ChainTree::Objects => &self.audit_objects,
            ChainTree::MatterHeads => &self.matter_heads,
            ChainTree::MatterIndex => &self.matter_index,
        }
    }

    /// Entries in the log and the hash of the last (zeros if none).
    pub fn audit_head(&self) -> (u64, [u8; 32]) {
        let head = self
            .audit_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (head.next_seq, head.last_hash)
    }

    /// The head of `matter`'s chain, if it has entries.
    pub fn matter_head(&self, matter: &[u8; 16]) -> Result<Option<MatterHeadRecord>, StorageError> {
        super::get(&self.matter_heads, "matter_heads", &key_bytes(matter))
    }

    /// The stored bytes of every entry with a sequence number below `below`, in order.
    pub fn audit_entries(&self, below: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut out = Vec::new();
        for r in self.audit.range(..super::key_u64_bytes(below)) {
            let (_, v) = r?;
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// The stored bytes of `matter`'s entries below `below`, in order (its own chain).
    pub fn audit_entries_of_matter(
        &self,
        matter: &[u8; 16],
        below: u64,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let prefix = super::legal::matter_key(matter, MATTER_AUDIT, &[]);
        let mut seqs = Vec::new();
        for r in self.matter_index.scan_prefix(&prefix).keys() {
            let seq = tail_seq(&r?)?;
            if seq < below {
                seqs.push(seq);
            }
        }
        self.entries_at(&seqs)
    }

    /// The stored bytes of the entries below `below` whose object is one of `objects`, in log
    /// order, with their sequence numbers.
    pub fn audit_entries_about(
        &self,
        objects: &[&str],
        below: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let mut seqs = BTreeSet::new();
        for object in objects {
            for r in self.audit_objects.scan_prefix(object_prefix(object)).keys() {
                let seq = tail_seq(&r?)?;
                if seq < below {
                    seqs.insert(seq);
                }
            }
        }
        let seqs: Vec<u64> = seqs.into_iter().collect();
        let entries = self.entries_at(&seqs)?;
        Ok(seqs.into_iter().zip(entries).collect())
    }

    fn entries_at(&self, seqs: &[u64]) -> Result<Vec<Vec<u8>>, StorageError> {
        seqs.iter()
            .map(|s| {
                self.audit
                    .get(super::key_u64_bytes(*s))?
                    .map(|v| v.to_vec())
                    .ok_or(StorageError::Corrupt { tree: "audit" })
            })
            .collect()
    }

    /// Signs and stores a checkpoint of the current heads if the log advanced since the last
    /// one; `sign` signs [`Checkpoint::signed_message`]. Returns the new checkpoint, or `None`
    /// when the last one is still current (not yet durable: call [`Store::commit`]).
    pub fn checkpoint(
        &self,
        at: i64,
        sign: &dyn Fn(&[u8]) -> [u8; 64],
    ) -> Result<Option<StoredCheckpoint>, StorageError> {
        // Holding the head lock keeps the heads still while they are read and signed.
        let mut head = self
            .audit_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = self.latest_checkpoint()?;
        let covered = match &last {
            Some(c) => c.decoded()?.count,
            None => 0,
        };
        if covered == head.next_seq {
            return Ok(None);
        }
        let mut matters = Vec::with_capacity(head.dirty.len());
        for m in &head.dirty {
            let h = self.matter_head(m)?.ok_or(StorageError::Corrupt {
                tree: "matter_heads",
            })?;
            matters.push(MatterHead {
                matter: *m,
                count: h.count,
                head: h.head,
            });
        }
        let checkpoint = Checkpoint {
            count: head.next_seq,
            head: head.last_hash,
            at,
            matters,
        };
        let signature = sign(&checkpoint.signed_message());
        let seq = last.map_or(0, |c| c.seq + 1);
        let encoded = checkpoint.encode();
        let mut value = vec![super::FORMAT_VERSION];
        value.extend_from_slice(&signature);
        value.extend_from_slice(&encoded);
        let mut b = Batch::default();
        b.put(&self.checkpoints, super::key_u64_bytes(seq), value);
        for m in &head.dirty {
            b.put(
                &self.matter_index,
                super::legal::matter_key(m, MATTER_CHECKPOINT, &seq.to_be_bytes()),
                Vec::new(),
            );
        }
        self.apply(b)?;
        head.dirty.clear();
        Ok(Some(StoredCheckpoint {
            seq,
            checkpoint: encoded,
            signature,
        }))
    }

    /// The newest checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StorageError> {
        match self.checkpoints.last()? {
            Some((k, v)) => Ok(Some(parse_checkpoint(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// Every checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StorageError> {
        self.checkpoints
            .iter()
            .map(|r| {
                let (k, v) = r?;
                parse_checkpoint(&k, &v)
            })
            .collect()
    }

    /// The checkpoints that name `matter`, oldest first.
    pub fn checkpoints_of_matter(
        &self,
        matter: &[u8; 16],
    ) -> Result<Vec<StoredCheckpoint>, StorageError> {
        let prefix = super::legal::matter_key(matter, MATTER_CHECKPOINT, &[]);
        let mut out = Vec::new();
        for r in self.matter_index.scan_prefix(&prefix).keys() {
            let seq = tail_seq(&r?)?;
            let key = super::key_u64_bytes(seq);
            let v = self.checkpoints.get(&key)?.ok_or(StorageError::Corrupt {
                tree: "checkpoints",
            })?;
            out.push(parse_checkpoint(&key, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;
    use crate::crypto::audit::{AuditError, AuditScope, SignedCheckpointBytes, verify_audit};

    const MATTER: [u8; 16] = [7; 16];

    fn key() -> (Ed25519KeyPair, [u8; 32]) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
        let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
        (pair, public)
    }

    fn signed(checkpoints: &[StoredCheckpoint]) -> Vec<SignedCheckpointBytes> {
        checkpoints
            .iter()
            .map(|c| SignedCheckpointBytes {
                checkpoint: c.checkpoint.clone(),
                signature: c.signature.to_vec(),
            })
            .collect()
    }

    /// Six entries, the odd ones in MATTER, with a checkpoint after the fourth and at the end.
    async fn log_with_checkpoints() -> (tempfile::TempDir, Store, [u8; 32]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let (pair, public) = key();
        let sign = |m: &[u8]| -> [u8; 64] { pair.sign(m).as_ref().try_into().expect("64 bytes") };
        for i in 0..6u8 {
            let matter = (i % 2 == 1).then_some(&MATTER);
            store
                .audit(
                    i64::from(i),
                    "ann@firm.example",
                    "127.0.0.1",
                    "ciphertext.release",
                    &to_hex(&[i; 16]),
                    matter,
                )
                .expect("audit");
            if i == 3 {
                assert!(store.checkpoint(10, &sign).expect("checkpoint").is_some());
                assert!(
                    store.checkpoint(11, &sign).expect("checkpoint").is_none(),
                    "nothing new: no checkpoint"
                );
            }
        }
        store.checkpoint(20, &sign).expect("checkpoint");
        store.commit().await.expect("commit");
        (dir, store, public)
    }

    fn verify_log(store: &Store, public: &[u8; 32]) -> Result<u64, AuditError> {
        let (count, _) = store.audit_head();
        let entries = store.audit_entries(count).expect("entries");
        let checkpoints = signed(&store.checkpoints().expect("checkpoints"));
        verify_audit(&entries, &checkpoints, public, AuditScope::Log).map(|r| r.covered)
    }

    fn verify_matter(store: &Store, public: &[u8; 32]) -> Result<u64, AuditError> {
        let entries = store
            .audit_entries_of_matter(&MATTER, u64::MAX)
            .expect("entries");
        let checkpoints = signed(&store.checkpoints_of_matter(&MATTER).expect("checkpoints"));
        verify_audit(&entries, &checkpoints, public, AuditScope::Matter(MATTER)).map(|r| r.covered)
    }

    #[tokio::test]
    async fn the_log_and_each_matter_chain_verify_with_their_checkpoints() {
        let (_dir, store, public) = log_with_checkpoints().await;
        assert_eq!(verify_log(&store, &public), Ok(6));
        assert_eq!(verify_matter(&store, &public), Ok(3));
        let entries = store
            .audit_entries_about(&[&to_hex(&[3u8; 16]), &to_hex(&[5u8; 16])], u64::MAX)
            .expect("about");
        assert_eq!(entries.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 5]);
        let c = store.checkpoints().expect("checkpoints");
        assert_eq!(c.len(), 2);
        let last = c[1].decoded().expect("decode");
        assert_eq!((last.count, last.matters.len()), (6, 1));
        assert_eq!(last.matters[0].count, 3);
        // Both checkpoints name the matter: it advanced before each.
        assert_eq!(
            store
                .checkpoints_of_matter(&MATTER)
                .expect("of matter")
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn entries_applied_in_one_batch_chain_as_if_appended_one_by_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let (pair, public) = key();
        let sign = |m: &[u8]| -> [u8; 64] { pair.sign(m).as_ref().try_into().expect("64 bytes") };
        store
            .audit(
                1,
                "ann@firm.example",
                "",
                "matter.create",
                "m",
                Some(&MATTER),
            )
            .expect("audit");
        // Then four in one batch: two in MATTER one after the other, one in no matter, one in
        // another matter.
        let objects: Vec<String> = (10..14u8).map(|i| to_hex(&[i; 16])).collect();
        let other = [9u8; 16];
        let matters = [Some(&MATTER), Some(&MATTER), None, Some(&other)];
        let events: Vec<AuditEvent<'_>> = objects
            .iter()
            .zip(matters)
            .map(|(object, matter)| AuditEvent {
                action: "message.send",
                object,
                matter,
            })
            .collect();
        let first = store
            .apply_audited(
                Batch::default(),
                2,
                "ann@firm.example",
                "127.0.0.1",
                &events,
            )
            .expect("audited");
        assert_eq!(first, 1);
        assert_eq!(store.audit_head().0, 5);
        let head = store.matter_head(&MATTER).expect("head").expect("some");
        assert_eq!((head.count, head.last_seq), (3, 2));
        store.checkpoint(3, &sign).expect("checkpoint");
        store.commit().await.expect("commit");
        assert_eq!(verify_log(&store, &public), Ok(5));
        assert_eq!(verify_matter(&store, &public), Ok(3));
        let entries = store
            .audit_entries_of_matter(&other, u64::MAX)
            .expect("other");
        assert_eq!(entries.len(), 1);
    }

    #[tokio::test]
    async fn reopening_keeps_the_chain_and_the_matters_not_yet_checkpointed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pair, public) = key();
        let sign = |m: &[u8]| -> [u8; 64] { pair.sign(m).as_ref().try_into().expect("64 bytes") };
        {
            let store = Store::open(dir.path(), 1 << 20).expect("open");
            store
                .audit(
                    1,
                    "a@x",
                    "",
                    "matter.create",
                    &to_hex(&MATTER),
                    Some(&MATTER),
                )
                .expect("audit");
            store.commit().await.expect("commit");
        }
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        store
            .audit(
                2,
                "a@x",
                "",
                "matter.close",
                &to_hex(&MATTER),
                Some(&MATTER),
            )
            .expect("audit");
        let c = store
            .checkpoint(3, &sign)
            .expect("checkpoint")
            .expect("new");
        assert_eq!(c.decoded().expect("decode").matters[0].count, 2);
        assert_eq!(verify_log(&store, &public), Ok(2));
        assert_eq!(verify_matter(&store, &public), Ok(2));
    }

    #[tokio::test]
    async fn an_altered_entry_is_detected() {
        let (_dir, store, public) = log_with_checkpoints().await;
        let key = super::super::key_u64_bytes(3);
        let stored = store.audit.get(&key).expect("get").expect("entry 3");
        let mut entry = AuditEntry::from_stored(&stored).expect("parse");
        entry.actor = "mallory@firm.example".into();
        store.audit.insert(&key, entry.to_stored()).expect("alter");
        assert_eq!(
            verify_log(&store, &public),
            Err(AuditError::PrevMismatch { seq: 4 })
        );
        assert!(matches!(
            verify_matter(&store, &public),
            Err(AuditError::MatterLink { seq: 5, .. })
        ));
    }

    #[tokio::test]
    async fn an_altered_last_entry_is_caught_by_the_signed_checkpoint() {
        let (_dir, store, public) = log_with_checkpoints().await;
        let key = super::super::key_u64_bytes(5);
        let stored = store.audit.get(&key).expect("get").expect("entry 5");
        let mut entry = AuditEntry::from_stored(&stored).expect("parse");
        entry.at += 1;
        store.audit.insert(&key, entry.to_stored()).expect("alter");
        assert!(matches!(
            verify_log(&store, &public),
            Err(AuditError::CheckpointHead { seq: 5, .. })
        ));
    }

    #[tokio::test]
    async fn a_removed_entry_is_detected() {
        let (_dir, store, public) = log_with_checkpoints().await;
        store
            .audit
            .remove(super::super::key_u64_bytes(2))
            .expect("remove");
        assert_eq!(
            verify_log(&store, &public),
            Err(AuditError::Sequence {
                position: 2,
                expected: 2,
                found: 3
            })
        );
        // Removing the last entry: the chain alone holds, the checkpoint does not.
        let (_dir, store, public) = log_with_checkpoints().await;
        store
            .audit
            .remove(super::super::key_u64_bytes(5))
            .expect("remove");
        assert!(matches!(
            verify_log(&store, &public),
            Err(AuditError::CheckpointBeyondLog {
                count: 6,
                entries: 5,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn reordered_entries_are_detected() {
        let (_dir, store, public) = log_with_checkpoints().await;
        let (k1, k2) = (
            super::super::key_u64_bytes(1),
            super::super::key_u64_bytes(2),
        );
        let e1 = store.audit.get(&k1).expect("get").expect("1");
        let e2 = store.audit.get(&k2).expect("get").expect("2");
        store.audit.insert(&k1, e2).expect("swap");
        store.audit.insert(&k2, e1).expect("swap");
        assert_eq!(
            verify_log(&store, &public),
            Err(AuditError::Sequence {
                position: 1,
                expected: 1,
                found: 2
            })
        );
    }
}
