//! `GET /v1/audit`: the audit log as stored, whole (administrators), one matter's chain (its
//! owner or an administrator) or the entries about one item (a holder of a key package for
//! it), with the signed checkpoints that anchor them. A fresh checkpoint is signed first, so
//! that every entry returned is covered by one.

use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::AppState;
use super::authz::{Action, AuditScope, decide};
use super::error::ApiError;
use super::extract::{Caller, parse_id};
use crate::storage::StoredCheckpoint;
use crate::wire::api::{AuditLog, AuditRecord, ErrorBody, SignedCheckpoint};
use crate::wire::to_hex;

/// Query of the audit log: at most one filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// A matter id: the matter's own chain.
    matter: Option<String>,
    /// An item id: the entries about the item.
    item: Option<String>,
}

/// Audit entries as stored, with the signed checkpoints covering them.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditLog), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn log(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditLog>, ApiError> {
    enum Filter {
        All,
        Matter([u8; 16]),
        Item([u8; 16]),
    }
    let filter = match (&q.matter, &q.item) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "filter by matter or by item, not both".into(),
            ));
        }
        (Some(m), None) => {
            let m = s.store.matter(&parse_id(m)?)?.ok_or(ApiError::NotFound)?;
            decide(&s, &caller, Action::ReadAudit(AuditScope::Matter(&m))).await?;
            Filter::Matter(m.id)
        }
        (None, Some(i)) => {
            let item = s.store.item(&parse_id(i)?)?;
            decide(
                &s,
                &caller,
                Action::ReadAudit(AuditScope::Item(item.as_ref())),
            )
            .await?;
            Filter::Item(item.ok_or(ApiError::NotFound)?.id)
        }
        (None, None) => {
            decide(&s, &caller, Action::ReadAudit(AuditScope::All)).await?;
            Filter::All
        }
    };
    s.checkpoint()?;
    s.store.commit().await?;
    // Only entries a checkpoint covers: the newest checkpoint's count is the cut.
    let latest = s.store.latest_checkpoint()?;
    let covered = match &latest {
        Some(c) => c.decoded()?.count,
        None => 0,
    };
    let (entries, checkpoints) = match filter {
        Filter::All => (s.store.audit_entries(covered)?, s.store.checkpoints()?),
        Filter::Matter(m) => (
            s.store.audit_entries_of_matter(&m, covered)?,
            s.store.checkpoints_of_matter(&m)?,
        ),
        Filter::Item(i) => (
            s.store
                .audit_entries_about(&[to_hex(&i).as_str()], covered)?
                .into_iter()
                .map(|(_, e)| e)
                .collect(),
            latest.into_iter().collect(),
        ),
    };
    Ok(axum::Json(AuditLog {
        entries: entries
            .iter()
            .map(|e| AuditRecord {
                raw: STANDARD.encode(e),
            })
            .collect(),
        checkpoints: checkpoints.iter().map(signed).collect(),
        server_key: s.audit_key.public_base64(),
    }))
}

fn signed(c: &StoredCheckpoint) -> SignedCheckpoint {
    SignedCheckpoint {
        checkpoint: STANDARD.encode(&c.checkpoint),
        signature: STANDARD.encode(c.signature),
    }
}
