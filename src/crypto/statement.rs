//! Signature statements: what a signer's client signs when it signs (or declines) a document,
//! in one canonical, domain-separated encoding, verifiable offline with the signer's public key.

use super::{Identity, PublicKeys};
use crate::wire::{DecodeError, Reader, Writer};

const STATEMENT_DOMAIN: &[u8] = b"attache/v1 signature-statement\0";
const STATEMENT_VERSION: u8 = 1;
const MAX_EMAIL: usize = 320;
const MAX_TYPED_NAME: usize = 256;
const MAX_NOTE: usize = 4096;
/// The largest encoded signed statement.
pub const MAX_SIGNED_STATEMENT_LEN: usize =
    4 + 1 + 16 + 32 + 4 + MAX_EMAIL + 32 + 8 + 1 + 4 + MAX_TYPED_NAME + 4 + MAX_NOTE + 64;

/// Whether the signer signs or declines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// The signer signs the document.
    Sign,
    /// The signer declines to sign it.
    Decline,
}

impl Intent {
    fn code(self) -> u8 {
        match self {
            Self::Sign => 1,
            Self::Decline => 2,
        }
    }
}

/// A signer's statement about one document of one signature request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureStatement {
    /// The signature request.
    pub request_id: [u8; 16],
    /// SHA-256 of the document's plaintext as the signer opened it.
    pub document_sha256: [u8; 32],
    /// The signer's email address.
    pub signer_email: String,
    /// The signer's Ed25519 public key (set from the identity when signing).
    pub signer_key: [u8; 32],
    /// When the signer signed, in seconds since the Unix epoch (UTC), from the caller's clock.
    pub time: i64,
    /// Sign or decline.
    pub intent: Intent,
    /// The signer's typed name.
    pub typed_name: String,
    /// A note or reason.
    pub note: String,
}

/// Why a statement could not be signed, parsed or verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// A field is over its limit.
    #[error("{field} is {len} bytes, over its limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a signed statement.
    #[error("malformed signature statement: {0}")]
    Malformed(DecodeError),
    /// The signature does not verify under the key the statement names.
    #[error("the statement's signature does not verify")]
    BadSignature,
    /// The statement is validly signed, but by another key than expected.
    #[error("the statement is signed by another key than the signer's")]
    UnexpectedSigner,
    /// The statement is about another document.
    #[error("the statement is about a different document (SHA-256 differs)")]
    DocumentMismatch,
}

impl SignatureStatement {
    /// Signs the statement with `signer`, whose Ed25519 key replaces `signer_key`.
    pub fn sign(mut self, signer: &Identity) -> Result<SignedStatement, StatementError> {
        self.signer_key = signer.public().ed25519;
        let encoded = self.encode()?;
        let signature = signer.sign(&[STATEMENT_DOMAIN, &encoded].concat());
        Ok(SignedStatement {
            statement: self,
            encoded,
            signature,
        })
    }

    fn encode(&self) -> Result<Vec<u8>, StatementError> {
        for (field, len, max) in [
            ("signer email", self.signer_email.len(), MAX_EMAIL),
            ("typed name", self.typed_name.len(), MAX_TYPED_NAME),
            ("note", self.note.len(), MAX_NOTE),
        ] {
            if len > max {
                return Err(StatementError::FieldTooLong { field, len, max });
            }
        }
        let mut w = Writer::with_capacity(128 + self.note.len());
        w.u8(STATEMENT_VERSION)
            .bytes(&self.request_id)
            .bytes(&self.document_sha256)
            .bytes32(self.signer_email.as_bytes())
            .bytes(&self.signer_key)
            .i64(self.time)
            .u8(self.intent.code())
            .bytes32(self.typed_name.as_bytes())
            .bytes32(self.note.as_bytes());
        Ok(w.into_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8("statement version")? != STATEMENT_VERSION {
            return Err(DecodeError::Unsupported("statement version"));
        }
        let request_id = r.array("request id")?;
        let document_sha256 = r.array("document digest")?;
        let signer_email = r.str32("signer email", MAX_EMAIL)?.to_owned();
        let signer_key = r.array("signer key")?;
        let time = r.i64("time")?;
        let intent = match r.u8("intent")? {
            1 => Intent::Sign,
            2 => Intent::Decline,
            _ => return Err(DecodeError::Unsupported("intent")),
        };
        let typed_name = r.str32("typed name", MAX_TYPED_NAME)?.to_owned();
        let note = r.str32("note", MAX_NOTE)?.to_owned();
        r.finish()?;
        Ok(Self {
            request_id,
            document_sha256,
            signer_email,
            signer_key,
            time,
            intent,
            typed_name,
            note,
        })
    }
}

/// A statement with its Ed25519 signature. Encoded as `u32 length || statement || signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedStatement {
    statement: SignatureStatement,
    encoded: Vec<u8>,
    signature: [u8; 64],
}

impl SignedStatement {
    /// Parses a signed statement and verifies its signature under the key it names.
    pub fn parse(bytes: &[u8]) -> Result<Self, StatementError> {
        let m = StatementError::Malformed;
        if bytes.len() > MAX_SIGNED_STATEMENT_LEN {
            return Err(m(DecodeError::TooLong {
                field: "signed statement",
                len: bytes.len() as u64,
                max: MAX_SIGNED_STATEMENT_LEN as u64,
            }));
        }
        let mut r = Reader::new(bytes);
        let encoded = r
            .bytes32("statement", MAX_SIGNED_STATEMENT_LEN)
            .map_err(m)?;
        let signature = r.array("signature").map_err(m)?;
        r.finish().map_err(m)?;
        let statement = SignatureStatement::decode(encoded).map_err(m)?;
        let signer = PublicKeys {
            x25519: [0; 32],
            ed25519: statement.signer_key,
        };
        if !signer.verify(&[STATEMENT_DOMAIN, encoded].concat(), &signature) {
            return Err(StatementError::BadSignature);
        }
        Ok(Self {
            statement,
            encoded: encoded.to_vec(),
            signature,
        })
    }

    /// The encoded signed statement.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded.len() + 68);
        w.bytes32(&self.encoded).bytes(&self.signature);
        w.into_vec()
    }

    /// The statement, once it is known to be signed by `signer` and about the document whose
    /// plaintext SHA-256 is `document_sha256`.
    pub fn verify(
        &self,
        signer: &PublicKeys,
        document_sha256: &[u8; 32],
    ) -> Result<&SignatureStatement, StatementError> {
        if self.statement.signer_key != signer.ed25519 {
            return Err(StatementError::UnexpectedSigner);
        }
        if &self.statement.document_sha256 != document_sha256 {
            return Err(StatementError::DocumentMismatch);
        }
        Ok(&self.statement)
    }

    /// The statement without any check against an expected signer or document.
    pub fn unverified_statement(&self) -> &SignatureStatement {
        &self.statement
    }
}
