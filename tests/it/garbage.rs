//! Hostile bytes into every parser of untrusted input: random bytes and random mutations of
//! valid inputs must give an error (or, for an unchanged input, success), never a panic.

use std::io::Cursor;

use attache::container::{open_file, seal_file};
use attache::crypto::{
    ContentKey, Intent, Manifest, Metadata, Parallelism, Preamble, SignatureStatement,
    SignedStatement, open_item, open_key_file, open_key_package, seal_key_file, seal_key_package,
};
use proptest::prelude::*;

use crate::support::{content, identity, seal};

/// A valid input of each kind, made once.
struct Samples {
    manifest: Vec<u8>,
    preamble: Vec<u8>,
    chunks: Vec<u8>,
    key: [u8; 32],
    package: Vec<u8>,
    key_file: Vec<u8>,
    statement: Vec<u8>,
    container: Vec<u8>,
}

fn samples() -> &'static Samples {
    static SAMPLES: std::sync::OnceLock<Samples> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(|| {
        let sender = identity(1);
        let (sealed, chunks) = seal(&sender, &Metadata::default(), &content(70_000, 3));
        let package = seal_key_package(
            &sealed.content_key,
            &sealed.preamble.item_id(),
            identity(2).public(),
        )
        .unwrap();
        let statement = SignatureStatement {
            request_id: [1; 16],
            document_sha256: [2; 32],
            signer_email: "s@example.com".into(),
            signer_key: [0; 32],
            time: 0,
            intent: Intent::Sign,
            typed_name: "S".into(),
            note: String::new(),
        }
        .sign(&sender)
        .unwrap()
        .to_bytes();
        let mut container = Vec::new();
        seal_file(
            &sender,
            &Metadata::default(),
            &[*identity(2).public()],
            &content(1000, 4)[..],
            &mut container,
            Parallelism::One,
        )
        .unwrap();
        Samples {
            manifest: sealed.manifest.as_bytes().to_vec(),
            preamble: sealed.preamble.as_bytes().to_vec(),
            chunks: chunks.concatenated(),
            key: attache::crypto::danger::content_key_bytes(&sealed.content_key),
            package,
            key_file: seal_key_file(&identity(2), "pw", 10).unwrap(),
            statement,
            container,
        }
    })
}

/// `input` with the given (position, xor) flips applied and, with `cut`, truncated to that
/// fraction of its length.
fn mutate(input: &[u8], flips: &[(usize, u8)], cut: Option<f64>) -> Vec<u8> {
    let mut out = input.to_vec();
    for &(pos, x) in flips {
        if !out.is_empty() {
            let i = pos % out.len();
            out[i] ^= x;
        }
    }
    if let Some(f) = cut {
        out.truncate((out.len() as f64 * f) as usize);
    }
    out
}

/// Runs every parser over `bytes`; none may panic.
fn feed(bytes: &[u8]) {
    let s = samples();
    let _ = Manifest::parse(bytes);
    let _ = Preamble::parse(bytes);
    let _ = SignedStatement::parse(bytes);
    let _ = open_key_package(bytes, &identity(2), &[0; 16]);
    let _ = open_file(
        Cursor::new(bytes),
        &identity(2),
        None,
        std::io::sink(),
        Parallelism::One,
    );
    // As chunks of a valid item, and as a manifest for a valid preamble.
    let key = attache::crypto::danger::content_key_from_bytes(s.key);
    let preamble = Preamble::parse(&s.preamble).unwrap();
    let manifest = Manifest::parse(&s.manifest).unwrap();
    let _ = open_item(
        &key,
        &preamble,
        &manifest,
        identity(1).public(),
        bytes,
        std::io::sink(),
        Parallelism::One,
    );
    if let Ok(m) = Manifest::parse(bytes) {
        let _ = open_item(
            &key,
            &preamble,
            &m,
            identity(1).public(),
            &s.chunks[..],
            std::io::sink(),
            Parallelism::One,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        feed(&bytes);
    }

    #[test]
    fn mutated_valid_inputs_never_panic(
        which in 0usize..6,
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..4),
        cut in proptest::option::of(0.0f64..1.0),
    ) {
        let s = samples();
        let input = match which {
            0 => &s.manifest,
            1 => &s.preamble,
            2 => &s.package,
            3 => &s.statement,
            4 => &s.container,
            _ => &s.chunks,
        };
        let bytes = mutate(input, &flips, cut);
        feed(&bytes);
        // Every authenticated format refuses any change at all.
        if bytes != *input {
            let item = Preamble::parse(&s.preamble).unwrap().item_id();
            let refused = match which {
                0 => Manifest::parse(&bytes).is_err(),
                2 => open_key_package(&bytes, &identity(2), &item).is_err(),
                3 => SignedStatement::parse(&bytes).is_err(),
                4 => open_file(
                    Cursor::new(&bytes),
                    &identity(2),
                    Some(identity(1).public()),
                    std::io::sink(),
                    Parallelism::One,
                )
                .is_err(),
                5 => open_item(
                    &attache::crypto::danger::content_key_from_bytes(s.key),
                    &Preamble::parse(&s.preamble).unwrap(),
                    &Manifest::parse(&s.manifest).unwrap(),
                    identity(1).public(),
                    &bytes[..],
                    std::io::sink(),
                    Parallelism::One,
                )
                .is_err(),
                // A preamble is checked against a content key by the opener, not by its parser.
                _ => true,
            };
            prop_assert!(refused, "input {which} accepted after a change");
        }
    }

    #[test]
    fn mutated_key_files_never_panic(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..3),
        cut in proptest::option::of(0.0f64..1.0),
    ) {
        let original = &samples().key_file;
        let bytes = mutate(original, &flips, cut);
        let opened = open_key_file(&bytes, "pw");
        // Armor tolerates trailing whitespace; any other change must be refused.
        if bytes.trim_ascii_end() != original.trim_ascii_end() {
            prop_assert!(opened.is_err(), "a changed key file opened");
        }
    }
}

#[test]
fn the_samples_are_valid() {
    // The mutations start from inputs that open, so a parser that refused everything could not
    // pass the properties above unnoticed.
    let s = samples();
    let preamble = Preamble::parse(&s.preamble).unwrap();
    let manifest = Manifest::parse(&s.manifest).unwrap();
    let key = ContentKey::generate().unwrap();
    assert!(
        open_item(
            &key,
            &preamble,
            &manifest,
            identity(1).public(),
            &s.chunks[..],
            std::io::sink(),
            Parallelism::One
        )
        .is_err()
    );
    let real = attache::crypto::danger::content_key_from_bytes(s.key);
    assert!(
        open_item(
            &real,
            &preamble,
            &manifest,
            identity(1).public(),
            &s.chunks[..],
            std::io::sink(),
            Parallelism::One
        )
        .is_ok()
    );
    assert!(open_key_package(&s.package, &identity(2), &preamble.item_id()).is_ok());
    assert!(open_key_file(&s.key_file, "pw").is_ok());
    assert!(SignedStatement::parse(&s.statement).is_ok());
    assert!(
        open_file(
            Cursor::new(&s.container),
            &identity(2),
            Some(identity(1).public()),
            std::io::sink(),
            Parallelism::One
        )
        .is_ok()
    );
}
