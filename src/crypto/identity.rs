//! A user's identity: an age X25519 key pair for receiving key packages and an Ed25519 key pair
//! for signing seals and statements, plus the public half and its fingerprint (safety number).

use std::fmt;

use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::{CryptoError, random_array, sha256};

/// Domain-separation prefix of the fingerprint digest.
const FINGERPRINT_DOMAIN: &[u8] = b"attache/v1 fingerprint\0";
/// Prefix of the text form of public keys.
const PUBLIC_TEXT_PREFIX: &str = "attache-public-v1:";
/// Bech32 prefix of age X25519 recipients.
const AGE_RECIPIENT_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("age");
/// Bech32 prefix of age X25519 identities.
const AGE_SECRET_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("age-secret-key-");

/// A user's two secret keys. No `Display`; `Debug` shows only the public fingerprint; the
/// secret bytes are wiped when it is dropped.
pub struct Identity {
    x25519_secret: Zeroizing<[u8; 32]>,
    ed25519_seed: Zeroizing<[u8; 32]>,
    age: age::x25519::Identity,
    signing: Ed25519KeyPair,
    public: PublicKeys,
}

impl Identity {
    /// A new identity from the system's secure random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let x = Zeroizing::new(random_array::<32>()?);
        let ed = Zeroizing::new(random_array::<32>()?);
        Self::from_secret_keys(&x, &ed)
    }

    /// Rebuilds an identity from its raw X25519 secret scalar and Ed25519 seed, as stored in the
    /// key file.
    pub fn from_secret_keys(
        x25519: &[u8; 32],
        ed25519_seed: &[u8; 32],
    ) -> Result<Self, CryptoError> {
        let encoded = Zeroizing::new(
            bech32::encode_upper::<bech32::Bech32>(AGE_SECRET_HRP, x25519)
                .map_err(|_| CryptoError::InvalidKey("x25519 secret key"))?,
        );
        let age: age::x25519::Identity = encoded
            .parse()
            .map_err(|_| CryptoError::InvalidKey("x25519 secret key"))?;
        let signing = Ed25519KeyPair::from_seed_unchecked(ed25519_seed)
            .map_err(|_| CryptoError::InvalidKey("ed25519 seed"))?;
        let recipient = age.to_public().to_string();
        let (_, x_pub) =
            bech32::decode(&recipient).map_err(|_| CryptoError::InvalidKey("x25519 public key"))?;
        let x25519_public: [u8; 32] = x_pub
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("x25519 public key"))?;
        let mut ed25519_public = [0u8; 32];
        ed25519_public.copy_from_slice(signing.public_key().as_ref());
        Ok(Self {
            x25519_secret: Zeroizing::new(*x25519),
            ed25519_seed: Zeroizing::new(*ed25519_seed),
            age,
            signing,
            public: PublicKeys {
                x25519: x25519_public,
                ed25519: ed25519_public,
            },
        })
    }

    /// The public half, to register with a server and give to correspondents.
    pub fn public(&self) -> &PublicKeys {
        &self.public
    }

    /// The fingerprint of the public half.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    /// Signs `message` with the Ed25519 key. Callers pass domain-separated messages only.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.signing.sign(message).as_ref());
        out
    }

    /// The age identity that opens key packages.
    pub(crate) fn age_identity(&self) -> &age::x25519::Identity {
        &self.age
    }

    /// The raw X25519 secret of an age identity.
    pub(crate) fn age_secret_bytes(identity: &age::x25519::Identity) -> Option<[u8; 32]> {
        use age::secrecy::ExposeSecret;
        let encoded = identity.to_string();
        let (hrp, data) = bech32::decode(encoded.expose_secret()).ok()?;
        let data = Zeroizing::new(data);
        if hrp != AGE_SECRET_HRP {
            return None;
        }
        <[u8; 32]>::try_from(data.as_slice()).ok()
    }

    /// The raw secrets, for the key file.
    pub(crate) fn secret_keys(&self) -> (&[u8; 32], &[u8; 32]) {
        (&self.x25519_secret, &self.ed25519_seed)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// The public half of an identity: what the server and correspondents know.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKeys {
    /// X25519 public key (age recipient).
    pub x25519: [u8; 32],
    /// Ed25519 public key.
    pub ed25519: [u8; 32],
}

impl PublicKeys {
    /// Length of [`PublicKeys::to_bytes`].
    pub const LEN: usize = 64;

    /// `x25519 || ed25519`.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(&self.x25519);
        out[32..].copy_from_slice(&self.ed25519);
        out
    }

    /// Parses [`PublicKeys::to_bytes`]. Only the length is checked here: an unusable X25519 key
    /// is refused when a key package is sealed to it, an invalid Ed25519 point when a signature
    /// is verified with it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: &[u8; Self::LEN] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("public keys"))?;
        let mut x25519 = [0u8; 32];
        let mut ed25519 = [0u8; 32];
        x25519.copy_from_slice(&bytes[..32]);
        ed25519.copy_from_slice(&bytes[32..]);
        Ok(Self { x25519, ed25519 })
    }

    /// The text form people exchange: `attache-public-v1:` and 128 hex digits
    /// (`x25519 || ed25519`).
    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_TEXT_PREFIX}{}",
            crate::wire::to_hex(&self.to_bytes())
        )
    }

    /// Parses [`PublicKeys::to_text`].
    pub fn parse_text(s: &str) -> Result<Self, CryptoError> {
        let hex = s
            .trim()
            .strip_prefix(PUBLIC_TEXT_PREFIX)
            .ok_or(CryptoError::InvalidKey(
                "public key text (expected attache-public-v1:…)",
            ))?;
        let bytes = crate::wire::from_hex(hex).ok_or(CryptoError::InvalidKey("public key text"))?;
        Self::from_bytes(&bytes)
    }

    /// The age recipient string (`age1…`), as the `age` CLI takes it with `-r`.
    pub fn age_recipient(&self) -> String {
        bech32::encode_lower::<bech32::Bech32>(AGE_RECIPIENT_HRP, &self.x25519)
            .expect("32 bytes always fit a bech32 string")
    }

    /// Parses an `age1…` recipient string into its raw X25519 key.
    pub fn parse_age_recipient(s: &str) -> Result<[u8; 32], CryptoError> {
        use bech32::primitives::decode::CheckedHrpstring;
        let bad = CryptoError::InvalidKey("age recipient");
        // age uses the original Bech32 checksum only (not Bech32m) and lower case only.
        let parsed = CheckedHrpstring::new::<bech32::Bech32>(s).map_err(|_| bad)?;
        if parsed.hrp() != AGE_RECIPIENT_HRP || s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad);
        }
        let data: Vec<u8> = parsed.byte_iter().collect();
        data.try_into().map_err(|_| bad)
    }

    /// The fingerprint (safety number) of both keys.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(sha256(&[FINGERPRINT_DOMAIN, &self.x25519, &self.ed25519]))
    }

    /// Checks an Ed25519 signature by this identity.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        UnparsedPublicKey::new(&signature::ED25519, &self.ed25519)
            .verify(message, signature)
            .is_ok()
    }

    pub(crate) fn age_recipient_key(&self) -> Result<age::x25519::Recipient, CryptoError> {
        self.age_recipient()
            .parse()
            .map_err(|_| CryptoError::InvalidKey("x25519 public key"))
    }
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeys")
            .field("x25519", &self.age_recipient())
            .field("ed25519", &crate::wire::to_hex(&self.ed25519))
            .finish()
    }
}

/// A digest of both public keys. It is shown to people as a **safety number**: 30 digits in
/// six groups of five, read aloud or compared side by side to verify a correspondent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The six five-digit groups. Each group is five digest bytes read as a big-endian 40-bit
    /// number, reduced modulo 100 000; 30 digits carry about 99.6 bits.
    pub fn groups(&self) -> [u32; 6] {
        let mut out = [0u32; 6];
        for (i, g) in out.iter_mut().enumerate() {
            let b = &self.0[i * 5..i * 5 + 5];
            let v = b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
            *g = (v % 100_000) as u32;
        }
        out
    }

    /// Parses the spoken form (digits, groups separated by spaces or not) and tells whether it
    /// matches this fingerprint.
    pub fn matches_safety_number(&self, spoken: &str) -> bool {
        let digits: String = spoken.chars().filter(|c| !c.is_whitespace()).collect();
        digits == self.to_string().replace(' ', "")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.groups();
        write!(
            f,
            "{:05} {:05} {:05} {:05} {:05} {:05}",
            g[0], g[1], g[2], g[3], g[4], g[5]
        )
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}
