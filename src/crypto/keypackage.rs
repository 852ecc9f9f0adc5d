//! Key packages: an item's content key wrapped for one reader as a standard age file to the
//! reader's X25519 key. Adding a reader costs one key package, never a re-encryption.

use zeroize::Zeroizing;

use super::agefile::{AgeFileError, open_age_file, seal_age_file};
use super::item::ContentKey;
use super::{Identity, PublicKeys};

/// The largest key package accepted. A package is 256 bytes plus age's random "grease"
/// stanza (330-390 bytes in practice); armor would add a third, never kilobytes.
pub const MAX_KEY_PACKAGE_LEN: usize = 4096;
/// "ATCHKEY" and format version 1: the first 8 of the 56 payload bytes.
const KEY_PACKAGE_MAGIC: [u8; 8] = *b"ATCHKEY\x01";
const PAYLOAD_LEN: usize = 8 + 16 + 32;

/// Why a key package could not be made or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyPackageError {
    /// The package is not addressed to this identity.
    #[error("key package is not for this identity")]
    NotForThisIdentity,
    /// The package is not a well-formed age file.
    #[error("key package: {0}")]
    Age(AgeFileError),
    /// The age file opens but does not hold an Attache content key.
    #[error("key package does not hold an Attache content key")]
    Malformed,
    /// The package holds the key of another item.
    #[error("key package belongs to another item")]
    WrongItem,
    /// The package is over [`MAX_KEY_PACKAGE_LEN`].
    #[error("key package is larger than {MAX_KEY_PACKAGE_LEN} bytes")]
    TooLarge,
    /// The reader's public key is unusable, or age could not encrypt.
    #[error("the reader's key cannot be used")]
    BadRecipient,
}

/// Wraps `key` of item `item_id` for `reader`.
pub fn seal_key_package(
    key: &ContentKey,
    item_id: &[u8; 16],
    reader: &PublicKeys,
) -> Result<Vec<u8>, KeyPackageError> {
    let recipient = reader
        .age_recipient_key()
        .map_err(|_| KeyPackageError::BadRecipient)?;
    let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
    payload[..8].copy_from_slice(&KEY_PACKAGE_MAGIC);
    payload[8..24].copy_from_slice(item_id);
    payload[24..].copy_from_slice(key.as_bytes());
    seal_age_file(
        &payload[..],
        std::iter::once(&recipient as &dyn age::Recipient),
    )
    .map_err(|_| KeyPackageError::BadRecipient)
}

/// Opens a key package with `identity` and checks that it is for item `item_id`.
pub fn open_key_package(
    package: &[u8],
    identity: &Identity,
    item_id: &[u8; 16],
) -> Result<ContentKey, KeyPackageError> {
    if package.len() > MAX_KEY_PACKAGE_LEN {
        return Err(KeyPackageError::TooLarge);
    }
    let payload =
        open_age_file(package, identity.age_identity(), PAYLOAD_LEN).map_err(|e| match e {
            AgeFileError::NoMatch => KeyPackageError::NotForThisIdentity,
            AgeFileError::TooLarge(_) => KeyPackageError::Malformed,
            other => KeyPackageError::Age(other),
        })?;
    if payload.len() != PAYLOAD_LEN || payload[..8] != KEY_PACKAGE_MAGIC {
        return Err(KeyPackageError::Malformed);
    }
    if payload[8..24] != item_id[..] {
        return Err(KeyPackageError::WrongItem);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[24..]);
    Ok(ContentKey::from_bytes(key))
}
