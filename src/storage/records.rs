//! The stored records: one struct per tree, each written as a version byte then JSON.
//!
//! These types are the on-disk format; change a field only together with
//! [`super::FORMAT_VERSION`] and `docs/STORAGE.md`. They hold no secret: invite secrets and
//! session tokens appear only as SHA-256 digests.

use serde::{Deserialize, Serialize};

use crate::wire::api::Role;

/// An account (tree `accounts`, key: email).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// `x25519 || ed25519` public keys (64 bytes).
    pub public_keys: Vec<u8>,
    /// When the account joined.
    pub created_at: i64,
}

/// An invite (tree `invites`, key: 16-byte id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// SHA-256 of the secret from the URL fragment.
    pub secret_sha256: [u8; 32],
    /// Invited email; `None` for the bootstrap invite (chosen at join).
    pub email: Option<String>,
    /// Display name suggested by the inviter.
    pub name: Option<String>,
    /// The role the account gets.
    pub role: Role,
    /// Who created it (`None`: the server, for the bootstrap invite).
    pub invited_by: Option<String>,
    /// Expiry.
    pub expires_at: i64,
    /// Consumed by a join.
    pub used: bool,
}

/// A sign-in challenge (tree `challenges`, key: 16-byte id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The email it was issued for.
    pub email: String,
    /// The one-time nonce.
    pub nonce: [u8; 32],
    /// Expiry.
    pub expires_at: i64,
}

/// A session (tree `sessions`, key: SHA-256 of the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The signed-in account.
    pub email: String,
    /// Last use, for the idle expiry.
    pub last_seen: i64,
    /// Absolute expiry.
    pub expires_at: i64,
}

/// An item, uploading or committed (tree `items`, key: 16-byte server id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Server-assigned id.
    pub id: [u8; 16],
    /// Uploader's email.
    pub uploader: String,
    /// The 88-byte preamble.
    pub preamble: Vec<u8>,
    /// Chunks received, contiguous from 0.
    pub received: u32,
    /// Ciphertext bytes received.
    pub received_bytes: u64,
    /// Whether the manifest was checked and the item is visible to its readers.
    pub committed: bool,
    /// The signed manifest, once committed.
    pub manifest: Option<Vec<u8>>,
    /// Creation time.
    pub created_at: i64,
    /// Last upload activity (for the abandoned-upload sweep).
    pub updated_at: i64,
}

/// A message (tree `messages`, key: 16-byte id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Message id.
    pub id: [u8; 16],
    /// Thread id (the first message's id).
    pub thread: [u8; 16],
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Acceptance time.
    pub sent_at: i64,
    /// The message item.
    pub item: [u8; 16],
    /// Document items with their ciphertext sizes.
    pub documents: Vec<([u8; 16], u64)>,
}

/// One audit-log entry (tree `audit`, key: sequence number u64 BE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When.
    pub at: i64,
    /// Who (email).
    pub actor: String,
    /// What, e.g. `item.read`, `key_package.read`.
    pub action: String,
    /// On what (an id, hex).
    pub object: String,
    /// SHA-256 (hex) of the previous entry's stored bytes; zeros for the first.
    pub prev: String,
}
