//! Helpers shared by the integration tests.

use std::path::PathBuf;

use attache::crypto::{
    Identity, Metadata, Parallelism, Sealed, SealedChunks, danger::SeededRandom,
};

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temporary directory for one test, removed when dropped.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("attache-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A deterministic identity from a one-byte label (tests only).
pub(crate) fn identity(label: u8) -> Identity {
    let rng = SeededRandom::new([label; 32]);
    Identity::from_secret_keys(&rng.array(), &rng.array()).expect("seeded keys are valid")
}

/// `len` bytes of deterministic, incompressible-looking content.
pub(crate) fn content(len: usize, seed: u8) -> Vec<u8> {
    let rng = SeededRandom::new([seed ^ 0x5a; 32]);
    let mut out = vec![0u8; len];
    for piece in out.chunks_mut(32) {
        let block: [u8; 32] = rng.array();
        piece.copy_from_slice(&block[..piece.len()]);
    }
    out
}

/// Seals `content` in memory as `sender` with `metadata`.
pub(crate) fn seal(
    sender: &Identity,
    metadata: &Metadata,
    content: &[u8],
) -> (Sealed, SealedChunks) {
    let mut chunks = SealedChunks::default();
    let sealed =
        attache::crypto::seal_item(sender, metadata, content, &mut chunks, Parallelism::All)
            .expect("sealing in memory succeeds");
    (sealed, chunks)
}
