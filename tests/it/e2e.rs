//! The whole product as a new user runs it: the real `attache` binary serving HTTPS on
//! 127.0.0.1 with sled on disk, and the real binary as the attorney's and the client's CLI.

use std::path::{Path, PathBuf};

use crate::support::{User, content, free_port, invite_url, start_server, temp_dir};

/// Every file under `dir`, recursively.
/// Every regular file under `dir` (not the server's control socket).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn attorney_and_client_exchange_documents_and_the_server_holds_no_plaintext() {
    let root = temp_dir();
    let root = root.path();
    let port = free_port();
    let server = start_server(root, port);
    assert_eq!(server.url, format!("https://127.0.0.1:{port}"));
    assert!(
        server.certificate.starts_with("sha256:"),
        "{}",
        server.certificate
    );
    let bootstrap = server
        .bootstrap
        .clone()
        .expect("a bootstrap invite on first start");

    // The attorney joins with the bootstrap invite, pinning the printed certificate.
    let attorney = User::new(root, "attorney");
    attorney.ok(&[
        "join",
        &bootstrap,
        "--email",
        "ada@firm.example",
        "--name",
        "Ada Attorney",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    let me = attorney.json(&["whoami", "--json"]);
    assert_eq!(me["email"], "ada@firm.example");
    assert_eq!(me["role"], "admin");

    // A bootstrap invite works once.
    let (_, err) = User::new(root, "mallory").fails(&[
        "join",
        &bootstrap,
        "--email",
        "mallory@example.com",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    assert!(err.contains("invite"), "{err}");

    // The attorney invites a client, who joins.
    let invite = attorney.ok(&[
        "invite",
        "carol@client.example",
        "--role",
        "client",
        "--name",
        "Carol Client",
    ]);
    let client_url = invite_url(&invite);
    let client = User::new(root, "client");
    client.ok(&[
        "join",
        &client_url,
        "--cert-fingerprint",
        &server.certificate,
    ]);
    assert_eq!(client.json(&["whoami", "--json"])["role"], "client");
    let (_, err) = User::new(root, "late").fails(&[
        "join",
        &client_url,
        "--cert-fingerprint",
        &server.certificate,
    ]);
    assert!(err.contains("invite"), "{err}");

    // Two documents, one over 10 MiB, each with a marker that must never reach the disk.
    let docs = root.join("outgoing");
    std::fs::create_dir_all(&docs).unwrap();
    let marker = "MARKER-7f3a9c-PRIVILEGED";
    let mut big = content(10 * 1024 * 1024 + 12_345, 21);
    big[5_000_000..5_000_000 + marker.len()].copy_from_slice(marker.as_bytes());
    let small = format!("Settlement terms. {marker} The figure is 1,250,000.").into_bytes();
    std::fs::write(docs.join("Settlement-Draft-v3.pdf"), &big).unwrap();
    std::fs::write(docs.join("Engagement-Letter.txt"), &small).unwrap();
    let subject = "Confidential: Doe settlement draft";
    let body = "Carol, the draft settlement is attached. Please review clause 4.";
    let sent = attorney.json(&[
        "send",
        "--to",
        "carol@client.example",
        "--subject",
        subject,
        "--body",
        body,
        docs.join("Settlement-Draft-v3.pdf").to_str().unwrap(),
        docs.join("Engagement-Letter.txt").to_str().unwrap(),
        "--json",
    ]);
    let id = sent["id"].as_str().unwrap().to_owned();

    // The server is killed and restarted: what it acknowledged is still there.
    drop(server);
    let server = start_server(root, port);

    let inbox = client.json(&["inbox", "--json"]);
    let listed = inbox.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{inbox}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["from"], "ada@firm.example");
    assert_eq!(listed[0]["subject"], subject);

    let read = client.json(&["read", &id, "--json"]);
    assert_eq!(read["body"], body);
    assert_eq!(read["verified"], true);

    let inbound = root.join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    client.ok(&["download", &id, "--out", inbound.to_str().unwrap()]);
    assert!(std::fs::read(inbound.join("Settlement-Draft-v3.pdf")).unwrap() == big);
    assert_eq!(
        std::fs::read(inbound.join("Engagement-Letter.txt")).unwrap(),
        small
    );

    // The client replies; the attorney reads the reply in the same thread.
    let reply_body = "Thank you. Clause 4 is fine; I will sign on Friday.";
    let reply = client.json(&["reply", &id, "--body", reply_body, "--json"]);
    let reply_id = reply["id"].as_str().unwrap();
    let attorney_inbox = attorney.json(&["inbox", "--json"]);
    assert_eq!(
        attorney_inbox.as_array().unwrap().len(),
        1,
        "{attorney_inbox}"
    );
    let got = attorney.json(&["read", reply_id, "--json"]);
    assert_eq!(got["body"], reply_body);
    assert_eq!(got["thread"], read["thread"]);
    assert_eq!(got["verified"], true);
    let sent_box = attorney.json(&["inbox", "--sent", "--json"]);
    assert_eq!(sent_box.as_array().unwrap().len(), 1);

    // A stranger (another client of the firm) can neither list nor read nor download it.
    let invite = attorney.ok(&["invite", "dave@other.example", "--role", "client"]);
    let stranger = User::new(root, "stranger");
    stranger.ok(&[
        "join",
        &invite_url(&invite),
        "--cert-fingerprint",
        &server.certificate,
    ]);
    assert_eq!(
        stranger
            .json(&["inbox", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (_, err) = stranger.fails(&["read", &id]);
    assert!(err.contains("not found"), "{err}");
    let (_, err) = stranger.fails(&["download", &id, "--out", inbound.to_str().unwrap()]);
    assert!(err.contains("not found"), "{err}");

    // Nothing privileged on the server's disk: subject, body, file names, reply, marker.
    drop(server);
    let needles: Vec<&[u8]> = vec![
        subject.as_bytes(),
        body.as_bytes(),
        reply_body.as_bytes(),
        b"Settlement-Draft-v3",
        b"Engagement-Letter",
        marker.as_bytes(),
        b"Doe settlement",
        b"clause 4",
    ];
    let mut scanned = 0;
    let mut hits = Vec::new();
    for path in files_under(&root.join("data"))
        .into_iter()
        .chain(files_under(&root.join("keys")))
    {
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for needle in &needles {
            if bytes.windows(needle.len()).any(|w| w == *needle) {
                hits.push(format!(
                    "{} contains {:?}",
                    path.display(),
                    String::from_utf8_lossy(needle)
                ));
            }
        }
    }
    println!(
        "plaintext scan: {scanned} bytes of server data, {} hits",
        hits.len()
    );
    assert!(
        scanned > 10 * 1024 * 1024,
        "the ciphertext is on disk ({scanned} bytes)"
    );
    assert!(hits.is_empty(), "{hits:#?}");
}

/// A firm user and a client who have joined one server.
fn firm_and_client(root: &Path, server: &crate::support::Server) -> (User, User) {
    let attorney = User::new(root, "attorney");
    attorney.ok(&[
        "join",
        server.bootstrap.as_deref().unwrap(),
        "--email",
        "ada@firm.example",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    let invite = attorney.ok(&["invite", "carol@client.example", "--role", "client"]);
    let client = User::new(root, "client");
    client.ok(&[
        "join",
        &invite_url(&invite),
        "--cert-fingerprint",
        &server.certificate,
    ]);
    (attorney, client)
}

#[test]
fn a_chunk_altered_in_storage_is_refused_by_the_reader() {
    let root = temp_dir();
    let root = root.path();
    let port = free_port();
    let server = start_server(root, port);
    let (attorney, client) = firm_and_client(root, &server);
    let doc = root.join("exhibit.bin");
    std::fs::write(&doc, content(200_000, 8)).unwrap();
    let sent = attorney.json(&[
        "send",
        "--to",
        "carol@client.example",
        "--subject",
        "Exhibit",
        doc.to_str().unwrap(),
        "--json",
    ]);
    let id = sent["id"].as_str().unwrap().to_owned();
    let listed = client.json(&["inbox", "--json"]);
    let item_hex = listed[0]["documents"][0]["item"]
        .as_str()
        .unwrap()
        .to_owned();
    let item: [u8; 16] = attache::wire::from_hex(&item_hex)
        .unwrap()
        .try_into()
        .unwrap();

    // Stop the server and flip one byte of chunk 1 in the store, as a thief or a failing disk
    // might.
    drop(server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = attache::storage::Store::open(&root.join("data"), 8 << 20).unwrap();
        let mut chunk = store.blobs().chunk(&item, 1).unwrap().unwrap();
        chunk[1000] ^= 0x04;
        store.blobs().put_chunk(&item, 1, &chunk).unwrap();
        store.commit().await.unwrap();
    });
    drop(runtime);

    let _server = start_server(root, port);
    let out = root.join("in");
    std::fs::create_dir_all(&out).unwrap();
    let (code, err) = client.fails(&["download", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("chunk 1 does not match the signed manifest"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing released"
    );
}

#[test]
fn a_changed_contact_key_is_refused_for_sending() {
    let root = temp_dir();
    let root = root.path();
    let server = start_server(root, free_port());
    let (attorney, _client) = firm_and_client(root, &server);
    attorney.ok(&[
        "send",
        "--to",
        "carol@client.example",
        "--body",
        "first contact",
    ]);
    let contacts = attorney.json(&["contacts", "--json"]);
    let carol = contacts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == "carol@client.example")
        .unwrap()
        .clone();
    assert_eq!(carol["key_changed"], false);

    // Pretend the pinned key was another one: the server's key now differs from the pin.
    let path = attorney.home.join("contacts.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let other = attache::crypto::Identity::generate().unwrap();
    let other_keys = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(other.public().to_bytes())
    };
    let start = text.find("public_keys = \"").unwrap() + "public_keys = \"".len();
    let end = start + text[start..].find('"').unwrap();
    let edited = format!("{}{}{}", &text[..start], other_keys, &text[end..]);
    std::fs::write(&path, edited).unwrap();

    let (code, err) = attorney.fails(&["send", "--to", "carol@client.example", "--body", "again"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("carol@client.example"), "{err}");
    assert!(err.contains("attache verify"), "{err}");
}

/// How many `GET /v1/directory/{email}` the server answered, from `/metrics`.
fn directory_lookups(server: &crate::support::Server) -> u64 {
    let text = crate::support::insecure_http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("attache_requests_total{method=\"GET\",route=\"/v1/directory/{email}\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn one_client_checks_a_recipients_keys_once_for_many_messages() {
    use attache::client::{Client, NoProgress, Outgoing, Profile};
    let root = temp_dir();
    let root = root.path();
    let server = start_server(root, free_port());
    let (attorney, client) = firm_and_client(root, &server);
    let before = directory_lookups(&server);
    let app = Client::connect(
        Profile::load(&attorney.home).unwrap(),
        Box::new(|| Ok(crate::support::PASSPHRASE.to_owned())),
    )
    .unwrap();
    for n in 0..3 {
        let outgoing = Outgoing {
            to: vec!["carol@client.example".into()],
            subject: format!("note {n}"),
            body: "one of several".into(),
            files: Vec::new(),
            in_reply_to: None,
            matter: None,
        };
        app.send(&outgoing, &NoProgress).unwrap();
    }
    assert_eq!(
        directory_lookups(&server) - before,
        1,
        "asked once for three sends"
    );
    // Every command of the CLI asks afresh.
    attorney.ok(&[
        "send",
        "--to",
        "carol@client.example",
        "--body",
        "from the CLI",
    ]);
    assert_eq!(directory_lookups(&server) - before, 2);
    let inbox = client.json(&["inbox", "--json"]);
    assert_eq!(inbox.as_array().unwrap().len(), 4);
}
