//! The sealing core: identities, key files, sealed items, key packages, signature statements,
//! grants, evidence bundles and the verification of the audit log.
//!
//! This module is pure. It imports only [`crate::wire`], does no file or network IO of its own
//! (streaming functions take any `Read`/`Write` the caller hands them), no async, and never reads
//! the clock: time arrives as a parameter. Secret types have no `Display`, a redacting `Debug`
//! and are wiped on drop. The byte layouts are written down in `docs/FORMAT.md`.

mod agefile;
pub mod audit;
mod crew;
pub mod evidence;
mod grant;
mod identity;
mod item;
mod keyfile;
mod keypackage;
mod padding;
mod statement;
mod stream;

#[cfg(feature = "danger-test-vectors")]
pub mod danger;

pub use agefile::{
    AgeFileError, AgeWriter, MAX_SEALED_READERS, open_age_file, open_sealed, seal_to_readers,
};
pub use grant::{GrantError, GrantStatement, MAX_GRANT_ITEMS, MAX_SIGNED_GRANT_LEN, SignedGrant};
pub use identity::{Fingerprint, Identity, PublicKeys};
pub use item::{
    CHUNK_SIZE, ChunkCheckError, ContentKey, ItemError, MAX_CHUNKS, MAX_MANIFEST_LEN, Manifest,
    Metadata, PREAMBLE_LEN, Preamble, SEALED_CHUNK_LEN,
};
pub use keyfile::{
    DEFAULT_WORK_FACTOR, KeyFileError, MAX_WORK_FACTOR, open_key_file, seal_key_file,
};
pub use keypackage::{KeyPackageError, MAX_KEY_PACKAGE_LEN, open_key_package, seal_key_package};
pub use padding::{metadata_bucket, padme};
pub use statement::{
    Intent, MAX_SIGNED_STATEMENT_LEN, SignatureStatement, SignedStatement, StatementError,
};
pub use stream::{
    BATCH_CHUNKS, ChunkSink, ItemOpener, Opened, Parallelism, Sealed, SealedChunks, WriteSink,
    open_item, seal_item,
};

/// A key or key encoding that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The named key is malformed.
    #[error("invalid {0}")]
    InvalidKey(&'static str),
    /// The system's secure random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Where sealing draws its randomness from. Production code always uses the system's secure
/// source; only the `danger-test-vectors` feature can substitute a seeded one.
pub(crate) trait RandomSource: Sync {
    fn fill(&self, out: &mut [u8]) -> Result<(), CryptoError>;
}

/// ring's `SystemRandom` (getrandom).
pub(crate) struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(out)
            .map_err(|_| CryptoError::Random)
    }
}

/// `N` bytes from the system's secure random source.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom.fill(&mut out)?;
    Ok(out)
}

/// SHA-256 of `parts` in order.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
