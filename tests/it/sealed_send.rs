//! A message item sent whole with its message (`POST /v1/messages` with `sealed`): stored,
//! checked and committed in the one request, and every refusal exact, with nothing stored.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use attache::crypto::{Metadata, seal_key_package};

use crate::support::{ApiUser, ApiWorld, seal};

impl ApiWorld {
    fn call(&self, who: &ApiUser, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&who.token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `who`'s inbox, as message ids.
    fn inbox(&self, who: &ApiUser) -> Vec<String> {
        let (status, v) = self.call(who, "GET", "/v1/messages?box=inbox", None);
        assert_eq!(status, 200, "{v}");
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Ann's message to Carol holding `content`, sent whole; returns its item.
    fn send_to_carol(&self, content: &[u8]) -> String {
        let item = sealed(&self.ann, &[&self.ann, &self.carol], content);
        let body = message(item, &self.carol.email);
        let (status, v) = self.call(&self.ann, "POST", "/v1/messages", Some(&body));
        assert_eq!(status, 201, "{v}");
        v["item"].as_str().unwrap().to_owned()
    }

    /// Ann's send of `body`, refused: status, error code and message.
    fn send_refusal(&self, body: &Value) -> (u16, String, String) {
        let (status, v) = self.call(&self.ann, "POST", "/v1/messages", Some(body));
        (
            status,
            v["error"].as_str().unwrap_or_default().to_owned(),
            v["message"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// A message item sealed by `sender` holding `content`, whole, readable by `readers`.
fn sealed(sender: &ApiUser, readers: &[&ApiUser], content: &[u8]) -> Value {
    let (sealed, chunks) = seal(&sender.identity, &Metadata::default(), content);
    assert_eq!(chunks.chunks.len(), 1);
    let packages: Vec<Value> = readers
        .iter()
        .map(|r| {
            let p = seal_key_package(
                &sealed.content_key,
                &sealed.preamble.item_id(),
                r.identity.public(),
            )
            .unwrap();
            json!({"email": r.email, "package": STANDARD.encode(p)})
        })
        .collect();
    json!({
        "preamble": STANDARD.encode(sealed.preamble.as_bytes()),
        "chunk": STANDARD.encode(&chunks.chunks[0]),
        "manifest": STANDARD.encode(sealed.manifest.as_bytes()),
        "key_packages": packages,
    })
}

fn message(sealed: Value, to: &str) -> Value {
    json!({"sealed": sealed, "documents": [], "to": [to], "in_reply_to": null})
}

fn b64_bytes(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn a_message_item_sent_whole_is_stored_committed_and_readable() {
    let w = ApiWorld::start();
    let item = sealed(&w.ann, &[&w.ann, &w.carol], b"attache-message v1\n");
    let (status, sent) = w.call(
        &w.ann,
        "POST",
        "/v1/messages",
        Some(&message(item.clone(), &w.carol.email)),
    );
    assert_eq!(status, 201, "{sent}");
    assert_eq!(w.inbox(&w.carol), vec![sent["id"].as_str().unwrap()]);
    // The recipient gets the header and the very chunk sent, as for an uploaded item.
    let id = sent["item"].as_str().unwrap();
    let (status, header) = w.call(&w.carol, "GET", &format!("/v1/items/{id}"), None);
    assert_eq!(status, 200, "{header}");
    assert_eq!(header["preamble"], item["preamble"]);
    assert_eq!(header["manifest"], item["manifest"]);
    assert_eq!(
        header["ciphertext_len"].as_u64().unwrap(),
        b64_bytes(&item["chunk"]).len() as u64
    );
    let chunks = w
        .http
        .get(format!("{}/v1/items/{id}/chunks", w.url))
        .bearer_auth(&w.carol.token)
        .send()
        .unwrap();
    assert_eq!(chunks.status(), 200);
    assert_eq!(chunks.bytes().unwrap().to_vec(), b64_bytes(&item["chunk"]));
    // The item is committed: its upload cannot be added to.
    let (status, v) = w.call(&w.ann, "GET", &format!("/v1/items/{id}/upload"), None);
    assert_eq!(status, 404, "{v}");
}

#[test]
fn every_refusal_of_a_whole_message_item_is_exact_and_stores_nothing() {
    let w = ApiWorld::start();
    let to = w.carol.email.clone();
    let good = sealed(&w.ann, &[&w.ann, &w.carol], b"hello");

    // A flipped bit in the chunk.
    let mut tampered = good.clone();
    let mut chunk = b64_bytes(&good["chunk"]);
    chunk[3] ^= 1;
    tampered["chunk"] = json!(STANDARD.encode(&chunk));
    let (status, code, text) = w.send_refusal(&message(tampered, &to));
    assert_eq!((status, code.as_str()), (422, "chunk_mismatch"), "{text}");
    assert!(text.contains("chunk 0"), "{text}");

    // Sealed by someone else's key.
    let (status, code, text) =
        w.send_refusal(&message(sealed(&w.carol, &[&w.ann, &w.carol], b"x"), &to));
    assert_eq!((status, code.as_str()), (422, "signer_mismatch"), "{text}");
    assert_eq!(text, "the manifest is not signed by your key");

    // The manifest of another item.
    let other = sealed(&w.ann, &[&w.ann, &w.carol], b"other");
    let mut swapped = good.clone();
    swapped["manifest"] = other["manifest"].clone();
    let (status, code, text) = w.send_refusal(&message(swapped, &to));
    assert_eq!(
        (status, code.as_str()),
        (422, "manifest_mismatch"),
        "{text}"
    );

    // No key package for the recipient.
    let (status, code, text) = w.send_refusal(&message(sealed(&w.ann, &[&w.ann], b"x"), &to));
    assert_eq!(
        (status, code.as_str()),
        (422, "missing_key_package"),
        "{text}"
    );
    assert!(
        text.starts_with("carol@client.example holds no key package"),
        "{text}"
    );

    // No key package for the sender.
    let (status, code, text) = w.send_refusal(&message(sealed(&w.ann, &[&w.carol], b"x"), &to));
    assert_eq!((status, code.as_str()), (400, "bad_request"), "{text}");
    assert_eq!(text, "the key packages must include one for the uploader");

    // A chunk as long as a full one: such an item is uploaded first.
    let mut full = good.clone();
    full["chunk"] = json!(STANDARD.encode(vec![0u8; 65_552]));
    let (status, code, text) = w.send_refusal(&message(full, &to));
    assert_eq!((status, code.as_str()), (400, "bad_request"), "{text}");
    assert_eq!(
        text,
        "chunk must be 1 to 65551 bytes of base64 (a larger item is uploaded first)"
    );
    let mut empty = good.clone();
    empty["chunk"] = json!("");
    assert_eq!(w.send_refusal(&message(empty, &to)).2, text);

    // Both an item id and a whole item, or neither.
    let mut both = message(good.clone(), &to);
    both["item"] = json!("00".repeat(16));
    let (status, code, text) = w.send_refusal(&both);
    assert_eq!((status, code.as_str()), (400, "bad_request"), "{text}");
    assert_eq!(
        text,
        "name the message item either by id (`item`) or whole (`sealed`)"
    );
    let mut neither = message(good.clone(), &to);
    neither.as_object_mut().unwrap().remove("sealed");
    assert_eq!(w.send_refusal(&neither).2, text);

    // A preamble that is not one.
    let mut bad = good.clone();
    bad["preamble"] = json!(STANDARD.encode([0u8; 10]));
    let (status, _, text) = w.send_refusal(&message(bad, &to));
    assert_eq!(status, 400, "{text}");
    assert!(text.starts_with("preamble must be"), "{text}");

    // Nothing of the above reached the recipient or the store.
    assert!(w.inbox(&w.carol).is_empty());
    let (status, v) = w.call(&w.ann, "POST", "/v1/messages", Some(&message(good, &to)));
    assert_eq!(status, 201, "{v}");
    assert_eq!(w.inbox(&w.carol).len(), 1);
}

#[test]
fn a_whole_message_item_over_the_quota_is_refused_and_leaves_the_usage_as_it_was() {
    let w = ApiWorld::start();
    // Carol, a client with 1 MiB of quota, sends messages of 40 KiB until one does not fit.
    let send = || {
        let item = sealed(&w.carol, &[&w.ann, &w.carol], &[1u8; 40 * 1024]);
        w.call(
            &w.carol,
            "POST",
            "/v1/messages",
            Some(&message(item, &w.ann.email)),
        )
    };
    let stored_usage = |v: &Value| -> u64 {
        let text = v["message"].as_str().unwrap();
        assert!(
            text.starts_with("over your storage quota: you store "),
            "{text}"
        );
        assert!(
            text.contains(" of 1048576 bytes and this upload needs "),
            "{text}"
        );
        text.trim_start_matches("over your storage quota: you store ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut sent = 0;
    let refused = loop {
        let (status, v) = send();
        match status {
            201 => sent += 1,
            507 => break v,
            _ => panic!("{status}: {v}"),
        }
        assert!(sent < 30, "a 1 MiB quota held {sent} messages of 40 KiB");
    };
    let used = stored_usage(&refused);
    assert!(
        used > 1024 * 1024 - 50 * 1024 && used <= 1024 * 1024,
        "{refused}"
    );
    // The refusal stored nothing: the next one names the same usage, and the recipient has
    // exactly the messages acknowledged.
    let (status, again) = send();
    assert_eq!(status, 507, "{again}");
    assert_eq!(stored_usage(&again), used);
    assert_eq!(w.inbox(&w.ann).len(), sent);
}

#[test]
fn a_send_body_over_its_limit_is_refused_before_it_is_read() {
    let w = ApiWorld::start();
    let mut item = sealed(&w.ann, &[&w.ann, &w.carol], b"x");
    item["chunk"] = json!("A".repeat(attache::server::SEND_LIMIT));
    let (status, v) = w.call(
        &w.ann,
        "POST",
        "/v1/messages",
        Some(&message(item, &w.carol.email)),
    );
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"], "too_large");
}

#[test]
fn a_listing_with_headers_carries_each_readable_header_and_audits_each_release() {
    let w = ApiWorld::start();
    let mut items = Vec::new();
    for text in [&b"first"[..], b"second"] {
        items.push(w.send_to_carol(text));
    }
    let releases = |item: &str| -> usize {
        let (status, log) = w.call(&w.ann, "GET", &format!("/v1/audit?item={item}"), None);
        assert_eq!(status, 200, "{log}");
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| b64_bytes(&e["raw"]))
            .filter(|raw| {
                let has = |s: &[u8]| raw.windows(s.len()).any(|w| w == s);
                has(b"key_package.release") && has(b"carol@client.example")
            })
            .count()
    };
    // Without the parameter: no headers, nothing released.
    let (status, plain) = w.call(&w.carol, "GET", "/v1/messages?box=inbox", None);
    assert_eq!(status, 200, "{plain}");
    assert!(plain.get("headers").is_none(), "{plain}");
    assert_eq!(releases(&items[0]), 0);

    let (status, listed) = w.call(&w.carol, "GET", "/v1/messages?box=inbox&headers=true", None);
    assert_eq!(status, 200, "{listed}");
    let headers = listed["headers"].as_array().unwrap();
    // In the order of the messages listed; each exactly what the item's own request gives.
    assert_eq!(headers.len(), 2, "{listed}");
    let mut seen = Vec::new();
    for (header, m) in headers.iter().zip(listed["messages"].as_array().unwrap()) {
        assert_eq!(header["item"], m["item"]);
        let item = header["item"].as_str().unwrap();
        seen.push(item.to_owned());
        let (status, own) = w.call(&w.carol, "GET", &format!("/v1/items/{item}"), None);
        assert_eq!(status, 200, "{own}");
        assert_eq!(header, &own);
    }
    seen.sort();
    items.sort();
    assert_eq!(seen, items);
    // Each release is in the audit log: one from the listing, one from the item's request.
    for item in &items {
        assert_eq!(releases(item), 2, "{item}");
    }
    // A value other than true or false is refused; the sent box carries its headers too.
    let (status, sent) = w.call(&w.ann, "GET", "/v1/messages?box=sent&headers=yes", None);
    assert_eq!(status, 400, "{sent}");
    let (status, sent) = w.call(&w.ann, "GET", "/v1/messages?box=sent&headers=true", None);
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["headers"].as_array().unwrap().len(), 2);
}

#[test]
fn a_listing_names_each_item_once_and_at_most_256_headers() {
    let w = ApiWorld::start();
    // 260 messages to Carol, each with its own item; then 5 more, each carrying 64 of those
    // items as documents, overlapping its neighbour's by 32.
    let mut items = Vec::new();
    for i in 0..260u32 {
        items.push(w.send_to_carol(&i.to_be_bytes()));
    }
    for k in 0..5 {
        let start = k * 32;
        let mut body = message(sealed(&w.ann, &[&w.ann, &w.carol], b"docs"), &w.carol.email);
        body["documents"] = json!(items[start..start + 64]);
        let (status, v) = w.call(&w.ann, "POST", "/v1/messages", Some(&body));
        assert_eq!(status, 201, "{v}");
    }
    let (status, listed) = w.call(
        &w.carol,
        "GET",
        "/v1/messages?box=inbox&headers=true&limit=200",
        None,
    );
    assert_eq!(status, 200, "{listed}");
    let name = |v: &Value| v.as_str().unwrap().to_owned();
    // Every item the page names, in order: each message's item, then its documents.
    let named: Vec<String> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            let docs = m["documents"].as_array().unwrap().iter();
            std::iter::once(name(&m["item"])).chain(docs.map(|d| name(&d["item"])))
        })
        .collect();
    let mut once: Vec<String> = Vec::new();
    for item in &named {
        if !once.contains(item) {
            once.push(item.clone());
        }
    }
    assert!(named.len() > once.len(), "the page names some items twice");
    assert!(
        once.len() > 256,
        "the page names more items than an answer holds"
    );
    // The headers: the first 256 items named, each once, in that order.
    let headers: Vec<String> = listed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| name(&h["item"]))
        .collect();
    assert_eq!(headers, once[..256]);
    // What is left out is there for the asking, one item at a time.
    for item in &once[256..] {
        let (status, own) = w.call(&w.carol, "GET", &format!("/v1/items/{item}"), None);
        assert_eq!(status, 200, "{own}");
    }
}

#[test]
fn messages_sent_within_one_second_are_listed_newest_first() {
    let w = ApiWorld::start();
    // Sends of a few milliseconds each: most of these fall within one second, where the
    // listing's time (in seconds) ties and only the ids order them.
    let started = std::time::Instant::now();
    let items: Vec<String> = (0..40u32)
        .map(|i| w.send_to_carol(&i.to_be_bytes()))
        .collect();
    let (status, listed) = w.call(&w.carol, "GET", "/v1/messages?box=inbox&limit=40", None);
    assert_eq!(status, 200, "{listed}");
    let order: Vec<String> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["item"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<String> = items.into_iter().rev().collect();
    assert_eq!(order, newest_first, "40 sends in {:?}", started.elapsed());
}
