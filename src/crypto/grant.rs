//! Grant statements: an attorney's signed word that a co-counsel may read chosen items until a
//! time. The server stores the statement and enforces it, but cannot invent one: anyone holding
//! the grantor's public key can check it offline.

use super::{Fingerprint, Identity, PublicKeys};
use crate::wire::{DecodeError, Reader, Writer};

const GRANT_DOMAIN: &[u8] = b"attache/v1 grant\0";
const GRANT_VERSION: u8 = 1;
const MAX_EMAIL: usize = 320;
/// Most items one grant covers (a message and its documents).
pub const MAX_GRANT_ITEMS: usize = 65;
/// The largest encoded signed grant.
pub const MAX_SIGNED_GRANT_LEN: usize = 4
    + 1
    + 16
    + 4
    + MAX_EMAIL
    + 32
    + 4
    + MAX_EMAIL
    + 32
    + 17
    + 17
    + 2
    + 48 * MAX_GRANT_ITEMS
    + 16
    + 64;

/// What a grant says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantStatement {
    /// The grant id (random, chosen by the grantor's client).
    pub id: [u8; 16],
    /// The granting attorney's email.
    pub grantor_email: String,
    /// The grantor's Ed25519 public key (set from the identity when signing).
    pub grantor_key: [u8; 32],
    /// The grantee's email.
    pub grantee_email: String,
    /// The grantee's fingerprint, as the grantor's client pinned it.
    pub grantee_fingerprint: Fingerprint,
    /// The matter, if any.
    pub matter: Option<[u8; 16]>,
    /// The message shared, if a message (with its documents) was shared.
    pub message: Option<[u8; 16]>,
    /// The items readable: `(item id, SHA-256 of its signed manifest)`.
    pub items: Vec<([u8; 16], [u8; 32])>,
    /// When the grantor made it (grantor's clock), seconds since the epoch.
    pub created_at: i64,
    /// When access ends, seconds since the epoch.
    pub until: i64,
}

/// Why a grant could not be signed, parsed or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A field is over its limit.
    #[error("{field} is {len}, over its limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a signed grant.
    #[error("malformed grant: {0}")]
    Malformed(DecodeError),
    /// The signature does not verify under the key the grant names.
    #[error("the grant's signature does not verify")]
    BadSignature,
    /// The grant is validly signed, but by another key than the grantor's.
    #[error("the grant is signed by another key than the grantor's")]
    UnexpectedSigner,
}

impl GrantStatement {
    /// Signs the grant with `grantor`, whose Ed25519 key replaces `grantor_key`.
    pub fn sign(mut self, grantor: &Identity) -> Result<SignedGrant, GrantError> {
        self.grantor_key = grantor.public().ed25519;
        let encoded = self.encode()?;
        let signature = grantor.sign(&[GRANT_DOMAIN, &encoded].concat());
        Ok(SignedGrant {
            grant: self,
            encoded,
            signature,
        })
    }

    fn encode(&self) -> Result<Vec<u8>, GrantError> {
        for (field, len, max) in [
            ("grantor email", self.grantor_email.len(), MAX_EMAIL),
            ("grantee email", self.grantee_email.len(), MAX_EMAIL),
            ("items", self.items.len(), MAX_GRANT_ITEMS),
        ] {
            if len > max {
                return Err(GrantError::FieldTooLong { field, len, max });
            }
        }
        let mut w = Writer::with_capacity(256 + 48 * self.items.len());
        w.u8(GRANT_VERSION)
            .bytes(&self.id)
            .bytes32(self.grantor_email.as_bytes())
            .bytes(&self.grantor_key)
            .bytes32(self.grantee_email.as_bytes())
            .bytes(&self.grantee_fingerprint.0);
        for opt in [&self.matter, &self.message] {
            match opt {
                Some(id) => w.u8(1).bytes(id),
                None => w.u8(0),
            };
        }
        w.u16(self.items.len() as u16);
        for (item, digest) in &self.items {
            w.bytes(item).bytes(digest);
        }
        w.i64(self.created_at).i64(self.until);
        Ok(w.into_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8("grant version")? != GRANT_VERSION {
            return Err(DecodeError::Unsupported("grant version"));
        }
        let id = r.array("grant id")?;
        let grantor_email = r.str32("grantor email", MAX_EMAIL)?.to_owned();
        let grantor_key = r.array("grantor key")?;
        let grantee_email = r.str32("grantee email", MAX_EMAIL)?.to_owned();
        let grantee_fingerprint = Fingerprint(r.array("grantee fingerprint")?);
        let mut optional = |field: &'static str| -> Result<Option<[u8; 16]>, DecodeError> {
            match r.u8(field)? {
                0 => Ok(None),
                1 => Ok(Some(r.array(field)?)),
                _ => Err(DecodeError::Unsupported(field)),
            }
        };
        let matter = optional("matter")?;
        let message = optional("message")?;
        let n = usize::from(r.u16("items")?);
        if n > MAX_GRANT_ITEMS {
            return Err(DecodeError::TooLong {
                field: "items",
                len: n as u64,
                max: MAX_GRANT_ITEMS as u64,
            });
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push((r.array("item")?, r.array("manifest digest")?));
        }
        let created_at = r.i64("created")?;
        let until = r.i64("until")?;
        r.finish()?;
        Ok(Self {
            id,
            grantor_email,
            grantor_key,
            grantee_email,
            grantee_fingerprint,
            matter,
            message,
            items,
            created_at,
            until,
        })
    }
}

/// A grant with its Ed25519 signature. Encoded as `u32 length || grant || signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGrant {
    grant: GrantStatement,
    encoded: Vec<u8>,
    signature: [u8; 64],
}

impl SignedGrant {
    /// Parses a signed grant and verifies its signature under the key it names.
    pub fn parse(bytes: &[u8]) -> Result<Self, GrantError> {
        let m = GrantError::Malformed;
        if bytes.len() > MAX_SIGNED_GRANT_LEN {
            return Err(m(DecodeError::TooLong {
                field: "signed grant",
                len: bytes.len() as u64,
                max: MAX_SIGNED_GRANT_LEN as u64,
            }));
        }
        let mut r = Reader::new(bytes);
        let encoded = r.bytes32("grant", MAX_SIGNED_GRANT_LEN).map_err(m)?;
        let signature = r.array("signature").map_err(m)?;
        r.finish().map_err(m)?;
        let grant = GrantStatement::decode(encoded).map_err(m)?;
        let signer = PublicKeys {
            x25519: [0; 32],
            ed25519: grant.grantor_key,
        };
        if !signer.verify(&[GRANT_DOMAIN, encoded].concat(), &signature) {
            return Err(GrantError::BadSignature);
        }
        Ok(Self {
            grant,
            encoded: encoded.to_vec(),
            signature,
        })
    }

    /// The encoded signed grant.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded.len() + 68);
        w.bytes32(&self.encoded).bytes(&self.signature);
        w.into_vec()
    }

    /// The grant, once it is known to be signed by `grantor`.
    pub fn verify(&self, grantor: &PublicKeys) -> Result<&GrantStatement, GrantError> {
        if self.grant.grantor_key != grantor.ed25519 {
            return Err(GrantError::UnexpectedSigner);
        }
        Ok(&self.grant)
    }

    /// The grant without checking who signed it (its signature is valid under the key it names).
    pub fn unverified(&self) -> &GrantStatement {
        &self.grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(grantee: &Identity) -> GrantStatement {
        GrantStatement {
            id: [1; 16],
            grantor_email: "ann@firm.example".into(),
            grantor_key: [0; 32],
            grantee_email: "cole@cocounsel.example".into(),
            grantee_fingerprint: grantee.fingerprint(),
            matter: Some([2; 16]),
            message: None,
            items: vec![([3; 16], [4; 32]), ([5; 16], [6; 32])],
            created_at: 1_800_000_000,
            until: 1_800_086_400,
        }
    }

    #[test]
    fn grants_round_trip_and_bind_their_signer() {
        let ann = Identity::generate().unwrap();
        let cole = Identity::generate().unwrap();
        let signed = grant(&cole).sign(&ann).unwrap();
        let parsed = SignedGrant::parse(&signed.to_bytes()).unwrap();
        assert_eq!(parsed, signed);
        assert_eq!(parsed.verify(ann.public()).unwrap().items.len(), 2);
        assert_eq!(
            parsed.verify(cole.public()),
            Err(GrantError::UnexpectedSigner)
        );
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let ann = Identity::generate().unwrap();
        let cole = Identity::generate().unwrap();
        let bytes = grant(&cole).sign(&ann).unwrap().to_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(SignedGrant::parse(&b).is_err(), "byte {i}");
        }
        for n in 0..bytes.len() {
            assert!(SignedGrant::parse(&bytes[..n]).is_err(), "length {n}");
        }
    }
}
