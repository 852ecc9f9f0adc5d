//! Sealed items: the content key, the cleartext preamble with its key commitment, chunk
//! encryption (AES-256-GCM in a STREAM construction), the encrypted metadata block and the
//! signed manifest.
//!
//! Everything a server may do with an item without any key — parse a manifest, check its
//! signature, check an uploaded chunk against it — lives on [`Manifest`] and needs no secret.
//! Every length read from input is checked against a bound before it is used.

use std::fmt;

use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

use super::padding::{is_metadata_bucket, metadata_bucket, padme};
use super::{CryptoError, Fingerprint, Identity, RandomSource, sha256};
use crate::wire::{DecodeError, Reader, Writer};

/// Plaintext bytes per chunk (every chunk but the last is exactly this long).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// AES-GCM tag bytes after each chunk's ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of a full sealed chunk: its content and the tag.
pub const SEALED_CHUNK_LEN: usize = CHUNK_SIZE + TAG_LEN;
/// The most chunks an item may have: 16 GiB of padded content.
pub const MAX_CHUNKS: u32 = 1 << 18;
/// Length of the cleartext preamble.
pub const PREAMBLE_LEN: usize = 88;
/// The part of the preamble the commitment covers.
const COMMITTED_LEN: usize = 56;

/// "ATCH", format version 1, cipher suite 1 (AES-256-GCM, HKDF-SHA-256, HMAC-SHA-256, BLAKE3,
/// Ed25519), two reserved zero bytes.
const PREAMBLE_HEADER: [u8; 8] = *b"ATCH\x01\x01\x00\x00";
/// "ATCM", version 1, suite 1, reserved.
const MANIFEST_HEADER: [u8; 8] = *b"ATCM\x01\x01\x00\x00";
const LABEL_PAYLOAD: &[u8] = b"attache/v1 payload";
const LABEL_METADATA: &[u8] = b"attache/v1 metadata";
const LABEL_COMMIT: &[u8] = b"attache/v1 commit";
pub(crate) const MANIFEST_DOMAIN: &[u8] = b"attache/v1 manifest\0";
/// Version byte at the start of an encoded metadata block.
const METADATA_VERSION: u8 = 1;

/// Limits of the metadata fields, in bytes (readers: entries).
pub(crate) mod limits {
    pub(crate) const FILE_NAME: usize = 1024;
    pub(crate) const MEDIA_TYPE: usize = 255;
    pub(crate) const SUBJECT: usize = 1024;
    pub(crate) const BODY: usize = 512 * 1024;
    pub(crate) const MATTER: usize = 1024;
    pub(crate) const READERS: usize = 256;
}

/// Everything that can go wrong sealing, parsing or opening an item.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The preamble is not a version-1 Attache preamble of the right length.
    #[error("malformed preamble: {0}")]
    MalformedPreamble(&'static str),
    /// The manifest cannot be parsed or is inconsistent with itself.
    #[error("malformed manifest: {0}")]
    MalformedManifest(DecodeError),
    /// The manifest's chunk count, padded length or metadata size do not agree.
    #[error("inconsistent manifest: {0}")]
    InconsistentManifest(&'static str),
    /// The manifest's signature does not verify under the key it names.
    #[error("manifest signature does not verify")]
    BadSignature,
    /// The manifest is validly signed, but not by the expected sender.
    #[error("manifest is signed by someone other than the expected sender")]
    UnexpectedSigner,
    /// The manifest belongs to another item (item id or preamble digest differ).
    #[error("manifest does not belong to this preamble")]
    ManifestMismatch,
    /// The content key does not match the preamble's commitment: wrong key, or a tampered
    /// preamble.
    #[error("content key does not match the item's key commitment")]
    KeyCommitment,
    /// The metadata block fails authentication.
    #[error("metadata block fails authentication")]
    MetadataAuthentication,
    /// The metadata block decrypts but is not well formed.
    #[error("malformed metadata: {0}")]
    MalformedMetadata(DecodeError),
    /// A metadata field is over its limit when sealing.
    #[error("{field} is {len} bytes, over its limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A chunk does not match its digest in the signed manifest.
    #[error("chunk {index} does not match the signed manifest")]
    ChunkDigest {
        /// Zero-based chunk index.
        index: u32,
    },
    /// A chunk matches the manifest but fails AES-GCM authentication.
    #[error("chunk {index} fails authentication")]
    ChunkAuthentication {
        /// Zero-based chunk index.
        index: u32,
    },
    /// The ciphertext ends inside or before the given chunk.
    #[error("ciphertext ends inside chunk {index}")]
    Truncated {
        /// Zero-based chunk index.
        index: u32,
    },
    /// More ciphertext follows the last chunk.
    #[error("data follows the last chunk")]
    ExtraData,
    /// Padding bytes are not zero, or the padded length does not fit the true size.
    #[error("invalid padding")]
    Padding,
    /// The content is larger than an item may be.
    #[error("content is larger than the 16 GiB an item may hold")]
    TooLarge,
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A key could not be made.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The random 256-bit key of one item version. Readers receive it in key packages.
pub struct ContentKey(Zeroizing<[u8; 32]>);

impl ContentKey {
    /// A new key from the system's secure random source.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(super::random_array()?)))
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(redacted)")
    }
}

/// The cleartext start of a sealed item: header, item id, HKDF salt and key commitment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    bytes: [u8; PREAMBLE_LEN],
}

impl Preamble {
    /// Parses a preamble. Only its shape is checked here; the commitment is checked against a
    /// content key by the opener.
    pub fn parse(bytes: &[u8]) -> Result<Self, ItemError> {
        let bytes: [u8; PREAMBLE_LEN] = bytes
            .try_into()
            .map_err(|_| ItemError::MalformedPreamble("length is not 88 bytes"))?;
        if bytes[..4] != PREAMBLE_HEADER[..4] {
            return Err(ItemError::MalformedPreamble("not an Attache item"));
        }
        if bytes[..8] != PREAMBLE_HEADER {
            return Err(ItemError::MalformedPreamble("unsupported version or suite"));
        }
        Ok(Self { bytes })
    }

    /// The 88 bytes.
    pub fn as_bytes(&self) -> &[u8; PREAMBLE_LEN] {
        &self.bytes
    }

    /// The random id of this item version.
    pub fn item_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.bytes[8..24]);
        id
    }

    /// SHA-256 of the preamble: the associated data of every chunk and of the metadata block.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&[&self.bytes])
    }

    fn salt(&self) -> &[u8] {
        &self.bytes[24..56]
    }
}

impl fmt::Debug for Preamble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preamble")
            .field("item_id", &crate::wire::to_hex(&self.item_id()))
            .finish_non_exhaustive()
    }
}

/// The keys of one item, derived from its content key and checked against its commitment.
pub(crate) struct ItemKeys {
    payload: aead::LessSafeKey,
    metadata: aead::LessSafeKey,
    associated_data: [u8; 32],
}

impl ItemKeys {
    /// Makes the preamble of a new item and its keys.
    pub(crate) fn create(
        key: &ContentKey,
        rng: &dyn RandomSource,
    ) -> Result<(Preamble, Self), CryptoError> {
        let mut bytes = [0u8; PREAMBLE_LEN];
        bytes[..8].copy_from_slice(&PREAMBLE_HEADER);
        rng.fill(&mut bytes[8..COMMITTED_LEN])?;
        let (payload, metadata, commit) = derive(key, &bytes[24..COMMITTED_LEN]);
        let tag = hmac::sign(&commit, &bytes[..COMMITTED_LEN]);
        bytes[COMMITTED_LEN..].copy_from_slice(tag.as_ref());
        let preamble = Preamble { bytes };
        let keys = Self {
            payload,
            metadata,
            associated_data: preamble.digest(),
        };
        Ok((preamble, keys))
    }

    /// Derives the keys of an existing item, checking the commitment first (constant time).
    pub(crate) fn open(key: &ContentKey, preamble: &Preamble) -> Result<Self, ItemError> {
        let (payload, metadata, commit) = derive(key, preamble.salt());
        hmac::verify(
            &commit,
            &preamble.bytes[..COMMITTED_LEN],
            &preamble.bytes[COMMITTED_LEN..],
        )
        .map_err(|_| ItemError::KeyCommitment)?;
        Ok(Self {
            payload,
            metadata,
            associated_data: preamble.digest(),
        })
    }

    /// Encrypts one chunk in place and returns its tag.
    pub(crate) fn seal_chunk(&self, index: u32, last: bool, in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .payload
            .seal_in_place_separate_tag(
                chunk_nonce(index, last),
                aead::Aad::from(&self.associated_data[..]),
                in_out,
            )
            .expect("AES-GCM seals any chunk under 2^36 bytes");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts one chunk (`ciphertext || tag`) in place; the plaintext is the first
    /// `len - 16` bytes on success.
    pub(crate) fn open_chunk(
        &self,
        index: u32,
        last: bool,
        in_out: &mut [u8],
    ) -> Result<(), ItemError> {
        self.payload
            .open_in_place(
                chunk_nonce(index, last),
                aead::Aad::from(&self.associated_data[..]),
                in_out,
            )
            .map(|_| ())
            .map_err(|_| ItemError::ChunkAuthentication { index })
    }

    fn seal_metadata(&self, metadata: &Metadata, true_size: u64) -> Result<Vec<u8>, ItemError> {
        let mut block = metadata.encode(true_size)?;
        let bucket = metadata_bucket(block.len()).ok_or(ItemError::FieldTooLong {
            field: "metadata",
            len: block.len(),
            max: (1 << 20) - TAG_LEN,
        })?;
        block.resize(bucket - TAG_LEN, 0);
        let tag = self
            .metadata
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key([0u8; 12]),
                aead::Aad::from(&self.associated_data[..]),
                &mut block,
            )
            .expect("AES-GCM seals any block under 2^36 bytes");
        let mut out = block.to_vec();
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open_metadata(&self, sealed: &[u8]) -> Result<Metadata, ItemError> {
        let mut block = Zeroizing::new(sealed.to_vec());
        let plain = self
            .metadata
            .open_in_place(
                // One metadata block per metadata key, so a fixed nonce is never reused.
                aead::Nonce::assume_unique_for_key([0u8; 12]),
                aead::Aad::from(&self.associated_data[..]),
                &mut block,
            )
            .map_err(|_| ItemError::MetadataAuthentication)?;
        Metadata::decode(plain)
    }
}

/// HKDF-Extract(salt, content key), then one Expand per purpose.
fn derive(key: &ContentKey, salt: &[u8]) -> (aead::LessSafeKey, aead::LessSafeKey, hmac::Key) {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(key.as_bytes());
    let aead_key = |label: &'static [u8]| {
        let info = [label];
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .expect("32 bytes is within HKDF-SHA-256's output limit");
        aead::LessSafeKey::new(aead::UnboundKey::from(okm))
    };
    let payload = aead_key(LABEL_PAYLOAD);
    let metadata = aead_key(LABEL_METADATA);
    let commit = hmac::Key::from(
        prk.expand(&[LABEL_COMMIT], hmac::HMAC_SHA256)
            .expect("32 bytes is within HKDF-SHA-256's output limit"),
    );
    (payload, metadata, commit)
}

/// 11-byte big-endian chunk counter, then the last-chunk flag.
fn chunk_nonce(index: u32, last: bool) -> aead::Nonce {
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    aead::Nonce::assume_unique_for_key(n)
}

/// The number of chunks of an item with `padded_len` bytes of padded content.
pub(crate) fn chunk_count(padded_len: u64) -> u64 {
    padded_len.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// The ciphertext length (tag included) of chunk `index` of `count`.
pub(crate) fn chunk_len(padded_len: u64, count: u32, index: u32) -> usize {
    if index + 1 < count {
        SEALED_CHUNK_LEN
    } else {
        (padded_len - u64::from(count - 1) * CHUNK_SIZE as u64) as usize + TAG_LEN
    }
}

/// What a sealed item says about itself, visible only to its readers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The document's file name (empty for a message).
    pub file_name: String,
    /// Its media type, such as `application/pdf`.
    pub media_type: String,
    /// Subject line of a message.
    pub subject: String,
    /// Body of a message.
    pub body: String,
    /// The matter's label.
    pub matter: String,
    /// Fingerprints of the readers the sender intended.
    pub readers: Vec<Fingerprint>,
    /// Size of the content before padding. Set by the sealer; ignored when sealing.
    pub true_size: u64,
}

impl Metadata {
    pub(crate) fn check_limits(&self) -> Result<(), ItemError> {
        check_len("file name", self.file_name.len(), limits::FILE_NAME)?;
        check_len("media type", self.media_type.len(), limits::MEDIA_TYPE)?;
        check_len("subject", self.subject.len(), limits::SUBJECT)?;
        check_len("body", self.body.len(), limits::BODY)?;
        check_len("matter", self.matter.len(), limits::MATTER)?;
        check_len("readers", self.readers.len(), limits::READERS)
    }

    fn encode(&self, true_size: u64) -> Result<Vec<u8>, ItemError> {
        self.check_limits()?;
        let mut w = Writer::with_capacity(64 + self.body.len() + 32 * self.readers.len());
        w.u8(METADATA_VERSION)
            .bytes32(self.file_name.as_bytes())
            .bytes32(self.media_type.as_bytes())
            .u64(true_size)
            .bytes32(self.subject.as_bytes())
            .bytes32(self.body.as_bytes())
            .bytes32(self.matter.as_bytes())
            .u16(self.readers.len() as u16);
        for r in &self.readers {
            w.bytes(&r.0);
        }
        Ok(w.into_vec())
    }

    fn decode(plain: &[u8]) -> Result<Self, ItemError> {
        let m = ItemError::MalformedMetadata;
        let mut r = Reader::new(plain);
        if r.u8("metadata version").map_err(m)? != METADATA_VERSION {
            return Err(ItemError::MalformedMetadata(DecodeError::Unsupported(
                "metadata version",
            )));
        }
        let file_name = r
            .str32("file name", limits::FILE_NAME)
            .map_err(m)?
            .to_owned();
        let media_type = r
            .str32("media type", limits::MEDIA_TYPE)
            .map_err(m)?
            .to_owned();
        let true_size = r.u64("true size").map_err(m)?;
        let subject = r.str32("subject", limits::SUBJECT).map_err(m)?.to_owned();
        let body = r.str32("body", limits::BODY).map_err(m)?.to_owned();
        let matter = r.str32("matter", limits::MATTER).map_err(m)?.to_owned();
        let count = usize::from(r.u16("readers").map_err(m)?);
        if count > limits::READERS {
            return Err(m(DecodeError::TooLong {
                field: "readers",
                len: count as u64,
                max: limits::READERS as u64,
            }));
        }
        let mut readers = Vec::with_capacity(count);
        for _ in 0..count {
            readers.push(Fingerprint(r.array("reader").map_err(m)?));
        }
        if r.rest().iter().any(|&b| b != 0) {
            return Err(ItemError::Padding);
        }
        Ok(Self {
            file_name,
            media_type,
            subject,
            body,
            matter,
            readers,
            true_size,
        })
    }

    /// Decodes a decrypted metadata block; true if it is well formed. Exists only for the
    /// `fuzz/` target `metadata`: the block is otherwise reachable only after AES-GCM.
    #[doc(hidden)]
    pub fn fuzz_decode(plain: &[u8]) -> bool {
        Self::decode(plain).is_ok()
    }
}

impl fmt::Debug for Metadata {
    // Metadata is privileged content: only sizes are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("true_size", &self.true_size)
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), ItemError> {
    if len > max {
        return Err(ItemError::FieldTooLong { field, len, max });
    }
    Ok(())
}

/// A manifest whose signature has been checked against the key it names. It binds the
/// preamble, the padded length, the encrypted metadata and the digest of every ciphertext chunk.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    bytes: Vec<u8>,
    item_id: [u8; 16],
    preamble_digest: [u8; 32],
    signer: [u8; 32],
    padded_len: u64,
    chunk_count: u32,
    metadata: std::ops::Range<usize>,
    digests: std::ops::Range<usize>,
}

/// Fixed part of a manifest before the metadata block.
const MANIFEST_FIXED: usize = 8 + 16 + 32 + 32 + 8 + 4 + 4;
/// The largest manifest: 1 MiB of metadata and [`MAX_CHUNKS`] digests.
pub const MAX_MANIFEST_LEN: usize = MANIFEST_FIXED + (1 << 20) + 32 * MAX_CHUNKS as usize + 64;

impl Manifest {
    /// Parses a manifest and verifies its signature under the signer key it carries. Needs no
    /// secret; a server runs it on upload.
    pub fn parse(bytes: &[u8]) -> Result<Self, ItemError> {
        let (manifest, body_len) = Self::parse_unverified(bytes)?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[body_len..]);
        let signed = [MANIFEST_DOMAIN, &bytes[..body_len]].concat();
        let key =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &manifest.signer);
        key.verify(&signed, &signature)
            .map_err(|_| ItemError::BadSignature)?;
        Ok(manifest)
    }

    /// Parses the structure, checking every length and consistency rule but not the signature.
    /// Returns the manifest and the length of the signed body.
    fn parse_unverified(bytes: &[u8]) -> Result<(Self, usize), ItemError> {
        let m = ItemError::MalformedManifest;
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(m(DecodeError::TooLong {
                field: "manifest",
                len: bytes.len() as u64,
                max: MAX_MANIFEST_LEN as u64,
            }));
        }
        let mut r = Reader::new(bytes);
        let header: [u8; 8] = r.array("manifest header").map_err(m)?;
        if header != MANIFEST_HEADER {
            return Err(m(DecodeError::Unsupported("manifest header")));
        }
        let item_id = r.array("item id").map_err(m)?;
        let preamble_digest = r.array("preamble digest").map_err(m)?;
        let signer = r.array("signer key").map_err(m)?;
        let padded_len = r.u64("padded length").map_err(m)?;
        let count = r.u32("chunk count").map_err(m)?;
        if count > MAX_CHUNKS {
            return Err(ItemError::InconsistentManifest(
                "more chunks than an item may have",
            ));
        }
        if chunk_count(padded_len) != u64::from(count) {
            return Err(ItemError::InconsistentManifest(
                "chunk count does not fit the padded length",
            ));
        }
        if padme(padded_len) != padded_len {
            return Err(ItemError::InconsistentManifest(
                "padded length is not a PADMÉ length",
            ));
        }
        let metadata_len = r.u32("metadata length").map_err(m)? as usize;
        if !is_metadata_bucket(metadata_len) {
            return Err(ItemError::InconsistentManifest(
                "metadata size is not a bucket size",
            ));
        }
        let metadata_start = bytes.len() - r.rest().len();
        r.take(metadata_len, "metadata").map_err(m)?;
        let digests_start = metadata_start + metadata_len;
        r.take(32 * count as usize, "chunk digests").map_err(m)?;
        let body_len = bytes.len() - r.rest().len();
        r.take(64, "signature").map_err(m)?;
        r.finish().map_err(m)?;
        let manifest = Self {
            bytes: bytes.to_vec(),
            item_id,
            preamble_digest,
            signer,
            padded_len,
            chunk_count: count,
            metadata: metadata_start..digests_start,
            digests: digests_start..body_len,
        };
        Ok((manifest, body_len))
    }

    /// Builds and signs the manifest of a freshly sealed item.
    pub(crate) fn sign(
        sender: &Identity,
        preamble: &Preamble,
        padded_len: u64,
        sealed_metadata: &[u8],
        digests: &[[u8; 32]],
    ) -> Result<Self, ItemError> {
        let mut w =
            Writer::with_capacity(MANIFEST_FIXED + sealed_metadata.len() + 32 * digests.len() + 64);
        let count = u32::try_from(digests.len()).map_err(|_| ItemError::TooLarge)?;
        w.bytes(&MANIFEST_HEADER)
            .bytes(&preamble.item_id())
            .bytes(&preamble.digest())
            .bytes(&sender.public().ed25519)
            .u64(padded_len)
            .u32(count)
            .u32(sealed_metadata.len() as u32)
            .bytes(sealed_metadata);
        for d in digests {
            w.bytes(d);
        }
        let signature = sender.sign(&[MANIFEST_DOMAIN, w.as_slice()].concat());
        w.bytes(&signature);
        // Our own signature over bytes we just wrote: no need to spend a verification on it.
        Ok(Self::parse_unverified(&w.into_vec())?.0)
    }

    /// The encoded manifest.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the encoded manifest: how messages refer to the documents they carry.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&[&self.bytes])
    }

    /// The item version this manifest seals.
    pub fn item_id(&self) -> [u8; 16] {
        self.item_id
    }

    /// The sender's Ed25519 public key (already verified against the signature).
    pub fn signer(&self) -> [u8; 32] {
        self.signer
    }

    /// Bytes of padded content.
    pub fn padded_len(&self) -> u64 {
        self.padded_len
    }

    /// Number of ciphertext chunks.
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// Total ciphertext bytes over all chunks (tags included).
    pub fn ciphertext_len(&self) -> u64 {
        self.padded_len + TAG_LEN as u64 * u64::from(self.chunk_count)
    }

    /// The exact length chunk `index` must have, or `None` past the last chunk.
    pub fn chunk_len(&self, index: u32) -> Option<usize> {
        (index < self.chunk_count).then(|| chunk_len(self.padded_len, self.chunk_count, index))
    }

    /// Checks an uploaded ciphertext chunk against the signed digest, without any key.
    pub fn check_chunk(&self, index: u32, ciphertext: &[u8]) -> Result<(), ChunkCheckError> {
        let expected = self.chunk_len(index).ok_or(ChunkCheckError::NoSuchChunk {
            index,
            count: self.chunk_count,
        })?;
        if ciphertext.len() != expected {
            return Err(ChunkCheckError::WrongLength {
                index,
                expected,
                actual: ciphertext.len(),
            });
        }
        if blake3::hash(ciphertext).as_bytes() != self.chunk_digest(index) {
            return Err(ChunkCheckError::DigestMismatch { index });
        }
        Ok(())
    }

    pub(crate) fn chunk_digest(&self, index: u32) -> &[u8] {
        let start = self.digests.start + 32 * index as usize;
        &self.bytes[start..start + 32]
    }

    pub(crate) fn sealed_metadata(&self) -> &[u8] {
        &self.bytes[self.metadata.clone()]
    }

    /// Checks that this manifest belongs to `preamble` and was signed by `sender`, then opens
    /// its metadata.
    pub(crate) fn open_metadata(
        &self,
        keys: &ItemKeys,
        preamble: &Preamble,
        sender_ed25519: &[u8; 32],
    ) -> Result<Metadata, ItemError> {
        if &self.signer != sender_ed25519 {
            return Err(ItemError::UnexpectedSigner);
        }
        if self.item_id != preamble.item_id() || self.preamble_digest != preamble.digest() {
            return Err(ItemError::ManifestMismatch);
        }
        let metadata = keys.open_metadata(self.sealed_metadata())?;
        if padme(metadata.true_size) != self.padded_len {
            return Err(ItemError::Padding);
        }
        Ok(metadata)
    }
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("item_id", &crate::wire::to_hex(&self.item_id))
            .field("padded_len", &self.padded_len)
            .field("chunk_count", &self.chunk_count)
            .finish_non_exhaustive()
    }
}

/// Why an uploaded chunk was refused by [`Manifest::check_chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkCheckError {
    /// The manifest has no chunk with this index.
    #[error("chunk {index} is past the last chunk ({count} chunks)")]
    NoSuchChunk {
        /// The index given.
        index: u32,
        /// The manifest's chunk count.
        count: u32,
    },
    /// The chunk has the wrong length for its position.
    #[error("chunk {index} is {actual} bytes, expected {expected}")]
    WrongLength {
        /// The index given.
        index: u32,
        /// The length the manifest implies.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// The chunk's digest differs from the signed one.
    #[error("chunk {index} does not match the signed manifest")]
    DigestMismatch {
        /// The index given.
        index: u32,
    },
}

pub(crate) fn seal_metadata_into_manifest(
    sender: &Identity,
    keys: &ItemKeys,
    preamble: &Preamble,
    metadata: &Metadata,
    true_size: u64,
    padded_len: u64,
    digests: &[[u8; 32]],
) -> Result<Manifest, ItemError> {
    let sealed = keys.seal_metadata(metadata, true_size)?;
    Manifest::sign(sender, preamble, padded_len, &sealed, digests)
}
