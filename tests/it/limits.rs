//! Abuse limits at the wire (issue 6), against the real server binary on 127.0.0.1 with the
//! limits set low through its settings: sign-in floods and write floods get `429 rate_limited`
//! with `Retry-After`; failed sign-ins lock an email out, known or not, with the same answers;
//! slow clients (headers or body one byte a second, a body that stops, an idle connection) are
//! cut off by their deadlines; a fourth connection from one address is refused; a busy server
//! answers `503 busy`; every oversize field gets its exact error; every refusal carries the
//! security headers. Slow clients speak raw HTTP over rustls, so that the test controls every
//! byte and its timing.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use serde_json::{Value, json};

use crate::support::{
    ApiUser, Server, check_hygiene, free_port, insecure_http, start_server_with, temp_dir,
};

const ADA: &str = "ada@firm.example";

/// A server with `env` settings and its administrator Ada, signed in.
fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Server, Client, ApiUser) {
    let root = temp_dir();
    let server = start_server_with(root.path(), free_port(), env);
    let http = insecure_http();
    let ada = ApiUser::join(
        ADA,
        1,
        &http,
        &server.url,
        server.bootstrap.as_deref().unwrap(),
    );
    (root, server, http, ada)
}

/// Status, `Retry-After` and body of an answer, after checking its security headers.
fn answer(what: &str, r: Response) -> (StatusCode, Option<u64>, Value) {
    check_hygiene(what, r.headers(), false);
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = r.json().unwrap_or(Value::Null);
    (status, retry, body)
}

fn post(http: &Client, url: &str, token: Option<&str>, body: &Value) -> Response {
    let mut r = http.post(url).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().unwrap()
}

#[test]
fn floods_of_sign_ins_and_writes_get_429_with_retry_after() {
    let (_root, server, http, ada) = start(&[
        ("ATTACHE_RATE_AUTH_PER_IP", "6"),
        ("ATTACHE_RATE_WRITES_PER_ACCOUNT", "3"),
        ("ATTACHE_RATE_INVITES_PER_ACCOUNT", "1"),
    ]);
    let url = &server.url;
    // Ada's join, challenge and session took 3 of the 6; 3 more pass, then the address waits
    // one token: 10 s at 6 a minute.
    let challenge = format!("{url}/v1/auth/challenge");
    for _ in 0..3 {
        let r = post(&http, &challenge, None, &json!({"email": "x@y.example"}));
        assert_eq!(r.status(), StatusCode::OK);
    }
    for path in ["/v1/auth/challenge", "/v1/auth/session", "/v1/join"] {
        let r = post(&http, &format!("{url}{path}"), None, &json!({}));
        let (status, retry, body) = answer(path, r);
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
            "{path}: {body}"
        );
        let retry = retry.expect("Retry-After");
        assert!((1..=10).contains(&retry), "{path}: Retry-After {retry}");
    }
    // Reads are not rate-limited.
    let r = http
        .get(format!("{url}/v1/me"))
        .bearer_auth(&ada.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Writes per account: 3 a minute here. One invite (the invite limit is 1 an hour), then
    // the second invite is refused by the invite limit while writes remain.
    let invites = format!("{url}/v1/invites");
    let invite = |email: &str| {
        post(
            &http,
            &invites,
            Some(&ada.token),
            &json!({"email": email, "role": "client", "name": null}),
        )
    };
    assert_eq!(invite("c1@client.example").status(), StatusCode::CREATED);
    let (status, retry, body) = answer("invite", invite("c2@client.example"));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert!(retry.unwrap() > 60, "an hourly limit: {retry:?}");
    // Writes: the refused invite counted as a write, so one more write passes, then 429.
    let matters = format!("{url}/v1/matters");
    let matter = json!({"sealed_name": "AAAA"});
    assert_eq!(
        post(&http, &matters, Some(&ada.token), &matter).status(),
        StatusCode::CREATED
    );
    let (status, retry, body) = answer("matter", post(&http, &matters, Some(&ada.token), &matter));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{body}"
    );
    assert!((1..=20).contains(&retry.unwrap()), "{retry:?}");
    // A request without a session is refused as such, never counted against an account.
    let r = post(
        &http,
        &matters,
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        &matter,
    );
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no session is a 401, not a 429"
    );
}

/// A new upload of Ada's for a document of `chunks` × 64 KiB: its id and its sealed chunks.
fn new_item(
    http: &Client,
    url: &str,
    ada: &ApiUser,
    chunks: usize,
) -> (String, attache::crypto::SealedChunks) {
    let me = ApiUser::new(ADA, 1);
    let (sealed, sealed_chunks) = crate::support::seal(
        &me.identity,
        &attache::crypto::Metadata::default(),
        &crate::support::content(chunks * 65_536, chunks as u8),
    );
    use base64::Engine as _;
    let r = post(
        http,
        &format!("{url}/v1/items"),
        Some(&ada.token),
        &json!({"preamble": base64::engine::general_purpose::STANDARD.encode(sealed.preamble.as_bytes())}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let item = r.json::<Value>().unwrap()["item"]
        .as_str()
        .unwrap()
        .to_owned();
    (item, sealed_chunks)
}

#[test]
fn chunk_uploads_count_against_their_own_generous_rate() {
    // Writes are exhausted after the item is created; its chunks still go through, and only
    // the chunk rate (3 a minute here) stops them.
    let (_root, server, http, ada) = start(&[
        ("ATTACHE_RATE_WRITES_PER_ACCOUNT", "1"),
        ("ATTACHE_RATE_CHUNKS_PER_ACCOUNT", "3"),
    ]);
    let url = &server.url;
    let (item, chunks) = new_item(&http, url, &ada, 5);
    let r = post(
        &http,
        &format!("{url}/v1/matters"),
        Some(&ada.token),
        &json!({"sealed_name": "AAAA"}),
    );
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "writes are used up"
    );
    let put = |i: usize| {
        http.put(format!("{url}/v1/items/{item}/chunks/{i}"))
            .bearer_auth(&ada.token)
            .header("content-type", "application/octet-stream")
            .body(chunks.chunks[i].clone())
            .send()
            .unwrap()
    };
    for i in 0..3 {
        assert_eq!(put(i).status(), StatusCode::OK, "chunk {i}");
    }
    let (status, retry, body) = answer("chunk 3", put(3));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert_eq!(retry, Some(20), "one chunk every 20 s at 3 a minute");
}

#[test]
fn failed_sign_ins_lock_an_email_out_whether_or_not_it_has_an_account() {
    let (_root, server, http, ada) = start(&[
        ("ATTACHE_RATE_AUTH_PER_IP", "0"),
        ("ATTACHE_SIGNIN_FAILURES", "3"),
        ("ATTACHE_SIGNIN_LOCKOUT", "2"),
    ]);
    let url = &server.url;
    let session = format!("{url}/v1/auth/session");
    // Nobody has no account: its challenge is answered like Ada's, its signature is made with
    // some key.
    let nobody = ApiUser::new("nobody@firm.example", 9);
    let attempt = |who: &ApiUser, forge: bool| {
        let body = who.session_body(&http, url, forge);
        let (status, retry, body) = answer(&who.email, post(&http, &session, None, &body));
        (status, retry, body)
    };
    let mut answers: Vec<Vec<(StatusCode, Option<u64>, Value)>> = Vec::new();
    for who in [&ada, &nobody] {
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(attempt(who, true));
        }
        // Locked out: even the right signature is refused, and the lockout is announced.
        seen.push(attempt(who, false));
        answers.push(seen);
    }
    assert_eq!(
        answers[0], answers[1],
        "a known and an unknown email look alike"
    );
    let unauthorized = (StatusCode::UNAUTHORIZED, Some("unauthorized"));
    for a in &answers[0][..3] {
        assert_eq!((a.0, a.2["error"].as_str()), unauthorized);
        assert_eq!(a.1, None);
    }
    let locked = &answers[0][3];
    assert_eq!(
        (locked.0, locked.2["error"].as_str(), locked.1),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"), Some(2))
    );

    // After the lockout the right key signs in, and forgets the failures.
    std::thread::sleep(Duration::from_millis(2100));
    let (status, _, _) = attempt(&ada, false);
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = attempt(&ada, true);
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "one failure after a success"
    );
    // A further failure within the window doubles the lockout.
    let (status, _, _) = attempt(&nobody, true);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, retry, _) = attempt(&nobody, true);
    assert_eq!((status, retry), (StatusCode::TOO_MANY_REQUESTS, Some(4)));
}

// ---- raw HTTP over rustls, for clients that misbehave on purpose ----

/// Accepts the test server's self-signed certificate (the handshake signature is still checked).
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn port_of(server: &Server) -> u16 {
    server.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A TLS connection to `server` offering `alpn`, handshake completed.
fn raw(server: &Server, alpn: &[u8]) -> std::io::Result<Tls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port_of(server)))?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap())
        .unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads until the server closes the connection (or 20 s pass); returns what arrived.
fn read_to_close(tls: &mut Tls) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset or a missing close_notify also ends the connection.
            Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut => {
                return out;
            }
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

/// Writes `bytes` one per `every`, until the server closes the connection; returns how many
/// were written and how long it took.
fn trickle(tls: &mut Tls, bytes: &[u8], every: Duration) -> (usize, Duration) {
    let started = Instant::now();
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    for (i, b) in bytes.iter().enumerate() {
        if tls.write_all(&[*b]).and_then(|()| tls.flush()).is_err() {
            return (i, started.elapsed());
        }
        let until = Instant::now() + every;
        while Instant::now() < until {
            let mut buf = [0u8; 1024];
            match tls.read(&mut buf) {
                Ok(0) => return (i + 1, started.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
                Err(_) => return (i + 1, started.elapsed()),
            }
        }
    }
    (bytes.len(), started.elapsed())
}

fn status_line(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn slow_clients_are_cut_off_by_the_deadlines() {
    let (_root, server, _http, _ada) = start(&[
        ("ATTACHE_HEADER_TIMEOUT", "2"),
        ("ATTACHE_BODY_TIMEOUT", "3"),
        ("ATTACHE_IDLE_TIMEOUT", "3"),
    ]);
    let within = |what: &str, took: Duration, from: f64, to: f64| {
        let s = took.as_secs_f64();
        assert!(
            (from..=to).contains(&s),
            "{what}: cut off after {s:.1} s, expected {from}-{to} s"
        );
    };

    // Headers one byte a second: cut off at the header deadline (2 s), not after the ~90 s
    // they would take.
    let head = b"POST /v1/auth/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\n\
content-type: application/json\r\ncontent-length: 30\r\n\r\n";
    let mut tls = raw(&server, b"http/1.1").unwrap();
    let (sent, took) = trickle(&mut tls, head, Duration::from_secs(1));
    assert!(sent < head.len(), "all {sent} header bytes were accepted");
    within("slow headers", took, 1.5, 6.0);

    // A body one byte a second: the whole body must arrive within 3 s of the request, so
    // trickling does not extend it. The answer is 408 timeout, then the connection closes.
    let mut tls = raw(&server, b"http/1.1").unwrap();
    tls.write_all(head).unwrap();
    let body = br#"{"email":"slow@client.example"}"#;
    let started = Instant::now();
    let (sent, _) = trickle(&mut tls, body, Duration::from_secs(1));
    assert!(sent < body.len());
    within("slow body", started.elapsed(), 2.5, 7.0);

    // A body that stops: the same answer at the same deadline.
    let mut tls = raw(&server, b"http/1.1").unwrap();
    let started = Instant::now();
    tls.write_all(head).unwrap();
    tls.write_all(&body[..10]).unwrap();
    let response = read_to_close(&mut tls);
    within("stopped body", started.elapsed(), 2.5, 7.0);
    let text = String::from_utf8_lossy(&response).to_lowercase();
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 408 Request Timeout",
        "{text}"
    );
    assert!(text.contains(r#""error":"timeout""#), "{text}");
    assert!(text.contains("connection: close"), "{text}");

    // An idle HTTP/1.1 connection: closed at the header deadline.
    let mut tls = raw(&server, b"http/1.1").unwrap();
    let started = Instant::now();
    read_to_close(&mut tls);
    within("idle HTTP/1.1", started.elapsed(), 1.5, 6.0);

    // An idle HTTP/2 connection (hyper has no header deadline for it): closed by the idle
    // deadline (3 s) even though the server's keep-alive pings would keep it busy.
    let mut tls = raw(&server, b"h2").unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let started = Instant::now();
    read_to_close(&mut tls);
    within("idle HTTP/2", started.elapsed(), 2.5, 7.0);
}

#[test]
fn an_unread_body_closes_the_connection_and_the_answer_says_so() {
    // Regression (found by the API fuzzer): a refusal answered before its body arrived left
    // hyper closing the connection silently, and the client's next request on it failed.
    let (_root, server, _http, _ada) = start(&[]);
    let mut tls = raw(&server, b"http/1.1").unwrap();
    tls.write_all(
        b"POST /v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n\
content-length: 16\r\n\r\n",
    )
    .unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = tls.write_all(br#"{"preamble": ""}"#);
    let response = read_to_close(&mut tls);
    let text = String::from_utf8_lossy(&response).to_lowercase();
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 401 Unauthorized",
        "{text}"
    );
    assert!(text.contains("connection: close"), "{text}");
}

#[test]
fn a_fourth_connection_from_one_address_is_refused() {
    let (_root, server, http, _ada) = start(&[("ATTACHE_MAX_CONNECTIONS_PER_IP", "3")]);
    // The test's HTTP client holds a pooled connection; close it before counting.
    drop(http);
    let mut held: Vec<Tls> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 3 {
        match raw(&server, b"http/1.1") {
            Ok(c) => held.push(c),
            // The closed pooled connection may not be counted out yet.
            Err(_) => assert!(Instant::now() < deadline, "3 connections were not accepted"),
        }
    }
    let refused = raw(&server, b"http/1.1");
    assert!(
        refused.is_err(),
        "a fourth connection completed its handshake"
    );
    // One closes; a new one is served.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tls = loop {
        match raw(&server, b"http/1.1") {
            Ok(c) => break c,
            Err(_) => assert!(Instant::now() < deadline, "no slot came free"),
        }
    };
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_to_close(&mut tls)).unwrap();
    assert_eq!(status_line(text.as_bytes()), "HTTP/1.1 200 OK");
    let refused: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("attache_connections_refused_total{limit=\"per_ip\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 1, "{refused}");
}

#[test]
fn a_busy_server_answers_503_after_a_short_wait() {
    // One request slot, held by a request whose body never finishes (until the 10 s body
    // deadline); another request waits 5 s for it, then gets 503 busy.
    let (_root, server, http, ada) = start(&[
        ("ATTACHE_MAX_REQUESTS_IN_FLIGHT", "1"),
        ("ATTACHE_BODY_TIMEOUT", "10"),
    ]);
    let mut slow = raw(&server, b"http/1.1").unwrap();
    slow.write_all(
        b"POST /v1/auth/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n\
content-length: 30\r\n\r\n{",
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = http
        .get(format!("{}/v1/me", server.url))
        .bearer_auth(&ada.token)
        .send()
        .unwrap();
    let (status, retry, body) = answer("busy", r);
    assert_eq!(
        (status, body["error"].as_str(), retry),
        (StatusCode::SERVICE_UNAVAILABLE, Some("busy"), Some(1)),
        "{body}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "it waited for a slot"
    );
    // Liveness answers at once all the same.
    let r = http.get(format!("{}/healthz", server.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn every_oversize_field_gets_its_exact_error() {
    let (_root, server, http, ada) = start(&[]);
    let url = &server.url;
    let long = |n: usize| "a".repeat(n);
    let cases: Vec<(&str, &str, Value, StatusCode, &str)> = vec![
        (
            "an invitee's name of 129 bytes",
            "/v1/invites",
            json!({"email": "c@client.example", "role": "client", "name": long(129)}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "an email of 255 bytes",
            "/v1/invites",
            json!({"email": format!("{}@client.example", long(240)), "role": "client", "name": null}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "a challenge for an email of 255 bytes",
            "/v1/auth/challenge",
            json!({"email": format!("{}@client.example", long(240))}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "a sealed matter name of 2049 bytes",
            "/v1/matters",
            json!({"sealed_name": base64_of(&vec![1u8; 2049])}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "65 recipients",
            "/v1/messages",
            json!({"item": "00".repeat(16), "documents": [], "to": vec!["c@client.example"; 65],
                   "in_reply_to": null, "matter": null}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "65 documents",
            "/v1/messages",
            json!({"item": "00".repeat(16), "documents": vec!["00".repeat(16); 65],
                   "to": ["c@client.example"], "in_reply_to": null, "matter": null}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "a signature of 65 bytes (for a challenge that does not exist)",
            "/v1/auth/session",
            json!({"challenge_id": "00".repeat(16), "email": ADA, "signature": base64_of(&[0u8; 65])}),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "an invite secret of 33 bytes (for an invite that does not exist)",
            "/v1/join",
            json!({"invite_id": "00".repeat(16), "secret": "A".repeat(44), "email": null,
                   "name": null, "public_keys": base64_of(&[0u8; 64])}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "a JSON body over 64 KiB",
            "/v1/matters",
            json!({"sealed_name": long(70_000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (what, path, body, status, code) in cases {
        let r = post(&http, &format!("{url}{path}"), Some(&ada.token), &body);
        let (got, _, v) = answer(what, r);
        assert_eq!(
            (got, v["error"].as_str()),
            (status, Some(code)),
            "{what}: {v}"
        );
    }
    // A page size over the maximum is clamped, not refused.
    let r = http
        .get(format!("{url}/v1/messages?limit=100000"))
        .bearer_auth(&ada.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn refusals_made_outside_the_handlers_carry_the_security_headers() {
    let (_root, server, http, _ada) = start(&[]);
    let url = &server.url;
    let cases = [
        (
            http.get(format!("{url}/no/such/route")),
            StatusCode::NOT_FOUND,
        ),
        (
            http.delete(format!("{url}/v1/me")),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            http.post(format!("{url}/v1/auth/challenge")).body("{}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            http.post(format!("{url}/v1/join"))
                .header("content-type", "application/json")
                .body(vec![b' '; 200_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, want) in cases {
        let r = request.send().unwrap();
        let (status, _, body) = answer(&format!("{want}"), r);
        assert_eq!(status, want, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn chunk_bodies_stream_with_or_without_a_length_and_stay_bounded() {
    let (_root, server, http, ada) = start(&[]);
    let url = &server.url;
    let (item, chunks) = new_item(&http, url, &ada, 6);
    // A body without a length (chunked transfer encoding) is read as it comes.
    let put = |first: usize, bytes: Vec<u8>, chunked: bool| {
        let body = if chunked {
            reqwest::blocking::Body::new(std::io::Cursor::new(bytes))
        } else {
            reqwest::blocking::Body::from(bytes)
        };
        let r = http
            .put(format!("{url}/v1/items/{item}/chunks/{first}"))
            .bearer_auth(&ada.token)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .unwrap();
        answer(&format!("chunks from {first}"), r)
    };
    let received = || {
        http.get(format!("{url}/v1/items/{item}/upload"))
            .bearer_auth(&ada.token)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["received"]
            .as_u64()
            .unwrap()
    };
    let (status, _, body) = put(0, chunks.chunks[..3].concat(), true);
    assert_eq!(
        (status, body["received"].as_u64()),
        (StatusCode::OK, Some(3))
    );

    // Nothing, with or without a length.
    for chunked in [true, false] {
        let (status, _, body) = put(3, Vec::new(), chunked);
        assert_eq!(
            (status, body["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("the body holds no chunk")),
            "chunked: {chunked}"
        );
    }
    // One chunk over the limit of a request: refused whole, as the stream passes the limit
    // (chunked) or from its declared length, and nothing of it is counted.
    let limit = attache::wire::api::MAX_CHUNKS_PER_REQUEST;
    let over = vec![9u8; (limit + 1) * attache::storage::SEALED_CHUNK];
    for chunked in [true, false] {
        let (status, _, body) = put(3, over.clone(), chunked);
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")),
            "chunked: {chunked}"
        );
        assert_eq!(received(), 3);
    }
    // The rest, with a length; the upload holds every chunk sent, and no other.
    let rest = chunks.chunks[3..].concat();
    let (status, _, body) = put(3, rest, false);
    assert_eq!(
        (status, body["received"].as_u64()),
        (StatusCode::OK, Some(chunks.chunks.len() as u64))
    );
    assert_eq!(received(), chunks.chunks.len() as u64);
}
