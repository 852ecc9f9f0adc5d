//! The stored records: one struct per tree, each written as a version byte then JSON. Byte
//! strings (keys, age files, manifests) are written as standard base64; records written before
//! that hold them as arrays of numbers, which still read (see [`bytes`]).
//!
//! These types are the on-disk format; change a field only together with
//! [`super::FORMAT_VERSION`] and `docs/STORAGE.md`. They hold no secret: invite secrets and
//! session tokens appear only as SHA-256 digests.

use serde::{Deserialize, Serialize};

use crate::wire::api::{Role, SignatureIntent};

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
    #[serde(with = "bytes")]
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
    #[serde(with = "bytes")]
    pub preamble: Vec<u8>,
    /// Chunks received, contiguous from 0.
    pub received: u32,
    /// Ciphertext bytes received.
    pub received_bytes: u64,
    /// Whether the manifest was checked and the item is visible to its readers.
    pub committed: bool,
    /// The signed manifest, once committed.
    #[serde(default, with = "bytes::option")]
    pub manifest: Option<Vec<u8>>,
    /// Creation time.
    pub created_at: i64,
    /// Last upload activity (for the abandoned-upload sweep).
    pub updated_at: i64,
    /// The matter it belongs to, set when a message in a matter first carries it.
    #[serde(default)]
    pub matter: Option<[u8; 16]>,
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
    /// The matter it belongs to.
    #[serde(default)]
    pub matter: Option<[u8; 16]>,
}

/// A matter (tree `matters`, key: 16-byte id). Its name is sealed to its owner; the server
/// keeps only the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterRecord {
    /// Matter id.
    pub id: [u8; 16],
    /// The firm user who created it.
    pub owner: String,
    /// The name, sealed as an age file to the owner (opaque here).
    #[serde(with = "bytes")]
    pub sealed_name: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// When it was closed.
    pub closed_at: Option<i64>,
    /// When its content is deleted, unless held (set at closing).
    pub delete_after: Option<i64>,
    /// A legal hold suspends deletion.
    pub hold: bool,
    /// When its content was deleted (from then on the matter is `deleted`).
    pub deleted_at: Option<i64>,
}

/// A signature request (tree `signatures`, key: 16-byte id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRecord {
    /// Request id.
    pub id: [u8; 16],
    /// Who asked (the message's sender).
    pub requester: String,
    /// Who is asked to sign (a recipient of the message).
    pub signer: String,
    /// The message carrying the document.
    pub message: [u8; 16],
    /// The document to sign.
    pub document: [u8; 16],
    /// The message's matter.
    pub matter: Option<[u8; 16]>,
    /// When it was made.
    pub created_at: i64,
    /// Deadline.
    pub deadline: i64,
    /// When the signer answered.
    pub answered_at: Option<i64>,
    /// Sign or decline, once answered.
    pub intent: Option<SignatureIntent>,
    /// The signed statement sealed to requester and signer (opaque here); erased when the
    /// matter's content is deleted.
    #[serde(default, with = "bytes::option")]
    pub sealed_statement: Option<Vec<u8>>,
}

/// A co-counsel grant (tree `grants`, key: 16-byte id chosen by the grantor's client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Grant id (from the signed statement).
    pub id: [u8; 16],
    /// The granting firm user.
    pub grantor: String,
    /// Who may read.
    pub grantee: String,
    /// The message shared, if a message was shared.
    pub message: Option<[u8; 16]>,
    /// The items readable through the grant.
    pub items: Vec<[u8; 16]>,
    /// The matter of the items.
    pub matter: Option<[u8; 16]>,
    /// When the server accepted it.
    pub created_at: i64,
    /// When access ends.
    pub until: i64,
    /// When the grantor (or an admin) revoked it.
    pub revoked_at: Option<i64>,
    /// When the grantee's key packages were deleted (revocation, expiry or matter deletion).
    pub cut_off_at: Option<i64>,
    /// The signed grant statement, as the grantor's client made it.
    #[serde(with = "bytes")]
    pub statement: Vec<u8>,
}

impl GrantRecord {
    /// Whether access through the grant has ended at `now` (expired or revoked).
    pub fn ended(&self, now: i64) -> bool {
        self.revoked_at.is_some() || now >= self.until
    }

    /// When access ended or ends: the revocation, or `until`, whichever is first.
    pub fn end(&self) -> i64 {
        self.revoked_at.map_or(self.until, |r| r.min(self.until))
    }
}

/// The head of one matter's audit chain (tree `matter_heads`, key: matter id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterHeadRecord {
    /// Entries the matter has.
    pub count: u64,
    /// SHA-256 of its last entry's stored bytes.
    pub head: [u8; 32],
    /// Sequence number of its last entry.
    pub last_seq: u64,
}

/// A record's byte string as standard base64 in its JSON: 1.33 bytes per byte, against about
/// 3.6 for the array of numbers serde writes by default. That mattered: an item record (its
/// manifest and preamble) was 8-9 KiB of JSON, so sled's leaves of 16 records passed its
/// 128 KiB blob threshold and every rewrite of one went to a blob file of its own. Reading
/// accepts both forms, so records written before stay readable.
pub(super) mod bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(in crate::storage) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }

    pub(in crate::storage) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("base64 or an array of bytes")
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Vec<u8>, E> {
            STANDARD
                .decode(v)
                .map_err(|_| E::custom("a stored byte string is not base64"))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    /// The same for an optional byte string (`null` when absent).
    pub(in crate::storage) mod option {
        use serde::de::{Deserializer, Visitor};
        use serde::{Serialize, Serializer};

        pub(in crate::storage) fn serialize<S: Serializer>(
            b: &Option<Vec<u8>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match b {
                Some(b) => super::serialize(b, s),
                None => None::<()>.serialize(s),
            }
        }

        pub(in crate::storage) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<u8>>, D::Error> {
            d.deserialize_option(Maybe)
        }

        struct Maybe;

        impl<'de> Visitor<'de> for Maybe {
            type Value = Option<Vec<u8>>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, base64 or an array of bytes")
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(manifest: Option<Vec<u8>>) -> ItemRecord {
        ItemRecord {
            id: [7; 16],
            uploader: "ada@firm.example".into(),
            preamble: vec![0, 1, 2, 250, 255],
            received: 1,
            received_bytes: 36,
            committed: true,
            manifest,
            created_at: 1,
            updated_at: 2,
            matter: None,
        }
    }

    #[test]
    fn byte_strings_are_written_as_base64_and_read_in_either_form() {
        for manifest in [None, Some(vec![]), Some((0..=255).collect::<Vec<u8>>())] {
            let record = item(manifest.clone());
            let json = serde_json::to_string(&record).expect("serialise");
            assert!(json.contains(r#""preamble":"AAEC+v8=""#), "{json}");
            let back: ItemRecord = serde_json::from_str(&json).expect("read back");
            assert_eq!(back, record);

            // The form of records written before: arrays of numbers.
            let mut old = serde_json::to_value(&record).expect("value");
            old["preamble"] = serde_json::json!([0, 1, 2, 250, 255]);
            old["manifest"] = serde_json::json!(manifest);
            let back: ItemRecord = serde_json::from_value(old).expect("old form");
            assert_eq!(back, record);
        }
    }

    #[test]
    fn a_stored_byte_string_that_is_neither_form_is_refused() {
        let mut v = serde_json::to_value(item(None)).expect("value");
        v["preamble"] = serde_json::json!("not base64!");
        let e = serde_json::from_value::<ItemRecord>(v).expect_err("bad base64");
        assert!(e.to_string().contains("not base64"), "{e}");
        let mut v = serde_json::to_value(item(None)).expect("value");
        v["manifest"] = serde_json::json!(12);
        let e = serde_json::from_value::<ItemRecord>(v).expect_err("a number");
        assert!(e.to_string().contains("base64 or an array of bytes"), "{e}");
        let mut v = serde_json::to_value(item(None)).expect("value");
        v["preamble"] = serde_json::json!([1, 300]);
        assert!(serde_json::from_value::<ItemRecord>(v).is_err());
    }
}
