//! The ciphertext chunk store behind one interface: chunks in sled ([`SledBlobs`]) or one plain
//! file per item ([`FileBlobs`]), chosen per data folder ([`BlobStoreKind`]).
//!
//! Holds sealed chunks only (each at most [`SEALED_CHUNK`] bytes, every chunk of an item but
//! its last exactly that long); it never interprets them. Which items exist, how many chunks
//! they have and whether they are committed is the item record's business, in sled.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{FORMAT_VERSION, StorageError};
/// Bytes of one full sealed chunk (content plus the AES-GCM tag).
pub const SEALED_CHUNK: usize = crate::crypto::SEALED_CHUNK_LEN;

/// Where ciphertext chunks live. Chunks of an item are written in order, from the number
/// already received, and only the last chunk of an item may be shorter than
/// [`SEALED_CHUNK`] (the upload handler refuses anything else).
///
/// Durability: chunks written by `put_chunks` must be durable by the next
/// [`super::Store::commit`]; [`FileBlobs`] makes them durable before returning, so the item
/// record written after them never counts chunks that are not on disk.
pub trait BlobStore: Send + Sync {
    /// Stores `bytes`, consecutive chunks back to back (each [`SEALED_CHUNK`] long but the
    /// last), as chunks `first`, `first + 1`, … of `item`, replacing anything stored from
    /// `first` on.
    fn put_chunks(&self, item: &[u8; 16], first: u32, bytes: &[u8]) -> Result<(), StorageError>;
    /// A writer of one request's chunks, from chunk `first` of `item` on, for bodies that
    /// arrive in pieces. The chunks are durable once [`ChunkWriter::finish`] returns (for
    /// [`SledBlobs`], by the next [`super::Store::commit`]).
    fn writer<'a>(
        &'a self,
        item: &[u8; 16],
        first: u32,
    ) -> Result<Box<dyn ChunkWriter + 'a>, StorageError> {
        Ok(Box::new(PutEach {
            store: self,
            item: *item,
            next: first,
        }))
    }
    /// Stores chunk `index` of `item`, replacing the one there (for repair tools and tests).
    fn put_chunk(&self, item: &[u8; 16], index: u32, bytes: &[u8]) -> Result<(), StorageError> {
        self.put_chunks(item, index, bytes)
    }
    /// Chunk `index` of `item`.
    fn chunk(&self, item: &[u8; 16], index: u32) -> Result<Option<Vec<u8>>, StorageError>;
    /// Chunks `first..first + count` of `item` back to back, or `None` if one is missing.
    fn chunks(
        &self,
        item: &[u8; 16],
        first: u32,
        count: u32,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let mut out = Vec::with_capacity(count as usize * SEALED_CHUNK);
        for i in first..first.saturating_add(count) {
            match self.chunk(item, i)? {
                Some(c) => out.extend_from_slice(&c),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }
    /// Removes whatever is stored of `item` past its `count` chunks of `len` bytes in all
    /// (left by requests that failed part way), durably.
    fn trim(&self, item: &[u8; 16], count: u32, len: u64) -> Result<(), StorageError>;
    /// How many chunks of `item` are stored.
    fn count(&self, item: &[u8; 16]) -> Result<usize, StorageError>;
    /// Deletes every chunk of `item`, durably once [`super::Store::commit`] returns; returns
    /// how many there were.
    fn delete_item(&self, item: &[u8; 16]) -> Result<usize, StorageError>;
}

/// Writes one request's chunks as they arrive (see [`BlobStore::writer`]).
pub trait ChunkWriter: Send {
    /// Writes the next chunks, back to back: whole chunks of [`SEALED_CHUNK`] bytes, but for a
    /// short last chunk of the item in the last piece.
    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
    /// Makes what was written durable. Chunks stored after it stay (a request ahead of this
    /// one may have written them); [`BlobStore::trim`] removes any left over at the commit.
    fn finish(self: Box<Self>) -> Result<(), StorageError>;
}

/// The [`ChunkWriter`] of a store without one of its own: `put_chunks` for each piece.
struct PutEach<'a, S: ?Sized> {
    store: &'a S,
    item: [u8; 16],
    next: u32,
}

impl<S: BlobStore + ?Sized> ChunkWriter for PutEach<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.store.put_chunks(&self.item, self.next, bytes)?;
        let count = u32::try_from(bytes.len().div_ceil(SEALED_CHUNK)).unwrap_or(u32::MAX);
        self.next = self.next.saturating_add(count);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Which [`BlobStore`] a data folder keeps its chunks in. Chosen when the folder is created
/// and recorded in it; see `docs/STORAGE.md` for the measurements behind the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlobStoreKind {
    /// Chunks as values of the sled tree `chunks`.
    Sled,
    /// One file per item under `DATA/chunks/`, written, synced and read with plain file IO;
    /// items of one short chunk (small messages) stay in sled.
    #[default]
    Files,
}

impl BlobStoreKind {
    /// The setting's spelling: `sled` or `files`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Files => "files",
        }
    }
}

impl std::str::FromStr for BlobStoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sled" => Ok(Self::Sled),
            "files" => Ok(Self::Files),
            other => Err(format!(
                "blob store must be `sled` or `files`, not {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for BlobStoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Chunks in the sled tree `chunks`, key `version || item id (16) || index (u32 BE)`.
#[derive(Clone)]
pub struct SledBlobs {
    tree: sled::Tree,
}

impl SledBlobs {
    pub(super) fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// The sled tree `chunks`.
    pub(super) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    fn prefix(item: &[u8; 16]) -> [u8; 17] {
        let mut p = [0u8; 17];
        p[0] = FORMAT_VERSION;
        p[1..].copy_from_slice(item);
        p
    }
}

pub(super) fn chunk_key(item: &[u8; 16], index: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = FORMAT_VERSION;
    k[1..17].copy_from_slice(item);
    k[17..].copy_from_slice(&index.to_be_bytes());
    k
}

impl BlobStore for SledBlobs {
    fn put_chunks(&self, item: &[u8; 16], first: u32, bytes: &[u8]) -> Result<(), StorageError> {
        for (i, piece) in (first..).zip(bytes.chunks(SEALED_CHUNK)) {
            self.tree.insert(chunk_key(item, i), piece)?;
        }
        Ok(())
    }

    fn chunk(&self, item: &[u8; 16], index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tree.get(chunk_key(item, index))?.map(|v| v.to_vec()))
    }

    fn trim(&self, item: &[u8; 16], count: u32, _len: u64) -> Result<(), StorageError> {
        for r in self
            .tree
            .range(chunk_key(item, count)..chunk_key(item, u32::MAX))
            .keys()
        {
            self.tree.remove(r?)?;
        }
        Ok(())
    }

    fn count(&self, item: &[u8; 16]) -> Result<usize, StorageError> {
        let mut n = 0;
        for r in self.tree.scan_prefix(Self::prefix(item)).keys() {
            r?;
            n += 1;
        }
        Ok(n)
    }

    fn delete_item(&self, item: &[u8; 16]) -> Result<usize, StorageError> {
        let mut n = 0;
        for r in self.tree.scan_prefix(Self::prefix(item)).keys() {
            self.tree.remove(r?)?;
            n += 1;
        }
        Ok(n)
    }
}

/// One file per item, `DATA/chunks/XX/ID` (`ID` the item id in hex, `XX` its first byte),
/// holding the chunks back to back: chunk `i` starts at `i × SEALED_CHUNK`, so no index is
/// needed. A write is `pwrite` of the request's chunks at their offset (in pieces as they
/// arrive, through [`BlobStore::writer`]) and one `fdatasync`; requests of one upload may
/// write their ranges at the same time. The commit cuts the file after the last chunk (bytes
/// left by a request that failed part way never trail it, see [`BlobStore::trim`]); a new
/// file's directory is synced too, as is a directory after a deletion.
/// The directory is not sled's `DATA/blobs/`, which sled owns.
///
/// An item whose first write is a single short chunk is complete in that chunk (only the
/// last chunk may be short), and is kept in sled's `chunks` tree instead: a small message
/// then costs no file, no extra `fsync` and no 4 KiB block.
#[derive(Clone)]
pub struct FileBlobs {
    dir: PathBuf,
    small: SledBlobs,
}

impl FileBlobs {
    /// Where items of one short chunk are kept.
    pub(super) fn small(&self) -> &SledBlobs {
        &self.small
    }

    pub(super) fn open(dir: PathBuf, small: SledBlobs) -> Result<Self, StorageError> {
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(Self { dir, small })
    }

    fn path(&self, item: &[u8; 16]) -> PathBuf {
        let hex = crate::wire::to_hex(item);
        self.dir.join(&hex[..2]).join(hex)
    }

    /// The file of `item`, if there is one.
    fn open_file(&self, item: &[u8; 16]) -> io::Result<Option<File>> {
        match OpenOptions::new().read(true).open(self.path(item)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file of `item` for writing, created (with its directory, durably) if need be.
    fn create_file(&self, item: &[u8; 16]) -> io::Result<File> {
        let path = self.path(item);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let parent = path.parent().expect("an item path has a parent");
        if !parent.is_dir() {
            fs::create_dir_all(parent)?;
            sync_dir(&self.dir)?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // The new name must survive a crash as surely as the bytes written under it.
        sync_dir(parent)?;
        Ok(f)
    }

    /// The item files on disk (for tests and store scans): their ids and paths.
    pub fn files(&self) -> Result<Vec<([u8; 16], PathBuf)>, StorageError> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.dir)? {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(fan.path())? {
                let entry = entry?;
                let id = crate::wire::from_hex(&entry.file_name().to_string_lossy())
                    .and_then(|b| <[u8; 16]>::try_from(b).ok());
                if let Some(id) = id {
                    out.push((id, entry.path()));
                }
            }
        }
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn offset(index: u32) -> u64 {
    u64::from(index) * SEALED_CHUNK as u64
}

impl BlobStore for FileBlobs {
    fn put_chunks(&self, item: &[u8; 16], first: u32, bytes: &[u8]) -> Result<(), StorageError> {
        let mut out = FileWriter::new(self, item, first);
        out.cut = true;
        out.write(bytes)?;
        Box::new(out).finish()
    }

    fn writer<'a>(
        &'a self,
        item: &[u8; 16],
        first: u32,
    ) -> Result<Box<dyn ChunkWriter + 'a>, StorageError> {
        Ok(Box::new(FileWriter::new(self, item, first)))
    }

    fn put_chunk(&self, item: &[u8; 16], index: u32, bytes: &[u8]) -> Result<(), StorageError> {
        match OpenOptions::new().write(true).open(self.path(item)) {
            // In place: the chunks after it stay.
            Ok(file) => {
                file.write_all_at(bytes, offset(index))?;
                file.sync_data()?;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => self.put_chunks(item, index, bytes),
            Err(e) => Err(e.into()),
        }
    }

    fn chunk(&self, item: &[u8; 16], index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.chunks(item, index, 1)
    }

    fn chunks(
        &self,
        item: &[u8; 16],
        first: u32,
        count: u32,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(file) = self.open_file(item)? else {
            if first == 0 && count == 1 {
                return self.small.chunk(item, 0);
            }
            return Ok(None);
        };
        let len = file.metadata()?.len();
        let start = offset(first);
        let end = offset(first.saturating_add(count)).min(len);
        if count == 0 || start >= end || (end == len && first + count > chunks_in(len)) {
            return Ok(None);
        }
        let mut out = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut out, start)?;
        Ok(Some(out))
    }

    fn trim(&self, item: &[u8; 16], count: u32, len: u64) -> Result<(), StorageError> {
        match OpenOptions::new().write(true).open(self.path(item)) {
            // An item of one short chunk is in sled; a file beside it holds only what a
            // request ahead wrote, and would shadow the chunk.
            Ok(_) if count == 1 && self.small.chunk(item, 0)?.is_some() => {
                let path = self.path(item);
                fs::remove_file(&path)?;
                sync_dir(path.parent().expect("an item path has a parent"))?;
                self.small.trim(item, count, len)
            }
            Ok(file) => {
                if file.metadata()?.len() > len {
                    file.set_len(len)?;
                    file.sync_data()?;
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => self.small.trim(item, count, len),
            Err(e) => Err(e.into()),
        }
    }

    fn count(&self, item: &[u8; 16]) -> Result<usize, StorageError> {
        match self.open_file(item)? {
            Some(f) => Ok(chunks_in(f.metadata()?.len()) as usize),
            None => self.small.count(item),
        }
    }

    fn delete_item(&self, item: &[u8; 16]) -> Result<usize, StorageError> {
        let path = self.path(item);
        let n = match fs::metadata(&path) {
            Ok(m) => {
                fs::remove_file(&path)?;
                sync_dir(path.parent().expect("an item path has a parent"))?;
                chunks_in(m.len()) as usize
            }
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(n + self.small.delete_item(item)?)
    }
}

/// Writes pieces at their offset as they come (`pwrite`, no sync), so the kernel writes them
/// back while the rest of the body arrives; `finish` `fdatasync`s the file once (for
/// `put_chunks`, after cutting it at the end of what was written). An item that is one short
/// chunk goes to sled.
struct FileWriter<'a> {
    blobs: &'a FileBlobs,
    item: [u8; 16],
    first: u32,
    /// Where the next piece goes.
    at: u64,
    file: Option<File>,
    /// Cut the file after the last piece (`put_chunks`: replace everything from `first` on).
    cut: bool,
}

impl<'a> FileWriter<'a> {
    fn new(blobs: &'a FileBlobs, item: &[u8; 16], first: u32) -> Self {
        Self {
            blobs,
            item: *item,
            first,
            at: offset(first),
            file: None,
            cut: false,
        }
    }
}

impl ChunkWriter for FileWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match &self.file {
            Some(file) => file.write_all_at(bytes, self.at)?,
            // The whole item: only the last chunk may be short.
            None if self.first == 0 && bytes.len() < SEALED_CHUNK => {
                self.blobs.small.put_chunks(&self.item, 0, bytes)?;
            }
            None => {
                let file = self.blobs.create_file(&self.item)?;
                file.write_all_at(bytes, self.at)?;
                self.file = Some(file);
            }
        }
        self.at += bytes.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), StorageError> {
        if let Some(file) = self.file {
            if self.cut {
                file.set_len(self.at)?;
            }
            file.sync_data()?;
            let start = offset(self.first);
            drop_cached(&file, start, self.at.saturating_sub(start));
        }
        Ok(())
    }
}

/// Lets the kernel drop the cached pages of `len` bytes of `file` from `start`, which are on
/// disk: an upload's ciphertext is read again only when a reader downloads it, often days
/// later, so keeping it would push out what is read often (sled's pages) and make each upload
/// take fresh pages, which on a virtual machine cost far more than the copy into them
/// (docs/PERFORMANCE.md, uploads, step 9).
fn drop_cached(file: &File, start: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        // Advice only: nothing written depends on it.
        let _ = rustix::fs::fadvise(file, start, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, start, len);
}

/// Chunks in a file of `len` bytes.
fn chunks_in(len: u64) -> u32 {
    u32::try_from(len.div_ceil(SEALED_CHUNK as u64)).unwrap_or(u32::MAX)
}
