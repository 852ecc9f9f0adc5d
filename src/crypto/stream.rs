//! Streaming seal and open in bounded memory, using every core.
//!
//! Content is read in batches of [`BATCH_CHUNKS`] chunks; the chunks of a batch are sealed (or
//! checked and opened) in place, then handed on in order. With every core, a crew of helper
//! threads (one per other core, for the whole call) takes the chunks one by one, and the calling
//! thread reads the next batch and hands it over before it joins in on what is left of the
//! current one and hands that on (or writes it): reading and writing overlap the cryptography,
//! and the helpers go from one batch to the next without waiting. Two reusable batches take
//! turns, so memory is about two batches (2 MiB) plus 32 bytes of digest per chunk, whatever the
//! size of the item. When opening, a batch's plaintext is written only after every chunk in it
//! has matched the signed manifest and passed AES-GCM authentication.

use std::io::{self, Read, Write};

use super::crew::{self, with_crew};
use super::item::{
    CHUNK_SIZE, ContentKey, ItemError, ItemKeys, MAX_CHUNKS, Manifest, Metadata, Preamble,
    SEALED_CHUNK_LEN, TAG_LEN, chunk_count, chunk_len, seal_metadata_into_manifest,
};
use super::padding::padme;
use super::{Identity, PublicKeys, RandomSource, SystemRandom};

/// Chunks per batch: enough to keep every core busy, small enough to bound memory (1 MiB).
pub const BATCH_CHUNKS: usize = 16;
/// An item of at most this many batches is sealed or opened on the calling thread alone:
/// starting the crew for it costs more than the crew saves (criterion, `seal-1MiB`).
const MAX_UNSHARED_BATCHES: u64 = 2;
const STRIDE: usize = SEALED_CHUNK_LEN;

/// How many threads sealing and opening may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// Every core: a helper thread per other core for the length of the call.
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
    let mut current = Batch::default();
    fill_batch(&mut source, &mut carry, &mut current)?;
    // With every core, the second batch is read before the crew is chosen, to learn whether
    // the item is longer than MAX_UNSHARED_BATCHES (two).
    let mut ahead = None;
    if parallelism == Parallelism::All && !current.last {
        let mut second = Batch {
            first: current.end(),
            ..Batch::default()
        };
        fill_batch(&mut source, &mut carry, &mut second)?;
        ahead = Some(second);
    }
    let long = ahead.as_ref().is_some_and(|second| !second.last);
    let seal = |task: Task| task.seal(&keys);
    let helpers = helpers(parallelism, long);
    let (next_index, digests) = with_crew(helpers, &seal, |crew| {
        let mut current = current;
        let mut digests: Vec<[u8; 32]> = Vec::new();
        let mut spare = Batch::default();
        crew.submit(current.tasks());
        loop {
            // While the crew seals this batch, the next one is read and handed over too, so
            // the helpers go on to it as soon as they are done with this one.
            let next = if current.last {
                None
            } else {
                let mut next = match ahead.take() {
                    Some(next) => next,
                    None => {
                        let mut next = std::mem::take(&mut spare);
                        next.first = current.end();
                        fill_batch(&mut source, &mut carry, &mut next)?;
                        next
                    }
                };
                crew.submit(next.tasks());
                Some(next)
            };
            digests.extend(current.put_back(crew.finish(current.range())));
            current.hand_on(sink)?;
            match next {
                Some(next) => spare = std::mem::replace(&mut current, next),
                None => return Ok::<_, ItemError>((current.end(), digests)),
            }
        }
    })?;
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

/// How many helpers to start: none for one thread, or for an item that is not `long` (at
/// most [`MAX_UNSHARED_BATCHES`] batches), which the calling thread seals or opens alone
/// sooner than with a crew started for it.
fn helpers(parallelism: Parallelism, long: bool) -> usize {
    match parallelism {
        Parallelism::All if long => crew::helpers_for_every_core(),
        _ => 0,
    }
}

/// Up to [`BATCH_CHUNKS`] consecutive chunks, each in a buffer of [`STRIDE`] bytes of its own,
/// so that the crew can take them one by one.
#[derive(Default)]
struct Batch {
    /// Allocated as first needed, so a short message costs one.
    slots: Vec<Vec<u8>>,
    /// The length of each chunk's content (sealing) or ciphertext (opening).
    lens: Vec<usize>,
    /// Index of the first chunk.
    first: u32,
    /// Whether it holds the item's last chunk.
    last: bool,
}

/// One chunk for the crew, its buffer moved out of the batch.
struct Task {
    index: u32,
    /// Whether it is the item's last chunk.
    last: bool,
    len: usize,
    slot: Vec<u8>,
}

/// A task done, its buffer to go back into the batch.
struct Done<T> {
    index: u32,
    slot: Vec<u8>,
    outcome: T,
}

impl Task {
    /// Seals the chunk in place, its tag after it, and takes its digest.
    fn seal(mut self, keys: &ItemKeys) -> Done<[u8; 32]> {
        let (plain, rest) = self.slot.split_at_mut(self.len);
        let tag = keys.seal_chunk(self.index, self.last, plain);
        rest[..TAG_LEN].copy_from_slice(&tag);
        let digest = *blake3::hash(&self.slot[..self.len + TAG_LEN]).as_bytes();
        self.done(digest)
    }

    fn done<T>(self, outcome: T) -> Done<T> {
        Done {
            index: self.index,
            slot: self.slot,
            outcome,
        }
    }
}

impl Batch {
    fn end(&self) -> u32 {
        self.first + self.lens.len() as u32
    }

    fn range(&self) -> std::ops::Range<u32> {
        self.first..self.end()
    }

    /// Moves the filled chunks out as tasks, in order, each with its index.
    fn tasks(&mut self) -> impl Iterator<Item = (u32, Task)> + '_ {
        let first = self.first;
        let n = self.lens.len();
        let final_index = self.last.then(|| self.end() - 1);
        self.slots[..n]
            .iter_mut()
            .zip(&self.lens)
            .enumerate()
            .map(move |(i, (slot, &len))| {
                let index = first + i as u32;
                let task = Task {
                    index,
                    last: final_index == Some(index),
                    len,
                    slot: std::mem::take(slot),
                };
                (index, task)
            })
    }

    /// Puts the buffers of the batch's finished tasks back and returns their outcomes in chunk
    /// order.
    fn put_back<T>(&mut self, mut done: Vec<Done<T>>) -> impl Iterator<Item = T> {
        done.sort_unstable_by_key(|d| d.index);
        done.into_iter().map(|d| {
            self.slots[(d.index - self.first) as usize] = d.slot;
            d.outcome
        })
    }

    /// The filled chunks' buffers with their lengths.
    fn filled(&self) -> impl Iterator<Item = (&[u8], usize)> {
        self.slots
            .iter()
            .map(Vec::as_slice)
            .zip(self.lens.iter().copied())
    }

    /// Hands the sealed chunks to `sink`, in order.
    fn hand_on<S: ChunkSink>(&self, sink: &mut S) -> io::Result<()> {
        for (i, (slot, len)) in self.filled().enumerate() {
            sink.chunk(self.first + i as u32, &slot[..len + TAG_LEN])?;
        }
        Ok(())
    }

    /// The buffer for chunk `i` of the batch, allocated if it is the first use.
    fn slot(&mut self, i: usize) -> &mut Vec<u8> {
        while self.slots.len() <= i {
            self.slots.push(Vec::new());
        }
        let slot = &mut self.slots[i];
        if slot.len() < STRIDE {
            slot.resize(STRIDE, 0);
        }
        slot
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
        let plain = &mut batch.slot(i)[..CHUNK_SIZE];
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
        let mut current = Batch::default();
        self.read_batch(&mut chunks, &mut current)?;
        current.last = current.end() == count;
        let open = |task: Task| self.open_task(task);
        let long = u64::from(count) > MAX_UNSHARED_BATCHES * BATCH_CHUNKS as u64;
        let written = with_crew(helpers(parallelism, long), &open, |crew| {
            let mut current = current;
            let mut written: u64 = 0;
            let mut spare = Batch::default();
            crew.submit(current.tasks());
            while !current.lens.is_empty() {
                // While the crew checks and opens this batch, the next one is read and handed
                // over too.
                let mut next = std::mem::take(&mut spare);
                next.first = current.end();
                let step = self.read_batch(&mut chunks, &mut next);
                next.last = next.end() == count;
                if step.is_ok() {
                    crew.submit(next.tasks());
                }
                // A failure in this batch comes before one in the next; the plaintext of a
                // batch is written only once every chunk in it has passed.
                current
                    .put_back(crew.finish(current.range()))
                    .collect::<Result<(), ItemError>>()?;
                step?;
                written += self.write_plain(&current, written, &mut out)?;
                spare = std::mem::replace(&mut current, next);
            }
            Ok::<_, ItemError>(written)
        })?;
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
        for i in 0..n {
            let index = batch.first + i as u32;
            let len = chunk_len(padded_len, count, index);
            if read_full(chunks, &mut batch.slot(i)[..len])? < len {
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
        for (slot, len) in batch.filled() {
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

    /// Checks a chunk against the signed manifest and opens it in place.
    fn open_task(&self, mut task: Task) -> Done<Result<(), ItemError>> {
        let index = task.index;
        let ciphertext = &mut task.slot[..task.len];
        let outcome = if blake3::hash(ciphertext).as_bytes() != self.manifest.chunk_digest(index) {
            Err(ItemError::ChunkDigest { index })
        } else {
            self.keys.open_chunk(index, task.last, ciphertext)
        };
        task.done(outcome)
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
