//! Handlers for matters: create, list, read, close (scheduling deletion after the retention
//! period), legal hold and release, and a matter's messages.
//!
//! The server never sees a matter's name: only an age file sealed to its owner.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, Json, parse_id};
use super::messages::{matter_deleted, page_params, view as message_view};
use super::{AppState, new_listed_id};
use crate::storage::{AddOutcome, MatterRecord};
use crate::wire::api::{
    CloseMatter, ErrorBody, MAX_RETAIN_DAYS, MAX_SEALED_NAME_LEN, Matter, MatterList, MatterStatus,
    MessageList, NewMatter, Role,
};
use crate::wire::to_hex;

/// Creates a matter (firm users).
#[utoipa::path(post, path = "/v1/matters", request_body = NewMatter,
    responses((status = 201, body = Matter), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Json(req): Json<NewMatter>,
) -> Result<(StatusCode, axum::Json<Matter>), ApiError> {
    decide(&s, &caller, Action::CreateMatter).await?;
    let sealed_name = STANDARD
        .decode(req.sealed_name.trim())
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= MAX_SEALED_NAME_LEN)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "sealed_name must be 1 to {MAX_SEALED_NAME_LEN} bytes of base64"
            ))
        })?;
    let id: [u8; 16] = new_listed_id()?;
    let record = MatterRecord {
        id,
        owner: caller.account.email.clone(),
        sealed_name,
        created_at: s.now(),
        closed_at: None,
        delete_after: None,
        hold: false,
        deleted_at: None,
    };
    s.store.put_new_matter(&record)?;
    s.audit(&caller, "matter.create", &to_hex(&id), Some(&id))?;
    s.store.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(view(&record))))
}

/// The caller's matters (an administrator: all), newest first.
#[utoipa::path(get, path = "/v1/matters", responses((status = 200, body = MatterList)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<MatterList>, ApiError> {
    let records = if caller.account.role == Role::Admin {
        s.store.all_matters()?
    } else {
        s.store.matters_of(&caller.account.email)?
    };
    Ok(axum::Json(MatterList {
        matters: records.iter().map(view).collect(),
    }))
}

/// One matter, for its owner or an administrator.
#[utoipa::path(get, path = "/v1/matters/{id}", params(("id" = String, Path, description = "matter id")),
    responses((status = 200, body = Matter), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn read(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Matter>, ApiError> {
    let m = managed(&s, &caller, &id).await?;
    Ok(axum::Json(view(&m)))
}

/// Closes a matter: nothing more may be added, and its content is deleted after the retention
/// period unless a hold is set.
#[utoipa::path(post, path = "/v1/matters/{id}/close", params(("id" = String, Path, description = "matter id")),
    request_body = CloseMatter,
    responses((status = 200, body = Matter), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn close(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<CloseMatter>,
) -> Result<axum::Json<Matter>, ApiError> {
    managed(&s, &caller, &id).await?;
    let days = req.retain_days.unwrap_or(s.settings.retention_days);
    if days > MAX_RETAIN_DAYS {
        return Err(ApiError::Rejected(
            "bad_retention",
            format!("retain_days is at most {MAX_RETAIN_DAYS}"),
        ));
    }
    let updated = change(&s, &caller, &id, "matter.close", |m, now| {
        if m.closed_at.is_some() {
            return Err(ApiError::Conflict(
                "matter_closed",
                "the matter is already closed".into(),
            ));
        }
        m.closed_at = Some(now);
        m.delete_after = Some(now.saturating_add(i64::from(days) * 86_400));
        Ok(true)
    })?;
    s.store.commit().await?;
    Ok(axum::Json(view(&updated)))
}

/// Sets a legal hold: the matter's content is kept past its deletion time until released.
#[utoipa::path(post, path = "/v1/matters/{id}/hold", params(("id" = String, Path, description = "matter id")),
    responses((status = 200, body = Matter), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn hold(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Matter>, ApiError> {
    set_hold(s, caller, id, true).await
}

/// Releases a legal hold: a closed matter past its deletion time is deleted at the next sweep.
#[utoipa::path(post, path = "/v1/matters/{id}/release", params(("id" = String, Path, description = "matter id")),
    responses((status = 200, body = Matter), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn release(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Matter>, ApiError> {
    set_hold(s, caller, id, false).await
}

async fn set_hold(
    s: AppState,
    caller: Caller,
    id: String,
    hold: bool,
) -> Result<axum::Json<Matter>, ApiError> {
    managed(&s, &caller, &id).await?;
    let action = if hold {
        "matter.hold"
    } else {
        "matter.release"
    };
    let updated = change(&s, &caller, &id, action, |m, _| {
        if m.deleted_at.is_some() {
            return Err(matter_deleted());
        }
        let changed = m.hold != hold;
        m.hold = hold;
        Ok(changed)
    })?;
    s.store.commit().await?;
    Ok(axum::Json(view(&updated)))
}

/// Query of a matter's messages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// The `next` of the previous page.
    before: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// A matter's messages, newest first, paged like `GET /v1/messages`.
#[utoipa::path(get, path = "/v1/matters/{id}/messages",
    params(("id" = String, Path, description = "matter id"), PageQuery),
    responses((status = 200, body = MessageList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn messages(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<MessageList>, ApiError> {
    let m = managed(&s, &caller, &id).await?;
    let (cursor, limit) = page_params(q.before.as_deref(), q.limit)?;
    let (page, next) = s
        .store
        .matter_message_page(&m.id, cursor.as_deref(), limit)?;
    Ok(axum::Json(MessageList {
        messages: page.iter().map(message_view).collect(),
        next: next.map(|n| to_hex(&n)),
        headers: Vec::new(),
    }))
}

/// The matter `id` if the caller may manage it (owner or admin), else 404.
async fn managed(s: &AppState, caller: &Caller, id: &str) -> Result<MatterRecord, ApiError> {
    let id = parse_id(id)?;
    let m = s.store.matter(&id)?.ok_or(ApiError::NotFound)?;
    decide(s, caller, Action::ManageMatter(&m)).await?;
    Ok(m)
}

/// Applies `f` to the matter under the matter lock; if it reports a change, stores it and
/// audits `action`. Returns the matter as it now is (not yet durable).
fn change(
    s: &AppState,
    caller: &Caller,
    id: &str,
    action: &str,
    f: impl FnOnce(&mut MatterRecord, i64) -> Result<bool, ApiError>,
) -> Result<MatterRecord, ApiError> {
    let id = parse_id(id)?;
    let _matters = s.lock_matters();
    let old = s.store.matter(&id)?.ok_or(ApiError::NotFound)?;
    let mut new = old.clone();
    if !f(&mut new, s.now())? {
        return Ok(old);
    }
    if s.store.update_matter(&old, &new)? == AddOutcome::Conflict {
        return Err(crate::storage::StorageError::Conflict.into());
    }
    s.audit(caller, action, &to_hex(&id), Some(&id))?;
    Ok(new)
}

/// The API view of a matter.
pub(crate) fn view(m: &MatterRecord) -> Matter {
    let status = if m.deleted_at.is_some() {
        MatterStatus::Deleted
    } else if m.closed_at.is_some() {
        MatterStatus::Closed
    } else {
        MatterStatus::Open
    };
    Matter {
        id: to_hex(&m.id),
        owner: m.owner.clone(),
        sealed_name: STANDARD.encode(&m.sealed_name),
        created_at: m.created_at,
        status,
        closed_at: m.closed_at,
        delete_after: m.delete_after,
        hold: m.hold,
        deleted_at: m.deleted_at,
    }
}
