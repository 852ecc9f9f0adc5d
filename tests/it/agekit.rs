//! The community age test vectors (C2SP age testkit), run through `open_age_file`: the code
//! path that opens every key file and key package.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use age::secrecy::SecretString;
use attache::crypto::{AgeFileError, MAX_WORK_FACTOR, open_age_file};

use crate::support;

/// The largest plaintext accepted. The longest vectors hold 257 and 258 full 64 KiB chunks,
/// just over 16 MiB, so the bound leaves room for them while still capping the work.
const MAX_PAYLOAD: usize = 32 << 20;
/// The largest vector file (after zlib decompression) read.
const MAX_VECTOR_LEN: u64 = 64 << 20;
/// Fewer runnable vectors than this means the testkit folder is missing or truncated.
const MIN_PASSED: usize = 100;

/// What a vector expects `open_age_file` to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Ok, with a plaintext whose SHA-256 is `payload`.
    Success,
    /// The given error.
    Failure(AgeFileError),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("Ok"),
            Self::Failure(e) => write!(f, "Err({e:?})"),
        }
    }
}

/// One parsed vector file.
struct Vector {
    /// The `expect:` class.
    expect: Expect,
    /// The `payload:` SHA-256 (lowercase hex) of the plaintext, for successes.
    payload: Option<String>,
    /// The `identity:` lines, in order.
    identities: Vec<String>,
    /// The `passphrase:` lines, in order.
    passphrases: Vec<String>,
    /// The age file, decompressed when the vector says `compressed: zlib`.
    file: Vec<u8>,
}

/// Why a vector is not run: the project implements only X25519 and scrypt recipients.
fn skip_reason(v: &Vector) -> Option<&'static str> {
    v.identities.iter().find_map(|id| {
        if id.starts_with("AGE-SECRET-KEY-PQ-1") {
            Some("mlkem768x25519 identity")
        } else if id.starts_with("AGE-PLUGIN-") {
            Some("plugin identity")
        } else if !id.starts_with("AGE-SECRET-KEY-1") {
            Some("unknown identity type")
        } else {
            None
        }
    })
}

/// Maps a vector's `expect:` value to the result `open_age_file` must give.
fn parse_expect(value: &str) -> Result<Expect, String> {
    Ok(match value {
        "success" => Expect::Success,
        "no match" => Expect::Failure(AgeFileError::NoMatch),
        "header failure" => Expect::Failure(AgeFileError::Header),
        "HMAC failure" => Expect::Failure(AgeFileError::HeaderMac),
        "payload failure" => Expect::Failure(AgeFileError::Payload),
        "armor failure" => Expect::Failure(AgeFileError::Armor),
        other => return Err(format!("unknown expect class {other:?}")),
    })
}

/// Parses a vector file: `key: value` lines, a blank line, then the age file.
fn parse_vector(raw: &[u8]) -> Result<Vector, String> {
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or("no blank line after the header")?;
    let header = std::str::from_utf8(&raw[..split]).map_err(|_| "header is not UTF-8")?;
    let body = &raw[split + 2..];
    let (mut expect, mut payload, mut compressed) = (None, None, false);
    let (mut identities, mut passphrases) = (Vec::new(), Vec::new());
    for line in header.lines() {
        let (key, value) = line
            .split_once(": ")
            .ok_or_else(|| format!("header line {line:?} is not `key: value`"))?;
        match key {
            "expect" => expect = Some(parse_expect(value)?),
            "payload" => payload = Some(value.to_owned()),
            "identity" => identities.push(value.to_owned()),
            "passphrase" => passphrases.push(value.to_owned()),
            "armored" if value == "yes" => {}
            "compressed" if value == "zlib" => compressed = true,
            "file key" | "comment" => {}
            _ => return Err(format!("unknown header line {line:?}")),
        }
    }
    let file = if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .take(MAX_VECTOR_LEN)
            .read_to_end(&mut out)
            .map_err(|e| format!("zlib: {e}"))?;
        out
    } else {
        body.to_vec()
    };
    Ok(Vector {
        expect: expect.ok_or("no expect line")?,
        payload,
        identities,
        passphrases,
        file,
    })
}

/// The vector's identities, X25519 keys first and then passphrases (scrypt with attache's
/// work-factor cap), as the age CLI would try them.
fn identities(v: &Vector) -> Result<Vec<Box<dyn age::Identity>>, String> {
    let mut out: Vec<Box<dyn age::Identity>> = Vec::new();
    for id in &v.identities {
        let x25519: age::x25519::Identity = id
            .parse()
            .map_err(|e| format!("identity does not parse: {e}"))?;
        out.push(Box::new(x25519));
    }
    for passphrase in &v.passphrases {
        let mut scrypt = age::scrypt::Identity::new(SecretString::from(passphrase.clone()));
        scrypt.set_max_work_factor(MAX_WORK_FACTOR);
        out.push(Box::new(scrypt));
    }
    Ok(out)
}

/// Opens `file` with each identity in turn, moving on only when one finds no match; a file
/// that fails before any identity is consulted fails on the first try. With no identities
/// (the `empty` vectors) a fresh X25519 key stands in: it matches nothing.
///
/// `open_age_file` takes one identity. A true "any of these" adapter would implement
/// `age::Identity`, whose methods name `age_core::format::{Stanza, FileKey}`; age does not
/// re-export them, so that needs `age-core` as a dev-dependency. This loop is equivalent
/// except when an identity recognises a stanza but fails to unwrap it and a later identity
/// would succeed (age stops at the first); no runnable testkit vector has two identities that
/// reach that point (`scrypt_double` and `scrypt_and_x25519` fail on the header).
fn open_with_any(
    file: &[u8],
    identities: &[Box<dyn age::Identity>],
) -> Result<Vec<u8>, AgeFileError> {
    let stand_in: [Box<dyn age::Identity>; 1] = [Box::new(age::x25519::Identity::generate())];
    let identities = if identities.is_empty() {
        &stand_in[..]
    } else {
        identities
    };
    let mut result = Err(AgeFileError::NoMatch);
    for identity in identities {
        result = open_age_file(file, identity.as_ref(), MAX_PAYLOAD).map(|p| p.to_vec());
        if result != Err(AgeFileError::NoMatch) {
            break;
        }
    }
    result
}

/// Lowercase hex of the SHA-256 of `data`.
fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Vectors where the age crate itself deliberately departs from the testkit, pinned to what it
/// does instead: age 0.12 still accepts legacy stanzas without a final short body line (age's
/// own testkit runner makes the same exception), so these open with the standard payload.
/// attache does not parse headers itself, so it inherits this; if age starts rejecting them,
/// the pin fails and the entry should be removed.
const AGE_DEVIATIONS: &[(&str, &str)] = &[
    (
        "stanza_missing_body",
        "013f54400c82da08037759ada907a8b864e97de81c088a182062c4b5622fd2ab",
    ),
    (
        "stanza_missing_final_line",
        "013f54400c82da08037759ada907a8b864e97de81c088a182062c4b5622fd2ab",
    ),
];
/// The skip category the pinned deviations are counted under.
const DEVIATION_REASON: &str = "age accepts legacy stanzas, pinned";

/// How a vector ended when it did not fail.
enum Outcome {
    /// The result matched the testkit.
    Passed,
    /// Not checked against the testkit, for this reason.
    Skipped(&'static str),
}

/// `Ok(plaintext)` or `Err(variant)`, as a failure message shows it.
fn describe(got: &Result<Vec<u8>, AgeFileError>) -> String {
    match got {
        Ok(plain) => format!("Ok({} bytes, sha256 {})", plain.len(), sha256_hex(plain)),
        Err(e) => format!("Err({e:?})"),
    }
}

/// Runs vector `name`; `Err` describes a failure.
fn run(name: &str, v: &Vector) -> Result<Outcome, String> {
    if let Some(reason) = skip_reason(v) {
        return Ok(Outcome::Skipped(reason));
    }
    let identities = identities(v)?;
    let got = open_with_any(&v.file, &identities);
    if let Some((_, pinned)) = AGE_DEVIATIONS.iter().find(|(n, _)| *n == name) {
        return match &got {
            Ok(plain) if sha256_hex(plain) == *pinned => Ok(Outcome::Skipped(DEVIATION_REASON)),
            _ => Err(format!(
                "pinned age deviation no longer holds: expected Ok(sha256 {pinned}), got {} \
                 (testkit expects {}); remove it from AGE_DEVIATIONS",
                describe(&got),
                v.expect
            )),
        };
    }
    match (v.expect, &got) {
        (Expect::Success, Ok(plain)) => {
            let want = v
                .payload
                .as_deref()
                .ok_or("success vector has no payload line")?;
            let have = sha256_hex(plain);
            if have == want {
                Ok(Outcome::Passed)
            } else {
                Err(format!("expected Ok(sha256 {want}), got Ok(sha256 {have})"))
            }
        }
        (Expect::Failure(want), Err(have)) if want == *have => Ok(Outcome::Passed),
        (want, _) => Err(format!("expected {want}, got {}", describe(&got))),
    }
}

#[test]
fn community_age_vectors() {
    let dir = support::repo_root().join("../shared/testkit/age");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the age testkit is missing: cannot read {}: {e}",
            dir.display()
        )
    });
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "LICENSE" && !name.starts_with('.'))
        .collect();
    names.sort();

    let mut passed = 0usize;
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for name in &names {
        let outcome = read_vector(&dir.join(name)).and_then(|v| run(name, &v));
        match outcome {
            Ok(Outcome::Passed) => passed += 1,
            Ok(Outcome::Skipped(reason)) => *skipped.entry(reason).or_default() += 1,
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }

    let skipped_total: usize = skipped.values().sum();
    let reasons = if skipped.is_empty() {
        "none".to_owned()
    } else {
        skipped
            .iter()
            .map(|(reason, n)| format!("{reason}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("age testkit: {passed} passed, {skipped_total} skipped ({reasons})");
    assert!(
        failures.is_empty(),
        "{} of {} age testkit vectors failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    assert!(
        passed >= MIN_PASSED,
        "only {passed} age testkit vectors ran from {} (at least {MIN_PASSED} expected)",
        dir.display()
    );
}

/// Reads and parses one vector file.
fn read_vector(path: &Path) -> Result<Vector, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    parse_vector(&raw)
}
