//! The one route table: every route, its authorization rule and its body limit, the router
//! built from it, the OpenAPI document and `docs/API.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use utoipa::OpenApi;

use super::error::ApiError;
use super::items::SEALED_CHUNK;
use super::limits::QUEUE_WAIT;
use super::{AppState, Rate, accounts, audit, grants, items, matters, messages, signatures};
use crate::wire::api::MAX_CHUNKS_PER_REQUEST;

/// Body limit of JSON routes.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Body limit of a chunk upload: 128 full sealed chunks (8 MiB).
pub const CHUNKS_LIMIT: usize = MAX_CHUNKS_PER_REQUEST * SEALED_CHUNK;
/// Body limit of a commit: the largest manifest in base64 plus key packages.
pub const COMMIT_LIMIT: usize = 16 * 1024 * 1024;
/// Body limit of a send: a message item of one short chunk in base64 (88 KiB), its manifest
/// and up to 65 key packages.
pub const SEND_LIMIT: usize = 512 * 1024;

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// HTTP method.
    pub method: &'static str,
    /// Path, with `{params}`.
    pub path: &'static str,
    /// Who may call it.
    pub auth: &'static str,
    /// Largest request body accepted, in bytes (0: no body).
    pub body_limit: usize,
    /// Which request rate it counts against (see [`Limits`](super::Limits)).
    pub rate: Rate,
    /// What it does.
    pub summary: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    auth: &'static str,
    body_limit: usize,
    rate: Rate,
    summary: &'static str,
) -> RouteInfo {
    RouteInfo {
        method,
        path,
        auth,
        body_limit,
        rate,
        summary,
    }
}

/// Every route the server answers.
pub const ROUTES: &[RouteInfo] = &[
    route("GET", "/healthz", "none", 0, Rate::None, "liveness: `ok`"),
    route(
        "GET",
        "/metrics",
        "none (bind the server to a private address or filter it at the proxy)",
        0,
        Rate::None,
        "Prometheus counters",
    ),
    route(
        "GET",
        "/v1/openapi.json",
        "none",
        0,
        Rate::None,
        "this API as OpenAPI 3.1",
    ),
    route(
        "GET",
        "/i/{id}",
        "none; consumes nothing",
        0,
        Rate::None,
        "the page an invite link opens: how to join",
    ),
    route(
        "POST",
        "/v1/join",
        "the invite secret (single use, expiring)",
        JSON_LIMIT,
        Rate::Auth,
        "consume an invite, register email, name and public keys",
    ),
    route(
        "POST",
        "/v1/auth/challenge",
        "none; answered for any email",
        JSON_LIMIT,
        Rate::Auth,
        "a one-time sign-in challenge (2 minutes)",
    ),
    route(
        "POST",
        "/v1/auth/session",
        "Ed25519 signature of the challenge by the account's key",
        JSON_LIMIT,
        Rate::Auth,
        "open a session",
    ),
    route(
        "GET",
        "/v1/me",
        "session",
        0,
        Rate::None,
        "the signed-in account",
    ),
    route(
        "POST",
        "/v1/invites",
        "session; admin: any role; attorney, staff: client or cocounsel",
        JSON_LIMIT,
        Rate::Invite,
        "create an invite",
    ),
    route(
        "GET",
        "/v1/contacts",
        "session; firm: everyone; client, cocounsel: firm users and correspondents",
        0,
        Rate::None,
        "accounts the caller may send to",
    ),
    route(
        "GET",
        "/v1/directory/{email}",
        "session; same rule as contacts, else 404",
        0,
        Rate::None,
        "one account's public keys and fingerprint",
    ),
    route(
        "POST",
        "/v1/items",
        "session",
        JSON_LIMIT,
        Rate::Write,
        "start an upload (server assigns the item id)",
    ),
    route(
        "PUT",
        "/v1/items/{item}/chunks/{first}",
        "session; uploader of the uncommitted item, else 404",
        CHUNKS_LIMIT,
        Rate::Chunks,
        "store 1 to 128 sealed chunks at `received`, or ahead of it while the requests before are in flight (recorded in order)",
    ),
    route(
        "GET",
        "/v1/items/{item}/upload",
        "session; uploader of the uncommitted item, else 404",
        0,
        Rate::None,
        "upload state, to resume",
    ),
    route(
        "POST",
        "/v1/items/{item}/commit",
        "session; uploader of the uncommitted item, else 404",
        COMMIT_LIMIT,
        Rate::Write,
        "check the signed manifest against every chunk, store key packages",
    ),
    route(
        "GET",
        "/v1/items/{item}",
        "session; holder of a key package for the committed item, else 404; audited",
        0,
        Rate::None,
        "preamble, manifest and the caller's key package",
    ),
    route(
        "GET",
        "/v1/items/{item}/chunks",
        "session; holder of a key package for the committed item, else 404; audited",
        0,
        Rate::None,
        "stream the ciphertext from chunk `from`, or from byte START with `Range: bytes=START-` (206)",
    ),
    route(
        "POST",
        "/v1/messages",
        "session; uploader of every item; each recipient holds key packages for all",
        SEND_LIMIT,
        Rate::Write,
        "send a message; a message item of one short chunk may come in the request (`sealed`); an item filed in another matter (or in any, for a message outside matters): 409 matter_mismatch",
    ),
    route(
        "GET",
        "/v1/messages",
        "session; the caller's own boxes",
        0,
        Rate::None,
        "inbox or sent, newest first, paged; `headers=true` adds the items' headers (audited)",
    ),
    route(
        "GET",
        "/v1/messages/{id}",
        "session; sender or recipient, or a grantee of its item while the grant lasts (after: 410 access_expired), else 404",
        0,
        Rate::None,
        "one message",
    ),
    route(
        "POST",
        "/v1/matters",
        "session; firm roles (admin, attorney, staff), else 403",
        JSON_LIMIT,
        Rate::Write,
        "create a matter (its name sealed to the creator)",
    ),
    route(
        "GET",
        "/v1/matters",
        "session; the caller's own matters (admin: all)",
        0,
        Rate::None,
        "matters, newest first",
    ),
    route(
        "GET",
        "/v1/matters/{id}",
        "session; owner or admin, else 404",
        0,
        Rate::None,
        "one matter",
    ),
    route(
        "POST",
        "/v1/matters/{id}/close",
        "session; owner or admin, else 404; audited",
        JSON_LIMIT,
        Rate::Write,
        "close: schedule deletion after `retain_days` (default: the retention setting); twice: 409 matter_closed",
    ),
    route(
        "POST",
        "/v1/matters/{id}/hold",
        "session; owner or admin, else 404; audited",
        JSON_LIMIT,
        Rate::Write,
        "set a legal hold (suspends deletion)",
    ),
    route(
        "POST",
        "/v1/matters/{id}/release",
        "session; owner or admin, else 404; audited",
        JSON_LIMIT,
        Rate::Write,
        "release the legal hold",
    ),
    route(
        "GET",
        "/v1/matters/{id}/messages",
        "session; owner or admin, else 404",
        0,
        Rate::None,
        "the matter's messages, newest first, paged like `/v1/messages`",
    ),
    route(
        "POST",
        "/v1/signatures",
        "session; the message's sender, else 404; audited",
        JSON_LIMIT,
        Rate::Write,
        "ask a recipient to sign one of the message's documents by a deadline; schedules reminders",
    ),
    route(
        "GET",
        "/v1/signatures",
        "session; requests by and to the caller",
        0,
        Rate::None,
        "signature requests, newest first",
    ),
    route(
        "GET",
        "/v1/signatures/{id}",
        "session; requester or signer, else 404",
        0,
        Rate::None,
        "one signature request",
    ),
    route(
        "POST",
        "/v1/signatures/{id}/answer",
        "session; the signer, else 404; before the deadline (410 request_expired), once (409 already_answered); audited",
        JSON_LIMIT,
        Rate::Write,
        "sign or decline with a sealed statement; notifies the requester",
    ),
    route(
        "GET",
        "/v1/signatures/{id}/evidence",
        "session; requester or signer, else 404; answered, else 409 not_answered",
        0,
        Rate::None,
        "both accounts, the audit entries about the request, its message and document, and the server's attestation",
    ),
    route(
        "POST",
        "/v1/grants",
        "session; firm roles, else 403; a statement signed by the caller's key, else 422 bad_grant; audited",
        JSON_LIMIT,
        Rate::Write,
        "give co-counsel time-limited access: store the grantee's key packages",
    ),
    route(
        "GET",
        "/v1/grants",
        "session; grants by and to the caller (admin: all)",
        0,
        Rate::None,
        "grants, newest first",
    ),
    route(
        "POST",
        "/v1/grants/{id}/revoke",
        "session; grantor or admin, else 404; audited",
        JSON_LIMIT,
        Rate::Write,
        "revoke: the grantee's key packages are deleted at once",
    ),
    route(
        "GET",
        "/v1/audit",
        "session; no filter: admin (else 403); `matter=ID`: owner or admin; `item=ID`: a firm user or client holding a key package for it, or admin",
        0,
        Rate::None,
        "audit entries as stored (base64) with the signed checkpoints covering them",
    ),
];

/// The router for `state`: the route table above with its limits and the common layers.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/i/{id}", get(accounts::invite_page))
        .route("/v1/join", post(accounts::join))
        .route("/v1/auth/challenge", post(accounts::challenge))
        .route("/v1/auth/session", post(accounts::session))
        .route("/v1/me", get(accounts::me))
        .route("/v1/invites", post(accounts::create_invite))
        .route("/v1/contacts", get(accounts::contacts))
        .route("/v1/directory/{email}", get(accounts::directory))
        .route("/v1/items", post(items::create))
        .route(
            "/v1/items/{item}/chunks/{first}",
            put(items::put_chunks).layer(DefaultBodyLimit::max(CHUNKS_LIMIT)),
        )
        .route("/v1/items/{item}/upload", get(items::upload_state))
        .route(
            "/v1/items/{item}/commit",
            post(items::commit).layer(DefaultBodyLimit::max(COMMIT_LIMIT)),
        )
        .route("/v1/items/{item}", get(items::header))
        .route("/v1/items/{item}/chunks", get(items::download))
        .route(
            "/v1/messages",
            post(messages::send)
                .layer(DefaultBodyLimit::max(SEND_LIMIT))
                .get(messages::list),
        )
        .route("/v1/messages/{id}", get(messages::read))
        .route("/v1/matters", post(matters::create).get(matters::list))
        .route("/v1/matters/{id}", get(matters::read))
        .route("/v1/matters/{id}/close", post(matters::close))
        .route("/v1/matters/{id}/hold", post(matters::hold))
        .route("/v1/matters/{id}/release", post(matters::release))
        .route("/v1/matters/{id}/messages", get(matters::messages))
        .route(
            "/v1/signatures",
            post(signatures::create).get(signatures::list),
        )
        .route("/v1/signatures/{id}", get(signatures::read))
        .route("/v1/signatures/{id}/answer", post(signatures::answer))
        .route("/v1/signatures/{id}/evidence", get(signatures::evidence))
        .route("/v1/grants", post(grants::create).get(grants::list))
        .route("/v1/grants/{id}/revoke", post(grants::revoke))
        .route("/v1/audit", get(audit::log))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), common))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The content security policy of every answer: nothing may load, frame or be framed. The
/// HTML pages need nothing else (no script, no style, no image).
const CSP: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// When a request arrived, for the whole-body deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrived(pub(crate) tokio::time::Instant);

/// The route's rate class, for the per-account limit in [`super::extract::Caller`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteRate(pub(crate) Rate);

/// Rate limits per address, body limits, the in-flight limit, security headers, request
/// metrics and the request log line (method, route, status, time: never a token, a query or a
/// body).
async fn common(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    req.extensions_mut()
        .insert(Arrived(tokio::time::Instant::now()));
    let method = known_method(req.method().as_str());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let row = ROUTES
        .iter()
        .find(|r| r.method == method && r.path == route);
    let rate = row.map_or(Rate::None, |r| r.rate);
    req.extensions_mut().insert(RouteRate(rate));
    let peer = req.extensions().get::<super::Peer>().map(|p| p.0.ip());
    // An HTTP/1.1 body that the answer leaves unread makes hyper close the connection after
    // the answer; the answer then says so (`Connection: close`), or the client would send its
    // next request into a closing connection.
    let declared = content_length(&req);
    let watch_body = req.version() <= Version::HTTP_11
        && (declared.is_some_and(|n| n > 0)
            || req.headers().contains_key(header::TRANSFER_ENCODING));
    let read = Arc::new(AtomicU64::new(0));
    if watch_body {
        let counter = read.clone();
        req = req.map(|body| {
            Body::new(body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                frame
            }))
        });
    }
    let limited = match peer {
        Some(ip) => s.limiter.by_address(rate, ip).err(),
        None => None,
    };
    let mut res = if let Some(wait) = limited {
        ApiError::RateLimited(wait).into_response()
    } else if let Some(limit) = oversize(row, &req) {
        refuse_oversize(req, limit).await
    } else {
        // Liveness and metrics answer even when every slot is busy.
        let exempt = matches!(route.as_str(), "/healthz" | "/metrics");
        match (&s.in_flight, exempt) {
            (Some(slots), false) => {
                match tokio::time::timeout(QUEUE_WAIT, slots.clone().acquire_owned()).await {
                    Ok(Ok(_slot)) => next.run(req).await,
                    _ => ApiError::Busy.into_response(),
                }
            }
            _ => next.run(req).await,
        }
    };
    if res.status().is_client_error() && !is_json(&res) {
        res = as_error_body(res).await;
    }
    if watch_body {
        let unread = match declared {
            Some(n) => read.load(Ordering::Relaxed) < n,
            // Chunked: a success read it; a refusal may not have.
            None => !res.status().is_success(),
        };
        if unread {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    let status = res.status().as_u16();
    s.metrics.request(method, &route, status);
    tracing::info!(
        %method,
        %route,
        status,
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    let h = res.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.remove(header::SERVER);
    res
}

/// The method as a fixed label: a client may send any token as a method, and each distinct
/// one would otherwise become a new metrics series.
fn known_method(m: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN.iter().find(|k| **k == m).copied().unwrap_or("OTHER")
}

fn is_json(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Turns axum's plain-text rejections (bad path or query, wrong method, wrong content type)
/// into an `ErrorBody`, so every refusal has the same shape.
async fn as_error_body(res: Response) -> Response {
    let status = res.status();
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "refused",
    };
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut message: String = String::from_utf8_lossy(&text).chars().take(300).collect();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("refused").to_owned();
    }
    let mut out = (
        status,
        axum::Json(crate::wire::api::ErrorBody {
            error: code.into(),
            message,
        }),
    )
        .into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// The declared `Content-Length`, if there is a valid one.
fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The route's body limit, if the declared `Content-Length` exceeds it.
fn oversize(row: Option<&RouteInfo>, req: &Request) -> Option<usize> {
    let declared = content_length(req)?;
    // A route without a body keeps the router-wide JSON limit.
    let limit = row
        .map(|r| r.body_limit)
        .filter(|l| *l > 0)
        .unwrap_or(JSON_LIMIT);
    (declared > limit as u64).then_some(limit)
}

/// Answers 413 after reading and dropping the body (up to [`DRAIN_LIMIT`] bytes and
/// [`DRAIN_TIME`]), so that a client still writing sees the answer instead of a reset.
async fn refuse_oversize(req: Request, limit: usize) -> Response {
    drain(&mut req.into_body().into_data_stream()).await;
    tracing::debug!(limit, "refused an oversize body");
    ApiError::TooLarge.into_response()
}

/// Reads and drops what is left of a refused body (up to [`DRAIN_LIMIT`] bytes and
/// [`DRAIN_TIME`]), so that a client still writing sees the answer instead of a reset.
pub(crate) async fn drain(stream: &mut axum::body::BodyDataStream) {
    use futures_util::StreamExt;
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = stream.next().await {
            seen += frame.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// Most bytes of an oversize body read before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
/// Longest time spent reading an oversize body before answering 413.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "`ok`", content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus counters.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(s.store.flush_stats()) + &s.outbox.render_metrics(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3.1 JSON", content_type = "application/json")))]
async fn openapi_json() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Attache", description = "End-to-end encrypted document and message exchange: the server stores only ciphertext."),
    paths(
        healthz, metrics, openapi_json,
        accounts::invite_page, accounts::join, accounts::challenge, accounts::session,
        accounts::me, accounts::create_invite, accounts::contacts, accounts::directory,
        items::create, items::put_chunks, items::upload_state, items::commit, items::header,
        items::download,
        messages::send, messages::list, messages::read,
        matters::create, matters::list, matters::read, matters::close, matters::hold,
        matters::release, matters::messages,
        signatures::create, signatures::list, signatures::read, signatures::answer,
        signatures::evidence,
        grants::create, grants::list, grants::revoke,
        audit::log,
    ),
    modifiers(&BearerAuth, &CommonResponses)
)]
struct ApiDoc;

/// Documents the answers every route of a kind can give, from the route table, so that no
/// handler annotation can forget one: `400` (a malformed path, query or body), `401` (a
/// session route), `404` (an object route), `408` and `413` (a body), `429` with
/// `Retry-After` (a rate-limited route) and `503 busy` with `Retry-After` (every route but
/// liveness and metrics).
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
            ] {
                let Some(op) = op.as_mut() else { continue };
                let Some(row) = ROUTES.iter().find(|r| r.method == method && r.path == path) else {
                    continue;
                };
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = row.body_limit > 0;
                let mut add = |status: &str, description: &str, retry: bool| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description, retry));
                };
                if has_params || has_body {
                    add("400", "bad_request: a malformed path, query or body", false);
                }
                if op.security.is_some() {
                    add("401", "unauthorized: no valid session", false);
                }
                if path.contains('{') && path.starts_with("/v1/") {
                    add("404", "not_found: missing, or not the caller's", false);
                }
                if has_body {
                    add(
                        "408",
                        "timeout: the body did not arrive by its deadline",
                        false,
                    );
                    add(
                        "413",
                        "too_large: the body is over the route's limit",
                        false,
                    );
                }
                if row.rate != Rate::None {
                    add(
                        "429",
                        "rate_limited: retry after `Retry-After` seconds",
                        true,
                    );
                }
                if !matches!(row.path, "/healthz" | "/metrics") {
                    add("503", "busy: every request slot is taken", true);
                }
            }
        }
    }
}

fn error_response(
    description: &str,
    retry_after: bool,
) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};
    let mut b = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        b = b.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("seconds to wait"))
                .build(),
        );
    }
    b.build().into()
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the whole API, generated from the handlers and the wire types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `docs/API.md`, generated from [`ROUTES`]; a test checks the file matches.
pub fn api_markdown() -> String {
    let mut out = String::from(
        "# Attache HTTP API\n\n\
<!-- Generated by `attache::server::api_markdown()`; do not edit by hand. -->\n\n\
JSON over HTTPS. Request and response bodies are the types in `src/wire/api.rs`; the full \
schema is served at `/v1/openapi.json`. Authenticated routes take \
`Authorization: Bearer TOKEN` from `POST /v1/auth/session`; a missing, bad or expired session \
is `401 {\"error\":\"unauthorized\"}`. A refusal for an object never tells whether it exists: \
both are `404 not_found`, except for a grantee whose grant ended (expired or revoked), who gets \
`410 access_expired` with the date. Every error body is `ErrorBody {error, message}`. Malformed JSON is \
`400 bad_request`, a body over the limit `413 too_large`.\n\n\
Limits (settings of `attache serve`, defaults in `attache serve --help`): each write route \
counts against a rate per client address and per account (column *rate*); over it the answer \
is `429 rate_limited` with `Retry-After` in seconds. Repeated failed sign-ins for one email \
lock it out the same way, whether or not the account exists. When the server is handling its \
maximum of requests, a request that waits too long for a slot gets `503 busy` with \
`Retry-After`. A body that has not arrived by its deadline gets `408 timeout`; slow headers \
and idle connections are closed.\n\n\
| method | path | who may call it | body limit | rate | what it does |\n\
| --- | --- | --- | --- | --- | --- |\n",
    );
    for r in ROUTES {
        let limit = if r.body_limit == 0 {
            "none".to_owned()
        } else {
            format!("{} bytes", r.body_limit)
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} |\n",
            r.method,
            r.path,
            r.auth,
            limit,
            r.rate.describe(),
            r.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each route appears once, routes without a body name none, and every write counts
    /// against a rate. With
    /// `ATTACHE_WRITE_API_MD=1`, also rewrites `docs/API.md` from the table (the tidy test
    /// `docs_api_md_is_the_route_table` checks the two agree).
    #[test]
    fn the_route_table_is_consistent_and_writes_docs_api_md_on_request() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            if r.method == "GET" {
                assert_eq!(r.body_limit, 0, "{} {} takes no body", r.method, r.path);
                assert_eq!(r.rate, Rate::None, "{} {} is a read", r.method, r.path);
            } else {
                assert_ne!(r.rate, Rate::None, "{} {} is a write", r.method, r.path);
            }
        }
        if std::env::var_os("ATTACHE_WRITE_API_MD").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md");
            std::fs::write(path, api_markdown()).expect("write docs/API.md");
        }
    }
}
