//! Rule checks over the source tree, run as ordinary tests: the architecture invariants of
//! `src/lib.rs` and the hygiene rules that a compiler lint cannot express.

use std::path::{Path, PathBuf};

use crate::support::repo_root;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Source text without `//` comments and without the `#[cfg(test)]` module at the end.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn violations(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in rust_files(&repo_root().join(dir)) {
        let code = code_of(&path);
        for pattern in forbidden {
            if code.contains(pattern) {
                found.push(format!("{} uses `{pattern}`", path.display()));
            }
        }
    }
    found
}

/// What a pure module may not touch: files, sockets, processes, environment, clock, async.
const IMPURE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "SystemTime",
    "Instant",
    "tokio",
    "async ",
    ".await",
    "println!",
    "eprintln!",
];

#[test]
fn wire_is_pure_and_imports_nothing_of_the_crate() {
    let mut found = violations("src/wire", IMPURE);
    found.extend(violations("src/wire", &["crate::"]));
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn crypto_is_pure_and_imports_only_wire() {
    let mut found = violations("src/crypto", IMPURE);
    for path in rust_files(&repo_root().join("src/crypto")) {
        let code = code_of(&path);
        for (i, _) in code.match_indices("crate::") {
            if !code[i..].starts_with("crate::wire") {
                found.push(format!(
                    "{} imports {}",
                    path.display(),
                    &code[i..(i + 30).min(code.len())]
                ));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn every_module_says_what_it_owns() {
    let mut missing = Vec::new();
    for path in rust_files(&repo_root().join("src")) {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.starts_with("//!") {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a `//!` header: {missing:#?}"
    );
}

#[test]
fn the_seeded_generator_is_never_a_default() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let default = manifest
        .lines()
        .find(|l| l.starts_with("default = "))
        .expect("a default feature list");
    assert!(!default.contains("danger"), "{default}");
    let crypto = std::fs::read_to_string(repo_root().join("src/crypto/mod.rs")).unwrap();
    assert!(crypto.contains("#[cfg(feature = \"danger-test-vectors\")]\npub mod danger;"));
}

#[test]
fn no_unsafe_and_no_secret_formatting_in_the_library() {
    let lib = std::fs::read_to_string(repo_root().join("src/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    // Secret-holding types implement Debug by hand and never Display.
    let mut found = violations(
        "src",
        &[
            "impl fmt::Display for Identity",
            "impl fmt::Display for ContentKey",
        ],
    );
    for path in rust_files(&repo_root().join("src/crypto")) {
        let code = code_of(&path);
        for ty in ["pub struct Identity", "pub struct ContentKey"] {
            if let Some(i) = code.find(ty) {
                let before = &code[i.saturating_sub(200)..i];
                if before.contains("derive(") && before.rfind("derive(") > before.rfind("///") {
                    found.push(format!("{} derives traits on {ty}", path.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// `unwrap()` only in unit tests: library and server code returns errors (and the few
/// `expect`s name a local invariant).
#[test]
fn no_unwrap_outside_the_unit_tests() {
    let found = violations("src", &[".unwrap()"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_server_never_names_a_secret_key_or_an_opening_function() {
    const SECRET_SIDE: &[&str] = &[
        "Identity",
        "ContentKey",
        "ItemOpener",
        "open_item",
        "open_key_package",
        "open_key_file",
        "open_age_file",
        "seal_item",
        "danger",
        "crate::client",
    ];
    let mut found = violations("src/server", SECRET_SIDE);
    found.extend(violations("src/storage", SECRET_SIDE));
    found.extend(violations("src/mail", SECRET_SIDE));
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_client_never_imports_the_server() {
    let found = violations(
        "src/client",
        &["crate::server", "crate::storage", "axum", "sled", "lettre"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn docs_api_md_is_the_route_table() {
    let generated = attache::server::api_markdown();
    let on_disk = std::fs::read_to_string(repo_root().join("docs/API.md")).unwrap();
    assert!(
        on_disk == generated,
        "docs/API.md differs from attache::server::api_markdown(); regenerate it"
    );
    // The OpenAPI document describes exactly the routes of the table.
    let doc = serde_json::to_value(attache::server::openapi()).unwrap();
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let mut table: Vec<String> = attache::server::ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
}

/// `deploy/attache.toml` names every setting of `attache serve --help`, and the server starts
/// with it (paths and the address overridden by flags).
#[test]
fn the_example_configuration_has_every_setting_and_starts() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_attache");
    let example = repo_root().join("deploy/attache.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let keys: Vec<&str> = text
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
        .collect();
    let help = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let flags: Vec<String> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '=']).next())
        .filter(|f| *f != "config" && *f != "help")
        .map(|f| f.replace('-', "_"))
        .collect();
    assert!(flags.len() > 40, "{flags:?}");
    let missing: Vec<&String> = flags
        .iter()
        .filter(|f| !keys.contains(&f.as_str()))
        .collect();
    assert!(missing.is_empty(), "deploy/attache.toml lacks {missing:?}");

    let root = crate::support::temp_dir();
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&example)
        .args(["--listen", "127.0.0.1:0", "--mail-dir"])
        .arg(root.path().join("mail"))
        .arg("--data")
        .arg(root.path().join("data"))
        .arg("--keys")
        .arg(root.path().join("keys"))
        .env_remove("ATTACHE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening on "));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        started,
        "the server did not start with deploy/attache.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
