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

use super::{DecodeError, Reader, Writer};

/// The version byte in front of every stored entry.
pub const ENTRY_VERSION: u8 = 1;
/// Domain-separation prefix of a checkpoint signature.
pub const CHECKPOINT_DOMAIN: &[u8] = b"attache/v1 audit-checkpoint\0";
/// Domain-separation prefix of an evidence attestation.
pub const ATTESTATION_DOMAIN: &[u8] = b"attache/v1 evidence-attestation\0";
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
                serde_json::from_slice(json).map_err(|_| DecodeError::Unsupported("audit entry"))
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

/// What the server signs to attest the audit entries of an evidence bundle:
/// [`ATTESTATION_DOMAIN`] `|| request id 16 || at i64 || u32 n || n × SHA-256 of each stored
/// entry`.
pub fn attestation_message(request_id: &[u8; 16], at: i64, entry_hashes: &[[u8; 32]]) -> Vec<u8> {
    let mut w = Writer::with_capacity(ATTESTATION_DOMAIN.len() + 28 + 32 * entry_hashes.len());
    w.bytes(ATTESTATION_DOMAIN)
        .bytes(request_id)
        .i64(at)
        .u32(entry_hashes.len() as u32);
    for h in entry_hashes {
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
}
