//! Identities, fingerprints, key files and key packages, with every refusal.

use attache::crypto::{
    AgeFileError, ContentKey, Identity, KeyFileError, KeyPackageError, MAX_KEY_PACKAGE_LEN,
    PublicKeys, danger, open_key_file, open_key_package, seal_key_file, seal_key_package,
};

use crate::support::identity;

/// Fast scrypt for tests; production key files use `DEFAULT_WORK_FACTOR`.
const TEST_WORK_FACTOR: u8 = 10;

#[test]
fn fingerprint_is_six_groups_of_five_digits_and_stable() {
    let id = identity(1);
    let shown = id.fingerprint().to_string();
    let groups: Vec<&str> = shown.split(' ').collect();
    assert_eq!(groups.len(), 6, "{shown}");
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_eq!(identity(1).fingerprint(), id.fingerprint());
    assert_ne!(identity(2).fingerprint(), id.fingerprint());
    assert!(
        id.fingerprint()
            .matches_safety_number(&shown.replace(' ', ""))
    );
    assert!(!identity(2).fingerprint().matches_safety_number(&shown));
    // Changing either public key changes the fingerprint.
    let mut p = *id.public();
    p.ed25519[0] ^= 1;
    assert_ne!(p.fingerprint(), id.fingerprint());
    let mut p = *id.public();
    p.x25519[31] ^= 1;
    assert_ne!(p.fingerprint(), id.fingerprint());
}

#[test]
fn public_keys_encode_and_parse() {
    let id = identity(3);
    let bytes = id.public().to_bytes();
    assert_eq!(PublicKeys::from_bytes(&bytes).unwrap(), *id.public());
    assert!(PublicKeys::from_bytes(&bytes[..63]).is_err());
    let recipient = id.public().age_recipient();
    assert!(recipient.starts_with("age1"));
    assert_eq!(
        PublicKeys::parse_age_recipient(&recipient).unwrap(),
        id.public().x25519
    );
    assert!(PublicKeys::parse_age_recipient(&recipient.to_uppercase()).is_err());
    assert!(PublicKeys::parse_age_recipient("age1qqqq").is_err());
}

#[test]
fn identities_never_print_secrets() {
    let id = identity(4);
    let shown = format!("{id:?}");
    assert!(shown.contains(&id.fingerprint().to_string()), "{shown}");
    let file = seal_key_file(&id, "correct horse", TEST_WORK_FACTOR).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    assert!(!text.contains("AGE-SECRET-KEY"));
    let key = ContentKey::generate().unwrap();
    assert_eq!(format!("{key:?}"), "ContentKey(redacted)");
}

#[test]
fn key_file_round_trip() {
    let id = identity(5);
    let file = seal_key_file(&id, "correct horse battery staple", TEST_WORK_FACTOR).unwrap();
    let back = open_key_file(&file, "correct horse battery staple").unwrap();
    assert_eq!(back.public(), id.public());
    // Signatures from the reopened identity verify as the original's: same Ed25519 seed.
    let sealed = crate::support::seal(&back, &Default::default(), b"x").0;
    assert_eq!(sealed.manifest.signer(), id.public().ed25519);
}

#[test]
fn key_file_wrong_passphrase_is_a_clear_error() {
    let file = seal_key_file(&identity(5), "right", TEST_WORK_FACTOR).unwrap();
    assert_eq!(
        open_key_file(&file, "wrong").unwrap_err(),
        KeyFileError::WrongPassphrase
    );
    assert_eq!(
        open_key_file(&file, "wrong").unwrap_err().to_string(),
        "wrong passphrase for this key file"
    );
    assert_eq!(
        open_key_file(&file, "").unwrap_err(),
        KeyFileError::WrongPassphrase
    );
}

#[test]
fn key_file_refusals() {
    let id = identity(6);
    assert_eq!(
        seal_key_file(&id, "", TEST_WORK_FACTOR).unwrap_err(),
        KeyFileError::EmptyPassphrase
    );
    assert_eq!(
        seal_key_file(&id, "p", 9).unwrap_err(),
        KeyFileError::WorkFactor(9)
    );
    assert_eq!(
        seal_key_file(&id, "p", 23).unwrap_err(),
        KeyFileError::WorkFactor(23)
    );
    assert_eq!(
        open_key_file(&[0u8; 20_000], "p").unwrap_err(),
        KeyFileError::TooLarge
    );
    assert_eq!(
        open_key_file(b"not an age file", "p").unwrap_err(),
        KeyFileError::Age(AgeFileError::Header)
    );
    let file = seal_key_file(&id, "p", TEST_WORK_FACTOR).unwrap();
    // Cut inside the armor: the armor is refused before age looks at the header.
    assert_eq!(
        open_key_file(&file[..file.len() - 40], "p").unwrap_err(),
        KeyFileError::Age(AgeFileError::Armor)
    );
    // A key package is an age file too, but not for a passphrase.
    let key = ContentKey::generate().unwrap();
    let package = seal_key_package(&key, &[1; 16], id.public()).unwrap();
    assert_eq!(
        open_key_file(&package, "p").unwrap_err(),
        KeyFileError::NotPassphraseProtected
    );
}

#[test]
fn key_file_content_is_checked_strictly() {
    // Valid age scrypt files whose plaintext is not an Attache identity.
    let id = identity(7);
    let good = seal_key_file(&id, "p", TEST_WORK_FACTOR).unwrap();
    let good_plain = age_decrypt_passphrase(&good, "p");
    let text = String::from_utf8(good_plain).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# attache identity v1");
    assert!(lines[1].starts_with("# ed25519-seed: "));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    let cases = [
        (
            format!("# other\n{}\n{}\n", lines[1], lines[2]),
            "first line is not \"# attache identity v1\"",
        ),
        (
            format!("{}\n{}\n", lines[0], lines[2]),
            "second line is not the ed25519 seed",
        ),
        (
            format!("{}\n# ed25519-seed: abcd\n{}\n", lines[0], lines[2]),
            "ed25519 seed is not 64 hex digits",
        ),
        (
            format!("{}\n{}\n", lines[0], lines[1]),
            "the age secret key line is missing",
        ),
        (
            format!("{}\n{}\n{}\nextra\n", lines[0], lines[1], lines[2]),
            "unexpected content after the age secret key",
        ),
        (
            format!("{}\n{}\n{}", lines[0], lines[1], lines[2]),
            "unexpected content after the age secret key",
        ),
        (
            format!("{}\n{}\nAGE-SECRET-KEY-1QQQ\n", lines[0], lines[1]),
            "third line is not an age secret key",
        ),
    ];
    for (content, why) in cases {
        let file = age_encrypt_passphrase(content.as_bytes(), "p");
        assert_eq!(
            open_key_file(&file, "p").unwrap_err(),
            KeyFileError::Malformed(why),
            "{content}"
        );
    }
}

#[test]
fn key_package_round_trip_and_refusals() {
    let alice = identity(8);
    let bob = identity(9);
    let key = ContentKey::generate().unwrap();
    let item = [7u8; 16];
    let package = seal_key_package(&key, &item, bob.public()).unwrap();
    // A few hundred bytes: age adds a random "grease" stanza of up to ~300 bytes.
    assert!(package.len() < 700, "{} bytes", package.len());
    let opened = open_key_package(&package, &bob, &item).unwrap();
    assert_eq!(
        danger::content_key_bytes(&opened),
        danger::content_key_bytes(&key)
    );

    assert_eq!(
        open_key_package(&package, &alice, &item).unwrap_err(),
        KeyPackageError::NotForThisIdentity
    );
    assert_eq!(
        open_key_package(&package, &bob, &[8; 16]).unwrap_err(),
        KeyPackageError::WrongItem
    );
    assert_eq!(
        open_key_package(&vec![0; MAX_KEY_PACKAGE_LEN + 1], &bob, &item).unwrap_err(),
        KeyPackageError::TooLarge
    );
    // Truncated at every length: never a panic, always a refusal.
    for len in 0..package.len() {
        let e = open_key_package(&package[..len], &bob, &item).unwrap_err();
        assert!(
            matches!(
                e,
                KeyPackageError::Age(AgeFileError::Header | AgeFileError::Payload)
            ),
            "length {len}: {e:?}"
        );
    }
    // A flipped bit in the payload fails age's authentication.
    let mut bad = package.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        open_key_package(&bad, &bob, &item).unwrap_err(),
        KeyPackageError::Age(AgeFileError::Payload)
    );
    // An age file to bob that holds something else.
    let other = age_encrypt_x25519(b"hello", bob.public());
    assert_eq!(
        open_key_package(&other, &bob, &item).unwrap_err(),
        KeyPackageError::Malformed
    );
}

#[test]
fn generated_identities_are_distinct() {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    assert_ne!(a.public(), b.public());
}

fn age_encrypt_passphrase(plain: &[u8], passphrase: &str) -> Vec<u8> {
    use std::io::Write;
    let mut r = age::scrypt::Recipient::new(passphrase.to_owned().into());
    r.set_work_factor(TEST_WORK_FACTOR);
    let e = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = e.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}

fn age_decrypt_passphrase(file: &[u8], passphrase: &str) -> Vec<u8> {
    let id = age::scrypt::Identity::new(passphrase.to_owned().into());
    attache::crypto::open_age_file(file, &id, 4096)
        .unwrap()
        .to_vec()
}

fn age_encrypt_x25519(plain: &[u8], to: &PublicKeys) -> Vec<u8> {
    use std::io::Write;
    let r: age::x25519::Recipient = to.age_recipient().parse().unwrap();
    let e = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = e.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}
