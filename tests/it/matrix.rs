//! The authorization matrix (issue 6): every route of the running server's OpenAPI document
//! (plus `/healthz`, `/metrics` and `/i/{id}` from the route table) against every kind of
//! caller, each cell's expected status in ONE table below. A route missing from the table, or a
//! table row for a route the server does not have, fails the test.
//!
//! The objects are real: a matter of Ann's, a message from Ann to her client Carol in it with a
//! document, a signature request, grants of the message to three co-counsel (one active, one
//! expired by moving the server's clock, one revoked), and another matter of Bob's with his
//! client Dan. A request that changes state gets a fresh object of its own (an upload, a matter,
//! a request, a grant), and every body is valid, so that the status shows whether the caller
//! is allowed and a `400` cannot hide an authorization hole. Every answer is also checked for
//! the security headers.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use attache::crypto::{GrantStatement, Metadata, Sealed, SealedChunks, seal_key_package};
use attache::wire::from_hex;

use crate::support::{
    ApiUser, Server, check_hygiene, content, free_port, insecure_http, seal, start_server_with,
    temp_dir,
};

/// The kinds of caller, in the order of the table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No session.
    Anonymous,
    /// A client with no relation to anything below (Sam).
    Stranger,
    /// A client of another matter (Dan, Bob's client).
    OtherClient,
    /// The client the message was sent to (Carol).
    Recipient,
    /// The attorney who sent it and owns the matter (Ann).
    Sender,
    /// Co-counsel whose grant of the message is running (Cole).
    CocounselActive,
    /// Co-counsel whose grant ended (Cy).
    CocounselExpired,
    /// Co-counsel whose grant was revoked (Cass).
    CocounselRevoked,
    /// A firm attorney who is not the owner (Bob).
    Attorney,
    /// The firm's administrator (Ada).
    Admin,
}

const CALLERS: [Who; 10] = [
    Who::Anonymous,
    Who::Stranger,
    Who::OtherClient,
    Who::Recipient,
    Who::Sender,
    Who::CocounselActive,
    Who::CocounselExpired,
    Who::CocounselRevoked,
    Who::Attorney,
    Who::Admin,
];

/// One request kind: a route (with a variant when one route is asked in several ways) and the
/// status each caller must get, in the order of [`CALLERS`].
struct Row {
    method: &'static str,
    route: &'static str,
    variant: &'static str,
    expect: [u16; 10],
}

const fn row(method: &'static str, route: &'static str, expect: [u16; 10]) -> Row {
    Row {
        method,
        route,
        variant: "",
        expect,
    }
}

/// THE TABLE.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    //                                                 anon stran other recip sendr cc-on cc-exp cc-rev attny admin
    row("GET",  "/healthz",                           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/metrics",                           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/v1/openapi.json",                   [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/i/{id}",                            [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // The invite secret authorizes a join, the signature a session; a session is irrelevant.
    row("POST", "/v1/join",                           [201, 201, 201, 201, 201, 201, 201, 201, 201, 201]),
    row("POST", "/v1/auth/challenge",                 [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("POST", "/v1/auth/session",                   [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/v1/me",                             [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // A client invite: firm users only.
    row("POST", "/v1/invites",                        [401, 403, 403, 403, 201, 403, 403, 403, 201, 201]),
    row("GET",  "/v1/contacts",                       [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // Carol's keys: herself, the firm, her correspondents.
    row("GET",  "/v1/directory/{email}",              [401, 404, 404, 200, 200, 404, 404, 404, 200, 200]),
    row("POST", "/v1/items",                          [401, 201, 201, 201, 201, 201, 201, 201, 201, 201]),
    // Ann's unfinished upload: hers alone.
    row("PUT",  "/v1/items/{item}/chunks/{first}",    [401, 404, 404, 404, 200, 404, 404, 404, 404, 404]),
    row("GET",  "/v1/items/{item}/upload",            [401, 404, 404, 404, 200, 404, 404, 404, 404, 404]),
    row("POST", "/v1/items/{item}/commit",            [401, 404, 404, 404, 200, 404, 404, 404, 404, 404]),
    // The document: key package holders; ended grants are told so; the admin holds no key.
    row("GET",  "/v1/items/{item}",                   [401, 404, 404, 200, 200, 200, 410, 410, 404, 404]),
    row("GET",  "/v1/items/{item}/chunks",            [401, 404, 404, 200, 200, 200, 410, 410, 404, 404]),
    // A reply to the message (with the caller's own item): its participants only.
    row("POST", "/v1/messages",                       [401, 404, 404, 201, 201, 404, 404, 404, 404, 404]),
    row("GET",  "/v1/messages",                       [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/v1/messages/{id}",                  [401, 404, 404, 200, 200, 200, 410, 410, 404, 404]),
    row("POST", "/v1/matters",                        [401, 403, 403, 403, 201, 403, 403, 403, 201, 201]),
    row("GET",  "/v1/matters",                        [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // Ann's matter: its owner and the admin.
    row("GET",  "/v1/matters/{id}",                   [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]),
    row("POST", "/v1/matters/{id}/close",             [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]),
    row("POST", "/v1/matters/{id}/hold",              [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]),
    row("POST", "/v1/matters/{id}/release",           [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]),
    row("GET",  "/v1/matters/{id}/messages",          [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]),
    // Asking Carol to sign the document: the message's sender only.
    row("POST", "/v1/signatures",                     [401, 404, 404, 404, 201, 404, 404, 404, 404, 404]),
    row("GET",  "/v1/signatures",                     [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/v1/signatures/{id}",                [401, 404, 404, 200, 200, 404, 404, 404, 404, 404]),
    row("POST", "/v1/signatures/{id}/answer",         [401, 404, 404, 200, 404, 404, 404, 404, 404, 404]),
    row("GET",  "/v1/signatures/{id}/evidence",       [401, 404, 404, 200, 200, 404, 404, 404, 404, 404]),
    // A grant of the document, signed by the caller: firm roles, and a key package holder.
    row("POST", "/v1/grants",                         [401, 403, 403, 403, 201, 403, 403, 403, 404, 404]),
    row("GET",  "/v1/grants",                         [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("POST", "/v1/grants/{id}/revoke",             [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]),
    row("GET",  "/v1/audit",                          [401, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    Row { variant: "?matter=M", ..row("GET", "/v1/audit", [401, 404, 404, 404, 200, 404, 404, 404, 404, 200]) },
    Row { variant: "?item=D",   ..row("GET", "/v1/audit", [401, 404, 404, 200, 200, 403, 403, 403, 404, 200]) },
];

/// An uploaded item and what its uploader keeps.
struct Item {
    id: String,
    sealed: Sealed,
    chunks: SealedChunks,
}

/// The running server and its people.
struct Api {
    url: String,
    clock: PathBuf,
    http: Client,
    people: Vec<(Who, ApiUser)>,
    /// The co-counsel who receives the grants made in cells.
    spare: ApiUser,
}

/// The objects every cell reads.
struct Objects {
    /// Ann's matter, her message to Carol in it, the message's record item and document.
    matter: String,
    message: String,
    document: Item,
    /// Ann's unfinished upload.
    unfinished: String,
    /// Ann's request to Carol to sign the document, and one Carol answered.
    request: String,
    answered: String,
    /// An invite page path.
    invite_page: String,
}

struct World {
    _root: tempfile::TempDir,
    _server: Server,
    api: Api,
    o: Objects,
    /// Serial of fresh accounts and emails.
    serial: u32,
}

fn answer_body() -> Value {
    json!({"intent": "sign", "sealed_statement": b64(&[9u8; 200])})
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn id16(hex: &str) -> [u8; 16] {
    from_hex(hex).unwrap().try_into().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

impl World {
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
                ("ATTACHE_SESSION_HOURS", "1000000"),
                ("ATTACHE_SESSION_IDLE_MINUTES", "100000000"),
                // The matrix tests who may, not how often: rates off.
                ("ATTACHE_RATE_AUTH_PER_IP", "0"),
                ("ATTACHE_RATE_WRITES_PER_ACCOUNT", "0"),
                ("ATTACHE_RATE_WRITES_PER_IP", "0"),
                ("ATTACHE_RATE_INVITES_PER_ACCOUNT", "0"),
            ],
        );
        let http = insecure_http();
        let url = server.url.clone();
        let ada = ApiUser::join(
            "ada@firm.example",
            1,
            &http,
            &url,
            server.bootstrap.as_deref().unwrap(),
        );
        let invite_page = server
            .bootstrap
            .as_deref()
            .unwrap()
            .split_once('#')
            .unwrap()
            .0
            .trim_start_matches(&url)
            .to_owned();
        let mut people = vec![(Who::Admin, ada)];
        let mut spare = None;
        for (who, email, role, label) in [
            (Some(Who::Sender), "ann@firm.example", "attorney", 2),
            (Some(Who::Attorney), "bob@firm.example", "attorney", 3),
            (Some(Who::Recipient), "carol@client.example", "client", 4),
            (Some(Who::OtherClient), "dan@client.example", "client", 5),
            (Some(Who::Stranger), "sam@client.example", "client", 6),
            (
                Some(Who::CocounselActive),
                "cole@cocounsel.example",
                "cocounsel",
                7,
            ),
            (
                Some(Who::CocounselExpired),
                "cy@cocounsel.example",
                "cocounsel",
                8,
            ),
            (
                Some(Who::CocounselRevoked),
                "cass@cocounsel.example",
                "cocounsel",
                9,
            ),
            (None, "spare@cocounsel.example", "cocounsel", 10),
        ] {
            let invite = Api::invite(&http, &url, &people[0].1, email, role);
            let user = ApiUser::join(email, label, &http, &url, &invite);
            match who {
                Some(w) => people.push((w, user)),
                None => spare = Some(user),
            }
        }
        let api = Api {
            url,
            clock,
            http,
            people,
            spare: spare.unwrap(),
        };
        let o = api.set_up(invite_page);
        Self {
            _root: root,
            _server: server,
            api,
            o,
            serial: 0,
        }
    }
}

impl Api {
    fn invite(http: &Client, url: &str, by: &ApiUser, email: &str, role: &str) -> String {
        let r = http
            .post(format!("{url}/v1/invites"))
            .bearer_auth(&by.token)
            .json(&json!({"email": email, "role": role, "name": null}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn user(&self, who: Who) -> &ApiUser {
        &self.people.iter().find(|(w, _)| *w == who).unwrap().1
    }

    /// A request that must succeed with `want`; returns the body.
    fn ok(&self, who: Who, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, v) = self.send(Some(self.user(who)), method, path, Body::from(body));
        assert_eq!(status, want, "setting up: {method} {path} as {who:?}: {v}");
        v
    }

    fn send(&self, user: Option<&ApiUser>, method: &str, path: &str, body: Body) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(u) = user {
            r = r.bearer_auth(&u.token);
        }
        r = match body {
            Body::None => r,
            Body::Json(v) => r.json(&v),
            Body::Octets(b) => r.header("content-type", "application/octet-stream").body(b),
        };
        let r = r.send().unwrap();
        check_hygiene(path, r.headers(), path.starts_with("/i/"));
        let status = r.status().as_u16();
        let bytes = r.bytes().unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Starts an upload of `data` by `who` and sends its chunks (all of them unless `partial`).
    fn begin(&self, who: Who, data: &[u8], partial: bool) -> Item {
        let me = self.user(who);
        let (sealed, chunks) = seal(&me.identity, &Metadata::default(), data);
        let state = self.ok(
            who,
            "POST",
            "/v1/items",
            Some(json!({"preamble": b64(sealed.preamble.as_bytes())})),
            201,
        );
        let id = state["item"].as_str().unwrap().to_owned();
        if !partial {
            for (i, batch) in chunks.chunks.chunks(16).enumerate() {
                let (status, v) = self.send(
                    Some(me),
                    "PUT",
                    &format!("/v1/items/{id}/chunks/{}", i * 16),
                    Body::Octets(batch.concat()),
                );
                assert_eq!(status, 200, "{v}");
            }
        }
        Item { id, sealed, chunks }
    }

    /// The commit body of `item` with key packages for `readers`.
    fn commit_body(&self, item: &Item, readers: &[&ApiUser]) -> Value {
        let packages: Vec<Value> = readers
            .iter()
            .map(|r| {
                let p = seal_key_package(
                    &item.sealed.content_key,
                    &item.sealed.preamble.item_id(),
                    r.identity.public(),
                )
                .unwrap();
                json!({"email": r.email, "package": b64(&p)})
            })
            .collect();
        json!({"manifest": b64(item.sealed.manifest.as_bytes()), "key_packages": packages})
    }

    /// Uploads and commits `data` by `who`, readable by `who` and `readers`.
    fn upload(&self, who: Who, readers: &[&ApiUser], data: &[u8]) -> Item {
        let item = self.begin(who, data, false);
        let mut all = vec![self.user(who)];
        all.extend_from_slice(readers);
        let body = self.commit_body(&item, &all);
        self.ok(
            who,
            "POST",
            &format!("/v1/items/{}/commit", item.id),
            Some(body),
            200,
        );
        item
    }

    fn new_matter(&self, who: Who) -> String {
        let m = self.ok(
            who,
            "POST",
            "/v1/matters",
            Some(json!({"sealed_name": b64(&[7u8; 64])})),
            201,
        );
        m["id"].as_str().unwrap().to_owned()
    }

    fn signature_request_body(&self, message: &str, document: &str) -> Value {
        json!({
            "message": message,
            "document": document,
            "signer": self.user(Who::Recipient).email,
            "deadline": now() + 10 * DAY + self.offset(),
        })
    }

    fn new_request(&self, message: &str, document: &str) -> String {
        let r = self.ok(
            Who::Sender,
            "POST",
            "/v1/signatures",
            Some(self.signature_request_body(message, document)),
            201,
        );
        r["id"].as_str().unwrap().to_owned()
    }

    /// The `POST /v1/grants` body of a grant signed by `grantor` to `grantee` of `items`.
    fn grant_body(
        &self,
        grantor: &ApiUser,
        grantee: &ApiUser,
        items: &[&Item],
        message: Option<&str>,
        matter: Option<&str>,
        until: i64,
    ) -> Value {
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).unwrap();
        let statement = GrantStatement {
            id,
            grantor_email: grantor.email.clone(),
            grantor_key: [0; 32],
            grantee_email: grantee.email.clone(),
            grantee_fingerprint: grantee.identity.fingerprint(),
            matter: matter.map(id16),
            message: message.map(id16),
            items: items
                .iter()
                .map(|i| (id16(&i.id), i.sealed.manifest.digest()))
                .collect(),
            created_at: now() + self.offset(),
            until,
        }
        .sign(&grantor.identity)
        .unwrap();
        let packages: Vec<Value> = items
            .iter()
            .map(|i| {
                let p = seal_key_package(
                    &i.sealed.content_key,
                    &i.sealed.preamble.item_id(),
                    grantee.identity.public(),
                )
                .unwrap();
                json!({"item": i.id, "package": b64(&p)})
            })
            .collect();
        json!({"grant": b64(&statement.to_bytes()), "key_packages": packages})
    }

    fn offset(&self) -> i64 {
        std::fs::read_to_string(&self.clock)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The matter, message, request and grants every cell reads; then the clock moves two
    /// hours, past the end of Cy's grant, and a sweep cuts it off.
    fn set_up(&self, invite_page: String) -> Objects {
        let carol = self.user(Who::Recipient);
        let matter = self.new_matter(Who::Sender);
        let document = self.upload(Who::Sender, &[carol], &content(70_000, 1));
        let record = self.upload(Who::Sender, &[carol], b"the message record");
        let sent = self.ok(
            Who::Sender,
            "POST",
            "/v1/messages",
            Some(json!({
                "item": record.id,
                "documents": [document.id],
                "to": [carol.email],
                "in_reply_to": null,
                "matter": matter,
            })),
            201,
        );
        let message = sent["id"].as_str().unwrap().to_owned();
        let unfinished = self.begin(Who::Sender, b"unfinished", true).id;
        let request = self.new_request(&message, &document.id);
        let answered = self.new_request(&message, &document.id);
        self.ok(
            Who::Recipient,
            "POST",
            &format!("/v1/signatures/{answered}/answer"),
            Some(answer_body()),
            200,
        );

        // Bob's matter with his client Dan.
        let bobs = self.new_matter(Who::Attorney);
        let dan = self.user(Who::OtherClient);
        let dans = self.upload(Who::Attorney, &[dan], b"bob to dan");
        self.ok(
            Who::Attorney,
            "POST",
            "/v1/messages",
            Some(json!({"item": dans.id, "documents": [], "to": [dan.email],
                        "in_reply_to": null, "matter": bobs})),
            201,
        );

        // Grants of the message (its record and document) to the three co-counsel.
        let t = now();
        let ann = self.user(Who::Sender);
        for (who, until) in [
            (Who::CocounselActive, t + 30 * DAY),
            (Who::CocounselExpired, t + 3600),
            (Who::CocounselRevoked, t + 30 * DAY),
        ] {
            let body = self.grant_body(
                ann,
                self.user(who),
                &[&record, &document],
                Some(&message),
                Some(&matter),
                until,
            );
            let g = self.ok(Who::Sender, "POST", "/v1/grants", Some(body), 201);
            if who == Who::CocounselRevoked {
                let id = g["id"].as_str().unwrap();
                self.ok(
                    Who::Sender,
                    "POST",
                    &format!("/v1/grants/{id}/revoke"),
                    None,
                    200,
                );
            }
        }
        std::fs::write(&self.clock, (2 * 3600).to_string()).unwrap();
        self.wait_for_sweep();
        Objects {
            matter,
            message,
            document,
            unfinished,
            request,
            answered,
            invite_page,
        }
    }

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

    /// Waits until a whole sweep ran after the clock moved.
    fn wait_for_sweep(&self) {
        let start = self.sweeps();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.sweeps() < start + 2 {
            assert!(std::time::Instant::now() < deadline, "no sweep ran");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl World {
    /// A fresh email and seed label.
    fn fresh(&mut self, what: &str) -> (String, u8) {
        self.serial += 1;
        let label = u8::try_from(100 + self.serial % 150).unwrap();
        (format!("{what}{}@client.example", self.serial), label)
    }

    /// The path and body of `row` for `who`, creating the fresh objects it changes.
    fn request(&mut self, row: &Row, who: Who) -> (String, Body) {
        // The caller's own account, for bodies that the caller signs or seals (anonymous
        // callers send the sender's body: they are refused before it is read).
        let me = if who == Who::Anonymous {
            Who::Sender
        } else {
            who
        };
        let (fresh_email, fresh_label) = self.fresh("person");
        let (a, o) = (&self.api, &self.o);
        let m = o.matter.as_str();
        match (row.method, row.route, row.variant) {
            ("GET", "/i/{id}", _) => (o.invite_page.clone(), Body::None),
            ("POST", "/v1/join", _) => {
                let admin = a.user(Who::Admin);
                let invite = Api::invite(&a.http, &a.url, admin, &fresh_email, "client");
                (
                    row.route.into(),
                    Body::Json(ApiUser::new(&fresh_email, fresh_label).join_body(&invite)),
                )
            }
            ("POST", "/v1/auth/challenge", _) => (
                row.route.into(),
                Body::Json(json!({"email": a.user(me).email})),
            ),
            ("POST", "/v1/auth/session", _) => (
                row.route.into(),
                Body::Json(a.user(me).session_body(&a.http, &a.url, false)),
            ),
            ("POST", "/v1/invites", _) => (
                row.route.into(),
                Body::Json(json!({"email": fresh_email, "role": "client", "name": null})),
            ),
            ("GET", "/v1/directory/{email}", _) => (
                format!("/v1/directory/{}", a.user(Who::Recipient).email),
                Body::None,
            ),
            ("POST", "/v1/items", _) => {
                let (sealed, _) = seal(&a.user(me).identity, &Metadata::default(), b"x");
                (
                    row.route.into(),
                    Body::Json(json!({"preamble": b64(sealed.preamble.as_bytes())})),
                )
            }
            ("PUT", "/v1/items/{item}/chunks/{first}", _) => {
                let item = a.begin(Who::Sender, b"fresh upload", true);
                (
                    format!("/v1/items/{}/chunks/0", item.id),
                    Body::Octets(item.chunks.chunks.concat()),
                )
            }
            ("GET", "/v1/items/{item}/upload", _) => {
                (format!("/v1/items/{}/upload", o.unfinished), Body::None)
            }
            ("POST", "/v1/items/{item}/commit", _) => {
                let item = a.begin(Who::Sender, b"fresh upload", false);
                let body = a.commit_body(&item, &[a.user(Who::Sender)]);
                (format!("/v1/items/{}/commit", item.id), Body::Json(body))
            }
            ("GET", "/v1/items/{item}", _) => (format!("/v1/items/{}", o.document.id), Body::None),
            ("GET", "/v1/items/{item}/chunks", _) => {
                (format!("/v1/items/{}/chunks", o.document.id), Body::None)
            }
            ("POST", "/v1/messages", _) => {
                // A reply to Ann's message, to Ann (to Carol from Ann), with the caller's own
                // committed record readable by the recipient.
                let to = if me == Who::Sender {
                    Who::Recipient
                } else {
                    Who::Sender
                };
                let item = a.upload(me, &[a.user(to)], b"a reply");
                (
                    row.route.into(),
                    Body::Json(json!({
                        "item": item.id,
                        "documents": [],
                        "to": [a.user(to).email],
                        "in_reply_to": o.message,
                        "matter": null,
                    })),
                )
            }
            ("GET", "/v1/messages/{id}", _) => (format!("/v1/messages/{}", o.message), Body::None),
            ("POST", "/v1/matters", _) => (
                row.route.into(),
                Body::Json(json!({"sealed_name": b64(&[5u8; 64])})),
            ),
            ("GET", "/v1/matters/{id}", _) => (format!("/v1/matters/{m}"), Body::None),
            ("GET", "/v1/matters/{id}/messages", _) => {
                (format!("/v1/matters/{m}/messages"), Body::None)
            }
            ("POST", "/v1/matters/{id}/close", _) => {
                let fresh = a.new_matter(Who::Sender);
                (
                    format!("/v1/matters/{fresh}/close"),
                    Body::Json(json!({"retain_days": 30})),
                )
            }
            ("POST", "/v1/matters/{id}/hold", _) => {
                let fresh = a.new_matter(Who::Sender);
                (format!("/v1/matters/{fresh}/hold"), Body::None)
            }
            ("POST", "/v1/matters/{id}/release", _) => {
                let fresh = a.new_matter(Who::Sender);
                a.ok(
                    Who::Sender,
                    "POST",
                    &format!("/v1/matters/{fresh}/hold"),
                    None,
                    200,
                );
                (format!("/v1/matters/{fresh}/release"), Body::None)
            }
            ("POST", "/v1/signatures", _) => (
                row.route.into(),
                Body::Json(a.signature_request_body(&o.message, &o.document.id)),
            ),
            ("GET", "/v1/signatures/{id}", _) => {
                (format!("/v1/signatures/{}", o.request), Body::None)
            }
            ("POST", "/v1/signatures/{id}/answer", _) => {
                let fresh = a.new_request(&o.message, &o.document.id);
                (
                    format!("/v1/signatures/{fresh}/answer"),
                    Body::Json(answer_body()),
                )
            }
            ("GET", "/v1/signatures/{id}/evidence", _) => (
                format!("/v1/signatures/{}/evidence", o.answered),
                Body::None,
            ),
            ("POST", "/v1/grants", _) => {
                let until = now() + a.offset() + 10 * DAY;
                let body = a.grant_body(a.user(me), &a.spare, &[&o.document], None, Some(m), until);
                (row.route.into(), Body::Json(body))
            }
            ("POST", "/v1/grants/{id}/revoke", _) => {
                let item = a.upload(Who::Sender, &[], b"shared then revoked");
                let until = now() + a.offset() + 10 * DAY;
                let body = a.grant_body(a.user(Who::Sender), &a.spare, &[&item], None, None, until);
                let g = a.ok(Who::Sender, "POST", "/v1/grants", Some(body), 201);
                let id = g["id"].as_str().unwrap();
                (format!("/v1/grants/{id}/revoke"), Body::None)
            }
            ("GET", "/v1/audit", "?matter=M") => (format!("/v1/audit?matter={m}"), Body::None),
            ("GET", "/v1/audit", "?item=D") => {
                (format!("/v1/audit?item={}", o.document.id), Body::None)
            }
            ("GET", route, "") if !route.contains('{') => (route.into(), Body::None),
            (method, route, variant) => panic!("no request for {method} {route}{variant}"),
        }
    }
}

enum Body {
    None,
    Json(Value),
    Octets(Vec<u8>),
}

impl From<Option<Value>> for Body {
    fn from(v: Option<Value>) -> Self {
        v.map_or(Self::None, Self::Json)
    }
}

#[test]
fn every_route_against_every_kind_of_caller() {
    let mut w = World::start();

    // The routes the server has: its OpenAPI document, plus the route table's routes outside
    // /v1 (liveness, metrics, the invite page).
    let doc: Value = w
        .api
        .http
        .get(format!("{}/v1/openapi.json", w.api.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut routes: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    for r in attache::server::ROUTES {
        if !r.path.starts_with("/v1/") {
            routes.insert((r.method.to_owned(), r.path.to_owned()));
        }
    }
    let tabled: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|r| (r.method.to_owned(), r.route.to_owned()))
        .collect();
    let missing: Vec<_> = routes.difference(&tabled).collect();
    let stale: Vec<_> = tabled.difference(&routes).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routes missing from the table: {missing:?}; table rows for no route: {stale:?}"
    );

    let mut unexpected = Vec::new();
    let mut cells = 0;
    for row in TABLE {
        for (who, want) in CALLERS.iter().zip(row.expect) {
            let (path, body) = w.request(row, *who);
            let user = (*who != Who::Anonymous).then(|| w.api.user(*who));
            let (got, v) = w.api.send(user, row.method, &path, body);
            cells += 1;
            // "Not found" and "not yours" are the same answer, word for word.
            let not_found = json!({"error": "not_found", "message": "not found"});
            if got != want || (got == 404 && v != not_found) {
                unexpected.push(format!(
                    "{} {}{} as {who:?}: expected {want}, got {got} {v}",
                    row.method, row.route, row.variant
                ));
            }
        }
    }
    println!(
        "authorization matrix: {} routes ({} requests) x {} callers = {cells} cells, {} unexpected",
        routes.len(),
        TABLE.len(),
        CALLERS.len(),
        unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected cells:\n{}",
        unexpected.join("\n")
    );
}
