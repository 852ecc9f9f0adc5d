//! Request extractors: JSON bodies and octet bodies with our error mapping, and the signed-in
//! caller from `Authorization: Bearer`.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::routes::{Arrived, RouteRate};
use super::{AppState, Peer, sha256};
use crate::storage::AccountRecord;

/// When the whole body must have arrived: the request's arrival plus the body deadline
/// setting (from now when the router is driven without the common layer).
fn body_deadline(req: &Request, state: &AppState) -> tokio::time::Instant {
    let arrived = req
        .extensions()
        .get::<Arrived>()
        .map_or_else(tokio::time::Instant::now, |a| a.0);
    arrived + std::time::Duration::from_secs(state.settings.limits.body_timeout_secs)
}

/// A JSON body; malformed → 400 with serde's explanation, oversize → 413.
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let deadline = body_deadline(&req, state);
        let read = tokio::time::timeout_at(deadline, axum::Json::<T>::from_request(req, state));
        match read.await.map_err(|_| ApiError::Timeout)? {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(b)) => Err(bytes_error(&b)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// A raw `application/octet-stream` body, not yet read: the handler streams it (bounded by
/// its own limit) before [`OctetStream::deadline`].
pub(crate) struct OctetStream {
    pub(crate) body: axum::body::Body,
    /// When the whole body must have arrived.
    pub(crate) deadline: tokio::time::Instant,
    /// The declared `Content-Length`, if any (a chunked body has none).
    pub(crate) declared: Option<u64>,
}

impl FromRequest<AppState> for OctetStream {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let deadline = body_deadline(&req, state);
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok(Self {
            body: req.into_body(),
            deadline,
            declared,
        })
    }
}

fn bytes_error(e: &BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// The signed-in account making the request, and the address it came from (for the audit
/// log; empty when the router is driven without the accept loop). Extracting it also counts
/// the request against the account's rate for the route (`429 rate_limited`), before any body
/// is read.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) account: AccountRecord,
    pub(crate) addr: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthorized)?
            .trim();
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| ApiError::Unauthorized)?;
        if raw.len() != 32 {
            return Err(ApiError::Unauthorized);
        }
        let hash = sha256(&raw);
        let mut session = state.store.session(&hash)?.ok_or(ApiError::Unauthorized)?;
        let now = state.now();
        let idle = i64::from(state.settings.session_idle_minutes) * 60;
        if session.expires_at <= now || session.last_seen + idle <= now {
            state.store.remove_session(&hash)?;
            return Err(ApiError::Unauthorized);
        }
        // Refresh the idle clock at most once a minute; losing a refresh in a crash only
        // shortens a session.
        if now - session.last_seen >= 60 {
            session.last_seen = now;
            state.store.put_session(&hash, &session)?;
        }
        let account = state
            .store
            .account(&session.email)?
            .ok_or(ApiError::Unauthorized)?;
        if let Some(RouteRate(rate)) = parts.extensions.get::<RouteRate>() {
            state
                .limiter
                .by_account(*rate, &account.email)
                .map_err(ApiError::RateLimited)?;
        }
        let addr = client_addr(parts);
        Ok(Self { account, addr })
    }
}

/// The client's address for routes without a session (sign-in, join), for the audit log.
pub(crate) struct ClientAddr(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr(parts)))
    }
}

/// The client's IP address as text, from the [`Peer`] the accept loop attaches.
pub(crate) fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<Peer>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default()
}

/// Parses a 32-hex-digit id; anything else is "not found" (ids are never guessed apart).
pub(crate) fn parse_id(s: &str) -> Result<[u8; 16], ApiError> {
    crate::wire::from_hex(s)
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or(ApiError::NotFound)
}
