//! One error type for every route: a fixed code and text for the client, the cause only in
//! the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::storage::StorageError;
use crate::wire::api::ErrorBody;

/// `Retry-After` of a `503 busy`.
const BUSY_RETRY_SECS: u64 = 1;

/// Why a request was refused. Each variant maps to one status and one stable `error` code.
#[derive(Debug)]
pub enum ApiError {
    /// 400 `bad_request`: the request is malformed; the text says what is wrong.
    BadRequest(String),
    /// 401 `unauthorized`: missing, bad or expired session or sign-in.
    Unauthorized,
    /// 403 `forbidden`: the caller's role may not do this (for actions, never for objects).
    Forbidden(&'static str),
    /// 404 `not_found`: missing, or not the caller's (the two are never told apart).
    NotFound,
    /// 409 with a specific code: the request conflicts with the current state.
    Conflict(&'static str, String),
    /// 410 `invite_expired`.
    InviteExpired,
    /// 410 `invite_used`.
    InviteUsed,
    /// 410 with a specific code: the object's time is over (`matter_deleted`,
    /// `request_expired`).
    Gone(&'static str, String),
    /// 410 `access_expired`: the caller's grant to this object ended (at this time).
    AccessExpired(i64),
    /// 408 `timeout`: the body did not arrive in time.
    Timeout,
    /// 413 `too_large`.
    TooLarge,
    /// 429 `rate_limited`: over a rate limit or locked out after failed sign-ins; retry after
    /// this many seconds (also sent as `Retry-After`).
    RateLimited(u64),
    /// 503 `busy`: every request slot stayed taken while this request waited.
    Busy,
    /// 422 with a specific code: the upload does not match its signed manifest.
    Rejected(&'static str, String),
    /// 507 `insufficient_storage`: over the account's quota or into the server's free-disk
    /// reserve; the text gives the figures.
    InsufficientStorage(String),
    /// 500 `internal`: logged, never detailed to the client.
    Internal(String),
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict => Self::Conflict(
                "conflict",
                "a concurrent request changed this; try again".into(),
            ),
            e @ StorageError::OtherMatter { .. } => {
                Self::Conflict("matter_mismatch", e.to_string())
            }
            e => Self::Internal(e.to_string()),
        }
    }
}

impl ApiError {
    /// The status and body the client sees.
    pub fn parts(&self) -> (StatusCode, ErrorBody) {
        let (status, code, message): (StatusCode, &str, String) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in again: the session is missing, invalid or expired".into(),
            ),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", (*m).into()),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".into()),
            Self::Conflict(c, m) => (StatusCode::CONFLICT, c, m.clone()),
            Self::InviteExpired => (
                StatusCode::GONE,
                "invite_expired",
                "this invite has expired; ask for a new one".into(),
            ),
            Self::InviteUsed => (
                StatusCode::GONE,
                "invite_used",
                "this invite was already used; ask for a new one".into(),
            ),
            Self::Gone(c, m) => (StatusCode::GONE, c, m.clone()),
            Self::AccessExpired(at) => (
                StatusCode::GONE,
                "access_expired",
                format!("access expired on {}", crate::wire::format_utc(*at)),
            ),
            Self::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive in time".into(),
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is too large".into(),
            ),
            Self::RateLimited(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {secs} s"),
            ),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the server is busy; retry in {BUSY_RETRY_SECS} s"),
            ),
            Self::Rejected(c, m) => (StatusCode::UNPROCESSABLE_ENTITY, c, m.clone()),
            Self::InsufficientStorage(m) => (
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                m.clone(),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".into(),
            ),
        };
        (
            status,
            ErrorBody {
                error: code.into(),
                message,
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let retry = match &self {
            Self::RateLimited(secs) => Some(*secs),
            Self::Busy => Some(BUSY_RETRY_SECS),
            _ => None,
        };
        let (status, body) = self.parts();
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}
