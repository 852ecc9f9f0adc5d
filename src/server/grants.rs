//! Handlers for co-counsel grants: create (from a statement the granting firm user signed),
//! list, revoke.
//!
//! The server checks the grant's signature against the caller's registered key, so it can
//! store and enforce a grant but never invent one. A grant gives the grantee one key package
//! per item; at its end (or revocation) the server stops serving them (`410 access_expired`),
//! deletes them and writes the cut-off to the audit log. A grant never reaches past the
//! retention of its matter.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, Json, parse_id};
use super::messages::matter_deleted;
use super::{AppState, sha256, valid_email};
use crate::crypto::{MAX_KEY_PACKAGE_LEN, PublicKeys, SignedGrant};
use crate::storage::{AddOutcome, GrantRecord, ItemRecord};
use crate::wire::api::{
    ErrorBody, Grant, GrantList, GrantStatus, MAX_GRANT_LEN, MAX_HORIZON_SECS, NewGrant, Role,
};
use crate::wire::{format_utc, to_hex};

/// Gives a co-counsel access to chosen items until a time (firm users).
#[utoipa::path(post, path = "/v1/grants", request_body = NewGrant,
    responses((status = 201, body = Grant), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Json(req): Json<NewGrant>,
) -> Result<(StatusCode, axum::Json<Grant>), ApiError> {
    decide(&s, &caller, Action::CreateGrant).await?;
    let me = &caller.account.email;
    let statement = STANDARD
        .decode(req.grant.trim())
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= MAX_GRANT_LEN)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "grant must be 1 to {MAX_GRANT_LEN} bytes of base64"
            ))
        })?;
    let signed = SignedGrant::parse(&statement)
        .map_err(|e| bad_grant(format!("the grant statement was refused: {e}")))?;
    let my_keys = PublicKeys::from_bytes(&caller.account.public_keys)
        .map_err(|_| ApiError::Internal("stored public keys invalid".into()))?;
    let g = signed
        .verify(&my_keys)
        .map_err(|_| bad_grant("the grant is not signed by your key".into()))?;
    if valid_email(&g.grantor_email).ok().as_ref() != Some(me) {
        return Err(bad_grant("the grant names another grantor".into()));
    }
    let grantee_email = valid_email(&g.grantee_email)
        .map_err(|_| bad_grant("the grantee is not an email address".into()))?;
    if &grantee_email == me {
        return Err(bad_grant("you cannot grant access to yourself".into()));
    }
    let grantee = s.store.account(&grantee_email)?.ok_or_else(|| {
        ApiError::Rejected("unknown_grantee", format!("{grantee_email} has no account"))
    })?;
    let grantee_keys = PublicKeys::from_bytes(&grantee.public_keys)
        .map_err(|_| ApiError::Internal("stored public keys invalid".into()))?;
    if grantee_keys.fingerprint() != g.grantee_fingerprint {
        return Err(ApiError::Rejected(
            "fingerprint_mismatch",
            format!(
                "{grantee_email}'s registered key is not the one the grant names; verify their fingerprint again"
            ),
        ));
    }
    let now = s.now();
    if g.until <= now || g.until > now.saturating_add(MAX_HORIZON_SECS) {
        return Err(ApiError::Rejected(
            "bad_until",
            format!(
                "the grant must end in the future and at most {} days ahead",
                MAX_HORIZON_SECS / 86_400
            ),
        ));
    }
    if g.items.is_empty() {
        return Err(bad_grant("the grant names no item".into()));
    }

    let mut items: Vec<ItemRecord> = Vec::with_capacity(g.items.len());
    for (id, digest) in &g.items {
        if items.iter().any(|i| i.id == *id) {
            return Err(bad_grant(format!("item {} appears twice", to_hex(id))));
        }
        let item = s.store.item(id)?.ok_or(ApiError::NotFound)?;
        decide(&s, &caller, Action::ShareItem(&item)).await?;
        let manifest = item
            .manifest
            .as_deref()
            .ok_or_else(|| ApiError::Internal("committed item without manifest".into()))?;
        if sha256(manifest) != *digest {
            return Err(ApiError::Rejected(
                "digest_mismatch",
                format!("the grant names another version of item {}", to_hex(id)),
            ));
        }
        if item.matter != g.matter {
            return Err(ApiError::Rejected(
                "matter_mismatch",
                format!("item {} is not in the grant's matter", to_hex(id)),
            ));
        }
        items.push(item);
    }
    if let Some(mid) = g.message {
        let m = s.store.message(&mid)?.ok_or(ApiError::NotFound)?;
        decide(&s, &caller, Action::ShareMessage(&m)).await?;
        let expected: BTreeSet<[u8; 16]> = std::iter::once(m.item)
            .chain(m.documents.iter().map(|(d, _)| *d))
            .collect();
        let given: BTreeSet<[u8; 16]> = items.iter().map(|i| i.id).collect();
        if expected != given {
            return Err(bad_grant(
                "a grant of a message names exactly the message's item and its documents".into(),
            ));
        }
    }

    if req.key_packages.len() != items.len() {
        return Err(ApiError::BadRequest(
            "one key package per item of the grant".into(),
        ));
    }
    let mut packages: Vec<([u8; 16], Vec<u8>)> = Vec::with_capacity(items.len());
    for kp in &req.key_packages {
        let id = parse_id(&kp.item)
            .map_err(|_| ApiError::BadRequest("a key package names an unknown item".into()))?;
        if !items.iter().any(|i| i.id == id) || packages.iter().any(|(p, _)| *p == id) {
            return Err(ApiError::BadRequest(
                "one key package per item of the grant".into(),
            ));
        }
        let package = STANDARD
            .decode(kp.package.trim())
            .ok()
            .filter(|p| !p.is_empty() && p.len() <= MAX_KEY_PACKAGE_LEN)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "a key package is 1 to {MAX_KEY_PACKAGE_LEN} bytes of base64"
                ))
            })?;
        packages.push((id, package));
    }
    for item in &items {
        if s.store.has_key_package(&item.id, &grantee_email)? {
            return Err(already_reader(&grantee_email, &item.id));
        }
    }
    if s.store.grant(&g.id)?.is_some() {
        return Err(grant_exists());
    }

    let record = GrantRecord {
        id: g.id,
        grantor: me.clone(),
        grantee: grantee_email.clone(),
        message: g.message,
        items: items.iter().map(|i| i.id).collect(),
        matter: g.matter,
        created_at: now,
        until: g.until,
        revoked_at: None,
        cut_off_at: None,
        statement,
    };
    {
        let _matters = record.matter.map(|_| s.lock_matters());
        if let Some(m) = &record.matter {
            let matter = s.store.matter(m)?.ok_or(ApiError::NotFound)?;
            if matter.deleted_at.is_some() {
                return Err(matter_deleted());
            }
            if let Some(deleted) = matter.delete_after {
                if record.until > deleted {
                    return Err(ApiError::Rejected(
                        "grant_past_retention",
                        format!(
                            "the grant would outlast the matter: its content is deleted on {}",
                            format_utc(deleted)
                        ),
                    ));
                }
            }
        }
        if s.store.put_grant(&record, &packages)? == AddOutcome::Conflict {
            return Err(if s.store.grant(&record.id)?.is_some() {
                grant_exists()
            } else {
                ApiError::Conflict(
                    "already_reader",
                    format!("{grantee_email} can already read an item of the grant"),
                )
            });
        }
        s.audit(
            &caller,
            "grant.create",
            &to_hex(&record.id),
            record.matter.as_ref(),
        )?;
    }
    s.store.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(view(&record, now))))
}

/// Grants by and to the caller (an administrator: all), newest first.
#[utoipa::path(get, path = "/v1/grants", responses((status = 200, body = GrantList)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<GrantList>, ApiError> {
    let records = if caller.account.role == Role::Admin {
        s.store.all_grants()?
    } else {
        s.store.grants_of(&caller.account.email)?
    };
    let now = s.now();
    Ok(axum::Json(GrantList {
        grants: records.iter().map(|g| view(g, now)).collect(),
    }))
}

/// Revokes a grant (its grantor or an administrator): the grantee's key packages are deleted
/// at once.
#[utoipa::path(post, path = "/v1/grants/{id}/revoke", params(("id" = String, Path, description = "grant id")),
    responses((status = 200, body = Grant), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Grant>, ApiError> {
    let old = s.store.grant(&parse_id(&id)?)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::RevokeGrant(&old)).await?;
    if old.revoked_at.is_some() {
        return Err(already_revoked());
    }
    let now = s.now();
    let mut new = old.clone();
    new.revoked_at = Some(now);
    new.cut_off_at = old.cut_off_at.or(Some(now));
    let (outcome, packages) = s.store.update_grant(&old, &new)?;
    if outcome == AddOutcome::Conflict {
        return Err(already_revoked());
    }
    s.audit(
        &caller,
        "grant.revoke",
        &to_hex(&old.id),
        old.matter.as_ref(),
    )?;
    s.store.commit().await?;
    tracing::info!(grant = %to_hex(&old.id), packages, "grant revoked: key packages deleted");
    Ok(axum::Json(view(&new, now)))
}

fn bad_grant(why: String) -> ApiError {
    ApiError::Rejected("bad_grant", why)
}

fn already_reader(grantee: &str, item: &[u8; 16]) -> ApiError {
    ApiError::Conflict(
        "already_reader",
        format!("{grantee} can already read item {}", to_hex(item)),
    )
}

fn grant_exists() -> ApiError {
    ApiError::Conflict("grant_exists", "a grant with this id exists".into())
}

fn already_revoked() -> ApiError {
    ApiError::Conflict("already_revoked", "the grant is already revoked".into())
}

/// The API view of a grant at `now`.
pub(crate) fn view(g: &GrantRecord, now: i64) -> Grant {
    let status = if g.revoked_at.is_some() {
        GrantStatus::Revoked
    } else if now >= g.until {
        GrantStatus::Expired
    } else {
        GrantStatus::Active
    };
    Grant {
        id: to_hex(&g.id),
        grantor: g.grantor.clone(),
        grantee: g.grantee.clone(),
        message: g.message.map(|m| to_hex(&m)),
        items: g.items.iter().map(|i| to_hex(i)).collect(),
        matter: g.matter.map(|m| to_hex(&m)),
        created_at: g.created_at,
        until: g.until,
        revoked_at: g.revoked_at,
        status,
        statement: STANDARD.encode(&g.statement),
    }
}
