//! The local sealed-file container and the `attache` command over it.

use std::io::Cursor;
use std::process::Command;

use attache::container::{ContainerError, open_file, seal_file};
use attache::crypto::{ItemError, KeyPackageError, Metadata, Parallelism};
use attache::wire::DecodeError;

use crate::support::{content, identity, temp_dir};

fn sealed_file(len: usize) -> (Vec<u8>, Vec<u8>) {
    let data = content(len, 11);
    let mut out = Vec::new();
    let readers = [*identity(2).public(), *identity(3).public()];
    seal_file(
        &identity(1),
        &Metadata::default(),
        &readers,
        &data[..],
        &mut out,
        Parallelism::All,
    )
    .unwrap();
    (data, out)
}

fn open_bytes(file: &[u8], reader: u8) -> Result<Vec<u8>, ContainerError> {
    let mut out = Vec::new();
    let opened = open_file(
        Cursor::new(file),
        &identity(reader),
        Some(identity(1).public()),
        &mut out,
        Parallelism::All,
    )?;
    assert_eq!(opened.signer_ed25519, identity(1).public().ed25519);
    Ok(out)
}

#[test]
fn every_reader_opens_and_no_one_else() {
    let (data, file) = sealed_file(200_000);
    assert_eq!(open_bytes(&file, 2).unwrap(), data);
    assert_eq!(open_bytes(&file, 3).unwrap(), data);
    assert!(matches!(
        open_bytes(&file, 4),
        Err(ContainerError::NotForThisIdentity)
    ));
}

#[test]
fn a_short_or_long_chunk_region_names_the_chunk() {
    let (_, file) = sealed_file(200_000); // 4 chunks
    // Remove 100 bytes from inside chunk 2: the trailer still frames the file.
    let cut = 8 + 88 + 2 * (65_536 + 16) + 50;
    let mut short = file[..cut].to_vec();
    short.extend_from_slice(&file[cut + 100..]);
    let r = open_bytes(&short, 2);
    assert!(
        matches!(
            r,
            Err(ContainerError::Item(ItemError::Truncated { index: 3 }))
        ),
        "{r:?}"
    );
    let mut long = file[..cut].to_vec();
    long.extend_from_slice(&[0; 7]);
    long.extend_from_slice(&file[cut..]);
    let r = open_bytes(&long, 2);
    assert!(
        matches!(
            r,
            Err(ContainerError::Item(ItemError::ChunkDigest { index: 2 }))
        ),
        "{r:?}"
    );
}

#[test]
fn framing_faults() {
    let (_, file) = sealed_file(1000);
    let r = open_bytes(&file[..50], 2);
    assert!(
        matches!(
            r,
            Err(ContainerError::Malformed(DecodeError::Truncated(
                "sealed file"
            )))
        ),
        "{r:?}"
    );
    let mut bad = file.clone();
    bad[0] = b'X';
    let r = open_bytes(&bad, 2);
    assert!(
        matches!(
            r,
            Err(ContainerError::Malformed(DecodeError::Unsupported(
                "file header"
            )))
        ),
        "{r:?}"
    );
    let mut bad = file.clone();
    let end = bad.len() - 1;
    bad[end] = b'X';
    let r = open_bytes(&bad, 2);
    assert!(
        matches!(
            r,
            Err(ContainerError::Malformed(DecodeError::Unsupported(
                "file trailer"
            )))
        ),
        "{r:?}"
    );
    // Claim one package fewer than framed: bytes left over in the package region.
    let mut bad = file.clone();
    let count_at = bad.len() - 10;
    bad[count_at + 1] -= 1;
    let r = open_bytes(&bad, 2);
    assert!(
        matches!(
            r,
            Err(ContainerError::Malformed(DecodeError::TrailingBytes(_)))
        ),
        "{r:?}"
    );
}

#[test]
fn a_damaged_package_for_someone_else_is_skipped() {
    let (data, file) = sealed_file(1000);
    // Damage the first package (reader 2's): reader 3 still opens; reader 2 learns it is damaged.
    let len = file.len();
    let manifest_len = u32::from_be_bytes(file[len - 18..len - 14].try_into().unwrap()) as usize;
    let packages_len = u32::from_be_bytes(file[len - 14..len - 10].try_into().unwrap()) as usize;
    let first_package = len - 18 - packages_len + 4;
    assert!(manifest_len > 0);
    let mut bad = file.clone();
    bad[first_package + 200] ^= 1;
    assert_eq!(open_bytes(&bad, 3).unwrap(), data);
    let r = open_bytes(&bad, 2);
    assert!(
        matches!(r, Err(ContainerError::KeyPackage(KeyPackageError::Age(_)))),
        "{r:?}"
    );
}

/// Runs the `attache` binary in `dir` with a fixed passphrase.
fn attache(dir: &std::path::Path, passphrase: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attache"))
        .current_dir(dir)
        .env("ATTACHE_PASSPHRASE", passphrase)
        .env_remove("ATTACHE_KEY")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_seal_open_and_exit_codes() {
    let dir = temp_dir();
    let d = dir.path();
    for key in ["alice.age", "bob.age", "eve.age"] {
        let out = attache(
            d,
            "pw",
            &["identity", "new", "--key", key, "--work-factor", "10"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("fingerprint: "));
    }
    let bob = attache(
        d,
        "pw",
        &["identity", "show", "--key", "bob.age", "--public"],
    );
    let bob = String::from_utf8(bob.stdout).unwrap().trim().to_owned();
    let alice = attache(
        d,
        "pw",
        &["identity", "show", "--key", "alice.age", "--public"],
    );
    let alice = String::from_utf8(alice.stdout).unwrap().trim().to_owned();
    assert!(bob.starts_with("attache-public-v1:"), "{bob}");
    let data = content(300_000, 5);
    std::fs::write(d.join("brief.pdf"), &data).unwrap();

    let out = attache(
        d,
        "pw",
        &[
            "seal",
            "--key",
            "alice.age",
            "--to",
            &bob,
            "-o",
            "brief.atch",
            "brief.pdf",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = attache(
        d,
        "pw",
        &[
            "open",
            "--key",
            "bob.age",
            "--from",
            &alice,
            "-o",
            "out.pdf",
            "brief.atch",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(d.join("out.pdf")).unwrap(), data);

    let refused = |args: &[&str], passphrase: &str, code: i32, message: &str| {
        let out = attache(d, passphrase, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!d.join("x").exists(), "no output left behind");
        let partials = std::fs::read_dir(d).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".partial-")
        });
        assert_eq!(partials.count(), 0);
    };
    refused(
        &["open", "--key", "eve.age", "-o", "x", "brief.atch"],
        "pw",
        3,
        "not sealed to your identity",
    );
    refused(
        &["open", "--key", "bob.age", "-o", "x", "brief.atch"],
        "nope",
        4,
        "wrong passphrase",
    );
    refused(
        &[
            "open",
            "--key",
            "bob.age",
            "--from",
            &bob,
            "-o",
            "x",
            "brief.atch",
        ],
        "pw",
        3,
        "signed by someone other than the expected sender",
    );
    let mut tampered = std::fs::read(d.join("brief.atch")).unwrap();
    tampered[100_000] ^= 1;
    std::fs::write(d.join("bad.atch"), tampered).unwrap();
    refused(
        &["open", "--key", "bob.age", "-o", "x", "bad.atch"],
        "pw",
        3,
        "chunk 1 does not match the signed manifest",
    );
    refused(
        &["open", "--key", "missing.age", "-o", "x", "bad.atch"],
        "pw",
        1,
        "attache identity new",
    );
    let out = attache(
        d,
        "pw",
        &[
            "seal",
            "--to",
            "nonsense",
            "--key",
            "alice.age",
            "-o",
            "x",
            "brief.pdf",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid public key text"));
    let out = attache(d, "pw", &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
