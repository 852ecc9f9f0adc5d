//! Streaming seal and open in bounded memory, using every core.
//!
//! Content is read in batches of [`BATCH_CHUNKS`] chunks into one reusable buffer; the chunks of
//! a batch are sealed (or checked and opened) in parallel, in place, then handed on in order.
//! Memory is therefore about one batch (1 MiB) plus 32 bytes of digest per chunk, whatever the
//! size of the item. When opening, a batch's plaintext is written only after every chunk in it
//! has matched the signed manifest and passed AES-GCM authentication.

use std::io::{self, Read, Write};

use rayon::prelude::*;

use super::item::{
    CHUNK_SIZE, ContentKey, ItemError, ItemKeys, MAX_CHUNKS, Manifest, Metadata, Preamble, TAG_LEN,
    chunk_count, chunk_len, seal_metadata_into_manifest,
};
use super::padding::padme;
use super::{Identity, PublicKeys, RandomSource, SystemRandom};

/// Chunks per batch: enough to keep every core busy, small enough to bound memory (1 MiB).
pub const BATCH_CHUNKS: usize = 16;
const STRIDE: usize = CHUNK_SIZE + TAG_LEN;

/// How many threads sealing and opening may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// Every core (rayon's global pool).
    #[default]
    All,
    /// The calling thread only.
    One,
}

/// Where sealed output goes: the preamble first, then each chunk in order. An uploader sends
/// them as they come; [`SealedChunks`] keeps them in memory; any [`Write`] can be wrapped in
/// [`WriteSink`].
pub trait ChunkSink {
    /// Receives the preamble, before any chunk.
    fn preamble(&mut self, preamble: &Preamble) -> io::Result<()>;
    /// Receives chunk `index` (ciphertext and tag).
    fn chunk(&mut self, index: u32, ciphertext: &[u8]) -> io::Result<()>;
}

/// Writes the preamble and then every chunk, back to back, to a [`Write`].
#[derive(Debug)]
pub struct WriteSink<W>(pub W);

impl<W: Write> ChunkSink for WriteSink<W> {
    fn preamble(&mut self, preamble: &Preamble) -> io::Result<()> {
        self.0.write_all(preamble.as_bytes())
    }

    fn chunk(&mut self, _index: u32, ciphertext: &[u8]) -> io::Result<()> {
        self.0.write_all(ciphertext)
    }
}

/// Keeps a sealed item's preamble and chunks in memory (small items and tests).
#[derive(Debug, Default, Clone)]
pub struct SealedChunks {
    /// The preamble, once sealing has started.
    pub preamble: Option<Preamble>,
    /// The chunks in order.
    pub chunks: Vec<Vec<u8>>,
}

impl SealedChunks {
    /// All chunks back to back, as [`open_item`] reads them.
    pub fn concatenated(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

impl ChunkSink for SealedChunks {
    fn preamble(&mut self, preamble: &Preamble) -> io::Result<()> {
        self.preamble = Some(*preamble);
        Ok(())
    }

    fn chunk(&mut self, _index: u32, ciphertext: &[u8]) -> io::Result<()> {
        self.chunks.push(ciphertext.to_vec());
        Ok(())
    }
}

/// What sealing produced besides the chunks: everything a sender needs to upload the item and
/// wrap its key for readers.
#[derive(Debug)]
pub struct Sealed {
    /// The item's content key, to wrap in key packages.
    pub content_key: ContentKey,
    /// The cleartext preamble.
    pub preamble: Preamble,
    /// The signed manifest.
    pub manifest: Manifest,
    /// Bytes of content read.
    pub true_size: u64,
}

/// Seals everything `content` yields into `sink`, signing the manifest as `sender`.
/// `metadata.true_size` is ignored and replaced by the number of bytes read.
pub fn seal_item<R: Read, S: ChunkSink>(
    sender: &Identity,
    metadata: &Metadata,
    content: R,
    sink: &mut S,
    parallelism: Parallelism,
) -> Result<Sealed, ItemError> {
    seal_item_with(
        sender,
        metadata,
        content,
        sink,
        parallelism,
        &SystemRandom,
        None,
    )
}

/// `claimed_size` replaces the true size in the metadata: only the vector generator uses it,
/// to produce items whose padding is not what the metadata says.
pub(crate) fn seal_item_with<R: Read, S: ChunkSink>(
    sender: &Identity,
    metadata: &Metadata,
    content: R,
    sink: &mut S,
    parallelism: Parallelism,
    rng: &dyn RandomSource,
    claimed_size: Option<u64>,
) -> Result<Sealed, ItemError> {
    // Catch over-long fields before reading any content.
    metadata.check_limits()?;
    let mut key_bytes = [0u8; 32];
    rng.fill(&mut key_bytes)?;
    let content_key = ContentKey::from_bytes(key_bytes);
    zeroize::Zeroize::zeroize(&mut key_bytes);
    let (preamble, keys) = ItemKeys::create(&content_key, rng)?;
    sink.preamble(&preamble)?;

    let mut source = PaddedReader::new(content);
    // Grown one slot at a time up to a full batch, so a short message costs one slot.
    let mut buf = Vec::new();
    let mut lens = Vec::with_capacity(BATCH_CHUNKS);
    let mut digests: Vec<[u8; 32]> = Vec::new();
    let mut carry: Option<u8> = None;
    let mut next_index: u32 = 0;
    loop {
        // Fill up to BATCH_CHUNKS slots, each with up to CHUNK_SIZE bytes of padded content.
        lens.clear();
        let mut more = true;
        for i in 0..BATCH_CHUNKS {
            if buf.len() < (i + 1) * STRIDE {
                buf.resize((i + 1) * STRIDE, 0);
            }
            let plain = &mut buf[i * STRIDE..i * STRIDE + CHUNK_SIZE];
            let mut filled = 0;
            if let Some(b) = carry.take() {
                plain[0] = b;
                filled = 1;
            }
            filled += read_full(&mut source, &mut plain[filled..])?;
            if filled == 0 && !lens.is_empty() {
                more = false;
                break;
            }
            lens.push(filled);
            if filled < CHUNK_SIZE {
                more = false;
                break;
            }
        }
        if more {
            // A full batch: peek one byte to learn whether its last chunk is the item's last.
            let mut one = [0u8; 1];
            if read_full(&mut source, &mut one)? == 1 {
                carry = Some(one[0]);
            } else {
                more = false;
            }
        }
        let first = next_index;
        let count = lens.len() as u32;
        if u64::from(first) + u64::from(count) > u64::from(MAX_CHUNKS) {
            return Err(ItemError::TooLarge);
        }
        let batch_digests = seal_batch(&keys, &mut buf, &lens, first, !more, parallelism);
        for (i, (slot, &len)) in buf.chunks(STRIDE).zip(&lens).enumerate() {
            sink.chunk(first + i as u32, &slot[..len + TAG_LEN])?;
        }
        digests.extend_from_slice(&batch_digests);
        next_index += count;
        if !more {
            break;
        }
    }
    let true_size = source.true_size();
    debug_assert_eq!(chunk_count(padme(true_size)), u64::from(next_index));
    let manifest = seal_metadata_into_manifest(
        sender,
        &keys,
        &preamble,
        metadata,
        claimed_size.unwrap_or(true_size),
        padme(true_size),
        &digests,
    )?;
    Ok(Sealed {
        content_key,
        preamble,
        manifest,
        true_size,
    })
}

fn seal_batch(
    keys: &ItemKeys,
    buf: &mut [u8],
    lens: &[usize],
    first: u32,
    ends_item: bool,
    parallelism: Parallelism,
) -> Vec<[u8; 32]> {
    let last_in_batch = lens.len() - 1;
    let work = |(i, (slot, &len)): (usize, (&mut [u8], &usize))| {
        let last = ends_item && i == last_in_batch;
        let (plain, rest) = slot.split_at_mut(len);
        let tag = keys.seal_chunk(first + i as u32, last, plain);
        rest[..TAG_LEN].copy_from_slice(&tag);
        *blake3::hash(&slot[..len + TAG_LEN]).as_bytes()
    };
    if parallelism == Parallelism::All && lens.len() > 1 {
        buf.par_chunks_mut(STRIDE)
            .zip(lens.par_iter())
            .enumerate()
            .map(work)
            .collect()
    } else {
        buf.chunks_mut(STRIDE)
            .zip(lens)
            .enumerate()
            .map(work)
            .collect()
    }
}

/// Checks and opens the chunks of a sealed item.
///
/// Created by [`ItemOpener::new`], which checks the key commitment, the manifest's signature and
/// signer, its binding to the preamble, and opens the metadata, all before any chunk is read.
pub struct ItemOpener {
    keys: ItemKeys,
    manifest: Manifest,
    metadata: Metadata,
}

impl std::fmt::Debug for ItemOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemOpener")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl ItemOpener {
    /// Checks everything that can be checked before the chunks and opens the metadata.
    pub fn new(
        content_key: &ContentKey,
        preamble: &Preamble,
        manifest: &Manifest,
        sender: &PublicKeys,
    ) -> Result<Self, ItemError> {
        Self::with_signer_key(content_key, preamble, manifest, &sender.ed25519)
    }

    /// [`ItemOpener::new`] given only the sender's Ed25519 key, for a local file whose sender
    /// is shown to the user by fingerprint rather than known beforehand.
    pub fn with_signer_key(
        content_key: &ContentKey,
        preamble: &Preamble,
        manifest: &Manifest,
        signer_ed25519: &[u8; 32],
    ) -> Result<Self, ItemError> {
        let keys = ItemKeys::open(content_key, preamble)?;
        let metadata = manifest.open_metadata(&keys, preamble, signer_ed25519)?;
        Ok(Self {
            keys,
            manifest: manifest.clone(),
            metadata,
        })
    }

    /// The item's metadata (subject, body, file name, true size…).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Reads the concatenated ciphertext chunks from `chunks`, checks each against the manifest
    /// and opens it, and writes the content (without padding) to `out`. Returns the bytes
    /// written.
    pub fn open_chunks<R: Read, W: Write>(
        &self,
        mut chunks: R,
        mut out: W,
        parallelism: Parallelism,
    ) -> Result<u64, ItemError> {
        let count = self.manifest.chunk_count();
        let padded_len = self.manifest.padded_len();
        let true_size = self.metadata.true_size;
        let mut buf = vec![0u8; (count as usize).min(BATCH_CHUNKS) * STRIDE];
        let mut written: u64 = 0;
        let mut first: u32 = 0;
        while first < count {
            let n = (count - first).min(BATCH_CHUNKS as u32);
            let mut lens = Vec::with_capacity(n as usize);
            for (i, slot) in buf.chunks_mut(STRIDE).take(n as usize).enumerate() {
                let index = first + i as u32;
                let len = chunk_len(padded_len, count, index);
                if read_full(&mut chunks, &mut slot[..len])? < len {
                    return Err(ItemError::Truncated { index });
                }
                lens.push(len);
            }
            self.open_batch(&mut buf, &lens, first, count, parallelism)?;
            for (slot, &len) in buf.chunks(STRIDE).zip(&lens) {
                let plain = &slot[..len - TAG_LEN];
                let keep = (true_size - written).min(plain.len() as u64) as usize;
                if plain[keep..].iter().any(|&b| b != 0) {
                    return Err(ItemError::Padding);
                }
                out.write_all(&plain[..keep])?;
                written += keep as u64;
            }
            first += n;
        }
        let mut one = [0u8; 1];
        if read_full(&mut chunks, &mut one)? != 0 {
            return Err(ItemError::ExtraData);
        }
        out.flush()?;
        Ok(written)
    }

    fn open_batch(
        &self,
        buf: &mut [u8],
        lens: &[usize],
        first: u32,
        count: u32,
        parallelism: Parallelism,
    ) -> Result<(), ItemError> {
        let work = |(i, (slot, &len)): (usize, (&mut [u8], &usize))| {
            let index = first + i as u32;
            let ciphertext = &mut slot[..len];
            if blake3::hash(ciphertext).as_bytes() != self.manifest.chunk_digest(index) {
                return Err(ItemError::ChunkDigest { index });
            }
            self.keys.open_chunk(index, index + 1 == count, ciphertext)
        };
        if parallelism == Parallelism::All && lens.len() > 1 {
            // Report the first failing chunk in order, whichever thread found it.
            let results: Vec<_> = buf
                .par_chunks_mut(STRIDE)
                .zip(lens.par_iter())
                .enumerate()
                .map(work)
                .collect();
            results.into_iter().collect()
        } else {
            buf.chunks_mut(STRIDE)
                .zip(lens)
                .enumerate()
                .try_for_each(work)
        }
    }
}

/// What [`open_item`] found.
#[derive(Debug)]
pub struct Opened {
    /// The item's metadata.
    pub metadata: Metadata,
    /// Bytes of content written.
    pub written: u64,
}

/// Opens a whole item in one call: see [`ItemOpener`].
pub fn open_item<R: Read, W: Write>(
    content_key: &ContentKey,
    preamble: &Preamble,
    manifest: &Manifest,
    sender: &PublicKeys,
    chunks: R,
    out: W,
    parallelism: Parallelism,
) -> Result<Opened, ItemError> {
    let opener = ItemOpener::new(content_key, preamble, manifest, sender)?;
    let written = opener.open_chunks(chunks, out, parallelism)?;
    Ok(Opened {
        metadata: opener.metadata,
        written,
    })
}

/// Yields the content, then the zeros that pad it to its PADMÉ length.
struct PaddedReader<R> {
    inner: R,
    read: u64,
    padding_left: Option<u64>,
}

impl<R: Read> PaddedReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            padding_left: None,
        }
    }

    fn true_size(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for PaddedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(left) = &mut self.padding_left {
            let n = (*left).min(out.len() as u64) as usize;
            out[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = loop {
            match self.inner.read(out) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.padding_left = Some(padme(self.read) - self.read);
            return self.read(out);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads until `out` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, out: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match r.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
