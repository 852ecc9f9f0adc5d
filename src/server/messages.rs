//! Handlers for messages: send, list (inbox and sent, newest first), read.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, Json, parse_id};
use super::{AppState, now, random, valid_email};
use crate::storage::MessageRecord;
use crate::wire::api::{
    DocumentRef, ErrorBody, MAX_DOCUMENTS, MAX_PAGE, MAX_RECIPIENTS, Message, MessageList, Role,
    SendMessage,
};
use crate::wire::{from_hex, to_hex};

/// Default page size of a listing.
const DEFAULT_PAGE: u32 = 50;

/// Sends a committed message item with its committed documents.
#[utoipa::path(post, path = "/v1/messages", request_body = SendMessage,
    responses((status = 201, body = Message), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn send(
    State(s): State<AppState>,
    caller: Caller,
    Json(req): Json<SendMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let me = &caller.account.email;
    if req.to.is_empty() || req.to.len() > MAX_RECIPIENTS {
        return Err(ApiError::BadRequest(format!(
            "a message has 1 to {MAX_RECIPIENTS} recipients"
        )));
    }
    if req.documents.len() > MAX_DOCUMENTS {
        return Err(ApiError::BadRequest(format!(
            "a message carries at most {MAX_DOCUMENTS} documents"
        )));
    }
    let mut to: Vec<String> = Vec::with_capacity(req.to.len());
    for t in &req.to {
        let t = valid_email(t)?;
        if &t != me && !to.contains(&t) {
            to.push(t);
        }
    }
    if to.is_empty() {
        return Err(ApiError::BadRequest(
            "a message needs a recipient other than you".into(),
        ));
    }
    let item_id = parse_id(&req.item)?;
    let item = s.store.item(&item_id)?.ok_or(ApiError::NotFound)?;
    decide(&s.store, &caller, Action::SendItem(&item)).await?;
    let mut items = vec![item_id];
    let mut documents = Vec::with_capacity(req.documents.len());
    for d in &req.documents {
        let id = parse_id(d)?;
        let doc = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
        decide(&s.store, &caller, Action::SendItem(&doc)).await?;
        if !items.contains(&id) {
            items.push(id);
            documents.push((id, doc.received_bytes));
        }
    }
    for t in &to {
        for i in &items {
            if !s.store.has_key_package(i, t)? {
                return Err(ApiError::Rejected(
                    "missing_key_package",
                    format!("{t} holds no key package for item {}", to_hex(i)),
                ));
            }
        }
    }
    let id: [u8; 16] = random()?;
    let thread = match &req.in_reply_to {
        Some(r) => {
            let parent = s.store.message(&parse_id(r)?)?.ok_or(ApiError::NotFound)?;
            decide(&s.store, &caller, Action::ReadMessage(&parent)).await?;
            parent.thread
        }
        None => id,
    };
    let record = MessageRecord {
        id,
        thread,
        from: me.clone(),
        to,
        sent_at: now(),
        item: item_id,
        documents,
    };
    let mut notices = s.outbox.message_notices(&record.id, &record.to)?;
    if caller.account.role == Role::Client {
        for t in &record.to {
            if s.store.account(t)?.is_some_and(|a| a.role != Role::Client) {
                notices.push(s.outbox.reply_reminder(&record.id, t)?);
            }
        }
    }
    s.store.put_message_with_notices(&record, &notices)?;
    s.store.commit().await?;
    s.outbox.wake();
    s.metrics.message_sent();
    Ok((StatusCode::CREATED, axum::Json(view(&record))))
}

/// Query of a listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `inbox` (default) or `sent`.
    #[serde(rename = "box")]
    mailbox: Option<String>,
    /// The `next` of the previous page.
    before: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// The caller's inbox or sent messages, newest first.
#[utoipa::path(get, path = "/v1/messages", params(ListQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<MessageList>, ApiError> {
    let sent = match q.mailbox.as_deref() {
        None | Some("inbox") => false,
        Some("sent") => true,
        Some(_) => return Err(ApiError::BadRequest("box is inbox or sent".into())),
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    let cursor = match q.before.as_deref() {
        Some(c) => Some(
            from_hex(c)
                .filter(|b| b.len() == 24)
                .ok_or_else(|| ApiError::BadRequest("before is a cursor from `next`".into()))?,
        ),
        None => None,
    };
    let (page, next) =
        s.store
            .message_page(&caller.account.email, sent, cursor.as_deref(), limit)?;
    Ok(axum::Json(MessageList {
        messages: page.iter().map(view).collect(),
        next: next.map(|n| to_hex(&n)),
    }))
}

/// One message, for its sender and recipients.
#[utoipa::path(get, path = "/v1/messages/{id}", params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = Message), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn read(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    let id = parse_id(&id)?;
    let m = s.store.message(&id)?.ok_or(ApiError::NotFound)?;
    decide(&s.store, &caller, Action::ReadMessage(&m)).await?;
    Ok(axum::Json(view(&m)))
}

fn view(m: &MessageRecord) -> Message {
    Message {
        id: to_hex(&m.id),
        thread: to_hex(&m.thread),
        from: m.from.clone(),
        to: m.to.clone(),
        sent_at: m.sent_at,
        item: to_hex(&m.item),
        documents: m
            .documents
            .iter()
            .map(|(id, len)| DocumentRef {
                item: to_hex(id),
                ciphertext_len: *len,
            })
            .collect(),
        matter: None,
    }
}
