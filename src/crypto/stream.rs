//! Streaming seal and open in bounded memory, using every core.
//!
//! Content is read in batches of [`BATCH_CHUNKS`] chunks; the chunks of a batch are sealed (or
//! checked and opened) in parallel, in place, then handed on in order. With every core, the
//! next batch is read and the one before handed on (or written) while a batch is sealed (or
//! opened), so reading and writing overlap the cryptography; three reusable buffers take turns.
//! Memory is therefore about three batches (3 MiB) plus 32 bytes of digest per chunk, whatever
//! the size of the item. When opening, a batch's plaintext is written only after every chunk in
//! it has matched the signed manifest and passed AES-GCM authentication.

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
    let mut carry: Option<u8> = None;
    let mut digests: Vec<[u8; 32]> = Vec::new();
    let mut current = Batch::default();
    fill_batch(&mut source, &mut carry, &mut current)?;
    // The batch sealed before `current`, still to be handed to the sink; a spare buffer.
    let mut previous: Option<Batch> = None;
    let mut spare = Batch::default();
    loop {
        let mut next = std::mem::take(&mut spare);
        next.first = current.end();
        let keys = &keys;
        // With every core, the next batch is read and the one before handed on while this one
        // is sealed; alone (or for a single batch), one after the other.
        let last = current.last;
        let overlap = parallelism == Parallelism::All && (!last || previous.is_some());
        let (sealed, step) = overlapped(
            overlap,
            || current.seal(keys, parallelism),
            || -> Result<(), ItemError> {
                if let Some(p) = &previous {
                    p.hand_on(sink)?;
                }
                if !last {
                    fill_batch(&mut source, &mut carry, &mut next)?;
                }
                Ok(())
            },
        );
        step?;
        digests.extend_from_slice(&sealed);
        if let Some(p) = previous.take() {
            spare = p;
        }
        if current.last {
            current.hand_on(sink)?;
            break;
        }
        previous = Some(std::mem::replace(&mut current, next));
    }
    let next_index = current.end();
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

/// Runs `work` on a thread of its own while `meanwhile` runs here, if `overlap`; else one
/// after the other. A panic in `work` goes on in the caller.
fn overlapped<A: Send, B>(
    overlap: bool,
    work: impl FnOnce() -> A + Send,
    meanwhile: impl FnOnce() -> B,
) -> (A, B) {
    if !overlap {
        let a = work();
        return (a, meanwhile());
    }
    std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        let b = meanwhile();
        match worker.join() {
            Ok(a) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Up to [`BATCH_CHUNKS`] consecutive chunks in one buffer, one slot of [`STRIDE`] bytes each.
#[derive(Default)]
struct Batch {
    /// Grown one slot at a time up to a full batch, so a short message costs one slot.
    buf: Vec<u8>,
    /// The length of each chunk's content (sealing) or ciphertext (opening).
    lens: Vec<usize>,
    /// Index of the first chunk.
    first: u32,
    /// Whether it holds the item's last chunk.
    last: bool,
}

impl Batch {
    fn end(&self) -> u32 {
        self.first + self.lens.len() as u32
    }

    /// Seals the batch in place and returns the chunks' digests.
    fn seal(&mut self, keys: &ItemKeys, parallelism: Parallelism) -> Vec<[u8; 32]> {
        seal_batch(
            keys,
            &mut self.buf,
            &self.lens,
            self.first,
            self.last,
            parallelism,
        )
    }

    /// Hands the sealed chunks to `sink`, in order.
    fn hand_on<S: ChunkSink>(&self, sink: &mut S) -> io::Result<()> {
        for (i, (slot, &len)) in self.buf.chunks(STRIDE).zip(&self.lens).enumerate() {
            sink.chunk(self.first + i as u32, &slot[..len + TAG_LEN])?;
        }
        Ok(())
    }
}

/// Reads the next batch of padded content into `batch` (whose `first` is set): up to
/// [`BATCH_CHUNKS`] slots of up to [`CHUNK_SIZE`] bytes. `carry` is a byte read ahead to learn
/// whether a full batch ended the item.
fn fill_batch<R: Read>(
    source: &mut R,
    carry: &mut Option<u8>,
    batch: &mut Batch,
) -> Result<(), ItemError> {
    batch.lens.clear();
    let mut more = true;
    for i in 0..BATCH_CHUNKS {
        if batch.buf.len() < (i + 1) * STRIDE {
            batch.buf.resize((i + 1) * STRIDE, 0);
        }
        let plain = &mut batch.buf[i * STRIDE..i * STRIDE + CHUNK_SIZE];
        let mut filled = 0;
        if let Some(b) = carry.take() {
            plain[0] = b;
            filled = 1;
        }
        filled += read_full(source, &mut plain[filled..])?;
        if filled == 0 && !batch.lens.is_empty() {
            more = false;
            break;
        }
        batch.lens.push(filled);
        if filled < CHUNK_SIZE {
            more = false;
            break;
        }
    }
    if more {
        // A full batch: peek one byte to learn whether its last chunk is the item's last.
        let mut one = [0u8; 1];
        if read_full(source, &mut one)? == 1 {
            *carry = Some(one[0]);
        } else {
            more = false;
        }
    }
    batch.last = !more;
    if u64::from(batch.end()) > u64::from(MAX_CHUNKS) {
        return Err(ItemError::TooLarge);
    }
    Ok(())
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
        let mut written: u64 = 0;
        let mut current = Batch::default();
        self.read_batch(&mut chunks, &mut current)?;
        // The batch opened before `current`, its plaintext still to be written; a spare buffer.
        let mut previous: Option<Batch> = None;
        let mut spare = Batch::default();
        while !current.lens.is_empty() {
            let mut next = std::mem::take(&mut spare);
            next.first = current.end();
            // With every core, the next batch is read and the one before written while this
            // one is checked and opened; alone (or for a single batch), one after the other.
            let overlap =
                parallelism == Parallelism::All && (next.first < count || previous.is_some());
            let (opened, step) = overlapped(
                overlap,
                || {
                    self.open_batch(
                        &mut current.buf,
                        &current.lens,
                        current.first,
                        count,
                        parallelism,
                    )
                },
                || -> Result<(), ItemError> {
                    if let Some(p) = &previous {
                        written += self.write_plain(p, written, &mut out)?;
                    }
                    self.read_batch(&mut chunks, &mut next)
                },
            );
            // A failure in this batch comes before one in the next.
            opened?;
            step?;
            if let Some(p) = previous.replace(std::mem::replace(&mut current, next)) {
                spare = p;
            }
        }
        if let Some(p) = &previous {
            written += self.write_plain(p, written, &mut out)?;
        }
        let mut one = [0u8; 1];
        if read_full(&mut chunks, &mut one)? != 0 {
            return Err(ItemError::ExtraData);
        }
        out.flush()?;
        Ok(written)
    }

    /// Reads the ciphertext of the chunks from `batch.first` on (up to [`BATCH_CHUNKS`], none
    /// past the last) into `batch`.
    fn read_batch<R: Read>(&self, chunks: &mut R, batch: &mut Batch) -> Result<(), ItemError> {
        let count = self.manifest.chunk_count();
        let padded_len = self.manifest.padded_len();
        let n = count.saturating_sub(batch.first).min(BATCH_CHUNKS as u32) as usize;
        batch.lens.clear();
        if batch.buf.len() < n * STRIDE {
            batch.buf.resize(n * STRIDE, 0);
        }
        for (i, slot) in batch.buf.chunks_mut(STRIDE).take(n).enumerate() {
            let index = batch.first + i as u32;
            let len = chunk_len(padded_len, count, index);
            if read_full(chunks, &mut slot[..len])? < len {
                return Err(ItemError::Truncated { index });
            }
            batch.lens.push(len);
        }
        Ok(())
    }

    /// Writes the content of an opened batch (without padding, which must be zeros) to `out`,
    /// `written` bytes having gone before; returns the bytes written.
    fn write_plain<W: Write>(
        &self,
        batch: &Batch,
        written: u64,
        out: &mut W,
    ) -> Result<u64, ItemError> {
        let true_size = self.metadata.true_size;
        let mut now = 0u64;
        for (slot, &len) in batch.buf.chunks(STRIDE).zip(&batch.lens) {
            let plain = &slot[..len - TAG_LEN];
            let keep = (true_size - written - now).min(plain.len() as u64) as usize;
            if plain[keep..].iter().any(|&b| b != 0) {
                return Err(ItemError::Padding);
            }
            out.write_all(&plain[..keep])?;
            now += keep as u64;
        }
        Ok(now)
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
