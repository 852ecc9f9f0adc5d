//! The bodies of the fuzz targets in `fuzz_targets/`: one function per parser of untrusted
//! bytes in the `attache` library. A target file is one line that calls one of these, so adding
//! a parser means adding a function here (or, for a JSON body, nothing: [`json`] is generic).
//!
//! Every function must return normally for every input: a panic, an abort, an overflow in a
//! debug build, a timeout or an out-of-memory is a finding. Where a parser succeeds, the
//! function also checks what must then hold (a canonical round trip, sane accessors).

use std::io::{Cursor, Read};

use attache::crypto::{
    Identity, Manifest, Metadata, Parallelism, Preamble, PublicKeys, SignedGrant, SignedStatement,
    open_key_file, open_key_package,
};
use attache::wire::audit::{AuditEntry, Checkpoint};

/// The reader of `tests/vectors/key-package.json` and `key-file.json`: the fixed identity the
/// targets open with, so that seeds made from those vectors reach past the age header.
const READER_X25519: [u8; 32] =
    hex("f5ad92ad0bcc165cf5a131541273264d3b2586635b305bd2e768917d275c0791");
const READER_ED25519_SEED: [u8; 32] =
    hex("886a1c830e94404a5e80ccf8003809b42a791498a36a68c7f20a25b801c5c1a6");
/// The passphrase of `tests/vectors/key-file.json`.
pub const PASSPHRASE: &str = "correct horse battery staple";
/// The item id of `tests/vectors/key-package.json`.
const ITEM_ID: [u8; 16] = hex("4bf54d1b1e9a58e1f54c7175471cf0e9");
/// The highest scrypt work factor the key-file target lets through to the real opener. The
/// library accepts up to `MAX_WORK_FACTOR` (22): scrypt with N = 2^22, r = 8 takes 4 GiB and
/// seconds per attempt, which would make every such input a timeout or an out-of-memory
/// "finding" that is the bound working as designed. Inputs above this cap go through the age
/// header parser only (see [`key_file`]).
pub const FUZZ_MAX_WORK_FACTOR: u64 = 12;

const fn hex<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lower-case hex"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 2 * N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// The fixed test identity (made once).
pub fn reader() -> &'static Identity {
    static READER: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    READER.get_or_init(|| {
        Identity::from_secret_keys(&READER_X25519, &READER_ED25519_SEED)
            .expect("the vector's keys are valid")
    })
}

/// `Preamble::parse`: on success the bytes are kept exactly.
pub fn preamble(data: &[u8]) {
    if let Ok(p) = Preamble::parse(data) {
        assert_eq!(&p.as_bytes()[..], data);
        assert_eq!(p.item_id()[..], data[8..24]);
    }
}

/// `Manifest::parse` (structure, then the Ed25519 signature); on success the accessors agree
/// with each other.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::parse(data) {
        assert_eq!(m.as_bytes(), data);
        let count = m.chunk_count();
        assert!(count >= 1);
        let mut total = 0u64;
        for i in 0..count.min(4) {
            total += m
                .chunk_len(i)
                .expect("a chunk below the count has a length") as u64;
        }
        if count <= 4 {
            assert_eq!(total, m.ciphertext_len());
        }
        assert_eq!(m.chunk_len(count), None);
        assert!(m.check_chunk(count, &[]).is_err());
    }
}

/// The decrypted metadata block's decoder (`Metadata::decode`, private; reached through the
/// `#[doc(hidden)]` hook `Metadata::fuzz_decode`).
pub fn metadata(data: &[u8]) {
    let _ = Metadata::fuzz_decode(data);
}

/// `open_key_package` with the fixed identity and the vector's item id.
pub fn key_package(data: &[u8]) {
    let _ = open_key_package(data, reader(), &ITEM_ID);
}

/// `open_key_file` with the vector's passphrase, for every input whose scrypt stanzas ask for
/// at most [`FUZZ_MAX_WORK_FACTOR`]; inputs asking for more go through age's header parser
/// (`age::Decryptor::new`), which is the part of the opener that reads them before any scrypt.
pub fn key_file(data: &[u8]) {
    if max_scrypt_work_factor(data) <= FUZZ_MAX_WORK_FACTOR {
        let _ = open_key_file(data, PASSPHRASE);
    } else if let Some(binary) = dearmor(data) {
        if let Ok(d) = age::Decryptor::new(&binary[..]) {
            let _ = d.is_scrypt();
        }
    }
}

/// The container opener (`container::open_file`) with the fixed identity, any sender.
pub fn container(data: &[u8]) {
    let _ = attache::container::open_file(
        Cursor::new(data),
        reader(),
        None,
        std::io::sink(),
        Parallelism::One,
    );
}

/// `SignedStatement::parse`: on success the encoding is canonical (it re-encodes to the input).
pub fn statement(data: &[u8]) {
    if let Ok(s) = SignedStatement::parse(data) {
        assert_eq!(s.to_bytes(), data);
    }
}

/// Public keys as the server receives them (`JoinRequest.public_keys`, 64 bytes) and as people
/// paste them (`attache-public-v1:…`, `age1…`): `PublicKeys::from_bytes`, `parse_text` and
/// `parse_age_recipient`; round trips checked on success.
pub fn public_keys(data: &[u8]) {
    if let Ok(keys) = PublicKeys::from_bytes(data) {
        assert_eq!(&keys.to_bytes()[..], data);
        assert_eq!(PublicKeys::parse_text(&keys.to_text()), Ok(keys));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(keys) = PublicKeys::parse_text(text) {
            assert_eq!(PublicKeys::from_bytes(&keys.to_bytes()), Ok(keys));
        }
        let _ = PublicKeys::parse_age_recipient(text);
    }
}

/// `SignedGrant::parse` (co-counsel grants): on success the encoding is canonical.
pub fn grant(data: &[u8]) {
    if let Ok(g) = SignedGrant::parse(data) {
        assert_eq!(g.to_bytes(), data);
    }
}

/// `crypto::evidence::verify`: an evidence bundle (JSON) checked offline, without and with a
/// document digest.
pub fn evidence_bundle(data: &[u8]) {
    let _ = attache::crypto::evidence::verify(data, None);
    let _ = attache::crypto::evidence::verify(data, Some([0x17; 32]));
}

/// `AuditEntry::from_stored`: a stored audit entry (version byte, JSON), as exported logs and
/// evidence bundles carry them; on success it survives a round trip.
pub fn audit_entry(data: &[u8]) {
    if let Ok(entry) = AuditEntry::from_stored(data) {
        assert_eq!(
            AuditEntry::from_stored(&entry.to_stored()).as_ref(),
            Ok(&entry)
        );
    }
}

/// `Checkpoint::decode`: a signed checkpoint's body; on success the encoding is canonical.
pub fn audit_checkpoint(data: &[u8]) {
    if let Ok(c) = Checkpoint::decode(data) {
        assert_eq!(c.encode(), data);
    }
}

/// A JSON request body as the server's extractor reads it (`serde_json::from_slice`); on
/// success it survives a round trip unchanged.
pub fn json<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let again = serde_json::to_vec(&value).expect("a parsed body serializes");
        let back: T = serde_json::from_slice(&again).expect("a serialized body parses");
        assert_eq!(back, value);
    }
}

/// The binary age file the library would see: armor removed the way `crypto::agefile` does
/// (armor after leading whitespace), anything else as is. `None` if the armor is damaged.
fn dearmor(data: &[u8]) -> Option<Vec<u8>> {
    let trimmed = data.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        let mut out = Vec::new();
        age::armor::ArmoredReader::new(trimmed)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    } else {
        Some(data.to_vec())
    }
}

/// The largest number any `scrypt` stanza line of the (de-armored) header carries, counting
/// every digit of its arguments so that no spelling age might accept slips past; 0 if none.
fn max_scrypt_work_factor(data: &[u8]) -> u64 {
    let Some(binary) = dearmor(data) else {
        return 0;
    };
    let mut max = 0u64;
    for line in binary.split(|&b| b == b'\n') {
        let Some(pos) = line.windows(6).position(|w| w == b"scrypt") else {
            continue;
        };
        // Only the last argument is the work factor; the salt is base64 and may hold digits,
        // so look at every argument after the salt, and at the last one in any case.
        let args: Vec<&[u8]> = line[pos + 6..]
            .split(|&b| b == b' ')
            .filter(|a| !a.is_empty())
            .collect();
        for arg in args.iter().skip(1).chain(args.last()) {
            let digits: Vec<u8> = arg.iter().copied().filter(u8::is_ascii_digit).collect();
            if digits.is_empty() {
                continue;
            }
            let value = digits.iter().fold(0u64, |v, &d| {
                v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
            max = max.max(value);
        }
    }
    max
}
