//! The test vectors in `tests/vectors/`: produced by a seeded generator that only tests can
//! reach (`attache::crypto::danger`), checked two ways:
//!
//! - every vector file gives its expected outcome when opened through the public API;
//! - regenerating from the seeds gives byte-identical files (the age-based vectors carry age's
//!   own randomness, so for them every field but the age file is compared).
//!
//! `ATTACHE_WRITE_VECTORS=1 cargo test --test it vectors` rewrites the folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use attache::crypto::{
    ContentKey, Fingerprint, Identity, Intent, Manifest, Metadata, Parallelism, Preamble,
    PublicKeys, SealedChunks, SignatureStatement, SignedStatement, danger, open_item,
    open_key_file, open_key_package, padme, seal_key_file, seal_key_package,
};
use attache::wire::{from_hex, to_hex};
use serde_json::{Value, json};

/// Raw secrets and the identity they make.
struct Keys {
    x25519: [u8; 32],
    ed25519: [u8; 32],
    identity: Identity,
}

fn keys(label: u8) -> Keys {
    let rng = danger::SeededRandom::new([label; 32]);
    let x25519 = rng.array();
    let ed25519 = rng.array();
    let identity = Identity::from_secret_keys(&x25519, &ed25519).unwrap();
    Keys {
        x25519,
        ed25519,
        identity,
    }
}

fn keys_json(k: &Keys) -> Value {
    json!({
        "x25519_secret": to_hex(&k.x25519),
        "ed25519_seed": to_hex(&k.ed25519),
        "public_keys": to_hex(&k.identity.public().to_bytes()),
        "age_recipient": k.identity.public().age_recipient(),
    })
}

fn identity_from(v: &Value) -> Identity {
    let x: [u8; 32] = hex(&v["x25519_secret"]).try_into().unwrap();
    let e: [u8; 32] = hex(&v["ed25519_seed"]).try_into().unwrap();
    Identity::from_secret_keys(&x, &e).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    from_hex(v.as_str().expect("a hex string")).expect("valid hex")
}

fn sha256_hex(data: &[u8]) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn vectors_dir() -> PathBuf {
    crate::support::repo_root().join("tests/vectors")
}

/// A sealed item's parts as the generator made them.
#[derive(Clone)]
struct Item {
    seed: [u8; 32],
    metadata: Metadata,
    content: Vec<u8>,
    key: [u8; 32],
    preamble: Vec<u8>,
    chunks: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

fn seal_seeded(seed: [u8; 32], sender: &Identity, metadata: Metadata, content: Vec<u8>) -> Item {
    let rng = danger::SeededRandom::new(seed);
    let mut sink = SealedChunks::default();
    let sealed =
        danger::seal_item_seeded(&rng, sender, &metadata, &content[..], &mut sink).unwrap();
    Item {
        seed,
        metadata,
        content,
        key: danger::content_key_bytes(&sealed.content_key),
        preamble: sealed.preamble.as_bytes().to_vec(),
        chunks: sink.chunks,
        manifest: sealed.manifest.as_bytes().to_vec(),
    }
}

fn item_json(name: &str, description: &str, sender: &Keys, item: &Item, expected: &str) -> Value {
    let m = &item.metadata;
    json!({
        "name": name,
        "description": description,
        "kind": "item",
        "seed": to_hex(&item.seed),
        "sender": keys_json(sender),
        "metadata": {
            "file_name": m.file_name, "media_type": m.media_type, "subject": m.subject,
            "body": m.body, "matter": m.matter,
            "readers": m.readers.iter().map(|f| to_hex(&f.0)).collect::<Vec<_>>(),
        },
        "content": content_json(&item.content),
        "content_sha256": sha256_hex(&item.content),
        "content_key": to_hex(&item.key),
        "preamble": to_hex(&item.preamble),
        "chunks": item.chunks.iter().map(|c| to_hex(c)).collect::<Vec<_>>(),
        "manifest": to_hex(&item.manifest),
        "expected": expected,
    })
}

/// Content of a large vector: byte i is i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Short content as hex; long content as the pattern rule, to keep the files small.
fn content_json(content: &[u8]) -> Value {
    if content.len() > 1024 {
        assert_eq!(
            content,
            pattern(content.len()),
            "long vector content follows the pattern"
        );
        json!({ "pattern": "byte i is i mod 251", "len": content.len() })
    } else {
        json!(to_hex(content))
    }
}

/// Re-signs a manifest body as `signer`.
fn resign(signer: &Identity, manifest: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = manifest[..manifest.len() - 64].to_vec();
    edit(&mut body);
    danger::sign_manifest_body(signer, &body)
}

fn digest_offset(item: &Item, index: usize) -> usize {
    item.manifest.len() - 64 - 32 * (item.chunks.len() - index)
}

/// Every vector, by file name.
fn generate(existing: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut put = |v: Value| {
        let name = v["name"].as_str().unwrap().to_owned();
        out.insert(name, v);
    };
    let sender = keys(1);
    let reader = keys(2);
    let mallory = keys(3);

    put(json!({
        "name": "identity-fingerprint",
        "description": "public keys and safety number of a seeded identity",
        "kind": "fingerprint",
        "identity": keys_json(&sender),
        "fingerprint": to_hex(&sender.identity.fingerprint().0),
        "safety_number": sender.identity.fingerprint().to_string(),
        "expected": "ok",
    }));
    let lens = [
        0u64,
        1,
        2,
        3,
        9,
        1000,
        65_536,
        65_537,
        1_000_000,
        1 << 30,
        17_179_869_184,
    ];
    put(json!({
        "name": "padme-lengths",
        "description": "PADMÉ padded lengths",
        "kind": "padme",
        "pairs": lens.iter().map(|&l| json!([l, padme(l)])).collect::<Vec<_>>(),
        "expected": "ok",
    }));

    let letter = Metadata {
        file_name: "engagement-letter.pdf".into(),
        media_type: "application/pdf".into(),
        subject: "Engagement letter".into(),
        body: "Please sign and return.".into(),
        matter: "2026-0142 Estate of Doe".into(),
        readers: vec![reader.identity.fingerprint()],
        true_size: 0,
    };
    let message = Metadata {
        subject: "Hearing moved".into(),
        body: "The hearing is now on the 14th at 10:00.".into(),
        readers: vec![reader.identity.fingerprint()],
        ..Metadata::default()
    };
    let empty = seal_seeded([10; 32], &sender.identity, message.clone(), Vec::new());
    put(item_json(
        "item-empty",
        "a message with no content: one empty last chunk",
        &sender,
        &empty,
        "ok",
    ));
    let small = seal_seeded(
        [11; 32],
        &sender.identity,
        message,
        b"Privileged and confidential.".to_vec(),
    );
    put(item_json(
        "item-small",
        "a short message, one chunk",
        &sender,
        &small,
        "ok",
    ));
    let doc_content = pattern(65_536 + 1000);
    let doc = seal_seeded(
        [12; 32],
        &sender.identity,
        letter.clone(),
        doc_content.clone(),
    );
    put(item_json(
        "item-two-chunks",
        "a document of 65536 + 1000 bytes: two chunks",
        &sender,
        &doc,
        "ok",
    ));

    let mut negative = |name: &str, description: &str, item: Item, expected: &str| {
        put(item_json(name, description, &sender, &item, expected));
    };
    let mut t = doc.clone();
    t.chunks[1][10] ^= 1;
    negative(
        "item-flipped-bit",
        "one bit of chunk 1 flipped",
        t,
        "ChunkDigest { index: 1 }",
    );
    let mut t = doc.clone();
    t.chunks.swap(0, 1);
    negative(
        "item-reordered",
        "chunks 0 and 1 swapped",
        t,
        "ChunkDigest { index: 0 }",
    );
    let mut t = doc.clone();
    t.chunks.pop();
    negative(
        "item-truncated",
        "the last chunk dropped",
        t,
        "Truncated { index: 1 }",
    );
    let mut t = doc.clone();
    t.chunks.push(doc.chunks[0].clone());
    negative(
        "item-extended",
        "a chunk appended after the last",
        t,
        "ExtraData",
    );
    // Negatives about the preamble, key and manifest use the one-chunk item: smaller files.
    let mut t = small.clone();
    t.preamble[87] ^= 1;
    negative(
        "item-broken-commitment",
        "the key commitment altered",
        t,
        "KeyCommitment",
    );
    let mut t = small.clone();
    t.key[0] ^= 1;
    negative(
        "item-wrong-key",
        "the wrong content key",
        t,
        "KeyCommitment",
    );
    let mut t = small.clone();
    t.preamble[10] ^= 1;
    negative(
        "item-tampered-preamble",
        "the item id in the preamble altered",
        t,
        "KeyCommitment",
    );
    let other = seal_seeded([13; 32], &sender.identity, letter.clone(), doc_content);
    let mut t = doc.clone();
    t.chunks[0] = other.chunks[0].clone();
    let at = digest_offset(&doc, 0);
    t.manifest = resign(&sender.identity, &doc.manifest, |b| {
        b[at..at + 32].copy_from_slice(blake3::hash(&other.chunks[0]).as_bytes());
    });
    negative(
        "item-spliced",
        "chunk 0 taken from another item, its digest re-signed by the sender",
        t,
        "ChunkAuthentication { index: 0 }",
    );
    let mut t = small.clone();
    t.manifest = resign(&mallory.identity, &small.manifest, |b| {
        b[56..88].copy_from_slice(&mallory.identity.public().ed25519);
    });
    negative(
        "item-other-signer",
        "the manifest re-signed by another key",
        t,
        "UnexpectedSigner",
    );
    let mut t = small.clone();
    t.manifest[120] ^= 1;
    negative(
        "item-tampered-manifest",
        "a metadata byte altered, not re-signed",
        t,
        "BadSignature",
    );
    let mut t = small.clone();
    t.manifest = resign(&sender.identity, &small.manifest, |b| b[120] ^= 1);
    negative(
        "item-tampered-metadata",
        "a metadata byte altered and re-signed by the sender",
        t,
        "MetadataAuthentication",
    );
    let mut t = small.clone();
    t.manifest.truncate(100);
    negative(
        "item-manifest-truncated",
        "the manifest cut inside its metadata length",
        t,
        "MalformedManifest(Truncated(\"metadata length\"))",
    );

    // Key packages: age's own randomness makes them differ on each run; the file is kept from
    // the existing vector when there is one.
    let item_id: [u8; 16] = doc.preamble[8..24].try_into().unwrap();
    let age_file = |name: &str, make: &dyn Fn() -> Vec<u8>| -> String {
        existing
            .get(name)
            .and_then(|v| v["age_file"].as_str().map(str::to_owned))
            .unwrap_or_else(|| to_hex(&make()))
    };
    let key = danger::content_key_from_bytes(doc.key);
    let package = age_file("key-package", &|| {
        seal_key_package(&key, &item_id, reader.identity.public()).unwrap()
    });
    for (name, description, opener, id, expected) in [
        (
            "key-package",
            "the content key of item-two-chunks for the reader",
            &reader,
            item_id,
            "ok",
        ),
        (
            "key-package-wrong-identity",
            "opened by someone it was not sealed to",
            &mallory,
            item_id,
            "NotForThisIdentity",
        ),
        (
            "key-package-wrong-item",
            "presented for another item",
            &reader,
            [0u8; 16],
            "WrongItem",
        ),
    ] {
        put(json!({
            "name": name, "description": description, "kind": "key_package",
            "age_file": if name == "key-package" { package.clone() } else { age_file(name, &|| from_hex(&package).unwrap()) },
            "identity": keys_json(opener), "item_id": to_hex(&id),
            "content_key": to_hex(&doc.key), "expected": expected,
        }));
    }
    let key_file = age_file("key-file", &|| {
        seal_key_file(&reader.identity, "correct horse battery staple", 10).unwrap()
    });
    for (name, description, passphrase, expected) in [
        (
            "key-file",
            "the reader's key file, scrypt work factor 10",
            "correct horse battery staple",
            "ok",
        ),
        (
            "key-file-wrong-passphrase",
            "the same file with the wrong passphrase",
            "Correct horse battery staple",
            "WrongPassphrase",
        ),
    ] {
        put(json!({
            "name": name, "description": description, "kind": "key_file",
            "age_file": key_file, "passphrase": passphrase,
            "public_keys": to_hex(&reader.identity.public().to_bytes()), "expected": expected,
        }));
    }

    let statement = SignatureStatement {
        request_id: [7; 16],
        document_sha256: ring::digest::digest(&ring::digest::SHA256, &doc.content)
            .as_ref()
            .try_into()
            .unwrap(),
        signer_email: "jane@example.com".into(),
        signer_key: [0; 32],
        time: 1_795_000_000,
        intent: Intent::Sign,
        typed_name: "Jane Q. Client".into(),
        note: String::new(),
    };
    let signed = statement.sign(&reader.identity).unwrap().to_bytes();
    let mut tampered = signed.clone();
    tampered[30] ^= 1;
    for (name, description, bytes, signer, document, expected) in [
        (
            "statement-sign",
            "the reader signs item-two-chunks",
            &signed,
            &reader,
            &doc.content,
            "ok",
        ),
        (
            "statement-other-document",
            "checked against another document",
            &signed,
            &reader,
            &b"other".to_vec(),
            "DocumentMismatch",
        ),
        (
            "statement-other-signer",
            "checked against another signer",
            &signed,
            &mallory,
            &doc.content,
            "UnexpectedSigner",
        ),
        (
            "statement-tampered",
            "one byte of the document digest altered",
            &tampered,
            &reader,
            &doc.content,
            "BadSignature",
        ),
    ] {
        put(json!({
            "name": name, "description": description, "kind": "statement",
            "signed_statement": to_hex(bytes),
            "signer_public_keys": to_hex(&signer.identity.public().to_bytes()),
            "document_sha256": sha256_hex(document), "expected": expected,
        }));
    }
    out
}

fn outcome<T, E: std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

/// Opens one vector through the public API and returns its outcome.
fn check(v: &Value) -> String {
    match v["kind"].as_str().unwrap() {
        "fingerprint" => {
            let id = identity_from(&v["identity"]);
            assert_eq!(
                to_hex(&id.public().to_bytes()),
                v["identity"]["public_keys"].as_str().unwrap()
            );
            let fp = PublicKeys::from_bytes(&hex(&v["identity"]["public_keys"]))
                .unwrap()
                .fingerprint();
            assert_eq!(to_hex(&fp.0), v["fingerprint"].as_str().unwrap());
            assert_eq!(fp.to_string(), v["safety_number"].as_str().unwrap());
            "ok".into()
        }
        "padme" => {
            for pair in v["pairs"].as_array().unwrap() {
                assert_eq!(padme(pair[0].as_u64().unwrap()), pair[1].as_u64().unwrap());
            }
            "ok".into()
        }
        "item" => {
            let sender = identity_from(&v["sender"]);
            let key = danger::content_key_from_bytes(hex(&v["content_key"]).try_into().unwrap());
            let chunks: Vec<u8> = v["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(hex)
                .collect();
            let r = open_vector_item(
                &key,
                &hex(&v["preamble"]),
                &hex(&v["manifest"]),
                &sender,
                &chunks,
            );
            if let Ok((plain, metadata)) = &r {
                match &v["content"] {
                    Value::String(h) => assert_eq!(plain, &from_hex(h).unwrap()),
                    rule => assert_eq!(plain, &pattern(rule["len"].as_u64().unwrap() as usize)),
                }
                assert_eq!(sha256_hex(plain), v["content_sha256"].as_str().unwrap());
                assert_eq!(metadata.subject, v["metadata"]["subject"].as_str().unwrap());
                let readers: Vec<String> = metadata
                    .readers
                    .iter()
                    .map(|f: &Fingerprint| to_hex(&f.0))
                    .collect();
                assert_eq!(json!(readers), v["metadata"]["readers"]);
            }
            outcome(r)
        }
        "key_package" => {
            let id = identity_from(&v["identity"]);
            let item: [u8; 16] = hex(&v["item_id"]).try_into().unwrap();
            let r = open_key_package(&hex(&v["age_file"]), &id, &item);
            if let Ok(key) = &r {
                assert_eq!(
                    to_hex(&danger::content_key_bytes(key)),
                    v["content_key"].as_str().unwrap()
                );
            }
            outcome(r)
        }
        "key_file" => {
            let r = open_key_file(&hex(&v["age_file"]), v["passphrase"].as_str().unwrap());
            if let Ok(id) = &r {
                assert_eq!(
                    to_hex(&id.public().to_bytes()),
                    v["public_keys"].as_str().unwrap()
                );
            }
            outcome(r)
        }
        "statement" => {
            let signer = PublicKeys::from_bytes(&hex(&v["signer_public_keys"])).unwrap();
            let doc: [u8; 32] = hex(&v["document_sha256"]).try_into().unwrap();
            outcome(
                SignedStatement::parse(&hex(&v["signed_statement"]))
                    .and_then(|s| s.verify(&signer, &doc).map(|_| ())),
            )
        }
        other => panic!("unknown vector kind {other}"),
    }
}

fn open_vector_item(
    key: &ContentKey,
    preamble: &[u8],
    manifest: &[u8],
    sender: &Identity,
    chunks: &[u8],
) -> Result<(Vec<u8>, Metadata), attache::crypto::ItemError> {
    let preamble = Preamble::parse(preamble)?;
    let manifest = Manifest::parse(manifest)?;
    let mut out = Vec::new();
    let opened = open_item(
        key,
        &preamble,
        &manifest,
        sender.public(),
        chunks,
        &mut out,
        Parallelism::One,
    )?;
    Ok((out, opened.metadata))
}

fn read_existing() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(vectors_dir()) else {
        return out;
    };
    for entry in dir {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.insert(v["name"].as_str().unwrap().to_owned(), v);
        }
    }
    out
}

#[test]
fn vectors_regenerate_identically_and_give_their_outcomes() {
    let existing = read_existing();
    let generated = generate(&existing);
    if std::env::var_os("ATTACHE_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(vectors_dir()).unwrap();
        for (name, v) in &generated {
            let text = serde_json::to_string_pretty(v).unwrap() + "\n";
            std::fs::write(vectors_dir().join(format!("{name}.json")), text).unwrap();
        }
    }
    let on_disk = read_existing();
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "tests/vectors/ does not match the generator; rerun with ATTACHE_WRITE_VECTORS=1"
    );
    assert!(on_disk.len() >= 12, "{} vectors", on_disk.len());
    let (mut positive, mut negative) = (0, 0);
    for (name, v) in &on_disk {
        assert_eq!(
            v, &generated[name],
            "{name}: differs from what the generator makes"
        );
        let expected = v["expected"].as_str().unwrap();
        assert_eq!(check(v), expected, "{name}");
        if expected == "ok" {
            positive += 1;
        } else {
            negative += 1;
        }
    }
    println!(
        "vectors: {} checked ({positive} positive, {negative} negative)",
        on_disk.len()
    );
}
