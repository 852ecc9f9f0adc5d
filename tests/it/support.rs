//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use attache::crypto::{
    Identity, Metadata, Parallelism, Sealed, SealedChunks, danger::SeededRandom,
};

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temporary directory for one test, removed when dropped.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("attache-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A deterministic identity from a one-byte label (tests only).
pub(crate) fn identity(label: u8) -> Identity {
    let rng = SeededRandom::new([label; 32]);
    Identity::from_secret_keys(&rng.array(), &rng.array()).expect("seeded keys are valid")
}

/// `len` bytes of deterministic, incompressible-looking content.
pub(crate) fn content(len: usize, seed: u8) -> Vec<u8> {
    let rng = SeededRandom::new([seed ^ 0x5a; 32]);
    let mut out = vec![0u8; len];
    for piece in out.chunks_mut(32) {
        let block: [u8; 32] = rng.array();
        piece.copy_from_slice(&block[..piece.len()]);
    }
    out
}

/// Seals `content` in memory as `sender` with `metadata`.
pub(crate) fn seal(
    sender: &Identity,
    metadata: &Metadata,
    content: &[u8],
) -> (Sealed, SealedChunks) {
    let mut chunks = SealedChunks::default();
    let sealed =
        attache::crypto::seal_item(sender, metadata, content, &mut chunks, Parallelism::All)
            .expect("sealing in memory succeeds");
    (sealed, chunks)
}

/// For tests about durability and consistency, not abuse limits: the request-rate limits off
/// ("0: no limit"; a server without these settings ignores the variables).
pub(crate) const NO_LIMITS: &[(&str, &str)] = &[
    ("ATTACHE_RATE_AUTH_PER_IP", "0"),
    ("ATTACHE_RATE_WRITES_PER_ACCOUNT", "0"),
    ("ATTACHE_RATE_WRITES_PER_IP", "0"),
    ("ATTACHE_RATE_CHUNKS_PER_ACCOUNT", "0"),
    ("ATTACHE_RATE_CHUNKS_PER_IP", "0"),
];

/// A running `attache serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// `sha256:HEX` of the certificate.
    pub(crate) certificate: String,
    /// The bootstrap invite URL, on first start.
    pub(crate) bootstrap: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago: the server must keep it across a restart, so the test
/// picks it rather than passing `:0`.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server and reads its announced lines (no sleeping: the lines arrive when ready).
pub(crate) fn start_server(root: &Path, port: u16) -> Server {
    start_server_with(root, port, &[])
}

/// [`start_server`] with extra `ATTACHE_*` settings in the environment.
pub(crate) fn start_server_with(root: &Path, port: u16, env: &[(&str, &str)]) -> Server {
    start_server_logging(root, port, env, Stdio::null())
}

/// [`start_server_with`], its log (stderr) going to `log`.
pub(crate) fn start_server_logging(
    root: &Path,
    port: u16,
    env: &[(&str, &str)],
    log: impl Into<Stdio>,
) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attache"))
        .envs(env.iter().copied())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(root.join("data"))
        .arg("--keys")
        .arg(root.join("keys"))
        .env_remove("ATTACHE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut certificate, mut bootstrap) = (None, None, None);
    while url.is_none() || certificate.is_none() {
        let line = lines
            .next()
            .expect("server exited before announcing itself")
            .unwrap();
        if let Some(u) = line.strip_prefix("listening on ") {
            url = Some(u.to_owned());
        } else if let Some(c) = line.strip_prefix("certificate ") {
            certificate = Some(c.to_owned());
        } else if let Some(b) = line.strip_prefix("bootstrap invite: ") {
            bootstrap = Some(b.to_owned());
        }
    }
    // The bootstrap line, when there is one, comes before or right after the others.
    let url = url.unwrap();
    let certificate = certificate.unwrap();
    if bootstrap.is_none() {
        let invite_file = root.join("keys/bootstrap-invite");
        if let Ok(text) = std::fs::read_to_string(&invite_file) {
            if !text.trim().is_empty() {
                bootstrap = Some(text.trim().to_owned());
            }
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url,
        certificate,
        bootstrap,
    }
}

pub(crate) const PASSPHRASE: &str = "a long and careful passphrase";

/// The `attache` command as the person whose `ATTACHE_HOME` is `home` (not started), for tests
/// that run several at once.
pub(crate) fn attache(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_attache"));
    command
        .env("ATTACHE_HOME", home)
        .env("ATTACHE_PASSPHRASE", PASSPHRASE)
        .env_remove("ATTACHE_KEY")
        .env_remove("ATTACHE_DATA")
        .args(args)
        .stdin(Stdio::null());
    command
}

/// One person's CLI: their own `ATTACHE_HOME`.
pub(crate) struct User {
    /// The user's `ATTACHE_HOME`.
    pub(crate) home: PathBuf,
}

impl User {
    pub(crate) fn new(root: &Path, name: &str) -> Self {
        let home = root.join(name);
        std::fs::create_dir_all(&home).unwrap();
        Self { home }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_attache"))
            .env("ATTACHE_HOME", &self.home)
            .env("ATTACHE_PASSPHRASE", PASSPHRASE)
            .env_remove("ATTACHE_KEY")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        self.ok_both(args).0
    }

    /// Runs a command that must succeed and returns its stdout and stderr.
    pub(crate) fn ok_both(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "attache {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a command that must succeed and parses its stdout as JSON.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    pub(crate) fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "attache {args:?} should have failed");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

pub(crate) fn invite_url(output: &str) -> String {
    output
        .split_whitespace()
        .find(|w| w.starts_with("https://") && w.contains("/i/") && w.contains('#'))
        .unwrap_or_else(|| panic!("no invite URL in {output:?}"))
        .to_owned()
}

/// Three firm users `names` with `emails`: the first joins with the server's bootstrap invite
/// (administrator) and invites the others as attorneys. Key files get a fast work factor, since
/// tests run the CLI hundreds of times; everyone's keys are pinned once (`contacts`), so that
/// concurrent sends never pin at the same time.
pub(crate) fn firm_of_three(
    root: &Path,
    server: &Server,
    names: [&str; 3],
    emails: [&str; 3],
) -> Vec<User> {
    let bootstrap = server.bootstrap.clone().expect("a bootstrap invite");
    let users: Vec<User> = names.iter().map(|name| User::new(root, name)).collect();
    for user in &users {
        user.ok(&[
            "identity",
            "new",
            "--key",
            user.home.join("key.age").to_str().unwrap(),
            "--work-factor",
            "10",
        ]);
    }
    users[0].ok(&[
        "join",
        &bootstrap,
        "--email",
        emails[0],
        "--cert-fingerprint",
        &server.certificate,
    ]);
    for (user, email) in users.iter().zip(emails).skip(1) {
        let invite = users[0].ok(&["invite", email, "--role", "attorney"]);
        user.ok(&[
            "join",
            &invite_url(&invite),
            "--cert-fingerprint",
            &server.certificate,
        ]);
    }
    for user in &users {
        user.ok(&["contacts"]);
    }
    users
}

// ---- the HTTP API as a client speaks it (tests/it/limits.rs, tests/it/matrix.rs) ----

/// A blocking HTTPS client for a test server's self-signed certificate. (The product's client
/// pins the certificate's digest instead; here the test talks to a server it just started.)
pub(crate) fn insecure_http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// An account driven over HTTP: keys from a one-byte seed, so the test signs in with ring.
pub(crate) struct ApiUser {
    pub(crate) email: String,
    pub(crate) identity: Identity,
    pub(crate) signing: ring::signature::Ed25519KeyPair,
    /// The session token (empty until signed in).
    pub(crate) token: String,
}

impl ApiUser {
    /// The keys of seed `label` for `email` (not yet registered).
    pub(crate) fn new(email: &str, label: u8) -> Self {
        let rng = SeededRandom::new([label; 32]);
        let x25519: [u8; 32] = rng.array();
        let seed: [u8; 32] = rng.array();
        Self {
            email: email.to_owned(),
            identity: Identity::from_secret_keys(&x25519, &seed).unwrap(),
            signing: ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap(),
            token: String::new(),
        }
    }

    /// The `POST /v1/join` body for the invite URL `invite`.
    pub(crate) fn join_body(&self, invite: &str) -> Value {
        use base64::Engine as _;
        let (path, secret) = invite.split_once('#').unwrap();
        serde_json::json!({
            "invite_id": path.rsplit('/').next().unwrap(),
            "secret": secret,
            "email": self.email,
            "name": null,
            "public_keys": base64::engine::general_purpose::STANDARD
                .encode(self.identity.public().to_bytes()),
        })
    }

    /// Joins with `invite` and signs in; panics unless both succeed.
    pub(crate) fn join(
        email: &str,
        label: u8,
        http: &reqwest::blocking::Client,
        url: &str,
        invite: &str,
    ) -> Self {
        let mut me = Self::new(email, label);
        let r = http
            .post(format!("{url}/v1/join"))
            .json(&me.join_body(invite))
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            reqwest::StatusCode::CREATED,
            "{}",
            r.text().unwrap()
        );
        me.token = me.sign_in(http, url);
        me
    }

    /// Invites `email` as `role` and joins it with the keys of seed `label`; panics unless
    /// every step succeeds.
    pub(crate) fn invite_and_join(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        email: &str,
        role: &str,
        label: u8,
    ) -> Self {
        let r = http
            .post(format!("{url}/v1/invites"))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"email": email, "role": role, "name": null}))
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        let invite: Value = r.json().unwrap();
        Self::join(email, label, http, url, invite["url"].as_str().unwrap())
    }

    /// A fresh challenge for this account and the `POST /v1/auth/session` body answering it
    /// (with a wrong signature if `forge`).
    pub(crate) fn session_body(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        forge: bool,
    ) -> Value {
        use base64::Engine as _;
        let r = http
            .post(format!("{url}/v1/auth/challenge"))
            .json(&serde_json::json!({"email": self.email}))
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let challenge: Value = r.json().unwrap();
        let id: [u8; 16] = attache::wire::from_hex(challenge["challenge_id"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let nonce: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(challenge["nonce"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let mut message = attache::wire::api::sign_in_message(
            challenge["origin"].as_str().unwrap(),
            &self.email,
            &id,
            &nonce,
        );
        if forge {
            message.push(0);
        }
        serde_json::json!({
            "challenge_id": challenge["challenge_id"],
            "email": self.email,
            "signature": base64::engine::general_purpose::STANDARD
                .encode(self.signing.sign(&message).as_ref()),
        })
    }

    /// Signs in and returns the session token.
    pub(crate) fn sign_in(&self, http: &reqwest::blocking::Client, url: &str) -> String {
        let body = self.session_body(http, url, false);
        let r = http
            .post(format!("{url}/v1/auth/session"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{}", r.text().unwrap());
        let session: Value = r.json().unwrap();
        session["token"].as_str().unwrap().to_owned()
    }
}

/// A server for API tests, with the request-rate limits off and clients' quota at 1 MiB: its
/// bootstrap admin Ann and a client, Carol, each signed in over HTTP. Test modules add their
/// own helpers in `impl ApiWorld` blocks.
pub(crate) struct ApiWorld {
    pub(crate) root: tempfile::TempDir,
    pub(crate) _server: Server,
    pub(crate) http: reqwest::blocking::Client,
    pub(crate) url: String,
    pub(crate) ann: ApiUser,
    /// A client, with 1 MiB of quota.
    pub(crate) carol: ApiUser,
}

impl ApiWorld {
    pub(crate) fn start() -> Self {
        let root = temp_dir();
        let mut env = NO_LIMITS.to_vec();
        env.push(("ATTACHE_QUOTA_MIB", "1"));
        let server = start_server_with(root.path(), free_port(), &env);
        let http = insecure_http();
        let url = server.url.clone();
        let ann = ApiUser::join(
            "ann@firm.example",
            1,
            &http,
            &url,
            server.bootstrap.as_deref().unwrap(),
        );
        let carol = ann.invite_and_join(&http, &url, "carol@client.example", "client", 2);
        Self {
            root,
            _server: server,
            http,
            url,
            ann,
            carol,
        }
    }
}

/// Checks the security headers every answer carries (`html`: the answer is a page).
pub(crate) fn check_hygiene(what: &str, headers: &reqwest::header::HeaderMap, html: bool) {
    let get = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(headers.get("server").is_none(), "{what}: a Server header");
    assert!(
        get("strict-transport-security").starts_with("max-age=31536000"),
        "{what}: HSTS"
    );
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("cache-control"), "no-store", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    let csp = get("content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe"), "{what}: CSP {csp:?}");
    if html {
        assert!(get("content-type").starts_with("text/html"), "{what}");
    }
}
