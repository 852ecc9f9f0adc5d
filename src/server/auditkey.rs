//! The server's audit key: an Ed25519 key (PKCS#8, `keys/audit-key.p8`, mode 0600) that signs
//! checkpoints of the audit chain and evidence attestations.
//!
//! It lives in the keys folder, apart from the database, so that someone who can rewrite the
//! data folder cannot re-sign its history. Created on first start; its public key and the
//! key's SHA-256 fingerprint are printed at every start for verifiers to pin.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::{ServerError, sha256, tls};

/// File name of the key in the keys folder.
const FILE: &str = "audit-key.p8";
/// A PKCS#8 Ed25519 key is 83-85 bytes; anything far larger is not one.
const MAX_FILE_LEN: u64 = 1024;

/// The loaded audit key. Its `Debug` shows only the public half.
pub(crate) struct AuditKey {
    pair: Ed25519KeyPair,
    public: [u8; 32],
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Loads `keys/audit-key.p8`, creating it on first start.
    pub(crate) fn load_or_create(keys: &Path) -> Result<Self, ServerError> {
        let path = keys.join(FILE);
        if !path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| ServerError::Config("cannot generate the audit key".into()))?;
            tls::write_private(&path, pkcs8.as_ref())?;
            tracing::info!(path = %path.display(), "created the audit key");
        }
        if std::fs::metadata(&path)?.len() > MAX_FILE_LEN {
            return Err(ServerError::Config(format!(
                "{} is not an Ed25519 PKCS#8 key",
                path.display()
            )));
        }
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path)?);
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes).map_err(|_| {
            ServerError::Config(format!("{} is not an Ed25519 PKCS#8 key", path.display()))
        })?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(Self { pair, public })
    }

    /// Signs `message` (a domain-separated checkpoint or attestation message).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }

    /// The public key, base64.
    pub(crate) fn public_base64(&self) -> String {
        STANDARD.encode(self.public)
    }

    /// Lower-case hex SHA-256 of the 32-byte public key.
    pub(crate) fn sha256_hex(&self) -> String {
        crate::wire::to_hex(&sha256(&self.public))
    }
}
