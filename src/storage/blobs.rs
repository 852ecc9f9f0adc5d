//! The ciphertext chunk store behind one interface: sled chunks by default.
//!
//! Holds sealed chunks only (each at most 65,552 bytes); it never interprets them.

use super::{FORMAT_VERSION, StorageError};

/// Where ciphertext chunks live. Implementations must make a `put_chunk` durable by the next
/// [`super::Store::commit`].
pub trait BlobStore: Send + Sync {
    /// Stores chunk `index` of `item`, replacing any earlier one.
    fn put_chunk(&self, item: &[u8; 16], index: u32, bytes: &[u8]) -> Result<(), StorageError>;
    /// Chunk `index` of `item`.
    fn chunk(&self, item: &[u8; 16], index: u32) -> Result<Option<Vec<u8>>, StorageError>;
    /// Deletes every chunk of `item`; returns how many there were.
    fn delete_item(&self, item: &[u8; 16]) -> Result<usize, StorageError>;
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
}

fn chunk_key(item: &[u8; 16], index: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = FORMAT_VERSION;
    k[1..17].copy_from_slice(item);
    k[17..].copy_from_slice(&index.to_be_bytes());
    k
}

impl BlobStore for SledBlobs {
    fn put_chunk(&self, item: &[u8; 16], index: u32, bytes: &[u8]) -> Result<(), StorageError> {
        self.tree.insert(chunk_key(item, index), bytes)?;
        Ok(())
    }

    fn chunk(&self, item: &[u8; 16], index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tree.get(chunk_key(item, index))?.map(|v| v.to_vec()))
    }

    fn delete_item(&self, item: &[u8; 16]) -> Result<usize, StorageError> {
        let mut prefix = vec![FORMAT_VERSION];
        prefix.extend_from_slice(item);
        let mut n = 0;
        for r in self.tree.scan_prefix(&prefix).keys() {
            self.tree.remove(r?)?;
            n += 1;
        }
        Ok(n)
    }
}
