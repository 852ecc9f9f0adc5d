//! The client's one error type. Messages are lower case and never contain secrets (tokens,
//! passphrases, invite secrets or plaintext).

use crate::crypto::audit::AuditError;
use crate::crypto::evidence::EvidenceError;
use crate::crypto::{
    AgeFileError, CryptoError, GrantError, ItemError, KeyFileError, KeyPackageError, StatementError,
};

/// Everything that can go wrong talking to an Attache server or handling the local profile.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A local file (profile, key file, document) could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server could not be reached, or the connection failed.
    #[error("cannot reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server refused the request.
    #[error("the server refused the request ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's stable error code, such as `not_found`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The server presented a certificate other than the pinned one.
    #[error(
        "the server's certificate changed: pinned sha256:{pinned}, presented sha256:{presented}"
    )]
    CertificateChanged {
        /// The pinned SHA-256, hex.
        pinned: String,
        /// The presented SHA-256, hex.
        presented: String,
    },
    /// The sign-in challenge names another origin than the profile's server.
    #[error("the server signs in for {got}, but this profile is for {expected}")]
    OriginMismatch {
        /// The profile's origin.
        expected: String,
        /// The challenge's origin.
        got: String,
    },
    /// A correspondent's keys differ from the ones pinned locally.
    #[error(
        "the keys of {email} changed (pinned fingerprint {pinned}, the server now gives {presented})"
    )]
    ChangedKey {
        /// The correspondent.
        email: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The fingerprint the server gives now.
        presented: String,
    },
    /// The server signs its audit log with another key than the one pinned when first seen.
    #[error("the server's audit key changed: pinned {pinned}, the server now gives {presented}")]
    AuditKeyChanged {
        /// The pinned key's fingerprint (`sha256:…`).
        pinned: String,
        /// The presented key's fingerprint.
        presented: String,
    },
    /// A safety number given to `verify` matches no known key of the contact.
    #[error("{email}'s fingerprint is {actual}, not {given}")]
    FingerprintMismatch {
        /// The contact.
        email: String,
        /// What the user typed.
        given: String,
        /// The fingerprint of the key the server gives.
        actual: String,
    },
    /// The profile is missing or malformed.
    #[error("profile: {0}")]
    Profile(String),
    /// The invite URL is not of the form `https://HOST:PORT/i/ID#SECRET`.
    #[error("invalid invite URL: {0}")]
    InvalidInvite(&'static str),
    /// A message's sealed record and the server's list of its documents differ.
    #[error("message {0}: its documents differ from the ones its sender sealed into it")]
    DocumentsMismatch(String),
    /// An item's header contradicts what is known about it (sender, id).
    #[error("item {item}: {reason}")]
    ItemMismatch {
        /// The item id.
        item: String,
        /// What does not match.
        reason: &'static str,
    },
    /// The key file could not be unlocked.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// A key package could not be opened.
    #[error(transparent)]
    KeyPackage(#[from] KeyPackageError),
    /// A sealed item is forged, tampered or malformed.
    #[error(transparent)]
    Item(#[from] ItemError),
    /// A key is malformed or randomness failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The server ended the caller's access to an item: a co-counsel grant expired or was
    /// revoked (`410 access_expired`).
    #[error("access expired on {on}")]
    AccessExpired {
        /// When, as the server gives it (`YYYY-MM-DD HH:MM:SS UTC`).
        on: String,
    },
    /// An argument cannot be used (checked here, before anything is sent).
    #[error("{0}")]
    Invalid(String),
    /// The user did not confirm.
    #[error("cancelled: {0}")]
    Cancelled(&'static str),
    /// A small sealed payload (a matter's name, a sealed signature statement) does not open.
    #[error("{what} does not open: {error}")]
    Sealed {
        /// What was being opened.
        what: &'static str,
        /// Why.
        error: AgeFileError,
    },
    /// A signature statement cannot be made or does not verify.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// A grant statement cannot be made or does not verify.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// An evidence bundle fails a check.
    #[error("the evidence does not verify: {0}")]
    Evidence(#[from] EvidenceError),
    /// The audit log's chain or checkpoints are broken.
    #[error("the audit log does not verify: {0}")]
    Audit(#[from] AuditError),
}

impl ClientError {
    /// An [`ClientError::Io`] with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the server answered 404: the object does not exist or is not the caller's.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }

    /// Whether the server refused the session (401).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Api { status: 401, .. })
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        Self::Transport(e)
    }
}
