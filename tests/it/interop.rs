//! Interoperability with the reference Go `age` command-line tool: key files and key packages
//! that attache writes open with `age`, and files that `age` writes open with attache.
//!
//! `age` reads passphrases only from a terminal, so those runs go through util-linux `script`,
//! which gives the command a pseudo-terminal and types its standard input into it. Without the
//! tools the tests print a skip line, except on CI (`CI=true`), where they fail.

#![cfg(unix)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use attache::crypto::{
    ContentKey, Identity, KeyFileError, KeyPackageError, danger, open_key_file, open_key_package,
    seal_key_file, seal_key_package,
};

use crate::support;

/// scrypt work factor for key files written here: the lowest attache allows, for speed.
const WORK_FACTOR: u8 = 10;
const PASSPHRASE: &str = "correct horse battery staple";
/// The first 8 bytes of a key package's 56-byte payload.
const KEY_PACKAGE_MAGIC: &[u8; 8] = b"ATCHKEY\x01";

/// The external programs these tests drive.
struct Tools {
    age: PathBuf,
    age_keygen: PathBuf,
    script: PathBuf,
}

/// The first executable file called `name` on `PATH`, as `which` finds it.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `age`, `age-keygen` and `script`, or `None` (after printing why) when one is missing
/// outside CI. On CI (`CI=true`) a missing tool fails the test.
fn tools(test: &str) -> Option<Tools> {
    const NAMES: [&str; 3] = ["age", "age-keygen", "script"];
    let found = NAMES.map(find_in_path);
    if let [Some(age), Some(age_keygen), Some(script)] = found {
        return Some(Tools {
            age,
            age_keygen,
            script,
        });
    }
    let missing: Vec<&str> = NAMES
        .into_iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| name)
        .collect();
    let missing = missing.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "interop: {missing} not found on PATH; CI must install the Debian packages `age` \
             and `util-linux`"
        );
    }
    println!("interop: skipping {test}: {missing} not found on PATH");
    None
}

/// `path` quoted for `sh -c`.
fn shell_quote(path: &Path) -> String {
    format!(
        "'{}'",
        path.to_str()
            .expect("temporary paths are UTF-8")
            .replace('\'', r"'\''")
    )
}

/// Runs `command` and returns its output, failing the test (with stderr) if it fails.
fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `age` with `args` on a pseudo-terminal, typing `typed` (one passphrase per line) into
/// it, and returns the exit status's success and everything the terminal showed.
fn run_on_tty(tools: &Tools, args: &[&Path], typed: &str) -> (bool, String) {
    let command: Vec<String> = std::iter::once(tools.age.as_path())
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect();
    let mut child = Command::new(&tools.script)
        .args(["-q", "-e", "-c", &command.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start `script`");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(typed.as_bytes())
        .expect("type into the terminal");
    let output = child.wait_with_output().expect("wait for `script`");
    let shown = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
    (output.status.success(), shown)
}

/// Like [`run_on_tty`], failing the test if `age` fails.
fn run_on_tty_ok(tools: &Tools, args: &[&Path], typed: &str) {
    let (ok, shown) = run_on_tty(tools, args, typed);
    assert!(ok, "age {args:?} on a terminal failed:\n{shown}");
}

/// Writes `identity` as a key file under [`PASSPHRASE`], decrypts it with `age -d` into
/// `dir/identity.txt` and returns that path and its text.
fn key_file_through_age(tools: &Tools, dir: &Path, identity: &Identity) -> (PathBuf, String) {
    let sealed = dir.join("identity.age");
    let plain = dir.join("identity.txt");
    std::fs::write(
        &sealed,
        seal_key_file(identity, PASSPHRASE, WORK_FACTOR).expect("seal the key file"),
    )
    .expect("write the key file");
    let args = [Path::new("-d"), Path::new("-o"), &plain, &sealed];
    run_on_tty_ok(tools, &args, &format!("{PASSPHRASE}\n"));
    let text = std::fs::read_to_string(&plain).expect("age wrote the decrypted key file");
    (plain, text)
}

/// The 56-byte payload of a key package: magic, item id, content key.
fn key_package_payload(item_id: &[u8; 16], key: &ContentKey) -> Vec<u8> {
    [
        &KEY_PACKAGE_MAGIC[..],
        item_id,
        &danger::content_key_bytes(key),
    ]
    .concat()
}

/// A fresh X25519 key from `age-keygen` in `dir/other.txt`, returning its recipient.
fn other_recipient(tools: &Tools, dir: &Path) -> String {
    let key = dir.join("other.txt");
    run(Command::new(&tools.age_keygen).arg("-o").arg(&key));
    let public = run(Command::new(&tools.age_keygen).arg("-y").arg(&key));
    String::from_utf8(public.stdout)
        .expect("age-keygen prints ASCII")
        .trim_end()
        .to_owned()
}

/// Encrypts `plain` with `age -r` to each of `recipients` (armored if `armor`).
fn age_encrypt_to(
    tools: &Tools,
    dir: &Path,
    plain: &[u8],
    recipients: &[&str],
    armor: bool,
) -> Vec<u8> {
    let input = dir.join("plain.bin");
    let output = dir.join("encrypted.age");
    std::fs::write(&input, plain).expect("write the plaintext");
    let mut command = Command::new(&tools.age);
    for recipient in recipients {
        command.arg("-r").arg(recipient);
    }
    if armor {
        command.arg("-a");
    }
    run(command.arg("-o").arg(&output).arg(&input));
    std::fs::read(&output).expect("age wrote the encrypted file")
}

#[test]
fn key_file_opens_with_age() {
    let Some(tools) = tools("key_file_opens_with_age") else {
        return;
    };
    let dir = support::temp_dir();
    let identity = support::identity(40);
    let (plain, text) = key_file_through_age(&tools, dir.path(), &identity);

    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "# attache identity v1");
    assert!(lines[1].starts_with("# ed25519-seed: "), "{text}");
    let secret = lines[2];
    assert!(
        secret.starts_with("AGE-SECRET-KEY-1"),
        "last line is not an age key"
    );
    assert!(text.ends_with('\n'));

    let expected = identity.public().age_recipient();
    let parsed: age::x25519::Identity = secret.parse().unwrap();
    assert_eq!(parsed.to_public().to_string(), expected);
    let keygen = run(Command::new(&tools.age_keygen).arg("-y").arg(&plain));
    assert_eq!(
        String::from_utf8(keygen.stdout).unwrap(),
        format!("{expected}\n")
    );
}

#[test]
fn key_package_opens_with_age() {
    let Some(tools) = tools("key_package_opens_with_age") else {
        return;
    };
    let dir = support::temp_dir();
    let identity = support::identity(41);
    let (identity_file, _) = key_file_through_age(&tools, dir.path(), &identity);

    let key = ContentKey::generate().unwrap();
    let item_id = [0xa7; 16];
    let package = dir.path().join("package.age");
    let opened = dir.path().join("package.bin");
    std::fs::write(
        &package,
        seal_key_package(&key, &item_id, identity.public()).unwrap(),
    )
    .unwrap();
    run(Command::new(&tools.age)
        .arg("-d")
        .arg("-i")
        .arg(&identity_file)
        .arg("-o")
        .arg(&opened)
        .arg(&package));
    let payload = std::fs::read(&opened).unwrap();
    assert_eq!(payload.len(), 56);
    assert_eq!(payload, key_package_payload(&item_id, &key));
    assert_eq!(payload[24..], danger::content_key_bytes(&key));
}

#[test]
fn age_key_packages_open_with_attache() {
    let Some(tools) = tools("age_key_packages_open_with_attache") else {
        return;
    };
    let dir = support::temp_dir();
    let identity = support::identity(42);
    let me = identity.public().age_recipient();
    let other = other_recipient(&tools, dir.path());
    let key = ContentKey::generate().unwrap();
    let item_id = [0x3c; 16];
    let payload = key_package_payload(&item_id, &key);

    // To this identity alone, binary and armored, and to it among others: all open.
    for (recipients, armor) in [
        (vec![me.as_str()], false),
        (vec![me.as_str()], true),
        (vec![other.as_str(), me.as_str()], false),
    ] {
        let package = age_encrypt_to(&tools, dir.path(), &payload, &recipients, armor);
        let opened = open_key_package(&package, &identity, &item_id).unwrap();
        assert_eq!(
            danger::content_key_bytes(&opened),
            danger::content_key_bytes(&key),
            "recipients {recipients:?}, armor {armor}"
        );
    }

    // To someone else: not for this identity.
    let package = age_encrypt_to(&tools, dir.path(), &payload, &[other.as_str()], false);
    assert_eq!(
        open_key_package(&package, &identity, &item_id).unwrap_err(),
        KeyPackageError::NotForThisIdentity
    );
}

#[test]
fn age_passphrase_file_opens_as_key_file() {
    let Some(tools) = tools("age_passphrase_file_opens_as_key_file") else {
        return;
    };
    let dir = support::temp_dir();
    let identity = support::identity(43);
    // The key-file text as age itself decrypted it, re-encrypted by `age -p` (armored, at
    // age's own work factor).
    let (plain, _) = key_file_through_age(&tools, dir.path(), &identity);
    let sealed = dir.path().join("by-age.age");
    let passphrase = "an age-made passphrase";
    let args = [
        Path::new("-p"),
        Path::new("-a"),
        Path::new("-o"),
        &sealed,
        &plain,
    ];
    run_on_tty_ok(&tools, &args, &format!("{passphrase}\n{passphrase}\n"));
    let file = std::fs::read(&sealed).unwrap();
    assert!(file.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));

    let opened = open_key_file(&file, passphrase).unwrap();
    assert_eq!(opened.public(), identity.public());
    assert_eq!(
        open_key_file(&file, PASSPHRASE).unwrap_err(),
        KeyFileError::WrongPassphrase
    );
}
