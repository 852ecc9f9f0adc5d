//! Storage quotas and the free-disk reserve, through the real binary and CLI: an upload over
//! the account's quota, or one that would eat into the server's reserve, is refused with
//! `507 insufficient_storage` and the figures; the refused upload leaves nothing behind (no
//! message, no bytes held against the quota), and what was stored before is untouched.

use std::path::Path;

use crate::support::{Server, User, content, free_port, invite_url, start_server_with, temp_dir};

/// Ada (admin, from the bootstrap invite) and Carol (a client), both joined.
fn firm(root: &Path, server: &Server) -> (User, User) {
    let ada = User::new(root, "ada");
    ada.ok(&[
        "join",
        server.bootstrap.as_deref().unwrap(),
        "--email",
        "ada@firm.example",
        "--name",
        "Ada",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    let invite = ada.ok(&["invite", "carol@client.example", "--role", "client"]);
    let carol = User::new(root, "carol");
    carol.ok(&[
        "join",
        &invite_url(&invite),
        "--name",
        "Carol",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    (ada, carol)
}

fn send(user: &User, root: &Path, to: &str, name: &str, bytes: &[u8]) -> std::process::Output {
    let file = root.join(name);
    std::fs::write(&file, bytes).unwrap();
    user.run(&[
        "send",
        "--to",
        to,
        "--subject",
        name,
        file.to_str().unwrap(),
    ])
}

/// The numbers after `you store ` and ` of ` in a quota refusal.
fn figures(message: &str) -> (u64, u64) {
    let rest = message.split("you store ").nth(1).expect(message);
    let mut words = rest.split_whitespace();
    let used = words.next().unwrap().parse().unwrap();
    assert_eq!(words.next(), Some("of"), "{message}");
    let limit = words.next().unwrap().parse().unwrap();
    (used, limit)
}

#[test]
fn an_upload_over_the_quota_is_refused_with_the_figures_and_harms_nothing_stored() {
    let root = temp_dir();
    let root = root.path();
    // Clients may store 1 MiB; the firm has no quota (the default).
    let server = start_server_with(root, free_port(), &[("ATTACHE_QUOTA_MIB", "1")]);
    let (ada, carol) = firm(root, &server);
    let first = content(600_000, 1);
    let out = send(&carol, root, "ada@firm.example", "first.pdf", &first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second document of the same size does not fit: 507 with used and limit.
    let out = send(
        &carol,
        root,
        "ada@firm.example",
        "second.pdf",
        &content(600_000, 2),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("507 insufficient_storage"), "{err}");
    assert!(err.contains("over your storage quota"), "{err}");
    let (used, limit) = figures(&err);
    assert_eq!(limit, 1 << 20, "{err}");
    assert!(
        (600_000..700_000).contains(&used),
        "the first document and its message: {err}"
    );

    // Nothing of the refused send is visible, and the first document still downloads.
    let inbox = ada.json(&["inbox", "--json"]);
    let messages = inbox.as_array().unwrap();
    assert_eq!(messages.len(), 1, "{inbox}");
    let out_dir = root.join("down");
    std::fs::create_dir_all(&out_dir).unwrap();
    ada.ok(&[
        "download",
        messages[0]["id"].as_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out_dir.join("first.pdf")).unwrap(), first);

    // The refused upload was discarded: its bytes no longer count, so a smaller one fits.
    let out = send(
        &carol,
        root,
        "ada@firm.example",
        "third.pdf",
        &content(300_000, 3),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ada.json(&["inbox", "--json"]).as_array().unwrap().len(), 2);

    // The firm's accounts have no quota by default.
    let out = send(
        &ada,
        root,
        "carol@client.example",
        "bundle.pdf",
        &content(1_500_000, 4),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_upload_into_the_free_disk_reserve_is_refused_with_the_figures() {
    let root = temp_dir();
    let root = root.path();
    let port = free_port();
    let server = start_server_with(root, port, &[]);
    let (ada, carol) = firm(root, &server);
    let before = content(100_000, 5);
    let out = send(&carol, root, "ada@firm.example", "before.pdf", &before);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);

    // The same data folder with a reserve larger than any disk.
    let _server = start_server_with(root, port, &[("ATTACHE_DISK_RESERVE_MIB", "1099511627776")]);
    let out = send(
        &ada,
        root,
        "carol@client.example",
        "memo.pdf",
        &content(5_000, 6),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("507 insufficient_storage"), "{err}");
    assert!(err.contains("low on disk space"), "{err}");
    assert!(
        err.contains("keeps 1152921504606846976 in reserve"),
        "{err}"
    );
    let free: u64 = err
        .split("low on disk space: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect(&err);
    assert!(free > 0, "{err}");

    // What was stored before still downloads; nothing of the refused send is visible.
    let inbox = ada.json(&["inbox", "--json"]);
    let messages = inbox.as_array().unwrap();
    assert_eq!(messages.len(), 1, "{inbox}");
    assert!(
        carol
            .json(&["inbox", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let out_dir = root.join("down");
    std::fs::create_dir_all(&out_dir).unwrap();
    ada.ok(&[
        "download",
        messages[0]["id"].as_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out_dir.join("before.pdf")).unwrap(), before);
}
