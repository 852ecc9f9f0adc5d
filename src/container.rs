//! A sealed item and its key packages in one local file, for `attache seal` / `attache open`
//! and for archiving. Layout (all integers big-endian):
//!
//! ```text
//! "ATCHFIL1" | preamble (88) | chunks | manifest | { u32 len | key package }*
//! | u32 manifest_len | u32 packages_len | u16 package_count | "ATCHEND1"
//! ```
//!
//! The chunks are written as they are sealed, so sealing needs no seek and no second pass; the
//! trailer at the end lets an opener find the manifest and key packages first.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::crypto::{
    Identity, ItemError, ItemOpener, KeyPackageError, MAX_KEY_PACKAGE_LEN, MAX_MANIFEST_LEN,
    Manifest, Metadata, PREAMBLE_LEN, Parallelism, Preamble, PublicKeys, Sealed, WriteSink,
    open_key_package, seal_item, seal_key_package,
};
use crate::wire::{DecodeError, Reader, Writer};

const HEADER: [u8; 8] = *b"ATCHFIL1";
const END: [u8; 8] = *b"ATCHEND1";
const TRAILER_LEN: usize = 4 + 4 + 2 + 8;
/// The most key packages one file may carry.
pub const MAX_PACKAGES: usize = 1024;

/// Why a container file could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The file is not an Attache container, or its framing is damaged.
    #[error("not an Attache sealed file: {0}")]
    Malformed(DecodeError),
    /// None of the file's key packages is for this identity.
    #[error("this file is not sealed to your identity")]
    NotForThisIdentity,
    /// A key package is damaged or belongs to another item.
    #[error(transparent)]
    KeyPackage(#[from] KeyPackageError),
    /// Sealing or opening the item failed.
    #[error(transparent)]
    Item(#[from] ItemError),
    /// More readers than a file may carry.
    #[error("at most {MAX_PACKAGES} readers per file")]
    TooManyReaders,
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// What opening a container file found.
#[derive(Debug)]
pub struct OpenedFile {
    /// The item's metadata.
    pub metadata: Metadata,
    /// The signer's Ed25519 key, as verified against the manifest signature.
    pub signer_ed25519: [u8; 32],
    /// Bytes of content written.
    pub written: u64,
}

/// Seals `content` into a container written to `out`, readable by each of `readers`.
pub fn seal_file<R: Read, W: Write>(
    sender: &Identity,
    metadata: &Metadata,
    readers: &[PublicKeys],
    content: R,
    mut out: W,
    parallelism: Parallelism,
) -> Result<Sealed, ContainerError> {
    if readers.len() > MAX_PACKAGES {
        return Err(ContainerError::TooManyReaders);
    }
    out.write_all(&HEADER)?;
    let mut sink = WriteSink(&mut out);
    let sealed = seal_item(sender, metadata, content, &mut sink, parallelism)?;
    let item_id = sealed.preamble.item_id();
    let mut packages = Writer::default();
    for reader in readers {
        packages.bytes32(&seal_key_package(&sealed.content_key, &item_id, reader)?);
    }
    let manifest = sealed.manifest.as_bytes();
    let packages = packages.into_vec();
    let mut trailer = Writer::with_capacity(TRAILER_LEN);
    trailer
        .u32(manifest.len() as u32)
        .u32(packages.len() as u32)
        .u16(readers.len() as u16)
        .bytes(&END);
    out.write_all(manifest)?;
    out.write_all(&packages)?;
    out.write_all(trailer.as_slice())?;
    out.flush()?;
    Ok(sealed)
}

/// Opens a container with `identity`, checks every chunk and the sender's signature, and
/// writes the content to `out`. With `expected_sender`, a file sealed by anyone else is refused
/// before any content is written; without, the caller shows `signer_ed25519` (or its owner's
/// fingerprint) to the user.
pub fn open_file<R: Read + Seek, W: Write>(
    mut input: R,
    identity: &Identity,
    expected_sender: Option<&PublicKeys>,
    out: W,
    parallelism: Parallelism,
) -> Result<OpenedFile, ContainerError> {
    let m = ContainerError::Malformed;
    let file_len = input.seek(SeekFrom::End(0))?;
    let fixed = (HEADER.len() + PREAMBLE_LEN + TRAILER_LEN) as u64;
    if file_len < fixed {
        return Err(m(DecodeError::Truncated("sealed file")));
    }
    input.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 8 + PREAMBLE_LEN];
    input.read_exact(&mut head)?;
    if head[..8] != HEADER {
        return Err(m(DecodeError::Unsupported("file header")));
    }
    let preamble = Preamble::parse(&head[8..])?;

    input.seek(SeekFrom::End(-(TRAILER_LEN as i64)))?;
    let mut trailer = [0u8; TRAILER_LEN];
    input.read_exact(&mut trailer)?;
    let mut r = Reader::new(&trailer);
    let manifest_len = r.u32("manifest length").map_err(m)? as usize;
    let packages_len = r.u32("key packages length").map_err(m)? as usize;
    let package_count = usize::from(r.u16("key package count").map_err(m)?);
    if r.rest() != END {
        return Err(m(DecodeError::Unsupported("file trailer")));
    }
    let max_packages_len = MAX_PACKAGES * (4 + MAX_KEY_PACKAGE_LEN);
    for (field, len, max) in [
        ("manifest", manifest_len, MAX_MANIFEST_LEN),
        ("key packages", packages_len, max_packages_len),
        ("key package count", package_count, MAX_PACKAGES),
    ] {
        if len > max {
            return Err(m(DecodeError::TooLong {
                field,
                len: len as u64,
                max: max as u64,
            }));
        }
    }
    let tail = (manifest_len + packages_len + TRAILER_LEN) as u64;
    let chunks_len = file_len
        .checked_sub(fixed - TRAILER_LEN as u64 + tail)
        .ok_or(m(DecodeError::Truncated("sealed file")))?;

    input.seek(SeekFrom::Start(file_len - tail))?;
    let mut manifest = vec![0u8; manifest_len];
    input.read_exact(&mut manifest)?;
    let manifest = Manifest::parse(&manifest)?;
    let mut packages = vec![0u8; packages_len];
    input.read_exact(&mut packages)?;

    // The framing of every package is checked before any is tried.
    let mut r = Reader::new(&packages);
    let mut framed = Vec::with_capacity(package_count);
    for _ in 0..package_count {
        framed.push(r.bytes32("key package", MAX_KEY_PACKAGE_LEN).map_err(m)?);
    }
    r.finish().map_err(m)?;
    // Packages for other readers are skipped, even damaged ones: only if none opens is a damaged
    // package reported, since it may have been ours.
    let item_id = preamble.item_id();
    let mut damaged = None;
    let mut key = None;
    for package in framed {
        match open_key_package(package, identity, &item_id) {
            Ok(k) => {
                key = Some(k);
                break;
            }
            Err(KeyPackageError::NotForThisIdentity) => {}
            Err(e) => damaged = damaged.or(Some(e)),
        }
    }
    let key = match (key, damaged) {
        (Some(key), _) => key,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => return Err(ContainerError::NotForThisIdentity),
    };
    let signer = manifest.signer();
    let expected = expected_sender.map_or(signer, |s| s.ed25519);
    let opener = ItemOpener::with_signer_key(&key, &preamble, &manifest, &expected)?;
    input.seek(SeekFrom::Start((HEADER.len() + PREAMBLE_LEN) as u64))?;
    // Chunks are read straight into the opener's 64 KiB slots: no buffering layer needed.
    let written = opener.open_chunks(input.take(chunks_len), out, parallelism)?;
    Ok(OpenedFile {
        metadata: opener.metadata().clone(),
        signer_ed25519: signer,
        written,
    })
}
