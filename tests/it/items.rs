//! Sealed items: round trips at the chunk boundaries and far beyond, and every way a sealed
//! item can be damaged or forged, each with its exact error.

use std::io::Read;

use attache::crypto::{
    BATCH_CHUNKS, CHUNK_SIZE, ChunkCheckError, ContentKey, Identity, ItemError, ItemOpener,
    Manifest, Metadata, PREAMBLE_LEN, Parallelism, Preamble, SealedChunks, danger, open_item,
    padme, seal_item,
};
use attache::wire::DecodeError;
use proptest::prelude::*;

use crate::support::{content, identity, seal};

const TAG: usize = 16;

fn letter() -> Metadata {
    Metadata {
        file_name: "settlement-draft.docx".into(),
        media_type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            .into(),
        subject: "Draft settlement".into(),
        body: "Please review before Friday.".into(),
        matter: "Doe v. Roe".into(),
        readers: vec![identity(2).fingerprint()],
        true_size: 0,
    }
}

/// Opens an item from its parts and returns the plaintext.
fn open(
    key: &ContentKey,
    preamble: &Preamble,
    manifest: &Manifest,
    sender: &Identity,
    chunks: &[u8],
) -> Result<Vec<u8>, ItemError> {
    let mut out = Vec::new();
    open_item(
        key,
        preamble,
        manifest,
        sender.public(),
        chunks,
        &mut out,
        Parallelism::All,
    )?;
    Ok(out)
}

/// A reader that hands out at most `step` bytes per call, to exercise short reads.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn round_trips_at_chunk_boundaries() {
    let sender = identity(1);
    for len in [
        0,
        1,
        65_535,
        65_536,
        65_537,
        3 * CHUNK_SIZE + 5,
        40 * CHUNK_SIZE + 1,
    ] {
        let data = content(len, 7);
        let (sealed, chunks) = seal(&sender, &letter(), &data);
        let padded = padme(len as u64);
        let expected_chunks = padded.div_ceil(CHUNK_SIZE as u64).max(1);
        assert_eq!(sealed.true_size, len as u64);
        assert_eq!(sealed.manifest.padded_len(), padded, "len {len}");
        assert_eq!(
            u64::from(sealed.manifest.chunk_count()),
            expected_chunks,
            "len {len}"
        );
        assert_eq!(chunks.chunks.len() as u64, expected_chunks);
        assert_eq!(
            chunks.concatenated().len() as u64,
            sealed.manifest.ciphertext_len()
        );
        for (i, c) in chunks.chunks.iter().enumerate() {
            assert_eq!(sealed.manifest.check_chunk(i as u32, c), Ok(()));
        }
        for parallelism in [Parallelism::One, Parallelism::All] {
            let mut out = Vec::new();
            let opened = open_item(
                &sealed.content_key,
                &sealed.preamble,
                &sealed.manifest,
                sender.public(),
                Trickle {
                    data: &chunks.concatenated(),
                    step: 7_919,
                },
                &mut out,
                parallelism,
            )
            .unwrap();
            assert_eq!(out, data, "len {len}");
            assert_eq!(opened.written, len as u64);
            assert_eq!(opened.metadata.true_size, len as u64);
            assert_eq!(opened.metadata.subject, "Draft settlement");
            assert_eq!(opened.metadata.readers, vec![identity(2).fingerprint()]);
        }
    }
}

#[test]
fn one_hundred_mib_round_trip_streams() {
    let sender = identity(1);
    let len = 100 << 20;
    let data = content(len, 3);
    let mut chunks = SealedChunks::default();
    let sealed = seal_item(
        &sender,
        &Metadata::default(),
        Trickle {
            data: &data,
            step: 1 << 20,
        },
        &mut chunks,
        Parallelism::All,
    )
    .unwrap();
    assert_eq!(sealed.true_size, len as u64);
    let out = open(
        &sealed.content_key,
        &sealed.preamble,
        &sealed.manifest,
        &sender,
        &chunks.concatenated(),
    )
    .unwrap();
    assert!(out == data, "100 MiB round trip differs");
}

#[test]
fn one_thread_and_all_threads_agree_on_the_manifest_shape() {
    let sender = identity(1);
    let data = content(5 * CHUNK_SIZE, 9);
    let mut a = SealedChunks::default();
    let sa = seal_item(&sender, &letter(), &data[..], &mut a, Parallelism::One).unwrap();
    let mut b = SealedChunks::default();
    let sb = seal_item(&sender, &letter(), &data[..], &mut b, Parallelism::All).unwrap();
    assert_eq!(sa.manifest.chunk_count(), sb.manifest.chunk_count());
    // Fresh keys each time: the ciphertexts must differ.
    assert_ne!(a.chunks[0], b.chunks[0]);
    assert_ne!(sa.preamble.item_id(), sb.preamble.item_id());
}

#[test]
fn items_of_one_two_and_three_batches_round_trip_on_one_thread_and_on_every_core() {
    // Around the batch boundaries: an item of up to two batches is sealed and opened on the
    // calling thread even with every core; a longer one starts the crew after reading two.
    let sender = identity(1);
    let batch = BATCH_CHUNKS * CHUNK_SIZE;
    for len in [
        batch - 1,
        batch,
        batch + 1,
        2 * batch - 1,
        2 * batch,
        2 * batch + 1,
        3 * batch + 5,
    ] {
        let data = content(len, (len % 251) as u8);
        for seal_with in [Parallelism::One, Parallelism::All] {
            let mut chunks = SealedChunks::default();
            let sealed = seal_item(&sender, &letter(), &data[..], &mut chunks, seal_with).unwrap();
            assert_eq!(sealed.true_size, len as u64);
            for open_with in [Parallelism::One, Parallelism::All] {
                let mut out = Vec::new();
                open_item(
                    &sealed.content_key,
                    &sealed.preamble,
                    &sealed.manifest,
                    sender.public(),
                    &chunks.concatenated()[..],
                    &mut out,
                    open_with,
                )
                .unwrap();
                assert!(
                    out == data,
                    "{len} bytes sealed with {seal_with:?}, opened with {open_with:?}, differ"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_round_trip(
        len in 0usize..(5 * CHUNK_SIZE),
        step in 1usize..100_000,
        subject in ".{0,40}",
        one_thread in any::<bool>(),
    ) {
        let sender = identity(1);
        let data = content(len, (len % 251) as u8);
        let metadata = Metadata { subject: subject.clone(), ..Metadata::default() };
        let parallelism = if one_thread { Parallelism::One } else { Parallelism::All };
        let mut chunks = SealedChunks::default();
        let sealed = seal_item(&sender, &metadata, Trickle { data: &data, step }, &mut chunks, parallelism)
            .unwrap();
        let mut out = Vec::new();
        let opened = open_item(
            &sealed.content_key,
            &sealed.preamble,
            &sealed.manifest,
            sender.public(),
            Trickle { data: &chunks.concatenated(), step },
            &mut out,
            parallelism,
        )
        .unwrap();
        prop_assert_eq!(out, data);
        prop_assert_eq!(opened.metadata.subject, subject);
    }
}

/// A three-chunk item and everything needed to tamper with it.
struct Fixture {
    sender: Identity,
    sealed: attache::crypto::Sealed,
    chunks: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Self {
        let sender = identity(1);
        let (sealed, chunks) = seal(&sender, &letter(), &content(2 * CHUNK_SIZE + 1000, 1));
        assert_eq!(chunks.chunks.len(), 3);
        Self {
            sender,
            sealed,
            chunks: chunks.chunks,
        }
    }

    fn open_chunks(&self, chunks: &[Vec<u8>]) -> Result<Vec<u8>, ItemError> {
        open(
            &self.sealed.content_key,
            &self.sealed.preamble,
            &self.sealed.manifest,
            &self.sender,
            &chunks.concat(),
        )
    }

    fn open_with_manifest(&self, manifest: &Manifest) -> Result<Vec<u8>, ItemError> {
        open(
            &self.sealed.content_key,
            &self.sealed.preamble,
            manifest,
            &self.sender,
            &self.chunks.concat(),
        )
    }

    /// The manifest body (everything but the signature), for re-signing.
    fn manifest_body(&self) -> Vec<u8> {
        let bytes = self.sealed.manifest.as_bytes();
        bytes[..bytes.len() - 64].to_vec()
    }

    /// Offset of chunk `index`'s digest in the manifest.
    fn digest_offset(&self, index: usize) -> usize {
        let m = self.sealed.manifest.as_bytes();
        m.len() - 64 - 32 * (self.chunks.len() - index)
    }
}

fn manifest_error(r: Result<Manifest, ItemError>) -> ItemError {
    r.expect_err("manifest must be refused")
}

#[test]
fn intact_fixture_opens() {
    let f = Fixture::new();
    assert_eq!(
        f.open_chunks(&f.chunks).unwrap(),
        content(2 * CHUNK_SIZE + 1000, 1)
    );
}

#[test]
fn wrong_content_key_fails_the_commitment_before_any_chunk() {
    let f = Fixture::new();
    let other = ContentKey::generate().unwrap();
    let r = open(
        &other,
        &f.sealed.preamble,
        &f.sealed.manifest,
        &f.sender,
        &[],
    );
    assert!(matches!(r, Err(ItemError::KeyCommitment)), "{r:?}");
}

#[test]
fn a_flipped_bit_in_any_chunk_is_caught_at_that_chunk() {
    let f = Fixture::new();
    for index in 0..3 {
        for pos in [0, 100, f.chunks[index].len() - 1] {
            let mut chunks = f.chunks.clone();
            chunks[index][pos] ^= 0x10;
            let r = f.open_chunks(&chunks);
            assert!(
                matches!(r, Err(ItemError::ChunkDigest { index: i }) if i as usize == index),
                "chunk {index} byte {pos}: {r:?}"
            );
            assert_eq!(
                f.sealed.manifest.check_chunk(index as u32, &chunks[index]),
                Err(ChunkCheckError::DigestMismatch {
                    index: index as u32
                })
            );
        }
    }
}

#[test]
fn reordered_chunks_fail() {
    let f = Fixture::new();
    let chunks = vec![
        f.chunks[1].clone(),
        f.chunks[0].clone(),
        f.chunks[2].clone(),
    ];
    let r = f.open_chunks(&chunks);
    assert!(
        matches!(r, Err(ItemError::ChunkDigest { index: 0 })),
        "{r:?}"
    );
}

#[test]
fn dropping_the_last_chunk_is_truncation() {
    let f = Fixture::new();
    let r = f.open_chunks(&f.chunks[..2]);
    assert!(matches!(r, Err(ItemError::Truncated { index: 2 })), "{r:?}");
}

#[test]
fn an_appended_chunk_is_extra_data() {
    let f = Fixture::new();
    let mut chunks = f.chunks.clone();
    chunks.push(f.chunks[1].clone());
    let r = f.open_chunks(&chunks);
    assert!(matches!(r, Err(ItemError::ExtraData)), "{r:?}");
    let mut chunks = f.chunks.clone();
    chunks.push(vec![0]);
    let r = f.open_chunks(&chunks);
    assert!(matches!(r, Err(ItemError::ExtraData)), "{r:?}");
}

#[test]
fn truncation_inside_every_chunk() {
    let f = Fixture::new();
    let all = f.chunks.concat();
    let mut boundaries = vec![0];
    for c in &f.chunks {
        boundaries.push(boundaries.last().unwrap() + c.len());
    }
    for (index, w) in boundaries.windows(2).enumerate() {
        for cut in [w[0], w[0] + 1, w[1] - 1] {
            let r = open(
                &f.sealed.content_key,
                &f.sealed.preamble,
                &f.sealed.manifest,
                &f.sender,
                &all[..cut],
            );
            assert!(
                matches!(r, Err(ItemError::Truncated { index: i }) if i as usize == index),
                "cut at {cut}: {r:?}"
            );
        }
    }
}

#[test]
fn a_chunk_spliced_from_another_item_fails() {
    let f = Fixture::new();
    let (_, other) = seal(&f.sender, &letter(), &content(2 * CHUNK_SIZE + 1000, 1));
    let mut chunks = f.chunks.clone();
    chunks[1] = other.chunks[1].clone();
    let r = f.open_chunks(&chunks);
    assert!(
        matches!(r, Err(ItemError::ChunkDigest { index: 1 })),
        "{r:?}"
    );

    // Even if the sender signs the spliced chunk's digest, AES-GCM refuses it: other keys.
    let mut body = f.manifest_body();
    let at = f.digest_offset(1);
    body[at..at + 32].copy_from_slice(blake3::hash(&other.chunks[1]).as_bytes());
    let forged = Manifest::parse(&danger::sign_manifest_body(&f.sender, &body)).unwrap();
    let r = open(
        &f.sealed.content_key,
        &f.sealed.preamble,
        &forged,
        &f.sender,
        &chunks.concat(),
    );
    assert!(
        matches!(r, Err(ItemError::ChunkAuthentication { index: 1 })),
        "{r:?}"
    );
}

#[test]
fn reordering_under_a_re_signed_manifest_fails_authentication() {
    // Even a sender who re-signs the digests in a new order cannot reorder chunks: each
    // chunk's nonce carries its index.
    let f = Fixture::new();
    let mut chunks = f.chunks.clone();
    let mut body = f.manifest_body();
    // Swap digests of chunk 0 and 1 and the chunks themselves: both are full-size.
    let (a, b) = (f.digest_offset(0), f.digest_offset(1));
    let d0: Vec<u8> = body[a..a + 32].to_vec();
    let d1: Vec<u8> = body[b..b + 32].to_vec();
    body[a..a + 32].copy_from_slice(&d1);
    body[b..b + 32].copy_from_slice(&d0);
    chunks.swap(0, 1);
    let forged = Manifest::parse(&danger::sign_manifest_body(&f.sender, &body)).unwrap();
    let r = open(
        &f.sealed.content_key,
        &f.sealed.preamble,
        &forged,
        &f.sender,
        &chunks.concat(),
    );
    assert!(
        matches!(r, Err(ItemError::ChunkAuthentication { index: 0 })),
        "{r:?}"
    );
}

#[test]
fn broken_commitment_and_tampered_preamble() {
    let f = Fixture::new();
    for pos in [8, 20, 30, 60, PREAMBLE_LEN - 1] {
        let mut bytes = *f.sealed.preamble.as_bytes();
        bytes[pos] ^= 1;
        let preamble = Preamble::parse(&bytes).unwrap();
        let r = open(
            &f.sealed.content_key,
            &preamble,
            &f.sealed.manifest,
            &f.sender,
            &[],
        );
        assert!(
            matches!(r, Err(ItemError::KeyCommitment)),
            "byte {pos}: {r:?}"
        );
    }
    let mut bytes = *f.sealed.preamble.as_bytes();
    bytes[4] = 2;
    assert!(matches!(
        Preamble::parse(&bytes),
        Err(ItemError::MalformedPreamble("unsupported version or suite"))
    ));
    bytes[0] = b'X';
    assert!(matches!(
        Preamble::parse(&bytes),
        Err(ItemError::MalformedPreamble("not an Attache item"))
    ));
    for len in [0, 1, PREAMBLE_LEN - 1, PREAMBLE_LEN + 1] {
        let r = Preamble::parse(&vec![0u8; len]);
        assert!(
            matches!(
                r,
                Err(ItemError::MalformedPreamble("length is not 88 bytes"))
            ),
            "{len}: {r:?}"
        );
    }
}

#[test]
fn a_manifest_signed_by_someone_else() {
    let f = Fixture::new();
    let mallory = identity(66);
    let mut body = f.manifest_body();
    body[56..88].copy_from_slice(&mallory.public().ed25519);
    let forged = Manifest::parse(&danger::sign_manifest_body(&mallory, &body)).unwrap();
    assert!(matches!(
        f.open_with_manifest(&forged),
        Err(ItemError::UnexpectedSigner)
    ));
    // Mallory's signature with the sender's key in the signer field does not verify at all.
    let forged = danger::sign_manifest_body(&mallory, &f.manifest_body());
    assert!(matches!(
        Manifest::parse(&forged),
        Err(ItemError::BadSignature)
    ));
}

#[test]
fn every_tampered_manifest_byte_is_refused() {
    let f = Fixture::new();
    let bytes = f.sealed.manifest.as_bytes();
    for pos in 0..bytes.len() {
        let mut t = bytes.to_vec();
        t[pos] ^= 0x01;
        let e = manifest_error(Manifest::parse(&t));
        let ok = match pos {
            0..8 => matches!(e, ItemError::MalformedManifest(DecodeError::Unsupported(_))),
            // Padded length, chunk count and metadata length are checked for consistency.
            88..104 => matches!(
                e,
                ItemError::InconsistentManifest(_)
                    | ItemError::MalformedManifest(_)
                    | ItemError::BadSignature
            ),
            _ => matches!(e, ItemError::BadSignature),
        };
        assert!(ok, "byte {pos}: {e:?}");
    }
}

#[test]
fn a_tampered_metadata_block_fails_authentication() {
    let f = Fixture::new();
    let mut body = f.manifest_body();
    body[104 + 10] ^= 0x80; // inside the sealed metadata
    let forged = Manifest::parse(&danger::sign_manifest_body(&f.sender, &body)).unwrap();
    assert!(matches!(
        f.open_with_manifest(&forged),
        Err(ItemError::MetadataAuthentication)
    ));
}

#[test]
fn a_manifest_from_another_item_does_not_match_the_preamble() {
    let f = Fixture::new();
    let (other, _) = seal(&f.sender, &letter(), &content(2 * CHUNK_SIZE + 1000, 1));
    assert!(matches!(
        f.open_with_manifest(&other.manifest),
        Err(ItemError::ManifestMismatch)
    ));
}

#[test]
fn truncated_manifests_at_every_length() {
    let f = Fixture::new();
    let bytes = f.sealed.manifest.as_bytes();
    for len in 0..bytes.len() {
        let e = manifest_error(Manifest::parse(&bytes[..len]));
        assert!(
            matches!(e, ItemError::MalformedManifest(DecodeError::Truncated(_))),
            "length {len}: {e:?}"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(matches!(
        Manifest::parse(&longer),
        Err(ItemError::MalformedManifest(DecodeError::TrailingBytes(1)))
    ));
}

#[test]
fn over_long_fields_are_refused_before_reading_content() {
    let sender = identity(1);
    let cases: Vec<(Metadata, &str, usize, usize)> = vec![
        (
            Metadata {
                file_name: "a".repeat(1025),
                ..Default::default()
            },
            "file name",
            1025,
            1024,
        ),
        (
            Metadata {
                media_type: "a".repeat(256),
                ..Default::default()
            },
            "media type",
            256,
            255,
        ),
        (
            Metadata {
                subject: "s".repeat(1025),
                ..Default::default()
            },
            "subject",
            1025,
            1024,
        ),
        (
            Metadata {
                body: "b".repeat(512 * 1024 + 1),
                ..Default::default()
            },
            "body",
            512 * 1024 + 1,
            512 * 1024,
        ),
        (
            Metadata {
                matter: "m".repeat(1025),
                ..Default::default()
            },
            "matter",
            1025,
            1024,
        ),
        (
            Metadata {
                readers: vec![identity(2).fingerprint(); 257],
                ..Default::default()
            },
            "readers",
            257,
            256,
        ),
    ];
    for (metadata, field, len, max) in cases {
        let mut sink = SealedChunks::default();
        let r = seal_item(&sender, &metadata, &b"x"[..], &mut sink, Parallelism::One);
        match r {
            Err(ItemError::FieldTooLong {
                field: f,
                len: l,
                max: m,
            }) => {
                assert_eq!((f, l, m), (field, len, max));
            }
            other => panic!("{field}: {other:?}"),
        }
        assert!(sink.chunks.is_empty(), "{field}: nothing sealed");
    }
}

#[test]
fn padding_that_disagrees_with_the_metadata() {
    let sender = identity(1);
    let data = content(1000, 4); // PADMÉ(1000) = 1024
    // 990: the content beyond the claimed size is not zero padding. 1025 and 0: PADMÉ of the
    // claimed size is not the padded length. (A claim of 1001..=1024 is the sender's word that
    // the content ends in zeros, which the padded ciphertext cannot contradict.)
    for claimed in [990u64, 1025, 0] {
        let rng = danger::SeededRandom::new([9; 32]);
        let mut chunks = SealedChunks::default();
        let sealed = danger::seal_item_claiming_size(
            &rng,
            &sender,
            &Metadata::default(),
            &data[..],
            &mut chunks,
            claimed,
        )
        .unwrap();
        let r = open(
            &sealed.content_key,
            &sealed.preamble,
            &sealed.manifest,
            &sender,
            &chunks.concatenated(),
        );
        assert!(
            matches!(r, Err(ItemError::Padding)),
            "claimed {claimed}: {r:?}"
        );
    }
}

#[test]
fn server_side_chunk_checks_need_no_key() {
    let f = Fixture::new();
    let m = Manifest::parse(f.sealed.manifest.as_bytes()).unwrap();
    assert_eq!(m.check_chunk(2, &f.chunks[2]), Ok(()));
    assert_eq!(
        m.check_chunk(3, &f.chunks[2]),
        Err(ChunkCheckError::NoSuchChunk { index: 3, count: 3 })
    );
    assert_eq!(
        m.check_chunk(0, &f.chunks[2]),
        Err(ChunkCheckError::WrongLength {
            index: 0,
            expected: CHUNK_SIZE + TAG,
            actual: f.chunks[2].len()
        })
    );
    assert_eq!(m.chunk_len(2), Some(f.chunks[2].len()));
    assert_eq!(m.chunk_len(3), None);
}

#[test]
fn metadata_is_opened_before_any_chunk_is_read() {
    let f = Fixture::new();
    let opener = ItemOpener::new(
        &f.sealed.content_key,
        &f.sealed.preamble,
        &f.sealed.manifest,
        f.sender.public(),
    )
    .unwrap();
    assert_eq!(opener.metadata().matter, "Doe v. Roe");
    assert_eq!(opener.metadata().true_size, (2 * CHUNK_SIZE + 1000) as u64);
    // Debug never shows privileged text.
    let shown = format!("{:?} {:?}", opener.metadata(), f.sealed.content_key);
    assert!(
        !shown.contains("Doe") && !shown.contains("settlement"),
        "{shown}"
    );
}

#[test]
fn plaintext_of_a_bad_batch_is_never_written() {
    // Chunk 2 is bad: chunks 0 and 1 are in the same batch, so nothing at all is written.
    let f = Fixture::new();
    let mut chunks = f.chunks.clone();
    chunks[2][5] ^= 1;
    let mut out = Vec::new();
    let r = open_item(
        &f.sealed.content_key,
        &f.sealed.preamble,
        &f.sealed.manifest,
        f.sender.public(),
        &chunks.concat()[..],
        &mut out,
        Parallelism::All,
    );
    assert!(matches!(r, Err(ItemError::ChunkDigest { index: 2 })));
    assert!(out.is_empty(), "{} bytes released", out.len());
}

/// Opens `chunks` of an item sealed by `sender` into a buffer with every core; returns the
/// result and what was written before it.
fn open_all(
    sender: &Identity,
    sealed: &attache::crypto::Sealed,
    chunks: &[u8],
) -> (Result<u64, ItemError>, Vec<u8>) {
    let mut out = Vec::new();
    let r = open_item(
        &sealed.content_key,
        &sealed.preamble,
        &sealed.manifest,
        sender.public(),
        chunks,
        &mut out,
        Parallelism::All,
    )
    .map(|o| o.written);
    (r, out)
}

#[test]
fn across_batches_only_checked_batches_are_written_and_the_first_failure_is_reported() {
    // 40 chunks: three batches of 16, 16 and 8, read, opened and written overlapped.
    let sender = identity(1);
    let data = content(39 * CHUNK_SIZE + 100, 7);
    let (sealed, chunks) = seal(&sender, &Metadata::default(), &data);
    assert_eq!(chunks.chunks.len(), 40);
    let batch = 16 * CHUNK_SIZE;

    // A bad chunk in the second batch: the first batch, and nothing of the second, is out.
    let mut bad = chunks.chunks.clone();
    bad[20][9] ^= 1;
    let (r, out) = open_all(&sender, &sealed, &bad.concat());
    assert!(
        matches!(r, Err(ItemError::ChunkDigest { index: 20 })),
        "{r:?}"
    );
    assert!(out == data[..batch], "{} bytes out", out.len());

    // The same, while the third batch, read meanwhile, is cut short: the earlier failure is
    // the one reported.
    let cut = bad.concat();
    let (r, out) = open_all(&sender, &sealed, &cut[..cut.len() - 5000]);
    assert!(
        matches!(r, Err(ItemError::ChunkDigest { index: 20 })),
        "{r:?}"
    );
    assert!(out == data[..batch], "{} bytes out", out.len());

    // Good batches and a cut in the third, found while the second is opened: the first is
    // out, then the truncation.
    let whole = chunks.concatenated();
    let (r, out) = open_all(&sender, &sealed, &whole[..whole.len() - 5000]);
    assert!(
        matches!(r, Err(ItemError::Truncated { index: 39 })),
        "{r:?}"
    );
    assert!(out == data[..batch], "{} bytes out", out.len());

    // A bad first chunk of the last batch after two good ones.
    let mut last = chunks.chunks.clone();
    last[32][0] ^= 1;
    let (r, out) = open_all(&sender, &sealed, &last.concat());
    assert!(
        matches!(r, Err(ItemError::ChunkDigest { index: 32 })),
        "{r:?}"
    );
    assert!(out == data[..2 * batch], "{} bytes out", out.len());

    // Whole, through short reads: every byte, once.
    let mut out = Vec::new();
    let written = open_item(
        &sealed.content_key,
        &sealed.preamble,
        &sealed.manifest,
        sender.public(),
        Trickle {
            data: &whole,
            step: 10_000,
        },
        &mut out,
        Parallelism::All,
    )
    .unwrap()
    .written;
    assert_eq!(written, data.len() as u64);
    assert!(out == data, "{} bytes out", out.len());
}
