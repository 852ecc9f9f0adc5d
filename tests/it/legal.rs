//! The legal workflows end to end, as a firm runs them: the real `attache` server on 127.0.0.1
//! with sled on disk and a clock the test moves (`ATTACHE_TEST_CLOCK_FILE`), and the real binary
//! as the attorney's, the client's and co-counsel's CLI. Signature requests with offline
//! evidence, co-counsel grants that end, matters deleted on schedule unless held, exports that
//! Go `age` opens, and an audit log whose tampering `--verify` names.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use attache::crypto::SignedStatement;
use attache::wire::audit::AuditEntry;
use attache::wire::{format_utc, to_hex};

use crate::support::{
    PASSPHRASE, Server, User, content, free_port, identity, invite_url, start_server_with, temp_dir,
};

const ADA: &str = "ada@firm.example";
const CAROL: &str = "carol@client.example";
const COLE: &str = "cole@cocounsel.example";
const DAY: i64 = 86_400;

// ---- helpers ----

/// Starts the server with the test clock (offset file `root/clock`, initially 0), a sweep every
/// second and notices sent at once.
fn start(root: &Path, port: u16) -> Server {
    let clock = root.join("clock");
    if !clock.exists() {
        set_clock(root, 0);
    }
    let clock = clock.to_str().unwrap().to_owned();
    start_server_with(
        root,
        port,
        &[
            ("ATTACHE_TEST_CLOCK_FILE", clock.as_str()),
            ("ATTACHE_SWEEP_SECONDS", "1"),
            ("ATTACHE_NOTICE_WINDOW", "0"),
        ],
    )
}

/// Moves the server's clock `secs` seconds ahead of the system clock.
fn set_clock(root: &Path, secs: i64) {
    std::fs::write(root.join("clock"), secs.to_string()).unwrap();
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `t` as RFC 3339 in UTC, to the minute (rounded up so it is never earlier than `t`).
fn rfc3339(t: i64) -> String {
    let t = t + (60 - t.rem_euclid(60)) % 60;
    let shown = format_utc(t);
    format!("{}T{}:00Z", &shown[..10], &shown[11..16])
}

fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The firm's administrator (bootstrap) and a client.
fn firm(root: &Path, server: &Server) -> (User, User) {
    let ada = User::new(root, "ada");
    ada.ok(&[
        "join",
        server.bootstrap.as_deref().unwrap(),
        "--email",
        ADA,
        "--name",
        "Ada Attorney",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    let carol = invited(root, server, &ada, CAROL, "client", "carol");
    (ada, carol)
}

fn invited(root: &Path, server: &Server, by: &User, email: &str, role: &str, dir: &str) -> User {
    let invite = by.ok(&["invite", email, "--role", role]);
    let user = User::new(root, dir);
    user.ok(&[
        "join",
        &invite_url(&invite),
        "--cert-fingerprint",
        &server.certificate,
    ]);
    user
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Polls `check` every 100 ms for at most `secs` seconds.
fn wait_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `.eml` notices written so far.
fn emls(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("data/mail"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Entries of the audit log as `attache audit --json` lists them.
fn audit_entries(user: &User, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    user.json(&all)["entries"].as_array().unwrap().clone()
}

fn has_entry(entries: &[Value], actor: &str, action: &str, object: &str) -> bool {
    entries
        .iter()
        .any(|e| e["actor"] == actor && e["action"] == action && e["object"] == object)
}

/// Every (tree, key, value) of the stopped server's sled database, and every document file of
/// the file blob store (as tree `chunks`, key `version || item id`, value the file).
fn sled_dump(root: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let db = sled::open(root.join("data")).unwrap();
    let mut out = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for r in tree.iter() {
            let (k, v) = r.unwrap();
            out.push((
                String::from_utf8_lossy(&name).into_owned(),
                k.to_vec(),
                v.to_vec(),
            ));
        }
    }
    let files = root.join("data").join("chunks");
    for fan in std::fs::read_dir(&files).into_iter().flatten() {
        for file in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            let file = file.unwrap();
            let mut key = vec![1u8];
            key.extend(id_bytes(&file.file_name().to_string_lossy()));
            out.push(("chunks".into(), key, std::fs::read(file.path()).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn id_bytes(hex: &str) -> Vec<u8> {
    attache::wire::from_hex(hex).unwrap()
}

// ---- signature requests ----

#[test]
fn a_signature_request_is_signed_declined_and_proven_offline() {
    let root = temp_dir();
    let root = root.path();
    let server = start(root, free_port());
    let (ada, carol) = firm(root, &server);

    let matter = ada.json(&["matter", "create", "Estate of Ruth Miller", "--json"]);
    let matter_id = id_of(&matter);
    assert_eq!(matter["name"], "Estate of Ruth Miller");
    assert_eq!(matter["status"], "open");
    let listed = ada.json(&["matter", "list", "--json"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == matter_id.as_str() && m["name"] == "Estate of Ruth Miller"),
        "{listed}"
    );

    let doc = root.join("engagement-letter.pdf");
    let mut letter = content(70_000, 4);
    letter[..12].copy_from_slice(b"%PDF-1.7 ENG");
    std::fs::write(&doc, &letter).unwrap();
    let request = ada.json(&[
        "request-signature",
        "--to",
        CAROL,
        "--deadline",
        &rfc3339(now() + 7 * DAY),
        "--matter",
        &matter_id,
        "--note",
        "Please sign page 4",
        path(&doc),
        "--json",
    ]);
    let id = id_of(&request);
    assert_eq!(request["status"], "pending");
    assert_eq!(request["signer"], CAROL);
    assert_eq!(request["matter"], matter_id.as_str());

    // Carol sees the request, and the document came to her as a message in the matter.
    let theirs = carol.json(&["signatures", "--json"]);
    let seen = theirs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{theirs}"));
    assert_eq!(seen["status"], "pending");
    assert_eq!(seen["requester"], ADA);
    let message = carol.json(&["read", request["message"].as_str().unwrap(), "--json"]);
    assert_eq!(message["body"], "Please sign page 4");
    assert_eq!(message["matter_name"], "Estate of Ruth Miller");
    assert_eq!(message["verified"], true);

    // The notice reached her mailbox, and says nothing of the note, file or matter.
    wait_until("the notice to carol", 10, || {
        emls(root).iter().any(|e| {
            e.contains(&format!("To: {CAROL}")) && e.contains("Subject: You have a secure message")
        })
    });
    for e in emls(root) {
        for secret in ["Please sign page 4", "engagement-letter", "Ruth Miller"] {
            assert!(!e.contains(secret), "a notice names {secret:?}:\n{e}");
        }
    }

    // Without a terminal and without --yes nothing is signed.
    let (code, err) = carol.fails(&["sign", &id, "--name", "Carol Client"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(
        err.contains(&sha256_hex(&letter)),
        "the digest is shown: {err}"
    );

    let (out, err) = carol.ok_both(&["sign", &id, "--name", "Carol Client", "--yes"]);
    assert!(out.contains(&format!("signed request {id}")), "{out}");
    assert!(err.contains(&sha256_hex(&letter)), "{err}");
    let after = carol.json(&["signatures", "--json"]);
    assert_eq!(after[0]["status"], "signed", "{after}");

    // A second answer is refused by the server.
    let (code, err) = carol.fails(&["decline", &id, "--reason", "changed my mind"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already_answered"), "{err}");

    // The requester is told that the request was answered.
    wait_until("the answered notice to ada", 10, || {
        emls(root)
            .iter()
            .any(|e| e.contains(&format!("To: {ADA}")) && e.contains("answered"))
    });

    // A second request, declined.
    let other_doc = root.join("fee-agreement.pdf");
    std::fs::write(&other_doc, content(5_000, 5)).unwrap();
    let declined = id_of(&ada.json(&[
        "request-signature",
        "--to",
        CAROL,
        "--deadline",
        &rfc3339(now() + DAY),
        path(&other_doc),
        "--json",
    ]));
    let (out, _) = carol.ok_both(&["decline", &declined, "--reason", "Fee clause"]);
    assert!(out.contains("declined"), "{out}");

    // Evidence from both sides.
    let bundle = root.join("evidence.json");
    let (out, _) = ada.ok_both(&["evidence", &id, "--out", path(&bundle)]);
    assert!(out.contains("SIGNED by carol@client.example"), "{out}");
    let carol_bundle = root.join("carol-evidence.json");
    carol.ok(&["evidence", &id, "--out", path(&carol_bundle)]);
    let declined_bundle = root.join("declined.json");
    ada.ok(&["evidence", &declined, "--out", path(&declined_bundle)]);

    // Offline: no server, no profile.
    drop(server);
    // The server never held the note, the typed name, the reason or the matter's name.
    let mut leaked = Vec::new();
    for (tree, key, value) in sled_dump(root) {
        for secret in [
            "Please sign page 4",
            "Carol Client",
            "Fee clause",
            "Estate of Ruth Miller",
            "engagement-letter",
        ] {
            if contains(&key, secret.as_bytes()) || contains(&value, secret.as_bytes()) {
                leaked.push(format!("{tree} holds {secret:?}"));
            }
        }
    }
    assert!(leaked.is_empty(), "{leaked:#?}");
    let nobody = User::new(root, "nobody");
    let out = nobody.ok(&["verify-evidence", path(&bundle), "--document", path(&doc)]);
    assert!(out.contains("evidence verified"), "{out}");
    assert!(out.contains("SIGNED by carol@client.example"), "{out}");
    assert!(out.contains(&sha256_hex(&letter)), "{out}");
    assert!(out.contains("is this document"), "{out}");
    assert!(out.contains("Carol Client"), "{out}");
    assert!(out.contains("server key: sha256:"), "{out}");
    let out = nobody.ok(&["verify-evidence", path(&carol_bundle)]);
    assert!(out.contains("no file checked"), "{out}");
    let out = nobody.ok(&["verify-evidence", path(&declined_bundle)]);
    assert!(out.contains("DECLINED by carol@client.example"), "{out}");
    assert!(out.contains("Fee clause"), "{out}");

    // A different document fails with the named check.
    let (code, err) = nobody.fails(&[
        "verify-evidence",
        path(&bundle),
        "--document",
        path(&other_doc),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("document-file"), "{err}");

    // Each field tampered with fails its named check.
    let original: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let statement_bytes = STANDARD
        .decode(original["statement"].as_str().unwrap())
        .unwrap();
    let statement = SignedStatement::parse(&statement_bytes).unwrap();
    let mallory = identity(66);
    let forged = statement
        .unverified_statement()
        .clone()
        .sign(&mallory)
        .unwrap();
    let forged_again = forged.clone();
    let created_at = original["request"]["created_at"].as_i64().unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "format",
            "format",
            Box::new(|v| v["format"] = json!("attache-evidence v9")),
        ),
        (
            "status",
            "format",
            Box::new(|v| v["request"]["status"] = json!("pending")),
        ),
        (
            "request.signer",
            "parties",
            Box::new(|v| v["request"]["signer"] = json!("eve@example.com")),
        ),
        (
            "request.requester",
            "parties",
            Box::new(|v| v["request"]["requester"] = json!("eve@example.com")),
        ),
        (
            "requester.fingerprint",
            "requester-fingerprint",
            Box::new(|v| {
                v["requester"]["fingerprint"] = json!("11111 22222 33333 44444 55555 66666")
            }),
        ),
        (
            "signer.fingerprint",
            "signer-fingerprint",
            Box::new(|v| v["signer"]["fingerprint"] = json!("11111 22222 33333 44444 55555 66666")),
        ),
        (
            "statement bytes",
            "statement-signature",
            Box::new(move |v| {
                let mut b = statement_bytes.clone();
                let n = b.len();
                b[n - 1] ^= 0x40;
                v["statement"] = json!(STANDARD.encode(b));
            }),
        ),
        (
            "statement from another key",
            "statement-signer",
            Box::new(move |v| v["statement"] = json!(STANDARD.encode(forged.to_bytes()))),
        ),
        (
            "signer keys",
            "statement-signer",
            Box::new(move |v| {
                v["signer"]["public_keys"] = json!(identity(67).public().to_text());
                v["signer"]["fingerprint"] = json!(identity(67).fingerprint().to_string());
            }),
        ),
        (
            "request.id",
            "statement-request",
            Box::new(|v| v["request"]["id"] = json!("ab".repeat(16))),
        ),
        (
            "request.status",
            "statement-intent",
            Box::new(|v| v["request"]["status"] = json!("declined")),
        ),
        (
            "document_sha256",
            "document-digest",
            Box::new(|v| v["document_sha256"] = json!("cd".repeat(32))),
        ),
        (
            "audit.attested_at",
            "attestation-signature",
            Box::new(|v| {
                let t = v["audit"]["attested_at"].as_i64().unwrap();
                v["audit"]["attested_at"] = json!(t + 1);
            }),
        ),
        (
            "an audit entry removed",
            "attestation-signature",
            Box::new(|v| {
                v["audit"]["entries"].as_array_mut().unwrap().remove(0);
            }),
        ),
        (
            "audit.server_key",
            "attestation-signature",
            Box::new(|v| v["audit"]["server_key"] = json!(STANDARD.encode([7u8; 32]))),
        ),
        // The request's fields and the parties' emails and keys are attested by the server:
        // moved, replaced or rebuilt around another key pair, they fail its attestation.
        (
            "request.deadline moved before the answer",
            "attestation-signature",
            Box::new(move |v| v["request"]["deadline"] = json!(created_at - 1)),
        ),
        (
            "request.deadline moved later",
            "attestation-signature",
            Box::new(|v| {
                let d = v["request"]["deadline"].as_i64().unwrap();
                v["request"]["deadline"] = json!(d + 30 * DAY);
            }),
        ),
        (
            "the requester's email (request and party)",
            "attestation-signature",
            Box::new(|v| {
                v["request"]["requester"] = json!("eve@firm.example");
                v["requester"]["email"] = json!("eve@firm.example");
            }),
        ),
        (
            "request.document",
            "attestation-signature",
            Box::new(|v| v["request"]["document"] = json!("ef".repeat(16))),
        ),
        (
            "rebuilt around another key pair",
            "attestation-signature",
            Box::new(move |v| {
                v["signer"]["public_keys"] = json!(identity(66).public().to_text());
                v["signer"]["fingerprint"] = json!(identity(66).fingerprint().to_string());
                v["statement"] = json!(STANDARD.encode(forged_again.to_bytes()));
            }),
        ),
    ];
    let tampered = root.join("tampered.json");
    let mut named = Vec::new();
    for (field, check, edit) in &cases {
        let mut v = original.clone();
        edit(&mut v);
        std::fs::write(&tampered, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let (code, err) = nobody.fails(&["verify-evidence", path(&tampered)]);
        assert_eq!(code, 3, "{field}: {err}");
        assert!(
            err.contains(&format!("{check}:")),
            "{field}: expected `{check}`, got {err}"
        );
        named.push(format!("{field} -> {check}"));
    }
    println!("tampered fields and the checks that caught them: {named:#?}");
}

#[test]
fn an_expired_request_cannot_be_signed() {
    let root = temp_dir();
    let root = root.path();
    let server = start(root, free_port());
    let (ada, carol) = firm(root, &server);
    let doc = root.join("nda.pdf");
    std::fs::write(&doc, content(3_000, 6)).unwrap();
    let id = id_of(&ada.json(&[
        "request-signature",
        "--to",
        CAROL,
        "--deadline",
        &rfc3339(now() + 3600),
        path(&doc),
        "--json",
    ]));

    // Refused before anything is sent: only the signer signs; names and files must exist.
    let (code, err) = ada.fails(&["sign", &id, "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("request {id} asks {CAROL} to sign, not {ADA}")),
        "{err}"
    );
    let (code, err) = ada.fails(&["matter", "create", "  "]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("a matter's name must be 1 to 1024 bytes"),
        "{err}"
    );
    let missing = root.join("missing.pdf");
    let (code, err) = ada.fails(&[
        "request-signature",
        "--to",
        CAROL,
        "--deadline",
        &rfc3339(now() + 3600),
        path(&missing),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a file"), "{err}");
    let (code, err) = ada.fails(&[
        "request-signature",
        "--to",
        CAROL,
        "--deadline",
        "tomorrow",
        path(&doc),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not an RFC 3339 time"), "{err}");

    // On a terminal the signer is asked; "n" signs nothing.
    if let Some((_, script)) = go_age("sign on a terminal") {
        let command = format!(
            "{} sign {id} --name 'Carol Client'",
            env!("CARGO_BIN_EXE_attache")
        );
        let mut child = std::process::Command::new(script)
            .env("ATTACHE_HOME", &carol.home)
            .env("ATTACHE_PASSPHRASE", PASSPHRASE)
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let shown = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(
            shown.contains("sign this document as \"Carol Client\"? [y/N]"),
            "{shown}"
        );
        assert!(shown.contains("cancelled: nothing was signed"), "{shown}");
        assert_eq!(
            carol.json(&["signatures", "--json"])[0]["status"],
            "pending"
        );
    }

    set_clock(root, 2 * 3600);
    let listed = carol.json(&["signatures", "--json"]);
    assert_eq!(listed[0]["status"], "expired", "{listed}");
    let (code, err) = carol.fails(&["sign", &id, "--yes"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("410 request_expired"), "{err}");
    assert!(err.contains("deadline has passed"), "the hint: {err}");
    let (code, err) = ada.fails(&["evidence", &id, "--out", path(&root.join("e.json"))]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not_answered"), "{err}");
    drop(server);
}

// ---- co-counsel grants ----

#[test]
fn co_counsel_access_ends_at_expiry_and_on_revocation() {
    let root = temp_dir();
    let root = root.path();
    let port = free_port();
    let server = start(root, port);
    let (ada, carol) = firm(root, &server);
    let cole = invited(root, &server, &ada, COLE, "cocounsel", "cole");
    let matter = id_of(&ada.json(&["matter", "create", "Doe v. Roe", "--json"]));

    let exhibit = content(150_000, 7);
    let exhibit_path = root.join("exhibit-a.pdf");
    std::fs::write(&exhibit_path, &exhibit).unwrap();
    let msg = id_of(&ada.json(&[
        "send",
        "--matter",
        &matter,
        "--to",
        CAROL,
        "--subject",
        "Exhibits",
        "--body",
        "Exhibit A attached",
        path(&exhibit_path),
        "--json",
    ]));
    let memo = content(20_000, 8);
    let memo_path = root.join("memo.pdf");
    std::fs::write(&memo_path, &memo).unwrap();
    let msg2 = id_of(&ada.json(&[
        "send",
        "--matter",
        &matter,
        "--to",
        CAROL,
        "--subject",
        "Memo",
        path(&memo_path),
        "--json",
    ]));
    let read2 = ada.json(&["read", &msg2, "--json"]);
    let memo_item = read2["documents"][0]["item"].as_str().unwrap().to_owned();
    let read1 = ada.json(&["read", &msg, "--json"]);
    let exhibit_item = read1["documents"][0]["item"].as_str().unwrap().to_owned();

    // Grant 1: the message with its document, for one day.
    let grant1 = ada.json(&[
        "share",
        &msg,
        "--with",
        COLE,
        "--until",
        &rfc3339(now() + DAY),
        "--json",
    ]);
    let grant1_id = id_of(&grant1);
    assert_eq!(grant1["items"].as_array().unwrap().len(), 2, "{grant1}");
    assert_eq!(
        grant1["matter"],
        matter.as_str(),
        "a message's matter is the grant's"
    );
    // Grant 2: one document, for a month.
    let grant2_id = id_of(&ada.json(&[
        "share",
        &memo_item,
        "--with",
        COLE,
        "--until",
        &rfc3339(now() + 30 * DAY),
        "--matter",
        &matter,
        "--json",
    ]));
    // Clients may not grant.
    let (code, err) = carol.fails(&[
        "share",
        &msg,
        "--with",
        COLE,
        "--until",
        &rfc3339(now() + DAY),
    ]);
    assert_ne!(code, 0, "{err}");

    // Every grant is checked against the attorney's pinned key, by both sides.
    for user in [&cole, &ada] {
        let grants = user.json(&["grants", "--json"]);
        let grants = grants.as_array().unwrap();
        assert_eq!(grants.len(), 2, "{grants:?}");
        for g in grants {
            assert_eq!(g["verified"], true, "{g}");
            assert_eq!(g["status"], "active", "{g}");
        }
    }

    // Co-counsel reads before the end.
    let read = cole.json(&["read", &msg, "--json"]);
    assert_eq!(read["body"], "Exhibit A attached");
    let got = root.join("cole-1");
    std::fs::create_dir_all(&got).unwrap();
    cole.ok(&["download", &msg, "--out", path(&got)]);
    assert!(std::fs::read(got.join("exhibit-a.pdf")).unwrap() == exhibit);
    cole.ok(&["download", &memo_item, "--out", path(&got)]);
    assert!(std::fs::read(got.join("memo.pdf")).unwrap() == memo);

    // Revoked: refused at once, with the date.
    ada.ok(&["revoke", &grant2_id]);
    let denied = root.join("cole-2");
    std::fs::create_dir_all(&denied).unwrap();
    let (code, err) = cole.fails(&["download", &memo_item, "--out", path(&denied)]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("access expired on "), "{err}");

    // Expired: the server's clock passes the end of grant 1.
    set_clock(root, 2 * DAY);
    let (code, err) = cole.fails(&["read", &msg]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("access expired on "), "{err}");
    let (code, err) = cole.fails(&["download", &exhibit_item, "--out", path(&denied)]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("access expired on "), "{err}");
    assert_eq!(
        std::fs::read_dir(&denied).unwrap().count(),
        0,
        "nothing released"
    );

    // The sweeper cuts grant 1 off; the audit log shows every step.
    wait_until("the sweeper to expire grant 1", 20, || {
        has_entry(
            &audit_entries(&ada, &[]),
            "server",
            "grant.expire",
            &grant1_id,
        )
    });
    let log = audit_entries(&ada, &[]);
    for (actor, action, object) in [
        (ADA, "grant.create", grant1_id.as_str()),
        (ADA, "grant.create", grant2_id.as_str()),
        (COLE, "key_package.release", exhibit_item.as_str()),
        (COLE, "ciphertext.release", exhibit_item.as_str()),
        (COLE, "ciphertext.release", memo_item.as_str()),
        (ADA, "grant.revoke", grant2_id.as_str()),
        ("server", "grant.expire", grant1_id.as_str()),
    ] {
        assert!(
            has_entry(&log, actor, action, object),
            "no {action} by {actor} on {object} in {log:#?}"
        );
    }
    let statuses = cole.json(&["grants", "--json"]);
    for g in statuses.as_array().unwrap() {
        let want = if g["id"] == grant1_id.as_str() {
            "expired"
        } else {
            "revoked"
        };
        assert_eq!(g["status"], want, "{g}");
    }
    ada.ok(&["audit", "--verify"]);
    ada.ok(&["audit", "--verify", "--matter", &matter]);

    // The grantee's key packages are gone from storage; the others' remain.
    drop(server);
    let dump = sled_dump(root);
    let packages: Vec<&(String, Vec<u8>, Vec<u8>)> = dump
        .iter()
        .filter(|(t, _, _)| t == "key_packages")
        .collect();
    let mut kept = 0;
    for (_, key, _) in &packages {
        assert!(
            !key.ends_with(COLE.as_bytes()),
            "a key package of co-counsel is left: {key:?}"
        );
        if key.len() > 17 && key[1..17] == id_bytes(&exhibit_item)[..] {
            kept += 1;
        }
    }
    assert_eq!(
        kept, 2,
        "the attorney's and the client's packages of the exhibit remain"
    );

    // A server that widens a grant behind the attorney's back is caught: the signed statement
    // still says the old end.
    {
        let db = sled::open(root.join("data")).unwrap();
        let grants = db.open_tree("grants").unwrap();
        let key = [&[1u8][..], &id_bytes(&grant1_id)].concat();
        let stored = grants.get(&key).unwrap().expect("grant 1 is stored");
        let mut record: Value = serde_json::from_slice(&stored[1..]).unwrap();
        let until = record["until"].as_i64().unwrap();
        record["until"] = json!(until + 365 * DAY);
        let mut widened = vec![stored[0]];
        widened.extend(serde_json::to_vec(&record).unwrap());
        grants.insert(&key, widened).unwrap();
        db.flush().unwrap();
    }
    let _server = start(root, port);
    for user in [&cole, &ada] {
        let listed = user.json(&["grants", "--json"]);
        let g = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == grant1_id.as_str())
            .unwrap()
            .clone();
        assert_eq!(g["verified"], false, "{g}");
        assert_eq!(
            g["problem"],
            "unexpected answer from the server: the server's grant differs from the signed \
             statement (end)"
        );
        let (out, _) = user.ok_both(&["grants"]);
        assert!(out.contains("NOT VERIFIED"), "{out}");
    }
}

// ---- matters: retention, hold, export ----

#[test]
fn closed_matters_are_deleted_after_retention_unless_held() {
    let root = temp_dir();
    let root = root.path();
    let server = start(root, free_port());
    let (ada, carol) = firm(root, &server);
    let doomed = id_of(&ada.json(&["matter", "create", "Closed estate", "--json"]));
    let held = id_of(&ada.json(&["matter", "create", "Litigation on hold", "--json"]));
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut messages = Vec::new();
    for (matter, name) in [(&doomed, "will.pdf"), (&held, "complaint.pdf")] {
        let file = root.join(name);
        std::fs::write(&file, content(90_000, name.len() as u8)).unwrap();
        let msg = id_of(&ada.json(&[
            "send",
            "--matter",
            matter,
            "--to",
            CAROL,
            "--subject",
            name,
            path(&file),
            "--json",
        ]));
        let view = ada.json(&["read", &msg, "--json"]);
        assert_eq!(view["matter"], matter.as_str());
        ids.push((
            matter.to_string(),
            view["item"].as_str().unwrap().to_owned(),
        ));
        ids.push((
            matter.to_string(),
            view["documents"][0]["item"].as_str().unwrap().to_owned(),
        ));
        messages.push(msg);
    }

    let (out, _) = ada.ok_both(&["matter", "close", &doomed, "--retain-days", "1"]);
    assert!(out.contains("will be deleted after"), "{out}");
    ada.ok(&["matter", "close", &held, "--retain-days", "1"]);
    let (out, _) = ada.ok_both(&["matter", "hold", &held]);
    assert!(out.contains("legal hold set"), "{out}");
    let status = |id: &str| -> Value {
        ada.json(&["matter", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(status(&doomed)["status"], "closed");
    assert_eq!(status(&held)["hold"], true);
    // Nothing new may be filed in a closed matter.
    let (code, err) = ada.fails(&["send", "--matter", &doomed, "--to", CAROL, "--body", "late"]);
    assert_ne!(code, 0, "{err}");

    // Two days later the sweeper deletes the closed matter; the held one stays whole.
    set_clock(root, 2 * DAY + 60);
    wait_until("the closed matter's deletion", 30, || {
        status(&doomed)["status"] == "deleted"
    });
    assert_eq!(status(&held)["status"], "closed");
    let (code, err) = carol.fails(&["read", &messages[0]]);
    assert_ne!(code, 0, "{err}");
    let kept = root.join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    carol.ok(&["download", &messages[1], "--out", path(&kept)]);
    assert!(kept.join("complaint.pdf").exists());
    let log = audit_entries(&ada, &["--matter", &doomed]);
    // The deletion is recorded with what it removed.
    let deletion = log
        .iter()
        .find(|e| e["action"] == "matter.delete" && e["actor"] == "server")
        .unwrap_or_else(|| panic!("{log:#?}"));
    let object = deletion["object"].as_str().unwrap();
    assert!(object.starts_with(&doomed), "{object}");
    assert!(object.contains("items=2"), "{object}");
    ada.ok(&["audit", "--verify", "--matter", &doomed]);

    // Released, the held matter goes too.
    let (out, _) = ada.ok_both(&["matter", "release", &held]);
    assert!(out.contains("released"), "{out}");
    wait_until("the released matter's deletion", 30, || {
        status(&held)["status"] == "deleted"
    });
    let log = audit_entries(&ada, &["--matter", &held]);
    for action in ["matter.hold", "matter.release", "matter.delete"] {
        assert!(
            log.iter().any(|e| e["action"] == action),
            "{action}: {log:#?}"
        );
    }

    // Nothing of either matter's items is left anywhere in the database but the audit log,
    // while a message outside them keeps its chunk and key packages (so the scan below covers
    // those trees).
    ada.ok(&["send", "--to", CAROL, "--body", "outside any matter"]);
    drop(server);
    let dump = sled_dump(root);
    let mut hits = Vec::new();
    for (tree, key, value) in &dump {
        if tree.starts_with("audit") || tree == "checkpoints" {
            continue;
        }
        for (matter, item) in &ids {
            let raw = id_bytes(item);
            if contains(key, &raw) || contains(value, &raw) || contains(value, item.as_bytes()) {
                hits.push(format!(
                    "tree {tree} still holds item {item} of matter {matter}"
                ));
            }
        }
    }
    let scanned: std::collections::BTreeSet<&str> =
        dump.iter().map(|(t, _, _)| t.as_str()).collect();
    println!("scanned trees {scanned:?}: {} hits", hits.len());
    assert!(scanned.contains("chunks") && scanned.contains("key_packages"));
    assert!(hits.is_empty(), "{hits:#?}");
}

#[test]
fn a_matter_exports_checked_documents_the_thread_and_its_audit_log_and_go_age_opens_it() {
    let root = temp_dir();
    let root = root.path();
    let server = start(root, free_port());
    let (ada, carol) = firm(root, &server);
    let matter = id_of(&ada.json(&["matter", "create", "Smith adoption", "--json"]));
    let report = content(200_000, 9);
    let file = root.join("home-study.pdf");
    std::fs::write(&file, &report).unwrap();
    let msg = id_of(&ada.json(&[
        "send",
        "--matter",
        &matter,
        "--to",
        CAROL,
        "--subject",
        "Home study",
        "--body",
        "The report is attached.",
        path(&file),
        "--json",
    ]));
    carol.ok(&["reply", &msg, "--body", "Received, thank you."]);

    let plain = root.join("export-plain");
    let (out, err) = ada.ok_both(&["matter", "export", &matter, "--out", path(&plain)]);
    assert!(out.contains("2 message(s)"), "{out}\n{err}");
    assert!(std::fs::read(plain.join("documents/home-study.pdf")).unwrap() == report);
    let thread = std::fs::read_to_string(plain.join("thread.txt")).unwrap();
    for text in [
        "Smith adoption",
        "Home study",
        "The report is attached.",
        "Received, thank you.",
    ] {
        assert!(thread.contains(text), "{text}: {thread}");
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(plain.join("export.json")).unwrap()).unwrap();
    assert_eq!(summary["documents"][0]["sha256"], sha256_hex(&report));
    assert_eq!(
        summary["failures"].as_array().unwrap().len(),
        0,
        "{summary}"
    );
    let audit: attache::wire::api::AuditLog =
        serde_json::from_slice(&std::fs::read(plain.join("audit.json")).unwrap()).unwrap();
    assert!(!audit.entries.is_empty());
    assert!(
        !audit.checkpoints.is_empty(),
        "the export carries signed heads"
    );

    let sealed = root.join("export-age");
    ada.ok(&["matter", "export", &matter, "--out", path(&sealed), "--age"]);
    let age_file = sealed.join("documents/home-study.pdf.age");
    assert!(age_file.exists());
    assert!(!sealed.join("documents/home-study.pdf").exists());
    assert!(!sealed.join("thread.txt").exists() && !sealed.join("export.json").exists());
    let me = attache::crypto::open_key_file(
        &std::fs::read(ada.home.join("key.age")).unwrap(),
        PASSPHRASE,
    )
    .unwrap();
    let thread = attache::crypto::open_sealed(
        &std::fs::read(sealed.join("thread.txt.age")).unwrap(),
        &me,
        1 << 20,
        1 << 20,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&thread).contains("Received, thank you."));
    assert!(sealed.join("export.json.age").exists() && sealed.join("audit.json").exists());
    drop(server);

    // Go age opens it with the attorney's own key, years later, without Attache.
    let Some(tools) = go_age("matter export --age") else {
        return;
    };
    let identity_txt = root.join("identity.txt");
    let command = format!(
        "{} -d -o {} {}",
        tools.0.display(),
        shell_quote(&identity_txt),
        shell_quote(&ada.home.join("key.age"))
    );
    let mut child = std::process::Command::new(&tools.1)
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSPHRASE}\n").as_bytes())
        .unwrap();
    let shown = child.wait_with_output().unwrap();
    assert!(shown.status.success(), "age -d of the key file: {shown:?}");
    let opened = root.join("opened.pdf");
    let status = std::process::Command::new(&tools.0)
        .args([
            "-d",
            "-i",
            path(&identity_txt),
            "-o",
            path(&opened),
            path(&age_file),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(&opened).unwrap() == report);
}

/// Go `age` and util-linux `script` (for the passphrase prompt), or `None` outside CI.
fn go_age(test: &str) -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("age"), find("script")) {
        (Some(age), Some(script)) => Some((age, script)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: Go `age` and `script` must be installed on CI")
        }
        _ => {
            println!("legal: skipping the Go age part of {test}: age or script not found");
            None
        }
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", path(p).replace('\'', r"'\''"))
}

// ---- the audit chain ----

#[test]
fn altered_removed_or_reordered_audit_entries_are_named_by_verify() {
    let root = temp_dir();
    let root = root.path();
    let port = free_port();
    let server = start(root, port);
    let (ada, carol) = firm(root, &server);
    let matter = id_of(&ada.json(&["matter", "create", "Audit trail", "--json"]));
    let file = root.join("brief.pdf");
    std::fs::write(&file, content(10_000, 10)).unwrap();
    for subject in ["one", "two"] {
        let msg = id_of(&ada.json(&[
            "send",
            "--matter",
            &matter,
            "--to",
            CAROL,
            "--subject",
            subject,
            path(&file),
            "--json",
        ]));
        carol.ok(&["read", &msg]);
    }
    let (out, _) = ada.ok_both(&["audit", "--verify"]);
    assert!(out.contains("chain intact"), "{out}");
    ada.ok(&["audit", "--verify", "--matter", &matter]);
    drop(server);

    let original = audit_tree(root);
    let entries: Vec<AuditEntry> = original
        .iter()
        .map(|(_, v)| AuditEntry::from_stored(v).unwrap())
        .collect();
    let mine: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].matter.as_deref() == Some(matter.as_str()))
        .collect();
    assert!(mine.len() >= 3, "{entries:#?}");
    // An entry of the matter that is neither its last nor the log's last.
    let altered = mine[1];
    let next_in_matter = entries[mine[2]].seq;
    // Two neighbours outside any matter, early in the log.
    let k = (1..entries.len() - 2)
        .find(|&i| entries[i].matter.is_none() && entries[i + 1].matter.is_none())
        .unwrap();

    let check = |what: &str, change: &dyn Fn(&sled::Tree), expect: &[(&[&str], &str)]| {
        restore_audit(root, &original);
        {
            let db = sled::open(root.join("data")).unwrap();
            change(&db.open_tree("audit").unwrap());
            db.flush().unwrap();
        }
        let server = start(root, port);
        for (args, needle) in expect {
            let mut all = vec!["audit", "--verify"];
            all.extend_from_slice(args);
            let (code, err) = ada.fails(&all);
            assert_eq!(code, 3, "{what}: {err}");
            assert!(err.contains(needle), "{what}: expected {needle:?} in {err}");
            println!("{what}: {}", err.lines().next().unwrap_or_default());
        }
        drop(server);
    };

    check(
        "an entry altered",
        &|tree| {
            let mut e = entries[altered].clone();
            e.actor = "mallory@example.com".into();
            tree.insert(&original[altered].0, e.to_stored()).unwrap();
        },
        &[
            (
                &[],
                &format!("entry {}: prev does not match", entries[altered].seq + 1),
            ),
            (
                &["--matter", &matter],
                &format!("entry {next_in_matter}: matter_prev does not match"),
            ),
        ],
    );
    check(
        "an entry removed",
        &|tree| {
            tree.remove(&original[k].0).unwrap();
        },
        &[(
            &[],
            &format!(
                "has seq {}, expected {}",
                entries[k].seq + 1,
                entries[k].seq
            ),
        )],
    );
    check(
        "two entries swapped",
        &|tree| {
            tree.insert(&original[k].0, original[k + 1].1.clone())
                .unwrap();
            tree.insert(&original[k + 1].0, original[k].1.clone())
                .unwrap();
        },
        &[(
            &[],
            &format!(
                "has seq {}, expected {}",
                entries[k].seq + 1,
                entries[k].seq
            ),
        )],
    );

    // Put back as it was, the log verifies again.
    restore_audit(root, &original);
    let server = start(root, port);
    ada.ok(&["audit", "--verify"]);
    ada.ok(&["audit", "--verify", "--matter", &matter]);
    drop(server);

    // The newest entries cut off: the chain that is left is intact, but the signed checkpoints
    // remember how long the log was.
    let now_stored = audit_tree(root);
    {
        let db = sled::open(root.join("data")).unwrap();
        let tree = db.open_tree("audit").unwrap();
        for (key, _) in &now_stored[now_stored.len() - 2..] {
            tree.remove(key).unwrap();
        }
        db.flush().unwrap();
    }
    let _server = start(root, port);
    let (code, err) = ada.fails(&["audit", "--verify"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("entries were removed"), "{err}");
    println!(
        "the last entries removed: {}",
        err.lines().next().unwrap_or_default()
    );

    // A server that swaps its audit key (to re-sign a rewritten history) is caught by the key
    // pinned on first use.
    drop(_server);
    std::fs::remove_file(root.join("keys/audit-key.p8")).unwrap();
    let _server = start(root, port);
    let (code, err) = ada.fails(&["audit", "--verify"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("the server's audit key changed"), "{err}");

    // An item's entries are not a chain: --verify refuses --item before asking anyone.
    let (code, err) = ada.fails(&["audit", "--verify", "--item", &"00".repeat(16)]);
    assert_eq!(code, 2, "{err}");
}

/// The `audit` tree of the stopped server, in key order.
fn audit_tree(root: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = sled::open(root.join("data")).unwrap();
    let tree = db.open_tree("audit").unwrap();
    tree.iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Puts the first entries of the `audit` tree back as `original` had them (a restart may have
/// appended more after them; those stay).
fn restore_audit(root: &Path, original: &[(Vec<u8>, Vec<u8>)]) {
    let db = sled::open(root.join("data")).unwrap();
    let tree = db.open_tree("audit").unwrap();
    for (k, v) in original {
        tree.insert(k, v.clone()).unwrap();
    }
    db.flush().unwrap();
}
