//! The audit log's formats: the stored entry, the signed checkpoint of the chain heads and the
//! evidence attestation. Shared by the server, which writes and signs them, and by clients and
//! offline verifiers, which check them (`crypto::audit`).
//!
//! Entry `n` is stored as `version byte || JSON`; its hash is SHA-256 over exactly those bytes.
//! `prev` of entry `n` is the hash of entry `n - 1` (zeros for entry 0), so the log is one chain;
//! `matter_prev` of an entry in a matter is the hash of the matter's previous entry (zeros for
//! its first), so each matter's entries also form a chain that can be checked without the rest
//! of the log.

use serde::{Deserialize, Serialize};

use super::api::SignatureStatus;
use super::{DecodeError, Reader, Writer};

/// The version byte in front of every stored entry.
pub const ENTRY_VERSION: u8 = 1;
/// Domain-separation prefix of a checkpoint signature.
pub const CHECKPOINT_DOMAIN: &[u8] = b"attache/v1 audit-checkpoint\0";
/// Domain-separation prefix of an evidence attestation.
///
/// `-2`: the second form, which binds the parties' keys and the request's fields as well as the
/// entries. The first (request id, time and entries only) never shipped and is not accepted.
pub const ATTESTATION_DOMAIN: &[u8] = b"attache/v1 evidence-attestation-2\0";
/// Most matters one checkpoint names.
pub const MAX_CHECKPOINT_MATTERS: usize = 100_000;
/// Most entries one attestation covers.
pub const MAX_ATTESTED_ENTRIES: usize = 10_000;
/// Longest stored entry.
pub const MAX_ENTRY_LEN: usize = 4096;

const CHECKPOINT_VERSION: u8 = 1;

/// One audit entry. No plaintext: ids, emails, addresses, actions and times only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When (server clock, seconds since the epoch).
    pub at: i64,
    /// Who (an email, or `server` for the server's own actions).
    pub actor: String,
    /// From which address (IP), empty for the server's own actions.
    #[serde(default)]
    pub addr: String,
    /// What, e.g. `ciphertext.release`, `grant.create`, `matter.delete`.
    pub action: String,
    /// On what: an id in hex, or an email for sign-ins and invites.
    pub object: String,
    /// The matter the object belongs to, hex.
    #[serde(default)]
    pub matter: Option<String>,
    /// SHA-256 (hex) of the previous entry's stored bytes; 64 zeros for the first.
    pub prev: String,
    /// SHA-256 (hex) of the matter's previous entry's stored bytes (64 zeros for its first);
    /// present exactly when `matter` is.
    #[serde(default)]
    pub matter_prev: Option<String>,
}

impl AuditEntry {
    /// The stored bytes: version byte, then JSON.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = vec![ENTRY_VERSION];
        // A plain struct of strings and integers always serialises.
        if serde_json::to_writer(&mut out, self).is_err() {
            out.truncate(1);
        }
        out
    }

    /// Parses stored bytes.
    pub fn from_stored(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(DecodeError::TooLong {
                field: "audit entry",
                len: bytes.len() as u64,
                max: MAX_ENTRY_LEN as u64,
            });
        }
        match bytes.split_first() {
            Some((&ENTRY_VERSION, json)) => {
                let entry: Self = serde_json::from_slice(json)
                    .map_err(|_| DecodeError::Unsupported("audit entry"))?;
                // Fields left out (`matter`, `addr`) are written back in full: an entry whose
                // stored form would pass the limit was never stored by the server, which
                // refuses to append one.
                let len = entry.to_stored().len();
                if len > MAX_ENTRY_LEN {
                    return Err(DecodeError::TooLong {
                        field: "audit entry",
                        len: len as u64,
                        max: MAX_ENTRY_LEN as u64,
                    });
                }
                Ok(entry)
            }
            Some(_) => Err(DecodeError::Unsupported("audit entry version")),
            None => Err(DecodeError::Truncated("audit entry")),
        }
    }
}

/// The head of one matter's chain at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatterHead {
    /// The matter id.
    pub matter: [u8; 16],
    /// Entries the matter had.
    pub count: u64,
    /// Hash of its last entry.
    pub head: [u8; 32],
}

/// A statement by the server of the log's state at a moment: how many entries it had, the hash
/// of the last, and the same for each matter changed since the previous checkpoint. The server
/// signs [`Checkpoint::signed_message`] with its audit key, kept apart from the data folder, so
/// that someone who can rewrite the database cannot re-sign its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Entries in the log (the last has seq `count - 1`).
    pub count: u64,
    /// Hash of the last entry (zeros if none).
    pub head: [u8; 32],
    /// When it was made.
    pub at: i64,
    /// Matter heads, in ascending id order.
    pub matters: Vec<MatterHead>,
}

impl Checkpoint {
    /// `version || count u64 || head 32 || at i64 || u32 n || n × (matter 16 || count u64 ||
    /// head 32)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(53 + 56 * self.matters.len());
        w.u8(CHECKPOINT_VERSION)
            .u64(self.count)
            .bytes(&self.head)
            .i64(self.at)
            .u32(self.matters.len() as u32);
        for m in &self.matters {
            w.bytes(&m.matter).u64(m.count).bytes(&m.head);
        }
        w.into_vec()
    }

    /// Parses [`Checkpoint::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8("checkpoint version")? != CHECKPOINT_VERSION {
            return Err(DecodeError::Unsupported("checkpoint version"));
        }
        let count = r.u64("count")?;
        let head = r.array("head")?;
        let at = r.i64("time")?;
        let n = r.u32("matters")? as usize;
        if n > MAX_CHECKPOINT_MATTERS {
            return Err(DecodeError::TooLong {
                field: "matters",
                len: n as u64,
                max: MAX_CHECKPOINT_MATTERS as u64,
            });
        }
        let mut matters = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            matters.push(MatterHead {
                matter: r.array("matter")?,
                count: r.u64("matter count")?,
                head: r.array("matter head")?,
            });
        }
        r.finish()?;
        Ok(Self {
            count,
            head,
            at,
            matters,
        })
    }

    /// What the server signs: [`CHECKPOINT_DOMAIN`] then the encoding.
    pub fn signed_message(&self) -> Vec<u8> {
        [CHECKPOINT_DOMAIN, &self.encode()].concat()
    }
}

/// One party of an attested signature request: the email the request names and the 64-byte
/// public keys (`x25519 || ed25519`) the server holds for that account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestedParty<'a> {
    /// The email, as the request names it.
    pub email: &'a str,
    /// The public keys, `x25519 || ed25519`.
    pub public_keys: &'a [u8; 64],
}

/// Everything the server's evidence attestation binds: the request's fields as the bundle
/// carries them, both parties' emails and public keys, the time of the attestation and the
/// audit entries. See [`attestation_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attestation<'a> {
    /// The request id.
    pub request_id: &'a [u8; 16],
    /// The requester.
    pub requester: AttestedParty<'a>,
    /// The signer.
    pub signer: AttestedParty<'a>,
    /// The message that carried the document.
    pub message: &'a [u8; 16],
    /// The document to sign.
    pub document: &'a [u8; 16],
    /// The matter, if any.
    pub matter: Option<&'a [u8; 16]>,
    /// When the request was made (server clock).
    pub created_at: i64,
    /// The deadline.
    pub deadline: i64,
    /// The status at `attested_at`.
    pub status: SignatureStatus,
    /// When the server recorded the answer.
    pub answered_at: Option<i64>,
    /// When the server attested (server clock).
    pub attested_at: i64,
    /// SHA-256 of each stored audit entry, in the bundle's order.
    pub entry_hashes: &'a [[u8; 32]],
}

/// The one-byte code of a request status in [`attestation_message`].
pub fn status_code(status: SignatureStatus) -> u8 {
    match status {
        SignatureStatus::Pending => 0,
        SignatureStatus::Signed => 1,
        SignatureStatus::Declined => 2,
        SignatureStatus::Expired => 3,
    }
}

/// What the server signs to attest an evidence bundle (docs/FORMAT.md §16.1), big-endian:
///
/// ```text
/// ATTESTATION_DOMAIN                       "attache/v1 evidence-attestation-2" 0x00
/// request id          bytes[16]
/// requester email     str32
/// requester keys      bytes[32]            SHA-256 of the 64-byte public keys
/// signer email        str32
/// signer keys         bytes[32]            SHA-256 of the 64-byte public keys
/// message id          bytes[16]
/// document id         bytes[16]
/// matter flag         u8                   0 none, 1 present
/// matter id           bytes[16]            zeros when the flag is 0
/// created_at          i64
/// deadline            i64
/// status              u8                   0 pending, 1 signed, 2 declined, 3 expired
/// answered flag       u8                   0 none, 1 present
/// answered_at         i64                  0 when the flag is 0
/// attested_at         i64
/// n                   u32
/// n × entry hash      bytes[32]            SHA-256 of each stored entry
/// ```
pub fn attestation_message(a: &Attestation<'_>) -> Vec<u8> {
    let mut w = Writer::with_capacity(
        ATTESTATION_DOMAIN.len()
            + 200
            + a.requester.email.len()
            + a.signer.email.len()
            + 32 * a.entry_hashes.len(),
    );
    w.bytes(ATTESTATION_DOMAIN).bytes(a.request_id);
    for p in [&a.requester, &a.signer] {
        w.bytes32(p.email.as_bytes())
            .bytes(ring::digest::digest(&ring::digest::SHA256, p.public_keys).as_ref());
    }
    w.bytes(a.message)
        .bytes(a.document)
        .u8(u8::from(a.matter.is_some()))
        .bytes(a.matter.unwrap_or(&[0; 16]))
        .i64(a.created_at)
        .i64(a.deadline)
        .u8(status_code(a.status))
        .u8(u8::from(a.answered_at.is_some()))
        .i64(a.answered_at.unwrap_or(0))
        .i64(a.attested_at)
        .u32(a.entry_hashes.len() as u32);
    for h in a.entry_hashes {
        w.bytes(h);
    }
    w.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_reject_trailing_bytes() {
        let c = Checkpoint {
            count: 7,
            head: [3; 32],
            at: 1_800_000_000,
            matters: vec![MatterHead {
                matter: [1; 16],
                count: 2,
                head: [4; 32],
            }],
        };
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes), Ok(c.clone()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Checkpoint::decode(&longer),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(c.signed_message().starts_with(CHECKPOINT_DOMAIN));
    }

    #[test]
    fn entries_round_trip_through_their_stored_form() {
        let e = AuditEntry {
            seq: 0,
            at: 5,
            actor: "a@x".into(),
            addr: "127.0.0.1".into(),
            action: "grant.create".into(),
            object: "00".repeat(16),
            matter: None,
            prev: "0".repeat(64),
            matter_prev: None,
        };
        let stored = e.to_stored();
        assert_eq!(stored[0], ENTRY_VERSION);
        assert_eq!(AuditEntry::from_stored(&stored), Ok(e));
        assert_eq!(
            AuditEntry::from_stored(&[2, b'{', b'}']),
            Err(DecodeError::Unsupported("audit entry version"))
        );
    }

    fn attestation<'a>(keys: &'a [u8; 64], hashes: &'a [[u8; 32]]) -> Attestation<'a> {
        Attestation {
            request_id: &[0x11; 16],
            requester: AttestedParty {
                email: "ann@firm.example",
                public_keys: keys,
            },
            signer: AttestedParty {
                email: "carol@client.example",
                public_keys: keys,
            },
            message: &[0x22; 16],
            document: &[0x33; 16],
            matter: Some(&[0x44; 16]),
            created_at: 1_800_000_000,
            deadline: 1_800_100_000,
            status: SignatureStatus::Signed,
            answered_at: Some(1_800_050_000),
            attested_at: 1_800_060_000,
            entry_hashes: hashes,
        }
    }

    /// The layout of docs/FORMAT.md §16.1, byte for byte.
    #[test]
    fn the_attestation_message_is_laid_out_as_documented() {
        let keys = [9u8; 64];
        let hashes = [[0xaa; 32], [0xbb; 32]];
        let keys_sha = ring::digest::digest(&ring::digest::SHA256, &keys);
        let mut expected = b"attache/v1 evidence-attestation-2\0".to_vec();
        expected.extend_from_slice(&[0x11; 16]);
        expected.extend_from_slice(&16u32.to_be_bytes());
        expected.extend_from_slice(b"ann@firm.example");
        expected.extend_from_slice(keys_sha.as_ref());
        expected.extend_from_slice(&20u32.to_be_bytes());
        expected.extend_from_slice(b"carol@client.example");
        expected.extend_from_slice(keys_sha.as_ref());
        expected.extend_from_slice(&[0x22; 16]);
        expected.extend_from_slice(&[0x33; 16]);
        expected.push(1);
        expected.extend_from_slice(&[0x44; 16]);
        expected.extend_from_slice(&1_800_000_000i64.to_be_bytes());
        expected.extend_from_slice(&1_800_100_000i64.to_be_bytes());
        expected.push(1);
        expected.push(1);
        expected.extend_from_slice(&1_800_050_000i64.to_be_bytes());
        expected.extend_from_slice(&1_800_060_000i64.to_be_bytes());
        expected.extend_from_slice(&2u32.to_be_bytes());
        expected.extend_from_slice(&[0xaa; 32]);
        expected.extend_from_slice(&[0xbb; 32]);
        let a = attestation(&keys, &hashes);
        assert_eq!(attestation_message(&a), expected);
        assert_eq!(ATTESTATION_DOMAIN.len(), 34);
        assert_eq!(
            expected.len(),
            34 + 16 + 2 * 36 + 16 + 20 + 16 + 16 + 17 + 16 + 1 + 9 + 8 + 4 + 64
        );
        // Absent values: the flag is 0 and the field is zeros.
        let none = Attestation {
            matter: None,
            answered_at: None,
            status: SignatureStatus::Pending,
            ..a
        };
        let m = attestation_message(&none);
        // domain, request id, requester (u32, 16, 32), signer (u32, 20, 32), message, document.
        let matter_at = 34 + 16 + 52 + 56 + 32;
        assert_eq!(&m[matter_at..matter_at + 17], &[0u8; 17]);
        let status_at = matter_at + 17 + 16;
        assert_eq!(&m[status_at..status_at + 10], &[0u8; 10]);
    }

    /// Each bound value changes the message.
    #[test]
    fn every_attested_field_changes_the_message() {
        let keys = [9u8; 64];
        let other_keys = [8u8; 64];
        let hashes = [[0xaa; 32]];
        let a = attestation(&keys, &hashes);
        let variants = [
            Attestation {
                request_id: &[0x12; 16],
                ..a
            },
            Attestation {
                requester: AttestedParty {
                    email: "bob@firm.example",
                    ..a.requester
                },
                ..a
            },
            Attestation {
                requester: AttestedParty {
                    public_keys: &other_keys,
                    ..a.requester
                },
                ..a
            },
            Attestation {
                signer: AttestedParty {
                    email: "eve@client.example",
                    ..a.signer
                },
                ..a
            },
            Attestation {
                signer: AttestedParty {
                    public_keys: &other_keys,
                    ..a.signer
                },
                ..a
            },
            Attestation {
                message: &[0x23; 16],
                ..a
            },
            Attestation {
                document: &[0x34; 16],
                ..a
            },
            Attestation {
                matter: Some(&[0x45; 16]),
                ..a
            },
            Attestation { matter: None, ..a },
            Attestation {
                matter: Some(&[0; 16]),
                ..a
            },
            Attestation {
                created_at: a.created_at + 1,
                ..a
            },
            Attestation {
                deadline: a.deadline + 1,
                ..a
            },
            Attestation {
                status: SignatureStatus::Declined,
                ..a
            },
            Attestation {
                answered_at: None,
                ..a
            },
            Attestation {
                answered_at: Some(0),
                ..a
            },
            Attestation {
                attested_at: a.attested_at + 1,
                ..a
            },
            Attestation {
                entry_hashes: &[],
                ..a
            },
        ];
        let mut seen = std::collections::BTreeSet::new();
        assert!(seen.insert(attestation_message(&a)));
        for (i, v) in variants.iter().enumerate() {
            assert!(seen.insert(attestation_message(v)), "variant {i}");
        }
    }
}
