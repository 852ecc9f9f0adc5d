//! Handlers for signature requests: ask a recipient to sign a document by a deadline, list,
//! read, answer (sign or decline, once, before the deadline), and the evidence material an
//! offline-verifiable bundle needs.
//!
//! The statement itself is signed by the signer's client and sealed to both parties; the
//! server stores the sealed bytes and cannot read or forge it. What the server adds is the
//! audit trail and its attestation, signed with its audit key, of the entries together with
//! the request's fields and the public keys it holds for both parties.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, Json, parse_id};
use super::messages::{matter_deleted, open_for_additions};
use super::{AppState, account_view, new_listed_id, valid_email};
use crate::storage::{AccountRecord, AddOutcome, SignatureRecord};
use crate::wire::api::{
    AnswerSignature, AuditRecord, ErrorBody, EvidenceMaterial, MAX_HORIZON_SECS,
    MAX_SEALED_STATEMENT_LEN, NewSignatureRequest, SignatureIntent, SignatureList,
    SignatureRequest, SignatureStatus,
};
use crate::wire::audit::{Attestation, AttestedParty, MAX_ATTESTED_ENTRIES, attestation_message};
use crate::wire::{format_utc, to_hex};

/// Asks a recipient of the caller's message to sign one of its documents by a deadline.
#[utoipa::path(post, path = "/v1/signatures", request_body = NewSignatureRequest,
    responses((status = 201, body = SignatureRequest), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Json(req): Json<NewSignatureRequest>,
) -> Result<(StatusCode, axum::Json<SignatureRequest>), ApiError> {
    let message = s
        .store
        .message(&parse_id(&req.message)?)?
        .ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::RequestSignature(&message)).await?;
    let document = parse_id(&req.document)?;
    if !message.documents.iter().any(|(d, _)| *d == document) {
        return Err(ApiError::Rejected(
            "bad_document",
            "the document is not one of the message's documents".into(),
        ));
    }
    let signer = valid_email(&req.signer)?;
    if !message.to.contains(&signer) {
        return Err(ApiError::Rejected(
            "bad_signer",
            "the signer must be a recipient of the message".into(),
        ));
    }
    let now = s.now();
    if req.deadline <= now || req.deadline > now.saturating_add(MAX_HORIZON_SECS) {
        return Err(ApiError::Rejected(
            "bad_deadline",
            format!(
                "the deadline must be in the future and at most {} days ahead",
                MAX_HORIZON_SECS / 86_400
            ),
        ));
    }
    let id: [u8; 16] = new_listed_id()?;
    let record = SignatureRecord {
        id,
        requester: caller.account.email.clone(),
        signer: signer.clone(),
        message: message.id,
        document,
        matter: message.matter,
        created_at: now,
        deadline: req.deadline,
        answered_at: None,
        intent: None,
        sealed_statement: None,
    };
    let mut notices = Vec::new();
    let mut hours = s.settings.signature_reminder_hours.clone();
    hours.sort_unstable();
    hours.dedup();
    for h in hours {
        let at = req.deadline.saturating_sub(i64::from(h) * 3600);
        if at > now {
            notices.push(s.outbox.signature_reminder(&id, &signer, at)?);
        }
    }
    {
        let _matters = record.matter.map(|_| s.lock_matters());
        if let Some(m) = &record.matter {
            open_for_additions(&s.store.matter(m)?.ok_or(ApiError::NotFound)?)?;
        }
        s.store.put_signature(&record, &notices)?;
        s.audit(
            &caller,
            "signature.request",
            &to_hex(&id),
            record.matter.as_ref(),
        )?;
    }
    s.store.commit().await?;
    s.outbox.wake();
    Ok((StatusCode::CREATED, axum::Json(view(&record, now))))
}

/// Signature requests by and to the caller, newest first.
#[utoipa::path(get, path = "/v1/signatures", responses((status = 200, body = SignatureList)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<SignatureList>, ApiError> {
    let now = s.now();
    let requests = s
        .store
        .signatures_of(&caller.account.email)?
        .iter()
        .map(|r| view(r, now))
        .collect();
    Ok(axum::Json(SignatureList { requests }))
}

/// One signature request, for its requester and signer.
#[utoipa::path(get, path = "/v1/signatures/{id}", params(("id" = String, Path, description = "request id")),
    responses((status = 200, body = SignatureRequest), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn read(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SignatureRequest>, ApiError> {
    let r = readable(&s, &caller, &id).await?;
    Ok(axum::Json(view(&r, s.now())))
}

/// Signs or declines: the signer only, once, before the deadline. The requester is notified.
#[utoipa::path(post, path = "/v1/signatures/{id}/answer", params(("id" = String, Path, description = "request id")),
    request_body = AnswerSignature,
    responses((status = 200, body = SignatureRequest), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn answer(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<AnswerSignature>,
) -> Result<axum::Json<SignatureRequest>, ApiError> {
    let old = s
        .store
        .signature(&parse_id(&id)?)?
        .ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::AnswerSignature(&old)).await?;
    if old.answered_at.is_some() {
        return Err(already_answered());
    }
    let now = s.now();
    if now >= old.deadline {
        return Err(ApiError::Gone(
            "request_expired",
            format!(
                "the deadline passed on {}; the request can no longer be answered",
                format_utc(old.deadline)
            ),
        ));
    }
    let statement = STANDARD
        .decode(req.sealed_statement.trim())
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= MAX_SEALED_STATEMENT_LEN)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "sealed_statement must be 1 to {MAX_SEALED_STATEMENT_LEN} bytes of base64"
            ))
        })?;
    let mut new = old.clone();
    new.answered_at = Some(now);
    new.intent = Some(req.intent);
    new.sealed_statement = Some(statement);
    let notice = s.outbox.signature_answered(&old.id, &old.requester)?;
    let action = match req.intent {
        SignatureIntent::Sign => "signature.sign",
        SignatureIntent::Decline => "signature.decline",
    };
    {
        let _matters = old.matter.map(|_| s.lock_matters());
        if let Some(m) = &old.matter {
            let matter = s.store.matter(m)?.ok_or(ApiError::NotFound)?;
            if matter.deleted_at.is_some() {
                return Err(matter_deleted());
            }
        }
        if s.store.answer_signature(&old, &new, &[notice])? == AddOutcome::Conflict {
            return Err(already_answered());
        }
        s.audit(&caller, action, &to_hex(&old.id), old.matter.as_ref())?;
    }
    s.store.commit().await?;
    s.outbox.wake();
    Ok(axum::Json(view(&new, now)))
}

/// What an evidence bundle needs from the server: the answered request, both accounts, the
/// audit entries about the request, its message and its document, and the server's signed
/// attestation of those entries, the request's fields and both parties' emails and keys.
#[utoipa::path(get, path = "/v1/signatures/{id}/evidence", params(("id" = String, Path, description = "request id")),
    responses((status = 200, body = EvidenceMaterial), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn evidence(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<EvidenceMaterial>, ApiError> {
    let r = readable(&s, &caller, &id).await?;
    if r.answered_at.is_none() {
        return Err(ApiError::Conflict(
            "not_answered",
            "the request has not been answered yet".into(),
        ));
    }
    let requester = s
        .store
        .account(&r.requester)?
        .ok_or_else(|| ApiError::Internal("request without requester account".into()))?;
    let signer = s
        .store
        .account(&r.signer)?
        .ok_or_else(|| ApiError::Internal("request without signer account".into()))?;
    s.checkpoint()?;
    s.store.commit().await?;
    let (count, _) = s.store.audit_head();
    let (request_hex, message_hex, document_hex) =
        (to_hex(&r.id), to_hex(&r.message), to_hex(&r.document));
    let objects = [
        request_hex.as_str(),
        message_hex.as_str(),
        document_hex.as_str(),
    ];
    let mut entries = s.store.audit_entries_about(&objects, count)?;
    if entries.len() > MAX_ATTESTED_ENTRIES {
        // Keep every entry about the request itself, then the earliest of the others.
        let own: std::collections::BTreeSet<u64> = s
            .store
            .audit_entries_about(&[request_hex.as_str()], count)?
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        let mut room = MAX_ATTESTED_ENTRIES.saturating_sub(own.len());
        entries.retain(|(seq, _)| {
            if own.contains(seq) {
                true
            } else if room > 0 {
                room -= 1;
                true
            } else {
                false
            }
        });
    }
    let hashes: Vec<[u8; 32]> = entries.iter().map(|(_, e)| super::sha256(e)).collect();
    let attested_at = s.now();
    let request = view(&r, attested_at);
    let keys = |a: &AccountRecord| -> Result<[u8; 64], ApiError> {
        a.public_keys
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::Internal("stored public keys invalid".into()))
    };
    let (requester_keys, signer_keys) = (keys(&requester)?, keys(&signer)?);
    // The attestation binds the request exactly as the bundle will carry it (the view just
    // built) and the keys this server holds for both parties, not only the audit entries.
    let attestation = s.audit_key.sign(&attestation_message(&Attestation {
        request_id: &r.id,
        requester: AttestedParty {
            email: &request.requester,
            public_keys: &requester_keys,
        },
        signer: AttestedParty {
            email: &request.signer,
            public_keys: &signer_keys,
        },
        message: &r.message,
        document: &r.document,
        matter: r.matter.as_ref(),
        created_at: request.created_at,
        deadline: request.deadline,
        status: request.status,
        answered_at: request.answered_at,
        attested_at,
        entry_hashes: &hashes,
    }));
    Ok(axum::Json(EvidenceMaterial {
        request,
        requester: account_view(&requester)?,
        signer: account_view(&signer)?,
        audit: entries
            .iter()
            .map(|(_, e)| AuditRecord {
                raw: STANDARD.encode(e),
            })
            .collect(),
        attested_at,
        attestation: STANDARD.encode(attestation),
        server_key: s.audit_key.public_base64(),
    }))
}

async fn readable(s: &AppState, caller: &Caller, id: &str) -> Result<SignatureRecord, ApiError> {
    let r = s
        .store
        .signature(&parse_id(id)?)?
        .ok_or(ApiError::NotFound)?;
    decide(s, caller, Action::ReadSignature(&r)).await?;
    Ok(r)
}

fn already_answered() -> ApiError {
    ApiError::Conflict(
        "already_answered",
        "the request was already answered".into(),
    )
}

/// The API view of a request at `now` (a pending request past its deadline is `expired`).
pub(crate) fn view(r: &SignatureRecord, now: i64) -> SignatureRequest {
    let status = match r.intent {
        Some(SignatureIntent::Sign) => SignatureStatus::Signed,
        Some(SignatureIntent::Decline) => SignatureStatus::Declined,
        None if now >= r.deadline => SignatureStatus::Expired,
        None => SignatureStatus::Pending,
    };
    SignatureRequest {
        id: to_hex(&r.id),
        requester: r.requester.clone(),
        signer: r.signer.clone(),
        message: to_hex(&r.message),
        document: to_hex(&r.document),
        matter: r.matter.map(|m| to_hex(&m)),
        created_at: r.created_at,
        deadline: r.deadline,
        status,
        answered_at: r.answered_at,
        sealed_statement: r.sealed_statement.as_ref().map(|b| STANDARD.encode(b)),
    }
}
