//! The legal-workflow API at the wire (issue 5): matters and retention, signature requests and
//! evidence, co-counsel grants, the audit log. Each test runs the real server binary on
//! 127.0.0.1 with a test clock it moves (`ATTACHE_TEST_CLOCK_FILE`) and a one-second sweep, and
//! talks HTTP with reqwest, sealing items with the library as a client would. Every refusal is
//! checked with its exact status and error code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use attache::crypto::audit::{AuditScope, SignedCheckpointBytes, verify_audit};
use attache::crypto::danger::SeededRandom;
use attache::crypto::{GrantStatement, Identity, Metadata, Sealed, seal_key_package};
use attache::wire::api::{MAX_HORIZON_SECS, MAX_RETAIN_DAYS, MAX_SEALED_NAME_LEN, SignatureStatus};
use attache::wire::audit::{Attestation, AttestedParty, AuditEntry, attestation_message};
use attache::wire::{format_utc, from_hex};

use crate::support::{Server, content, free_port, seal, start_server_with, temp_dir};

const ADA: &str = "ada@firm.example";
const ANN: &str = "ann@firm.example";
const BOB: &str = "bob@firm.example";
const CAROL: &str = "carol@client.example";
const COLE: &str = "cole@cocounsel.example";

/// One account: its keys (from a seed, so the test can sign in with ring directly) and session.
struct Person {
    email: &'static str,
    identity: Identity,
    signing: Ed25519KeyPair,
    token: String,
}

/// A sealed, uploaded item and what a sender keeps to share it later.
struct Uploaded {
    id: String,
    sealed: Sealed,
}

/// A running server with a firm (admin Ada, attorneys Ann and Bob), a client (Carol) and a
/// co-counsel (Cole), all signed in, and the test clock.
struct Firm {
    _root: tempfile::TempDir,
    server: Option<Server>,
    url: String,
    data: PathBuf,
    clock: PathBuf,
    offset: i64,
    http: Client,
    people: Vec<Person>,
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn id16(hex: &str) -> [u8; 16] {
    from_hex(hex).unwrap().try_into().unwrap()
}

impl Firm {
    fn start() -> Self {
        let root = temp_dir();
        let clock = root.path().join("clock");
        std::fs::write(&clock, "0").unwrap();
        let server = start_server_with(
            root.path(),
            free_port(),
            &[
                ("ATTACHE_TEST_CLOCK_FILE", clock.to_str().unwrap()),
                ("ATTACHE_SWEEP_SECONDS", "1"),
                ("ATTACHE_NOTICE_WINDOW", "0"),
                // Sessions outlive the clock's jumps; expiry of sessions is not tested here.
                ("ATTACHE_SESSION_HOURS", "1000000"),
                ("ATTACHE_SESSION_IDLE_MINUTES", "100000000"),
            ],
        );
        let http = Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let mut firm = Self {
            url: server.url.clone(),
            data: root.path().join("data"),
            _root: root,
            clock,
            offset: 0,
            http,
            people: Vec::new(),
            server: Some(server),
        };
        let bootstrap = firm.server.as_ref().unwrap().bootstrap.clone().unwrap();
        firm.join(&bootstrap, ADA, 1);
        for (email, role, label) in [
            (ANN, "attorney", 2),
            (BOB, "attorney", 3),
            (CAROL, "client", 4),
            (COLE, "cocounsel", 5),
        ] {
            let (status, invite) = firm.call(
                ADA,
                "POST",
                "/v1/invites",
                Some(json!({"email": email, "role": role, "name": null})),
            );
            assert_eq!(status, StatusCode::CREATED, "{invite}");
            firm.join(invite["url"].as_str().unwrap(), email, label);
        }
        firm
    }

    /// Joins with an invite URL and signs in.
    fn join(&mut self, url: &str, email: &'static str, label: u8) {
        let rng = SeededRandom::new([label; 32]);
        let x25519: [u8; 32] = rng.array();
        let seed: [u8; 32] = rng.array();
        let identity = Identity::from_secret_keys(&x25519, &seed).unwrap();
        let signing = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let (path, secret) = url.split_once('#').unwrap();
        let r = self
            .http
            .post(format!("{}/v1/join", self.url))
            .json(&json!({
                "invite_id": path.rsplit('/').next().unwrap(),
                "secret": secret,
                "email": email,
                "name": null,
                "public_keys": b64(&identity.public().to_bytes()),
            }))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap());
        let mut person = Person {
            email,
            identity,
            signing,
            token: String::new(),
        };
        person.token = self.sign_in(&person);
        self.people.push(person);
    }

    fn sign_in(&self, p: &Person) -> String {
        let challenge: Value = self
            .http
            .post(format!("{}/v1/auth/challenge", self.url))
            .json(&json!({"email": p.email}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = id16(challenge["challenge_id"].as_str().unwrap());
        let nonce: [u8; 32] = STANDARD
            .decode(challenge["nonce"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let message = attache::wire::api::sign_in_message(
            challenge["origin"].as_str().unwrap(),
            p.email,
            &id,
            &nonce,
        );
        let session: Value = self
            .http
            .post(format!("{}/v1/auth/session", self.url))
            .json(&json!({
                "challenge_id": challenge["challenge_id"],
                "email": p.email,
                "signature": b64(p.signing.sign(&message).as_ref()),
            }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        session["token"].as_str().unwrap().to_owned()
    }

    fn person(&self, email: &str) -> &Person {
        self.people.iter().find(|p| p.email == email).unwrap()
    }

    /// A JSON request as `who`; returns the status and the body (`null` if not JSON).
    fn call(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.person(who).token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status();
        let bytes = r.bytes().unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request that must succeed with `want`; returns the body.
    fn ok(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let (status, v) = self.call(who, method, path, body);
        assert_eq!(status, want, "{method} {path} as {who}: {v}");
        v
    }

    /// A request that must be refused with exactly `status` and `code`; returns the message.
    fn refused(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
        code: &str,
    ) -> String {
        let (got, v) = self.call(who, method, path, body);
        assert_eq!(
            (got, v["error"].as_str()),
            (status, Some(code)),
            "{method} {path} as {who}: {v}"
        );
        v["message"].as_str().unwrap().to_owned()
    }

    /// Seals `data` as `sender` and uploads it, with key packages for the sender and `readers`.
    fn upload(&self, sender: &str, readers: &[&str], data: &[u8]) -> Uploaded {
        let me = self.person(sender);
        let (sealed, chunks) = seal(&me.identity, &Metadata::default(), data);
        let state = self.ok(
            sender,
            "POST",
            "/v1/items",
            Some(json!({"preamble": b64(sealed.preamble.as_bytes())})),
            StatusCode::CREATED,
        );
        let id = state["item"].as_str().unwrap().to_owned();
        for (i, batch) in chunks.chunks.chunks(16).enumerate() {
            let r = self
                .http
                .put(format!("{}/v1/items/{id}/chunks/{}", self.url, i * 16))
                .bearer_auth(&me.token)
                .header("content-type", "application/octet-stream")
                .body(batch.concat())
                .send()
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
        let packages: Vec<Value> = std::iter::once(sender)
            .chain(readers.iter().copied())
            .map(|r| {
                let p = seal_key_package(
                    &sealed.content_key,
                    &sealed.preamble.item_id(),
                    self.person(r).identity.public(),
                )
                .unwrap();
                json!({"email": r, "package": b64(&p)})
            })
            .collect();
        self.ok(
            sender,
            "POST",
            &format!("/v1/items/{id}/commit"),
            Some(json!({"manifest": b64(sealed.manifest.as_bytes()), "key_packages": packages})),
            StatusCode::OK,
        );
        Uploaded { id, sealed }
    }

    /// Sends a message (a sealed record) with `docs` from `sender` to `to`, in `matter`.
    fn send(
        &self,
        sender: &str,
        to: &str,
        docs: &[&Uploaded],
        matter: Option<&str>,
    ) -> (Value, Uploaded) {
        let item = self.upload(sender, &[to], b"a message record");
        let body = json!({
            "item": item.id,
            "documents": docs.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
            "to": [to],
            "in_reply_to": null,
            "matter": matter,
        });
        let (status, v) = self.call(sender, "POST", "/v1/messages", Some(body));
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (v, item)
    }

    fn new_matter(&self, owner: &str) -> String {
        let m = self.ok(
            owner,
            "POST",
            "/v1/matters",
            Some(json!({"sealed_name": b64(&[7u8; 100])})),
            StatusCode::CREATED,
        );
        m["id"].as_str().unwrap().to_owned()
    }

    /// The server clock's time (the test's own clock plus the offset it wrote).
    fn now(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        system + self.offset
    }

    /// Moves the server's clock forward.
    fn advance(&mut self, secs: i64) {
        self.offset += secs;
        std::fs::write(&self.clock, self.offset.to_string()).unwrap();
    }

    /// A grant from Ann (signed by `signer`: Ann's key, or another to forge it) to `grantee`
    /// of `items` until `until`, with the grantee's key packages.
    fn grant(
        &self,
        signer: &str,
        grantee: &str,
        items: &[&Uploaded],
        message: Option<&str>,
        matter: Option<&str>,
        until: i64,
    ) -> Value {
        let statement = GrantStatement {
            id: ring_random(),
            grantor_email: ANN.into(),
            grantor_key: [0; 32],
            grantee_email: grantee.into(),
            grantee_fingerprint: self.person(grantee).identity.fingerprint(),
            matter: matter.map(id16),
            message: message.map(id16),
            items: items
                .iter()
                .map(|i| (id16(&i.id), sealed_digest(i)))
                .collect(),
            created_at: self.now(),
            until,
        }
        .sign(&self.person(signer).identity)
        .unwrap();
        let packages: Vec<Value> = items
            .iter()
            .map(|i| {
                let p = seal_key_package(
                    &i.sealed.content_key,
                    &i.sealed.preamble.item_id(),
                    self.person(grantee).identity.public(),
                )
                .unwrap();
                json!({"item": i.id, "package": b64(&p)})
            })
            .collect();
        json!({"grant": b64(&signed_bytes(statement)), "key_packages": packages})
    }

    /// Polls `GET path` as `who` until `done` holds of the body, for at most 15 s.
    fn wait_until(&self, who: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, v) = self.call(who, "GET", path, None);
            if status == StatusCode::OK && done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sweeps finished so far (from `/metrics`).
    fn sweeps(&self) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("attache_sweeps_total "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until a whole sweep has run after this call (the clock may just have moved).
    fn wait_for_sweep(&self) {
        let start = self.sweeps();
        wait_for(|| self.sweeps() >= start + 2);
    }

    /// The audit entries of a listing, parsed.
    fn entries(log: &Value) -> Vec<AuditEntry> {
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                AuditEntry::from_stored(&STANDARD.decode(e["raw"].as_str().unwrap()).unwrap())
                    .unwrap()
            })
            .collect()
    }

    /// Stops the server (the database can then be opened by the test).
    fn stop(&mut self) {
        self.server = None;
    }
}

fn ring_random() -> [u8; 16] {
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).unwrap();
    id
}

fn sealed_digest(u: &Uploaded) -> [u8; 32] {
    u.sealed.manifest.digest()
}

fn signed_bytes(g: attache::crypto::SignedGrant) -> Vec<u8> {
    g.to_bytes()
}

fn actions(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.action.as_str()).collect()
}

#[test]
fn matters_file_messages_only_while_open_and_only_for_the_firm() {
    let mut firm = Firm::start();
    // Roles and bounds.
    firm.refused(
        CAROL,
        "POST",
        "/v1/matters",
        Some(json!({"sealed_name": b64(b"x")})),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    firm.refused(
        ANN,
        "POST",
        "/v1/matters",
        Some(json!({"sealed_name": b64(&vec![1u8; MAX_SEALED_NAME_LEN + 1])})),
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let m = firm.new_matter(ANN);
    let path = format!("/v1/matters/{m}");
    let matter = firm.ok(ANN, "GET", &path, None, StatusCode::OK);
    assert_eq!(
        (matter["status"].as_str(), matter["owner"].as_str()),
        (Some("open"), Some(ANN))
    );
    firm.ok(ADA, "GET", &path, None, StatusCode::OK);
    // Another attorney's matter and a matter that does not exist look alike.
    firm.refused(BOB, "GET", &path, None, StatusCode::NOT_FOUND, "not_found");
    firm.refused(
        BOB,
        "GET",
        "/v1/matters/00000000000000000000000000000000",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let mine = firm.ok(ANN, "GET", "/v1/matters", None, StatusCode::OK);
    assert_eq!(mine["matters"].as_array().unwrap().len(), 1);
    let bobs = firm.ok(BOB, "GET", "/v1/matters", None, StatusCode::OK);
    assert!(bobs["matters"].as_array().unwrap().is_empty());
    let all = firm.ok(ADA, "GET", "/v1/matters", None, StatusCode::OK);
    assert_eq!(all["matters"][0]["id"].as_str(), Some(m.as_str()));

    // Filing: the owner may; a client naming a matter may not; another attorney gets 404.
    let doc = firm.upload(ANN, &[CAROL], &content(70_000, 1));
    let (sent, _) = firm.send(ANN, CAROL, &[&doc], Some(&m));
    assert_eq!(sent["matter"].as_str(), Some(m.as_str()));
    let carol_item = firm.upload(CAROL, &[ANN], b"client record");
    let mut body = json!({"item": carol_item.id, "documents": [], "to": [ANN], "in_reply_to": null, "matter": m});
    firm.refused(
        CAROL,
        "POST",
        "/v1/messages",
        Some(body.clone()),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let bob_item = firm.upload(BOB, &[CAROL], b"bob's record");
    firm.refused(
        BOB,
        "POST",
        "/v1/messages",
        Some(json!({"item": bob_item.id, "documents": [], "to": [CAROL], "in_reply_to": null, "matter": m})),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // A reply without a matter joins its thread's matter (a minute later, so that it is the
    // newest: times are in seconds).
    firm.advance(60);
    body["matter"] = Value::Null;
    body["in_reply_to"] = sent["id"].clone();
    let reply = firm.ok(
        CAROL,
        "POST",
        "/v1/messages",
        Some(body),
        StatusCode::CREATED,
    );
    assert_eq!(reply["matter"].as_str(), Some(m.as_str()));
    let listed = firm.ok(
        ANN,
        "GET",
        &format!("{path}/messages?limit=1"),
        None,
        StatusCode::OK,
    );
    assert_eq!(listed["messages"][0]["id"], reply["id"], "newest first");
    let next = listed["next"].as_str().unwrap();
    let listed = firm.ok(
        ANN,
        "GET",
        &format!("{path}/messages?before={next}"),
        None,
        StatusCode::OK,
    );
    assert_eq!(listed["messages"][0]["id"], sent["id"]);
    assert!(listed["next"].is_null());
    firm.refused(
        BOB,
        "GET",
        &format!("{path}/messages"),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Closing: bounded retention, once; then nothing more joins the matter.
    firm.refused(
        ANN,
        "POST",
        &format!("{path}/close"),
        Some(json!({"retain_days": MAX_RETAIN_DAYS + 1})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_retention",
    );
    firm.refused(
        BOB,
        "POST",
        &format!("{path}/close"),
        Some(json!({})),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let closed = firm.ok(
        ANN,
        "POST",
        &format!("{path}/close"),
        Some(json!({"retain_days": 30})),
        StatusCode::OK,
    );
    assert_eq!(closed["status"].as_str(), Some("closed"));
    assert_eq!(
        closed["delete_after"].as_i64().unwrap(),
        closed["closed_at"].as_i64().unwrap() + 30 * 86_400
    );
    firm.refused(
        ANN,
        "POST",
        &format!("{path}/close"),
        Some(json!({})),
        StatusCode::CONFLICT,
        "matter_closed",
    );
    let another = firm.upload(ANN, &[CAROL], b"late record");
    firm.refused(
        ANN,
        "POST",
        "/v1/messages",
        Some(json!({"item": another.id, "documents": [], "to": [CAROL], "in_reply_to": null, "matter": m})),
        StatusCode::CONFLICT,
        "matter_closed",
    );
    let late = firm.upload(CAROL, &[ANN], b"late reply");
    firm.refused(
        CAROL,
        "POST",
        "/v1/messages",
        Some(json!({"item": late.id, "documents": [], "to": [ANN], "in_reply_to": sent["id"], "matter": null})),
        StatusCode::CONFLICT,
        "matter_closed",
    );
}

#[test]
fn retention_deletes_every_byte_of_a_matter_unless_held() {
    let mut firm = Firm::start();
    let m = firm.new_matter(ANN);
    let path = format!("/v1/matters/{m}");
    let doc = firm.upload(ANN, &[CAROL], &content(200_000, 2));
    let (sent, record) = firm.send(ANN, CAROL, &[&doc], Some(&m));
    let outside = firm.upload(ANN, &[CAROL], &content(1000, 3));
    firm.send(ANN, CAROL, &[&outside], None);
    firm.ok(
        ANN,
        "POST",
        &format!("{path}/close"),
        Some(json!({"retain_days": 1})),
        StatusCode::OK,
    );
    let held = firm.ok(ANN, "POST", &format!("{path}/hold"), None, StatusCode::OK);
    assert_eq!(held["hold"], true);

    // Past the deletion time, a held matter keeps everything.
    firm.advance(2 * 86_400);
    firm.wait_for_sweep();
    assert_eq!(
        firm.ok(ANN, "GET", &path, None, StatusCode::OK)["status"].as_str(),
        Some("closed")
    );
    firm.ok(
        CAROL,
        "GET",
        &format!("/v1/items/{}", doc.id),
        None,
        StatusCode::OK,
    );

    // Released: the next sweep deletes it, and says so in the audit log.
    firm.ok(
        ANN,
        "POST",
        &format!("{path}/release"),
        None,
        StatusCode::OK,
    );
    let deleted = firm.wait_until(ANN, &path, |v| v["status"] == "deleted");
    assert!(deleted["deleted_at"].as_i64().is_some());
    firm.refused(
        CAROL,
        "GET",
        &format!("/v1/items/{}", doc.id),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    firm.refused(
        CAROL,
        "GET",
        &format!("/v1/messages/{}", sent["id"].as_str().unwrap()),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    firm.ok(
        CAROL,
        "GET",
        &format!("/v1/items/{}", outside.id),
        None,
        StatusCode::OK,
    );
    firm.refused(
        ANN,
        "POST",
        &format!("{path}/hold"),
        None,
        StatusCode::GONE,
        "matter_deleted",
    );
    let log = firm.ok(
        ANN,
        "GET",
        &format!("/v1/audit?matter={m}"),
        None,
        StatusCode::OK,
    );
    let entries = Firm::entries(&log);
    let deletion = entries
        .iter()
        .find(|e| e.action == "matter.delete")
        .unwrap();
    assert_eq!(deletion.actor, "server");
    assert!(
        deletion.object.starts_with(&format!("{m} items=2 chunks=")),
        "{}",
        deletion.object
    );
    assert_eq!(
        actions(&entries)[..4],
        [
            "matter.create",
            "message.send",
            "matter.close",
            "matter.hold"
        ]
    );

    // In the store: nothing of the matter's items is left (scan by prefix).
    firm.stop();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = attache::storage::Store::open(&firm.data, 8 << 20).unwrap();
        for item in [&doc.id, &record.id] {
            let mut prefix = vec![1u8];
            prefix.extend_from_slice(&id16(item));
            for tree in ["chunks", "key_packages", "items"] {
                assert_eq!(
                    store.count_prefix(tree, &prefix).unwrap(),
                    Some(0),
                    "{tree} of {item}"
                );
            }
        }
        let mut prefix = vec![1u8];
        prefix.extend_from_slice(&id16(&outside.id));
        assert_eq!(store.count_prefix("chunks", &prefix).unwrap(), Some(1));
    });
}

#[test]
fn signature_requests_are_answered_once_by_the_signer_before_the_deadline() {
    let mut firm = Firm::start();
    let m = firm.new_matter(ANN);
    let doc = firm.upload(ANN, &[CAROL], &content(5000, 4));
    let (sent, _) = firm.send(ANN, CAROL, &[&doc], Some(&m));
    let message = sent["id"].as_str().unwrap().to_owned();
    let now = firm.now();
    let request = |deadline: i64| json!({"message": message, "document": doc.id, "signer": CAROL, "deadline": deadline});

    for deadline in [now - 10, now + MAX_HORIZON_SECS + 3600] {
        let why = firm.refused(
            ANN,
            "POST",
            "/v1/signatures",
            Some(request(deadline)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_deadline",
        );
        assert!(why.contains("deadline"), "{why}");
    }
    firm.refused(
        CAROL,
        "POST",
        "/v1/signatures",
        Some(request(now + 3600)),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let mut wrong = request(now + 3600);
    wrong["document"] = json!(sent["item"]);
    firm.refused(
        ANN,
        "POST",
        "/v1/signatures",
        Some(wrong),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_document",
    );
    let mut wrong = request(now + 3600);
    wrong["signer"] = json!(BOB);
    firm.refused(
        ANN,
        "POST",
        "/v1/signatures",
        Some(wrong),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_signer",
    );

    // Deadline in 100 h: reminders at 72 h and 24 h before it.
    let deadline = now + 100 * 3600;
    let r = firm.ok(
        ANN,
        "POST",
        "/v1/signatures",
        Some(request(deadline)),
        StatusCode::CREATED,
    );
    assert_eq!(
        (r["status"].as_str(), r["matter"].as_str()),
        (Some("pending"), Some(m.as_str()))
    );
    let id = r["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/signatures/{id}");
    let listed = firm.ok(CAROL, "GET", "/v1/signatures", None, StatusCode::OK);
    assert_eq!(listed["requests"][0]["id"].as_str(), Some(id.as_str()));
    firm.refused(BOB, "GET", &path, None, StatusCode::NOT_FOUND, "not_found");
    firm.refused(
        ANN,
        "GET",
        &format!("{path}/evidence"),
        None,
        StatusCode::CONFLICT,
        "not_answered",
    );

    // The first reminder falls due when the clock passes deadline - 72 h.
    let mail = firm.data.join("mail");
    let reminders = |dir: &Path| {
        eml_files(dir)
            .into_iter()
            .filter(|e| e.contains("A signature requested from you is due soon"))
            .count()
    };
    assert_eq!(reminders(&mail), 0);
    firm.advance(29 * 3600);
    wait_for(|| reminders(&mail) == 1);

    let answer = json!({"intent": "sign", "sealed_statement": b64(&[5u8; 600])});
    firm.refused(
        ANN,
        "POST",
        &format!("{path}/answer"),
        Some(answer.clone()),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    firm.refused(
        CAROL,
        "POST",
        &format!("{path}/answer"),
        Some(json!({"intent": "sign", "sealed_statement": b64(&vec![5u8; 16 * 1024 + 1])})),
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let signed = firm.ok(
        CAROL,
        "POST",
        &format!("{path}/answer"),
        Some(answer.clone()),
        StatusCode::OK,
    );
    assert_eq!(signed["status"].as_str(), Some("signed"));
    assert_eq!(
        signed["sealed_statement"].as_str(),
        Some(b64(&[5u8; 600]).as_str())
    );
    firm.refused(
        CAROL,
        "POST",
        &format!("{path}/answer"),
        Some(answer),
        StatusCode::CONFLICT,
        "already_answered",
    );
    // The requester is told; the second reminder is dropped (the request was answered).
    wait_for(|| {
        eml_files(&mail)
            .iter()
            .any(|e| e.contains("A signature request you made has been answered"))
    });
    firm.advance(48 * 3600);
    firm.wait_for_sweep();
    firm.wait_for_sweep();
    assert_eq!(reminders(&mail), 1, "no reminder after the answer");

    // Evidence: both accounts, the entries in log order, attested by the audit key.
    let evidence = firm.ok(
        CAROL,
        "GET",
        &format!("{path}/evidence"),
        None,
        StatusCode::OK,
    );
    assert_eq!(evidence["requester"]["email"].as_str(), Some(ANN));
    assert_eq!(evidence["signer"]["email"].as_str(), Some(CAROL));
    let raw: Vec<Vec<u8>> = evidence["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| STANDARD.decode(e["raw"].as_str().unwrap()).unwrap())
        .collect();
    let entries: Vec<AuditEntry> = raw
        .iter()
        .map(|r| AuditEntry::from_stored(r).unwrap())
        .collect();
    let acts = actions(&entries);
    for a in ["message.send", "signature.request", "signature.sign"] {
        assert!(acts.contains(&a), "{acts:?}");
    }
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq), "log order");
    let hashes: Vec<[u8; 32]> = raw
        .iter()
        .map(|r| {
            ring::digest::digest(&ring::digest::SHA256, r)
                .as_ref()
                .try_into()
                .unwrap()
        })
        .collect();
    let key = STANDARD
        .decode(evidence["server_key"].as_str().unwrap())
        .unwrap();
    // The attestation binds the request as served, both parties' emails and the keys the
    // server holds for them (docs/FORMAT.md §16.1): rebuilt here from what the test knows.
    let req = &evidence["request"];
    assert_eq!(req["id"].as_str(), Some(id.as_str()));
    assert_eq!(req["status"].as_str(), Some("signed"));
    let keys_of = |who: &str| -> [u8; 64] {
        let served: [u8; 64] = STANDARD
            .decode(evidence[who]["public_keys"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let email = evidence[who]["email"].as_str().unwrap();
        assert_eq!(served, firm.person(email).identity.public().to_bytes());
        served
    };
    let (ann_keys, carol_keys) = (keys_of("requester"), keys_of("signer"));
    let matter = req["matter"].as_str().map(id16);
    let attested = Attestation {
        request_id: &id16(&id),
        requester: AttestedParty {
            email: ANN,
            public_keys: &ann_keys,
        },
        signer: AttestedParty {
            email: CAROL,
            public_keys: &carol_keys,
        },
        message: &id16(req["message"].as_str().unwrap()),
        document: &id16(req["document"].as_str().unwrap()),
        matter: matter.as_ref(),
        created_at: req["created_at"].as_i64().unwrap(),
        deadline: req["deadline"].as_i64().unwrap(),
        status: SignatureStatus::Signed,
        answered_at: req["answered_at"].as_i64(),
        attested_at: evidence["attested_at"].as_i64().unwrap(),
        entry_hashes: &hashes,
    };
    let attestation = STANDARD
        .decode(evidence["attestation"].as_str().unwrap())
        .unwrap();
    let server_key = UnparsedPublicKey::new(&ED25519, &key);
    server_key
        .verify(&attestation_message(&attested), &attestation)
        .expect("the attestation verifies under the server's audit key");
    // A later deadline, or another key for the signer, is not what the server attested.
    let later = Attestation {
        deadline: attested.deadline + 86_400,
        ..attested
    };
    assert!(
        server_key
            .verify(&attestation_message(&later), &attestation)
            .is_err()
    );
    let other_keys = firm.person(BOB).identity.public().to_bytes();
    let other_signer = Attestation {
        signer: AttestedParty {
            email: CAROL,
            public_keys: &other_keys,
        },
        ..attested
    };
    assert!(
        server_key
            .verify(&attestation_message(&other_signer), &attestation)
            .is_err()
    );

    // A request past its deadline is expired and can no longer be answered.
    let short = firm.now() + 3600;
    let r = firm.ok(
        ANN,
        "POST",
        "/v1/signatures",
        Some(request(short)),
        StatusCode::CREATED,
    );
    let expired = format!("/v1/signatures/{}", r["id"].as_str().unwrap());
    firm.advance(2 * 3600);
    assert_eq!(
        firm.ok(CAROL, "GET", &expired, None, StatusCode::OK)["status"].as_str(),
        Some("expired")
    );
    let why = firm.refused(
        CAROL,
        "POST",
        &format!("{expired}/answer"),
        Some(json!({"intent": "decline", "sealed_statement": b64(b"no")})),
        StatusCode::GONE,
        "request_expired",
    );
    assert!(why.contains(&format_utc(short)), "{why}");
}

#[test]
fn grants_open_access_until_they_end_and_never_past_retention() {
    let mut firm = Firm::start();
    let m = firm.new_matter(ANN);
    let doc = firm.upload(ANN, &[CAROL], &content(80_000, 5));
    let (sent, record) = firm.send(ANN, CAROL, &[&doc], Some(&m));
    let message = sent["id"].as_str().unwrap().to_owned();
    let until = firm.now() + 3600;

    // Only the firm grants, and only with a statement signed by its own key.
    let g = firm.grant(ANN, COLE, &[&record, &doc], Some(&message), Some(&m), until);
    firm.refused(
        CAROL,
        "POST",
        "/v1/grants",
        Some(g.clone()),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let forged = firm.grant(BOB, COLE, &[&record, &doc], Some(&message), Some(&m), until);
    let why = firm.refused(
        ANN,
        "POST",
        "/v1/grants",
        Some(forged),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_grant",
    );
    assert!(why.contains("not signed by your key"), "{why}");
    let partial = firm.grant(ANN, COLE, &[&doc], Some(&message), Some(&m), until);
    firm.refused(
        ANN,
        "POST",
        "/v1/grants",
        Some(partial),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_grant",
    );
    let too_long = firm.grant(
        ANN,
        COLE,
        &[&doc],
        None,
        Some(&m),
        firm.now() + MAX_HORIZON_SECS + 10,
    );
    firm.refused(
        ANN,
        "POST",
        "/v1/grants",
        Some(too_long),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_until",
    );
    let outside = firm.grant(ANN, COLE, &[&doc], None, None, until);
    firm.refused(
        ANN,
        "POST",
        "/v1/grants",
        Some(outside),
        StatusCode::UNPROCESSABLE_ENTITY,
        "matter_mismatch",
    );

    let created = firm.ok(ANN, "POST", "/v1/grants", Some(g), StatusCode::CREATED);
    assert_eq!(created["status"].as_str(), Some("active"));
    let grant_id = created["id"].as_str().unwrap().to_owned();
    let again = firm.grant(ANN, COLE, &[&doc], None, Some(&m), until);
    firm.refused(
        ANN,
        "POST",
        "/v1/grants",
        Some(again),
        StatusCode::CONFLICT,
        "already_reader",
    );

    // Before the end: Cole reads the message, the header and the ciphertext.
    firm.ok(
        COLE,
        "GET",
        &format!("/v1/messages/{message}"),
        None,
        StatusCode::OK,
    );
    firm.ok(
        COLE,
        "GET",
        &format!("/v1/items/{}", doc.id),
        None,
        StatusCode::OK,
    );
    firm.ok(
        COLE,
        "GET",
        &format!("/v1/items/{}/chunks", doc.id),
        None,
        StatusCode::OK,
    );
    let by_cole = firm.ok(COLE, "GET", "/v1/grants", None, StatusCode::OK);
    assert_eq!(by_cole["grants"][0]["id"].as_str(), Some(grant_id.as_str()));

    // After it: 410 with the date, before and after the sweeper deletes the packages.
    firm.advance(2 * 3600);
    let expired = format!("access expired on {}", format_utc(until));
    for path in [
        format!("/v1/items/{}", doc.id),
        format!("/v1/items/{}/chunks", doc.id),
        format!("/v1/messages/{message}"),
    ] {
        let why = firm.refused(COLE, "GET", &path, None, StatusCode::GONE, "access_expired");
        assert_eq!(why, expired);
    }
    let log = firm.wait_until(ANN, &format!("/v1/audit?matter={m}"), |v| {
        Firm::entries(v).iter().any(|e| e.action == "grant.expire")
    });
    let why = firm.refused(
        COLE,
        "GET",
        &format!("/v1/items/{}", doc.id),
        None,
        StatusCode::GONE,
        "access_expired",
    );
    assert_eq!(why, expired);
    let listed = firm.ok(ANN, "GET", "/v1/grants", None, StatusCode::OK);
    assert_eq!(listed["grants"][0]["status"].as_str(), Some("expired"));
    let entries = Firm::entries(&log);
    let acts = actions(&entries);
    for a in [
        "grant.create",
        "key_package.release",
        "ciphertext.release",
        "grant.expire",
    ] {
        assert!(acts.contains(&a), "{acts:?}");
    }
    let release = entries
        .iter()
        .find(|e| e.action == "ciphertext.release" && e.actor == COLE)
        .unwrap();
    assert_eq!(release.addr, "127.0.0.1");
    assert_eq!(release.matter.as_deref(), Some(m.as_str()));

    // Revocation cuts access at once; only the grantor (or an admin) may revoke, once.
    let doc2 = firm.upload(ANN, &[CAROL], &content(1000, 6));
    let (sent2, record2) = firm.send(ANN, CAROL, &[&doc2], Some(&m));
    let g2 = firm.grant(
        ANN,
        COLE,
        &[&record2, &doc2],
        sent2["id"].as_str(),
        Some(&m),
        firm.now() + 3600,
    );
    let g2 = firm.ok(ANN, "POST", "/v1/grants", Some(g2), StatusCode::CREATED);
    firm.ok(
        COLE,
        "GET",
        &format!("/v1/items/{}", doc2.id),
        None,
        StatusCode::OK,
    );
    let revoke = format!("/v1/grants/{}/revoke", g2["id"].as_str().unwrap());
    firm.refused(
        BOB,
        "POST",
        &revoke,
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    firm.refused(
        COLE,
        "POST",
        &revoke,
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let revoked = firm.ok(ANN, "POST", &revoke, None, StatusCode::OK);
    assert_eq!(revoked["status"].as_str(), Some("revoked"));
    let why = firm.refused(
        COLE,
        "GET",
        &format!("/v1/items/{}", doc2.id),
        None,
        StatusCode::GONE,
        "access_expired",
    );
    assert!(why.starts_with("access expired on "), "{why}");
    firm.refused(
        ANN,
        "POST",
        &revoke,
        None,
        StatusCode::CONFLICT,
        "already_revoked",
    );

    // A closed matter: a grant may not outlast its retention.
    firm.ok(
        ANN,
        "POST",
        &format!("/v1/matters/{m}/close"),
        Some(json!({"retain_days": 1})),
        StatusCode::OK,
    );
    let past = firm.grant(
        ANN,
        COLE,
        &[&record2, &doc2],
        sent2["id"].as_str(),
        Some(&m),
        firm.now() + 2 * 86_400,
    );
    let why = firm.refused(
        ANN,
        "POST",
        "/v1/grants",
        Some(past),
        StatusCode::UNPROCESSABLE_ENTITY,
        "grant_past_retention",
    );
    assert!(why.contains("deleted on"), "{why}");
}

#[test]
fn the_audit_log_is_scoped_by_role_and_verifies_offline() {
    let firm = Firm::start();
    let m = firm.new_matter(ANN);
    let doc = firm.upload(ANN, &[CAROL], &content(3000, 7));
    firm.send(ANN, CAROL, &[&doc], Some(&m));
    firm.ok(
        CAROL,
        "GET",
        &format!("/v1/items/{}/chunks", doc.id),
        None,
        StatusCode::OK,
    );

    firm.refused(
        ANN,
        "GET",
        "/v1/audit",
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    firm.refused(
        CAROL,
        "GET",
        "/v1/audit",
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    firm.refused(
        BOB,
        "GET",
        &format!("/v1/audit?matter={m}"),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    firm.refused(
        BOB,
        "GET",
        &format!("/v1/audit?item={}", doc.id),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    firm.refused(
        COLE,
        "GET",
        &format!("/v1/audit?item={}", doc.id),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    firm.refused(
        ADA,
        "GET",
        &format!("/v1/audit?matter={m}&item={}", doc.id),
        None,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    // The client sees the entries about its item.
    let about = firm.ok(
        CAROL,
        "GET",
        &format!("/v1/audit?item={}", doc.id),
        None,
        StatusCode::OK,
    );
    let entries = Firm::entries(&about);
    assert!(entries.iter().all(|e| e.object == doc.id));
    assert!(
        entries
            .iter()
            .any(|e| e.action == "ciphertext.release" && e.actor == CAROL)
    );

    // The whole log and the matter's chain verify against the signed checkpoints.
    let whole = firm.ok(ADA, "GET", "/v1/audit", None, StatusCode::OK);
    let key: [u8; 32] = STANDARD
        .decode(whole["server_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let raw = |log: &Value| -> Vec<Vec<u8>> {
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| STANDARD.decode(e["raw"].as_str().unwrap()).unwrap())
            .collect()
    };
    let checkpoints = |log: &Value| -> Vec<SignedCheckpointBytes> {
        log["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| SignedCheckpointBytes {
                checkpoint: STANDARD.decode(c["checkpoint"].as_str().unwrap()).unwrap(),
                signature: STANDARD.decode(c["signature"].as_str().unwrap()).unwrap(),
            })
            .collect()
    };
    let entries = raw(&whole);
    let report = verify_audit(&entries, &checkpoints(&whole), &key, AuditScope::Log).unwrap();
    assert_eq!(
        report.covered as usize,
        entries.len(),
        "a fresh checkpoint covers every entry"
    );
    let parsed: Vec<AuditEntry> = entries
        .iter()
        .map(|r| AuditEntry::from_stored(r).unwrap())
        .collect();
    let acts = actions(&parsed);
    for a in [
        "account.join",
        "session.open",
        "invite.create",
        "matter.create",
        "message.send",
    ] {
        assert!(acts.contains(&a), "{a} missing from {acts:?}");
    }
    let invite = parsed.iter().find(|e| e.action == "invite.create").unwrap();
    assert_eq!(
        invite.object, ANN,
        "an invite's object is the invited address"
    );
    let sign_in = parsed.iter().find(|e| e.action == "session.open").unwrap();
    assert_eq!(sign_in.object, sign_in.actor);

    let chain = firm.ok(
        ANN,
        "GET",
        &format!("/v1/audit?matter={m}"),
        None,
        StatusCode::OK,
    );
    let report = verify_audit(
        &raw(&chain),
        &checkpoints(&chain),
        &key,
        AuditScope::Matter(id16(&m)),
    )
    .unwrap();
    assert_eq!(report.covered as usize, raw(&chain).len());
    assert!(report.entries >= 3, "create, send, releases");
}

/// The `.eml` notices written so far.
fn eml_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `done` for at most 15 s.
fn wait_for(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}
