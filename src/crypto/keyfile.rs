//! The local key file: both secret keys of an [`Identity`] in one standard age file, encrypted
//! under the user's passphrase with age's scrypt recipient and armored, so that it is plain
//! text on disk and `age -d` opens it.
//!
//! Decrypted, the file is itself a valid age identity file (comments and one
//! `AGE-SECRET-KEY-1…` line), so `age -d -i` can use it directly:
//!
//! ```text
//! # attache identity v1
//! # ed25519-seed: <64 hex digits>
//! AGE-SECRET-KEY-1…
//! ```

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::Identity;
use super::agefile::{AgeFileError, is_passphrase_file, open_age_file, seal_age_file};
use crate::wire::{from_hex, to_hex};

/// scrypt work factor (log2 N) used for new key files: about a second on a laptop.
pub const DEFAULT_WORK_FACTOR: u8 = 18;
/// The highest work factor accepted when opening: above this a key file is refused rather than
/// spending minutes of CPU on it.
pub const MAX_WORK_FACTOR: u8 = 22;
/// The largest key file accepted.
const MAX_KEY_FILE_LEN: usize = 16 * 1024;
/// The largest decrypted content accepted.
const MAX_PLAINTEXT_LEN: usize = 1024;
const FIRST_LINE: &str = "# attache identity v1";
const SEED_PREFIX: &str = "# ed25519-seed: ";

/// Why a key file could not be written or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// The passphrase does not open the key file.
    #[error("wrong passphrase for this key file")]
    WrongPassphrase,
    /// The file is an age file, but encrypted to a key rather than a passphrase (a key package,
    /// perhaps).
    #[error("this age file is not protected by a passphrase, so it is not a key file")]
    NotPassphraseProtected,
    /// The file is not a passphrase-encrypted age file, or is damaged.
    #[error("not a readable key file: {0}")]
    Age(AgeFileError),
    /// The file decrypts but its content is not an Attache identity.
    #[error("key file content is malformed: {0}")]
    Malformed(&'static str),
    /// The file is larger than a key file can be.
    #[error("key file is larger than {MAX_KEY_FILE_LEN} bytes")]
    TooLarge,
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The requested work factor is outside 10..=22.
    #[error("scrypt work factor {0} is outside 10..=22")]
    WorkFactor(u8),
    /// age could not encrypt.
    #[error("could not encrypt the key file")]
    Encrypt,
}

/// Writes `identity` as an armored age file under `passphrase`, with scrypt work factor
/// `work_factor` ([`DEFAULT_WORK_FACTOR`] unless a test needs speed).
pub fn seal_key_file(
    identity: &Identity,
    passphrase: &str,
    work_factor: u8,
) -> Result<Vec<u8>, KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    if !(10..=MAX_WORK_FACTOR).contains(&work_factor) {
        return Err(KeyFileError::WorkFactor(work_factor));
    }
    let (_, seed) = identity.secret_keys();
    let age_secret = identity.age_identity().to_string();
    let seed_hex = Zeroizing::new(to_hex(seed));
    let content = Zeroizing::new(format!(
        "{FIRST_LINE}\n{SEED_PREFIX}{}\n{}\n",
        seed_hex.as_str(),
        age_secret.expose_secret()
    ));
    let mut recipient = age::scrypt::Recipient::new(SecretString::from(passphrase.to_owned()));
    recipient.set_work_factor(work_factor);
    let binary = seal_age_file(
        content.as_bytes(),
        std::iter::once(&recipient as &dyn age::Recipient),
    )
    .map_err(|_| KeyFileError::Encrypt)?;
    armor(&binary)
}

/// Opens a key file (armored or binary) with `passphrase`.
pub fn open_key_file(file: &[u8], passphrase: &str) -> Result<Identity, KeyFileError> {
    if file.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge);
    }
    let mut scrypt = age::scrypt::Identity::new(SecretString::from(passphrase.to_owned()));
    scrypt.set_max_work_factor(MAX_WORK_FACTOR);
    let plain = open_age_file(file, &scrypt, MAX_PLAINTEXT_LEN).map_err(|e| match e {
        AgeFileError::NoMatch if is_passphrase_file(file) == Some(false) => {
            KeyFileError::NotPassphraseProtected
        }
        AgeFileError::NoMatch => KeyFileError::WrongPassphrase,
        AgeFileError::TooLarge(_) => KeyFileError::Malformed("content is too long"),
        other => KeyFileError::Age(other),
    })?;
    parse_content(&plain)
}

fn parse_content(plain: &[u8]) -> Result<Identity, KeyFileError> {
    let text = std::str::from_utf8(plain).map_err(|_| KeyFileError::Malformed("not UTF-8"))?;
    let mut lines = text.split_terminator('\n');
    if lines.next() != Some(FIRST_LINE) {
        return Err(KeyFileError::Malformed(
            "first line is not \"# attache identity v1\"",
        ));
    }
    let seed_hex = lines
        .next()
        .and_then(|l| l.strip_prefix(SEED_PREFIX))
        .ok_or(KeyFileError::Malformed(
            "second line is not the ed25519 seed",
        ))?;
    let bad_seed = KeyFileError::Malformed("ed25519 seed is not 64 hex digits");
    if !seed_hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad_seed);
    }
    let seed_bytes = Zeroizing::new(from_hex(seed_hex).ok_or(bad_seed)?);
    let seed = Zeroizing::new(<[u8; 32]>::try_from(seed_bytes.as_slice()).map_err(|_| bad_seed)?);
    let age_line = lines.next().ok_or(KeyFileError::Malformed(
        "the age secret key line is missing",
    ))?;
    if lines.next().is_some() || !text.ends_with('\n') {
        return Err(KeyFileError::Malformed(
            "unexpected content after the age secret key",
        ));
    }
    let age_identity: age::x25519::Identity = age_line
        .parse()
        .map_err(|_| KeyFileError::Malformed("third line is not an age secret key"))?;
    let x25519 = Zeroizing::new(Identity::age_secret_bytes(&age_identity).ok_or(
        KeyFileError::Malformed("third line is not an age secret key"),
    )?);
    Identity::from_secret_keys(&x25519, &seed)
        .map_err(|_| KeyFileError::Malformed("the keys are not valid"))
}

fn armor(binary: &[u8]) -> Result<Vec<u8>, KeyFileError> {
    use std::io::Write;
    let mut out = Vec::with_capacity(binary.len() * 3 / 2 + 64);
    let mut w = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|_| KeyFileError::Encrypt)?;
    w.write_all(binary).map_err(|_| KeyFileError::Encrypt)?;
    w.finish().map_err(|_| KeyFileError::Encrypt)?;
    Ok(out)
}
