//! Deterministic sealing and manifest forging, for producing test vectors only.
//!
//! Compiled only with the `danger-test-vectors` feature, which the test suite turns on and no
//! build of the library or the binary does: a seeded "random" source makes every content key
//! predictable to anyone who knows the seed.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use super::item::{ItemError, MANIFEST_DOMAIN, Metadata};
use super::stream::{ChunkSink, Parallelism, Sealed, seal_item_with};
use super::{CryptoError, Identity, RandomSource, sha256};

/// A deterministic byte stream: block `i` is SHA-256(seed || i).
#[derive(Debug)]
pub struct SeededRandom {
    seed: [u8; 32],
    counter: AtomicU64,
}

impl SeededRandom {
    /// A stream from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill_bytes(&mut out);
        out
    }

    fn fill_bytes(&self, out: &mut [u8]) {
        for piece in out.chunks_mut(32) {
            let i = self.counter.fetch_add(1, Ordering::Relaxed);
            let block = sha256(&[&self.seed, &i.to_be_bytes()]);
            piece.copy_from_slice(&block[..piece.len()]);
        }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        self.fill_bytes(out);
        Ok(())
    }
}

/// [`super::seal_item`] with content key, item id and salt drawn from `rng`.
pub fn seal_item_seeded<R: Read, S: ChunkSink>(
    rng: &SeededRandom,
    sender: &Identity,
    metadata: &Metadata,
    content: R,
    sink: &mut S,
) -> Result<Sealed, ItemError> {
    seal_item_with(sender, metadata, content, sink, Parallelism::One, rng, None)
}

/// [`seal_item_seeded`], but the metadata claims `claimed_size` bytes of content: an item whose
/// padding disagrees with its metadata, which every opener must refuse.
pub fn seal_item_claiming_size<R: Read, S: ChunkSink>(
    rng: &SeededRandom,
    sender: &Identity,
    metadata: &Metadata,
    content: R,
    sink: &mut S,
    claimed_size: u64,
) -> Result<Sealed, ItemError> {
    seal_item_with(
        sender,
        metadata,
        content,
        sink,
        Parallelism::One,
        rng,
        Some(claimed_size),
    )
}

/// Signs an altered manifest body (everything but the final 64-byte signature) as `sender`
/// and returns the whole manifest: how a test builds a validly signed manifest over bad chunks.
pub fn sign_manifest_body(sender: &Identity, body: &[u8]) -> Vec<u8> {
    let signature = sender.sign(&[MANIFEST_DOMAIN, body].concat());
    [body, &signature].concat()
}

/// The raw content key, so a vector file can record it.
pub fn content_key_bytes(key: &super::ContentKey) -> [u8; 32] {
    *key.as_bytes()
}

/// A content key from raw bytes recorded in a vector file.
pub fn content_key_from_bytes(bytes: [u8; 32]) -> super::ContentKey {
    super::ContentKey::from_bytes(bytes)
}
