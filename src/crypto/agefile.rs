//! Opening and writing standard age files: the one code path through which key files and key
//! packages are read, and through which the community age test vectors are run.
//!
//! Input is bounded by the caller; armor (PEM-like ASCII) is removed first so that an armor
//! fault is reported as such, then the header is checked and the payload read up to a bound.

use std::borrow::Cow;
use std::io::{Read, Write};

use zeroize::Zeroizing;

const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// Every binary age file starts with its version line.
const BINARY_INTRO: &[u8] = b"age-encryption.org/";

/// Why an age file could not be opened. The variants follow the failure classes of the
/// community age test vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgeFileError {
    /// The ASCII armor is malformed.
    #[error("malformed age armor")]
    Armor,
    /// The header is malformed, uses an unsupported feature, or asks for excessive work.
    #[error("malformed or unsupported age header")]
    Header,
    /// The header's MAC does not match: the header was altered.
    #[error("age header MAC mismatch")]
    HeaderMac,
    /// No stanza opens with the given key (or the passphrase is wrong).
    #[error("no matching key")]
    NoMatch,
    /// The payload is truncated or fails authentication.
    #[error("age payload is truncated or fails authentication")]
    Payload,
    /// The payload is larger than this kind of file may hold.
    #[error("age file is larger than {0} bytes")]
    TooLarge(usize),
}

/// Opens the age file `input` with `identity`, returning at most `max_payload` bytes of
/// plaintext. Armored and binary files are both accepted.
pub fn open_age_file(
    input: &[u8],
    identity: &dyn age::Identity,
    max_payload: usize,
) -> Result<Zeroizing<Vec<u8>>, AgeFileError> {
    let binary = dearmor(input)?;
    let decryptor = age::Decryptor::new(&binary[..]).map_err(classify)?;
    let reader = decryptor
        .decrypt(std::iter::once(identity))
        .map_err(classify)?;
    let mut out = Zeroizing::new(Vec::new());
    let limit = u64::try_from(max_payload)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| AgeFileError::Payload)?;
    if out.len() > max_payload {
        return Err(AgeFileError::TooLarge(max_payload));
    }
    Ok(out)
}

/// The binary age file in `input`: armor, which may be surrounded by whitespace, is removed;
/// anything else is passed on as binary unless it looks like damaged armor.
fn dearmor(input: &[u8]) -> Result<Cow<'_, [u8]>, AgeFileError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(ARMOR_BEGIN) {
        // Armor can only make a file longer, so the de-armored bytes are bounded by the input.
        let mut binary = Vec::with_capacity(trimmed.len().min(1 << 16));
        age::armor::ArmoredReader::new(trimmed)
            .read_to_end(&mut binary)
            .map_err(|_| AgeFileError::Armor)?;
        return Ok(Cow::Owned(binary));
    }
    // age's ArmoredReader passes input whose first line is not exactly the BEGIN marker through
    // as binary, so damaged armor (a lower-case, spaced or wrong marker, text before it) would
    // surface as a header fault. PEM dashes near the start of a file that is not binary age
    // mean armor; bytes like neither are "not an age file", a header fault.
    let head = &input[..input.len().min(1024)];
    if !input.starts_with(BINARY_INTRO) && head.windows(5).any(|w| w == b"-----") {
        return Err(AgeFileError::Armor);
    }
    Ok(Cow::Borrowed(input))
}

/// Whether `input` is an age file encrypted to a passphrase; `None` if it is not an age file.
pub(crate) fn is_passphrase_file(input: &[u8]) -> Option<bool> {
    let binary = dearmor(input).ok()?;
    Some(age::Decryptor::new(&binary[..]).ok()?.is_scrypt())
}

/// Encrypts `payload` as a binary age file to `recipients`.
pub(crate) fn seal_age_file<'a>(
    payload: &[u8],
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
) -> Result<Vec<u8>, age::EncryptError> {
    let encryptor = age::Encryptor::with_recipients(recipients)?;
    let mut out = Vec::with_capacity(payload.len() + 256);
    let mut writer = encryptor.wrap_output(&mut out)?;
    writer.write_all(payload)?;
    writer.finish()?;
    Ok(out)
}

fn classify(e: age::DecryptError) -> AgeFileError {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys | D::DecryptionFailed | D::KeyDecryptionFailed => AgeFileError::NoMatch,
        D::InvalidMac => AgeFileError::HeaderMac,
        // InvalidHeader, UnknownFormat, ExcessiveWork (a work factor over our limit), a header
        // cut short (Io), and any variant a later age adds.
        _ => AgeFileError::Header,
    }
}
