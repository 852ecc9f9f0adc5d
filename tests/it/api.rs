//! The HTTPS API at the wire: status codes, error bodies, limits and response headers, against
//! the real server binary on 127.0.0.1.

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use crate::support::{Server, free_port, start_server, start_server_with, temp_dir};

/// A client for a test server's self-signed certificate. (The product's client pins the
/// certificate's digest instead; here the test talks to a server it just started.)
fn http() -> Client {
    Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().unwrap();
    (status, body)
}

fn start() -> (tempfile::TempDir, Server) {
    let root = temp_dir();
    let server = start_server(root.path(), free_port());
    (root, server)
}

#[test]
fn health_headers_and_openapi() {
    let (_root, server) = start();
    let c = http();
    let r = c.get(format!("{}/healthz", server.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("server").is_none(), "no version banner");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );

    let r = c
        .get(format!("{}/v1/openapi.json", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/join",
        "/v1/auth/challenge",
        "/v1/auth/session",
        "/v1/me",
        "/v1/invites",
        "/v1/items",
        "/v1/messages",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }

    let r = c.get(format!("{}/metrics", server.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("# TYPE"));
}

#[test]
fn sessions_are_required_and_checked() {
    let (_root, server) = start();
    let c = http();
    for path in ["/v1/me", "/v1/contacts", "/v1/messages?box=inbox"] {
        let (status, body) = error_of(c.get(format!("{}{path}", server.url)).send().unwrap());
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "unauthorized", "{path}");
        let (status, _) = error_of(
            c.get(format!("{}{path}", server.url))
                .bearer_auth("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .send()
                .unwrap(),
        );
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with a made-up token"
        );
    }
}

#[test]
fn malformed_and_oversize_bodies() {
    let (_root, server) = start();
    let c = http();
    let r = c
        .post(format!("{}/v1/join", server.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    let (status, body) = error_of(r);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    assert!(!body["message"].as_str().unwrap().is_empty());

    // Unknown fields are refused, not ignored.
    let r = c
        .post(format!("{}/v1/auth/challenge", server.url))
        .json(&json!({"email": "a@b.example", "admin": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let huge = "x".repeat(2 << 20);
    let r = c
        .post(format!("{}/v1/join", server.url))
        .header("content-type", "application/json")
        .body(format!("{{\"invite_id\":\"{huge}\"}}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn challenges_reveal_nothing_about_accounts() {
    let (_root, server) = start();
    let c = http();
    let r = c
        .post(format!("{}/v1/auth/challenge", server.url))
        .json(&json!({"email": "nobody@nowhere.example"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let challenge: Value = r.json().unwrap();
    assert_eq!(challenge["origin"], server.url.as_str());
    assert!(challenge["nonce"].as_str().unwrap().len() >= 43);
}

#[test]
fn invites_are_consumed_only_by_post() {
    let (_root, server) = start();
    let c = http();
    let bootstrap = server.bootstrap.clone().unwrap();
    let (path, _secret) = bootstrap.split_once('#').unwrap();
    // A mail scanner following the link sees a page and consumes nothing.
    for _ in 0..2 {
        let r = c.get(path).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src")
        );
        assert!(r.text().unwrap().contains("attache join"));
    }
    // A wrong secret is refused without revealing whether the invite exists.
    let id = path.rsplit('/').next().unwrap();
    let r = c
        .post(format!("{}/v1/join", server.url))
        .json(&json!({
            "invite_id": id,
            "secret": "wrong-secret-wrong-secret-wrong-secret-abcd",
            "email": "x@firm.example",
            "name": null,
            "public_keys": base64_of(&[7u8; 64]),
        }))
        .send()
        .unwrap();
    let (status, body) = error_of(r);
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let r = c
        .post(format!("{}/v1/join", server.url))
        .json(&json!({
            "invite_id": "00000000000000000000000000000000",
            "secret": "wrong-secret-wrong-secret-wrong-secret-abcd",
            "email": "x@firm.example",
            "name": null,
            "public_keys": base64_of(&[7u8; 64]),
        }))
        .send()
        .unwrap();
    let (status2, body2) = error_of(r);
    assert_eq!(
        (status2, &body2),
        (status, &body),
        "unknown and wrong look alike"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn an_expired_invite_is_refused() {
    let root = temp_dir();
    // Invites that expire the moment they are made (set through the environment).
    let server = start_server_with(root.path(), free_port(), &[("ATTACHE_INVITE_DAYS", "0")]);
    let bootstrap = server.bootstrap.clone().unwrap();
    let (path, secret) = bootstrap.split_once('#').unwrap();
    let id = path.rsplit('/').next().unwrap();
    let r = http()
        .post(format!("{}/v1/join", server.url))
        .json(&json!({
            "invite_id": id,
            "secret": secret,
            "email": "ada@firm.example",
            "name": null,
            "public_keys": base64_of(attache::crypto::Identity::generate().unwrap().public().to_bytes().as_slice()),
        }))
        .send()
        .unwrap();
    let (status, body) = error_of(r);
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"], "invite_expired");
}
