//! Sealing and opening throughput, next to the references the project measures itself against.
//!
//! For each content size (1 KiB, 64 KiB, 1 MiB, 64 MiB) there are two groups, named
//! `<operation>-<size>`, whose functions are the contenders, so ratios read off directly:
//!
//! - `seal-<size>`: `attache-one-thread` and `attache-all-threads` ([`seal_item`] into a sink that
//!   only counts bytes), `ring-aes-gcm` (AES-256-GCM alone over 64 KiB pieces on one thread: the
//!   limit), `blake3` and `sha256` (the chunk digest alone, 64 KiB pieces, one thread) and
//!   `age-crate` (the `age` crate encrypting to one X25519 recipient).
//! - `open-<size>`: `attache-one-thread` and `attache-all-threads` ([`open_item`] into
//!   [`std::io::sink`]), `ring-aes-gcm` (AES-256-GCM opening alone, 64 KiB pieces, one thread)
//!   and `age-crate` (the `age` crate decrypting).
//!
//! Every one of these groups reports `Throughput::Bytes` of plaintext. The small operations have
//! groups of their own: `key-package/{wrap,unwrap}` and `manifest/verify/{1KiB,64MiB}-item`
//! ([`Manifest::parse`], which checks the signature; the 64 MiB item's manifest holds 1024
//! digests).
//!
//! Run `cargo bench --bench seal`, then `python3 benches/ratios.py` for the table of
//! throughputs and target ratios.

use std::hint::black_box;
use std::io::{self, Write};
use std::iter;
use std::time::Duration;

use attache::crypto::{
    ChunkSink, ContentKey, Identity, Manifest, Metadata, Parallelism, Preamble, Sealed,
    SealedChunks, open_item, open_key_package, seal_item, seal_key_package,
};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use ring::aead;

/// The content sizes, with the names used in group names.
const SIZES: [(&str, usize); 4] = [
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
    ("64MiB", 64 << 20),
];
/// Piece size of the references: Attache's chunk size.
const PIECE: usize = attache::crypto::CHUNK_SIZE;
/// Stands in for the preamble digest Attache authenticates with every chunk.
const AAD: [u8; 32] = [0xa5; 32];

/// A sink that discards sealed output and only counts it.
#[derive(Default)]
struct CountingSink {
    bytes: u64,
}

impl ChunkSink for CountingSink {
    fn preamble(&mut self, preamble: &Preamble) -> io::Result<()> {
        self.bytes += preamble.as_bytes().len() as u64;
        Ok(())
    }

    fn chunk(&mut self, _index: u32, ciphertext: &[u8]) -> io::Result<()> {
        self.bytes += ciphertext.len() as u64;
        Ok(())
    }
}

/// Deterministic content in which no byte is zero (xorshift64, mapped to 1..=255).
fn content(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 255) as u8 + 1
        })
        .collect()
}

fn metadata() -> Metadata {
    Metadata {
        file_name: "bench.bin".into(),
        media_type: "application/octet-stream".into(),
        ..Default::default()
    }
}

/// The reference AES-256-GCM key. Benchmarks reuse nonces across iterations; this key never
/// protects anything.
fn ring_key() -> aead::LessSafeKey {
    let key = aead::UnboundKey::new(&aead::AES_256_GCM, &[0x42; 32]).expect("a 32-byte key");
    aead::LessSafeKey::new(key)
}

/// The nonce of piece `index`, as a STREAM construction would count them.
fn nonce(index: usize) -> aead::Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&(index as u64).to_be_bytes());
    aead::Nonce::assume_unique_for_key(bytes)
}

/// Seals `content` into memory once, for the opening benchmarks and the manifest.
fn seal_in_memory(sender: &Identity, content: &[u8]) -> (Sealed, Vec<u8>) {
    let mut chunks = SealedChunks::default();
    let sealed = seal_item(sender, &metadata(), content, &mut chunks, Parallelism::All)
        .expect("sealing into memory cannot fail");
    (sealed, chunks.concatenated())
}

/// Opens an item sealed by [`seal_in_memory`], writing the content to `out`.
fn open_into<W: Write>(
    sender: &Identity,
    sealed: &Sealed,
    ciphertext: &[u8],
    parallelism: Parallelism,
    out: W,
) -> u64 {
    open_item(
        &sealed.content_key,
        &sealed.preamble,
        &sealed.manifest,
        sender.public(),
        black_box(ciphertext),
        out,
        parallelism,
    )
    .expect("the item is authentic")
    .written
}

/// Encrypts `content` with the `age` crate to `recipient`, writing to `out`.
fn age_encrypt<W: Write>(recipient: &age::x25519::Recipient, content: &[u8], out: W) -> W {
    let encryptor = age::Encryptor::with_recipients(iter::once(recipient as &dyn age::Recipient))
        .expect("one X25519 recipient is a valid recipient set");
    let mut writer = encryptor
        .wrap_output(out)
        .expect("the output accepts the header");
    writer
        .write_all(content)
        .expect("the output accepts the payload");
    writer.finish().expect("the output accepts the last chunk")
}

/// Decrypts an age file with `identity`, writing the plaintext to `out`; returns its length.
fn age_decrypt<W: Write>(identity: &age::x25519::Identity, file: &[u8], mut out: W) -> u64 {
    let decryptor = age::Decryptor::new_buffered(file).expect("a well-formed age file");
    let mut reader = decryptor
        .decrypt(iter::once(identity as &dyn age::Identity))
        .expect("the file is for this identity");
    io::copy(&mut reader, &mut out).expect("the file is authentic")
}

/// Applies the shared settings of a size's group; 64 MiB runs take long, so few samples.
fn size_group<'a>(
    c: &'a mut Criterion,
    operation: &str,
    size_name: &str,
    len: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("{operation}-{size_name}"));
    group.throughput(Throughput::Bytes(len as u64));
    if len >= 16 << 20 {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
    group
}

/// The sealing contenders and references for each size.
fn seal(c: &mut Criterion) {
    let sender = Identity::generate().expect("the system random source works");
    let age_recipient = age::x25519::Identity::generate().to_public();
    let metadata = metadata();
    let key = ring_key();
    for (size_name, len) in SIZES {
        let content = content(len);
        let mut group = size_group(c, "seal", size_name, len);
        for (name, parallelism) in [
            ("attache-one-thread", Parallelism::One),
            ("attache-all-threads", Parallelism::All),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut sink = CountingSink::default();
                    let sealed = seal_item(
                        &sender,
                        &metadata,
                        black_box(&content[..]),
                        &mut sink,
                        parallelism,
                    )
                    .expect("sealing into a counting sink cannot fail");
                    (sealed, sink.bytes)
                });
            });
        }
        let mut buf = content.clone();
        group.bench_function("ring-aes-gcm", |b| {
            b.iter(|| {
                for (index, piece) in black_box(&mut buf[..]).chunks_mut(PIECE).enumerate() {
                    let tag = key
                        .seal_in_place_separate_tag(nonce(index), aead::Aad::from(AAD), piece)
                        .expect("a 64 KiB piece is within AES-GCM's limits");
                    black_box(tag.as_ref());
                }
            });
        });
        drop(buf);
        group.bench_function("blake3", |b| {
            b.iter(|| {
                for piece in black_box(&content[..]).chunks(PIECE) {
                    black_box(blake3::hash(piece));
                }
            });
        });
        group.bench_function("sha256", |b| {
            b.iter(|| {
                for piece in black_box(&content[..]).chunks(PIECE) {
                    black_box(ring::digest::digest(&ring::digest::SHA256, piece));
                }
            });
        });
        group.bench_function("age-crate", |b| {
            b.iter(|| age_encrypt(&age_recipient, black_box(&content[..]), io::sink()));
        });
        group.finish();
    }
}

/// The opening contenders and references for each size. Everything is sealed once, before
/// timing; each setup is checked to round-trip first.
fn open(c: &mut Criterion) {
    let sender = Identity::generate().expect("the system random source works");
    let age_identity = age::x25519::Identity::generate();
    let key = ring_key();
    for (size_name, len) in SIZES {
        let content = content(len);

        let (sealed, ciphertext) = seal_in_memory(&sender, &content);
        let mut plaintext = Vec::with_capacity(len);
        open_into(
            &sender,
            &sealed,
            &ciphertext,
            Parallelism::All,
            &mut plaintext,
        );
        assert!(plaintext == content, "attache round trip");

        let mut ring_sealed = content.clone();
        let tags: Vec<aead::Tag> = ring_sealed
            .chunks_mut(PIECE)
            .enumerate()
            .map(|(index, piece)| {
                key.seal_in_place_separate_tag(nonce(index), aead::Aad::from(AAD), piece)
                    .expect("a 64 KiB piece is within AES-GCM's limits")
            })
            .collect();

        let age_file = age_encrypt(&age_identity.to_public(), &content, Vec::new());
        plaintext.clear();
        age_decrypt(&age_identity, &age_file, &mut plaintext);
        assert!(plaintext == content, "age round trip");
        drop(plaintext);

        let mut group = size_group(c, "open", size_name, len);
        for (name, parallelism) in [
            ("attache-one-thread", Parallelism::One),
            ("attache-all-threads", Parallelism::All),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| open_into(&sender, &sealed, &ciphertext, parallelism, io::sink()));
            });
        }
        // Opening is in place, so each iteration gets a fresh copy of the ciphertext, made
        // outside the timing.
        group.bench_function("ring-aes-gcm", |b| {
            b.iter_batched_ref(
                || ring_sealed.clone(),
                |buf| {
                    for ((index, piece), tag) in buf.chunks_mut(PIECE).enumerate().zip(&tags) {
                        let plain = key
                            .open_in_place_separate_tag(
                                nonce(index),
                                aead::Aad::from(AAD),
                                *tag,
                                piece,
                                0..,
                            )
                            .expect("the piece is authentic");
                        black_box(plain);
                    }
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_function("age-crate", |b| {
            b.iter(|| age_decrypt(&age_identity, black_box(&age_file[..]), io::sink()));
        });
        group.finish();
    }
}

/// Wrapping and unwrapping a content key for one reader.
fn key_package(c: &mut Criterion) {
    let reader = Identity::generate().expect("the system random source works");
    let content_key = ContentKey::generate().expect("the system random source works");
    let item_id = [0x17; 16];
    let package = seal_key_package(&content_key, &item_id, reader.public())
        .expect("the reader's key is usable");

    let mut group = c.benchmark_group("key-package");
    group.bench_function("wrap", |b| {
        b.iter(|| {
            seal_key_package(&content_key, black_box(&item_id), reader.public())
                .expect("the reader's key is usable")
        });
    });
    group.bench_function("unwrap", |b| {
        b.iter(|| {
            open_key_package(black_box(&package), &reader, &item_id)
                .expect("the package is for this reader and item")
        });
    });
    group.finish();
}

/// Parsing a manifest and checking its signature, as a server does on upload.
fn manifest(c: &mut Criterion) {
    let sender = Identity::generate().expect("the system random source works");
    let mut group = c.benchmark_group("manifest");
    for (size_name, len) in [SIZES[0], SIZES[3]] {
        let (sealed, _) = seal_in_memory(&sender, &content(len));
        let bytes = sealed.manifest.as_bytes();
        group.bench_function(
            BenchmarkId::new("verify", format!("{size_name}-item")),
            |b| {
                b.iter(|| {
                    Manifest::parse(black_box(bytes)).expect("the manifest is validly signed")
                });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short defaults keep the whole run to a few minutes on two cores; the command line
    // (`--warm-up-time`, `--measurement-time`) overrides them, except for the 64 MiB groups.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = seal, open, key_package, manifest
}
criterion_main!(benches);
