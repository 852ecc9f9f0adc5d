//! Handlers for messages: send (optionally in a matter), list (inbox and sent, newest first),
//! read.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, Json, parse_id};
use super::{AppState, items, new_listed_id, valid_email};
use crate::storage::{AuditEvent, MatterRecord, MessageRecord, SealedItem};
use crate::wire::api::{
    DocumentRef, ErrorBody, ItemHeader, MAX_DOCUMENTS, MAX_PAGE, MAX_RECIPIENTS, Message,
    MessageList, Role, SendMessage,
};
use crate::wire::{from_hex, to_hex};

/// Default page size of a listing.
const DEFAULT_PAGE: u32 = 50;
/// Most item headers a listing carries (`headers=true`).
const MAX_LISTED_HEADERS: usize = 256;
/// Once the manifests of the headers listed pass this many bytes, no more are added.
const MAX_LISTED_MANIFEST_BYTES: usize = 4 << 20;

/// Sends a message: its item (committed before, or sent whole in `sealed` when it is one
/// short chunk, which saves three requests and their flushes) with its committed documents.
#[utoipa::path(post, path = "/v1/messages", request_body = SendMessage,
    responses((status = 201, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)),
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
    // A client or co-counsel may not file anything in a matter (they may reply in a thread
    // that has one: the reply joins it).
    let named = match &req.matter {
        Some(m) => {
            if !caller.account.role.is_firm() {
                return Err(ApiError::Forbidden(
                    "only firm users may file messages in a matter",
                ));
            }
            Some(parse_id(m)?)
        }
        None => None,
    };
    // The message item: uploaded before, or here whole (stored once everything is checked).
    let (item, sealed) = match (&req.item, &req.sealed) {
        (Some(id), None) => {
            let item = s.store.item(&parse_id(id)?)?.ok_or(ApiError::NotFound)?;
            decide(&s, &caller, Action::SendItem(&item)).await?;
            (item, None)
        }
        (None, Some(sealed)) => {
            let sealed = items::check_sealed(&s, &caller, sealed)?;
            (sealed.record.clone(), Some(sealed))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "name the message item either by id (`item`) or whole (`sealed`)".into(),
            ));
        }
    };
    let item_id = item.id;
    let mut items = vec![item];
    let mut documents = Vec::with_capacity(req.documents.len());
    for d in &req.documents {
        let id = parse_id(d)?;
        let doc = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
        decide(&s, &caller, Action::SendItem(&doc)).await?;
        if !items.iter().any(|i| i.id == id) {
            documents.push((id, doc.received_bytes));
            items.push(doc);
        }
    }
    for t in &to {
        for i in &items {
            let held = match &sealed {
                Some(sealed) if sealed.record.id == i.id => {
                    sealed.packages.iter().any(|(email, _)| email == t)
                }
                _ => s.store.has_key_package(&i.id, t)?,
            };
            if !held {
                return Err(ApiError::Rejected(
                    "missing_key_package",
                    format!("{t} holds no key package for item {}", to_hex(&i.id)),
                ));
            }
        }
    }
    let id: [u8; 16] = new_listed_id()?;
    let (thread, inherited) = match &req.in_reply_to {
        Some(r) => {
            let parent = s.store.message(&parse_id(r)?)?.ok_or(ApiError::NotFound)?;
            decide(&s, &caller, Action::ReplyTo(&parent)).await?;
            (parent.thread, parent.matter)
        }
        None => (id, None),
    };
    let matter = match (named, inherited) {
        (Some(n), Some(i)) if n != i => {
            return Err(ApiError::Conflict(
                "matter_mismatch",
                "a reply stays in its thread's matter".into(),
            ));
        }
        (Some(n), _) => {
            let m = s.store.matter(&n)?.ok_or(ApiError::NotFound)?;
            decide(&s, &caller, Action::UseMatter(&m)).await?;
            Some(n)
        }
        (None, inherited) => inherited,
    };
    for i in &items {
        if i.matter.is_some() && i.matter != matter {
            return Err(ApiError::Conflict(
                "matter_mismatch",
                format!("item {} belongs to another matter", to_hex(&i.id)),
            ));
        }
    }
    let record = MessageRecord {
        id,
        thread,
        from: me.clone(),
        to,
        sent_at: s.now(),
        item: item_id,
        documents,
        matter,
    };
    let mut notices = s.outbox.message_notices(&record.id, &record.to)?;
    if caller.account.role == Role::Client {
        for t in &record.to {
            if s.store.account(t)?.is_some_and(|a| a.role != Role::Client) {
                notices.push(s.outbox.reply_reminder(&record.id, t)?);
            }
        }
    }
    if let Some(sealed) = &sealed {
        // Its one short chunk is stored with the message below, so nothing of it before.
        if let Some(refusal) = items::reserve_refusal(&s, sealed.record.received_bytes)? {
            return Err(refusal);
        }
    }
    // The message, its notices, its audit entries and its item when sent whole, in one
    // transaction.
    let item_hex = sealed.as_ref().map(|x| to_hex(&x.record.id));
    let message_hex = to_hex(&record.id);
    let mut events = Vec::with_capacity(2);
    if let Some(item) = &item_hex {
        events.push(AuditEvent {
            action: "item.commit",
            object: item,
            matter: None,
        });
    }
    events.push(AuditEvent {
        action: "message.send",
        object: &message_hex,
        matter: matter.as_ref(),
    });
    let by = (s.now(), me.as_str(), caller.addr.as_str());
    let item = sealed.as_ref().map(|x| SealedItem {
        record: &x.record,
        packages: &x.packages,
        limit: s.settings.storage.quota_for(caller.account.role),
        chunk: &x.chunk,
    });
    let stored = match &matter {
        // Applied with the other sends of the next flush, durable when it returns.
        None => {
            s.store
                .send_message(&record, &notices, by, &events, item.as_ref())
                .await?
        }
        Some(m) => {
            // The matter's state is checked and the message filed under one lock, so that
            // nothing joins a matter while it is being closed or deleted.
            let stored = {
                let _matters = s.lock_matters();
                let current = s.store.matter(m)?.ok_or(ApiError::NotFound)?;
                open_for_additions(&current)?;
                s.store
                    .put_message_audited(&record, &notices, by, &events, item.as_ref())?
            };
            // A refusal stored nothing, so it needs no flush.
            if stored.is_ok() {
                s.store.commit().await?;
            }
            stored
        }
    };
    if let Err(over) = stored {
        let asked = item.map_or(0, |i| i.record.received_bytes);
        return Err(items::over_quota(over.used, over.limit, asked));
    }
    if let Some(sealed) = &sealed {
        s.metrics.chunks_received(1, sealed.record.received_bytes);
    }
    s.outbox.queued(&notices);
    s.metrics.message_sent();
    Ok((StatusCode::CREATED, axum::Json(view(&record))))
}

/// Refuses additions to a closed (`409 matter_closed`) or deleted (`410 matter_deleted`)
/// matter.
pub(crate) fn open_for_additions(m: &MatterRecord) -> Result<(), ApiError> {
    if m.deleted_at.is_some() {
        return Err(matter_deleted());
    }
    if m.closed_at.is_some() {
        return Err(ApiError::Conflict(
            "matter_closed",
            "the matter is closed: nothing may be added to it".into(),
        ));
    }
    Ok(())
}

/// `410 matter_deleted`.
pub(crate) fn matter_deleted() -> ApiError {
    ApiError::Gone(
        "matter_deleted",
        "the matter's content was deleted at the end of its retention".into(),
    )
}

/// Parses a page size and cursor (shared with the matter's message listing).
pub(crate) fn page_params(
    before: Option<&str>,
    limit: Option<u32>,
) -> Result<(Option<Vec<u8>>, usize), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    let cursor = match before {
        Some(c) => Some(
            from_hex(c)
                .filter(|b| b.len() == 24)
                .ok_or_else(|| ApiError::BadRequest("before is a cursor from `next`".into()))?,
        ),
        None => None,
    };
    Ok((cursor, limit))
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
    /// `true`: the answer also carries the headers of the page's items the caller may read,
    /// each key package release audited as `GET /v1/items/{item}` audits it, with one flush
    /// for the page instead of one request and one flush per item.
    headers: Option<bool>,
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
    let (cursor, limit) = page_params(q.before.as_deref(), q.limit)?;
    let (page, next) =
        s.store
            .message_page(&caller.account.email, sent, cursor.as_deref(), limit)?;
    let headers = if q.headers == Some(true) {
        page_headers(&s, &caller, &page).await?
    } else {
        Vec::new()
    };
    Ok(axum::Json(MessageList {
        messages: page.iter().map(view).collect(),
        next: next.map(|n| to_hex(&n)),
        headers,
    }))
}

/// The headers of the items of `page` that `caller` may read (an item it may not, such as
/// one of an expired grant, is left out: its own `GET` gives the reason), each release
/// audited, all made durable by one flush.
async fn page_headers(
    s: &AppState,
    caller: &Caller,
    page: &[MessageRecord],
) -> Result<Vec<ItemHeader>, ApiError> {
    let mut out: Vec<ItemHeader> = Vec::new();
    let mut manifest_bytes = 0usize;
    let mut items: Vec<[u8; 16]> = Vec::new();
    for m in page {
        items.push(m.item);
        items.extend(m.documents.iter().map(|(d, _)| *d));
    }
    for id in &items {
        // Each item once, and no more than a bounded answer holds: the client asks for the
        // rest one by one.
        if out.len() == MAX_LISTED_HEADERS || manifest_bytes > MAX_LISTED_MANIFEST_BYTES {
            break;
        }
        let hex = to_hex(id);
        if out.iter().any(|h| h.item == hex) {
            continue;
        }
        let Some(rec) = s.store.item(id)? else {
            continue;
        };
        match decide(s, caller, Action::ReadListedItem(&rec)).await {
            Ok(()) => {
                manifest_bytes += rec.manifest.as_ref().map_or(0, Vec::len);
                out.push(items::header_of(s, caller, &rec)?);
            }
            Err(ApiError::NotFound | ApiError::AccessExpired(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if !out.is_empty() {
        s.store.commit().await?;
    }
    Ok(out)
}

/// One message, for its sender and recipients, and for a grantee of its item while the grant
/// lasts (after it: `410 access_expired`).
#[utoipa::path(get, path = "/v1/messages/{id}", params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = Message), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn read(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    let id = parse_id(&id)?;
    let m = s.store.message(&id)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::ReadMessage(&m)).await?;
    Ok(axum::Json(view(&m)))
}

/// The API view of a message.
pub(crate) fn view(m: &MessageRecord) -> Message {
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
        matter: m.matter.map(|id| to_hex(&id)),
    }
}
