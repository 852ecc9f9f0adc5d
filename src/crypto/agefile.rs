//! Opening and writing standard age files: the one code path through which key files and key
//! packages are read, and through which the community age test vectors are run.
//!
//! Input is bounded by the caller; armor (PEM-like ASCII) is removed first so that an armor
//! fault is reported as such, then the header is checked and the payload read up to a bound.
//!
//! Small sealed payloads (a matter's name, a signed signature statement) are standard age files
//! to the readers' X25519 keys ([`seal_to_readers`], [`open_sealed`]); an exported document is
//! a standard age file written as a stream ([`AgeWriter`]), so that `age -d` opens either.

use std::borrow::Cow;
use std::io::{Read, Write};

use zeroize::Zeroizing;

use super::{Identity, PublicKeys};

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
    /// Sealing: no reader was given, a reader's X25519 key is unusable, or age could not
    /// encrypt.
    #[error("cannot seal an age file to these readers")]
    Recipients,
}

/// The most readers one small sealed payload may have.
pub const MAX_SEALED_READERS: usize = 16;

/// Seals a small `payload` (held whole in memory) as a binary age file to each reader's X25519
/// key. Duplicate readers are sealed to once.
pub fn seal_to_readers(payload: &[u8], readers: &[PublicKeys]) -> Result<Vec<u8>, AgeFileError> {
    let recipients = recipients(readers)?;
    seal_age_file(payload, recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|_| AgeFileError::Recipients)
}

/// Opens a small age file sealed to `identity` (by [`seal_to_readers`]), refusing input over
/// `max_input` bytes and a payload over `max_payload` bytes.
pub fn open_sealed(
    input: &[u8],
    identity: &Identity,
    max_input: usize,
    max_payload: usize,
) -> Result<Zeroizing<Vec<u8>>, AgeFileError> {
    if input.len() > max_input {
        return Err(AgeFileError::TooLarge(max_input));
    }
    open_age_file(input, identity.age_identity(), max_payload)
}

/// A standard age file being written as a stream to the readers' X25519 keys: write the
/// plaintext, then [`AgeWriter::finish`]. Until `finish` the output is not a valid age file
/// (its last chunk is missing), so a stream cut short never opens.
pub struct AgeWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write> AgeWriter<W> {
    /// Starts an age file to `readers` on `out` (the header is written now).
    pub fn new(readers: &[PublicKeys], out: W) -> Result<Self, AgeFileError> {
        let recipients = recipients(readers)?;
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|_| AgeFileError::Recipients)?;
        let inner = encryptor
            .wrap_output(out)
            .map_err(|_| AgeFileError::Recipients)?;
        Ok(Self { inner })
    }

    /// Writes the last chunk and returns the output.
    pub fn finish(self) -> std::io::Result<W> {
        self.inner.finish()
    }
}

impl<W: Write> Write for AgeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> std::fmt::Debug for AgeWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgeWriter")
    }
}

/// The age recipients of `readers`, each once; at least one, at most [`MAX_SEALED_READERS`].
fn recipients(readers: &[PublicKeys]) -> Result<Vec<age::x25519::Recipient>, AgeFileError> {
    let mut unique: Vec<&PublicKeys> = Vec::with_capacity(readers.len());
    for r in readers {
        if !unique.iter().any(|u| u.x25519 == r.x25519) {
            unique.push(r);
        }
    }
    if unique.is_empty() || unique.len() > MAX_SEALED_READERS {
        return Err(AgeFileError::Recipients);
    }
    unique
        .into_iter()
        .map(|r| r.age_recipient_key().map_err(|_| AgeFileError::Recipients))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_open_for_every_reader_and_no_one_else() {
        let ann = Identity::generate().unwrap();
        let bob = Identity::generate().unwrap();
        let eve = Identity::generate().unwrap();
        let sealed = seal_to_readers(b"Doe v. Roe", &[*ann.public(), *bob.public()]).unwrap();
        for reader in [&ann, &bob] {
            assert_eq!(
                &open_sealed(&sealed, reader, 4096, 64).unwrap()[..],
                b"Doe v. Roe"
            );
        }
        assert_eq!(
            open_sealed(&sealed, &eve, 4096, 64),
            Err(AgeFileError::NoMatch)
        );
        assert_eq!(
            open_sealed(&sealed, &ann, 4096, 5),
            Err(AgeFileError::TooLarge(5))
        );
        assert_eq!(
            open_sealed(&sealed, &ann, 10, 64),
            Err(AgeFileError::TooLarge(10))
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(
            open_sealed(&altered, &ann, 4096, 64),
            Err(AgeFileError::Payload)
        );
        assert_eq!(seal_to_readers(b"x", &[]), Err(AgeFileError::Recipients));
        let many = vec![*ann.public(); 3];
        assert!(seal_to_readers(b"x", &many).is_ok(), "duplicates collapse");
    }

    #[test]
    fn streamed_age_files_open_and_a_cut_stream_does_not() {
        let ann = Identity::generate().unwrap();
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = AgeWriter::new(&[*ann.public()], Vec::new()).unwrap();
        w.write_all(&content).unwrap();
        let file = w.finish().unwrap();
        assert_eq!(
            &open_sealed(&file, &ann, 1 << 20, 1 << 20).unwrap()[..],
            &content[..]
        );
        assert_eq!(
            open_sealed(&file[..file.len() - 100], &ann, 1 << 20, 1 << 20),
            Err(AgeFileError::Payload)
        );
    }
}
