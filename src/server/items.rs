//! Handlers for sealed items: resumable chunk upload, the manifest check at commit, and
//! streaming download. Only ciphertext and public data pass through here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, Json, OctetStream, parse_id};
use super::inflight::{AHEAD, Claim, uncommitted, wrong_offset};
use super::routes::CHUNKS_LIMIT;
use super::{AppState, account_view, random};
use crate::crypto::{
    MAX_CHUNKS, MAX_KEY_PACKAGE_LEN, Manifest, PREAMBLE_LEN, Preamble, PublicKeys,
};
use crate::storage::{ItemRecord, Store};
use crate::wire::api::{
    CommitItem, ErrorBody, ItemHeader, KeyPackageFor, MAX_CHUNKS_PER_REQUEST, MAX_RECIPIENTS,
    NewItem, SealedItem, UploadState,
};
use crate::wire::to_hex;

pub(crate) use crate::storage::SEALED_CHUNK;

/// Chunks read from the store at once when streaming a download (1 MiB).
const READ_CHUNKS: u32 = 16;

/// Starts an upload: the server assigns the item id.
#[utoipa::path(post, path = "/v1/items", request_body = NewItem,
    responses((status = 201, body = UploadState), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Json(req): Json<NewItem>,
) -> Result<(StatusCode, axum::Json<UploadState>), ApiError> {
    let preamble = parse_preamble(&req.preamble)?;
    let id: [u8; 16] = random()?;
    let now = s.now();
    s.store.put_item(&ItemRecord {
        id,
        uploader: caller.account.email.clone(),
        preamble: preamble.as_bytes().to_vec(),
        received: 0,
        received_bytes: 0,
        committed: false,
        manifest: None,
        created_at: now,
        updated_at: now,
        matter: None,
    })?;
    s.store.commit().await?;
    s.metrics.uploads_started();
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadState {
            item: to_hex(&id),
            received: 0,
        }),
    ))
}

/// A preamble sent in base64.
fn parse_preamble(base64: &str) -> Result<Preamble, ApiError> {
    STANDARD
        .decode(base64.trim())
        .ok()
        .filter(|b| b.len() == PREAMBLE_LEN)
        .and_then(|b| Preamble::parse(&b).ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "preamble must be {PREAMBLE_LEN} bytes of base64 in the current format"
            ))
        })
}

/// A manifest sent in base64 for the item of `preamble`: it must parse, be signed by the
/// caller's key and name the preamble's item. Returns it with its bytes.
fn parse_manifest(
    caller: &Caller,
    base64: &str,
    preamble: &Preamble,
) -> Result<(Manifest, Vec<u8>), ApiError> {
    let bytes = STANDARD
        .decode(base64.trim())
        .map_err(|_| ApiError::BadRequest("manifest must be base64".into()))?;
    let manifest = Manifest::parse(&bytes).map_err(|e| {
        ApiError::Rejected("manifest_invalid", format!("the manifest was refused: {e}"))
    })?;
    let uploader = PublicKeys::from_bytes(&caller.account.public_keys)
        .map_err(|_| ApiError::Internal("stored public keys invalid".into()))?;
    if manifest.signer() != uploader.ed25519 {
        return Err(ApiError::Rejected(
            "signer_mismatch",
            "the manifest is not signed by your key".into(),
        ));
    }
    if manifest.item_id() != preamble.item_id() {
        return Err(ApiError::Rejected(
            "manifest_mismatch",
            "the manifest belongs to another item than the preamble".into(),
        ));
    }
    Ok((manifest, bytes))
}

/// A message item sent whole with its message, checked as the upload and the commit would
/// check it, and not yet stored (see [`crate::storage::Store::put_message_audited`]).
pub(crate) struct SealedUpload {
    pub(crate) record: ItemRecord,
    pub(crate) chunk: Vec<u8>,
    pub(crate) packages: Vec<(String, Vec<u8>)>,
}

/// Checks a small item sent whole: its preamble, its one short chunk against the signed
/// manifest, and its key packages. Stores nothing.
pub(crate) fn check_sealed(
    s: &AppState,
    caller: &Caller,
    sealed: &SealedItem,
) -> Result<SealedUpload, ApiError> {
    let preamble = parse_preamble(&sealed.preamble)?;
    let chunk = STANDARD
        .decode(sealed.chunk.trim())
        .ok()
        .filter(|c| !c.is_empty() && c.len() < SEALED_CHUNK)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "chunk must be 1 to {} bytes of base64 (a larger item is uploaded first)",
                SEALED_CHUNK - 1
            ))
        })?;
    let (manifest, manifest_bytes) = parse_manifest(caller, &sealed.manifest, &preamble)?;
    if manifest.chunk_count() != 1 {
        return Err(ApiError::Rejected(
            "chunk_count_mismatch",
            format!(
                "the manifest lists {} chunks but 1 was sent",
                manifest.chunk_count()
            ),
        ));
    }
    manifest
        .check_chunk(0, &chunk)
        .map_err(|e| ApiError::Rejected("chunk_mismatch", e.to_string()))?;
    let packages = key_packages(&s.store, &caller.account.email, &sealed.key_packages)?;
    let now = s.now();
    let record = ItemRecord {
        id: random()?,
        uploader: caller.account.email.clone(),
        preamble: preamble.as_bytes().to_vec(),
        received: 1,
        received_bytes: chunk.len() as u64,
        committed: true,
        manifest: Some(manifest_bytes),
        created_at: now,
        updated_at: now,
        matter: None,
    };
    Ok(SealedUpload {
        record,
        chunk,
        packages,
    })
}

/// Appends 1 to 128 chunks, which start at the number already received, or up to 256 chunks
/// ahead of it while the requests carrying the chunks between are in flight (a request ahead
/// must declare its length; it waits up to a second for the requests before it to arrive, is
/// written and synced at once and recorded in its turn, see `inflight`).
///
/// The body is streamed: each piece of [`PIECE`] bytes is written as it arrives (on a
/// blocking thread, while the next piece is read), and each chunk's BLAKE3 digest is taken
/// then and kept until the commit, which checks the signed manifest without reading the
/// ciphertext back. The chunks are durable (one `fdatasync` per request) before the item
/// record counts them, and the answer waits for the record's flush. A request that fails
/// part way leaves the record as it was; the next request overwrites what it wrote, and the
/// commit cuts anything written past the last chunk.
#[utoipa::path(put, path = "/v1/items/{item}/chunks/{first}",
    params(("item" = String, Path, description = "item id"), ("first" = u32, Path, description = "index of the first chunk in the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "1 to 128 concatenated sealed chunks of 65,552 bytes; only the last chunk of the item may be shorter"),
    responses((status = 200, body = UploadState), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 507, description = "over the account's quota or the server's free-disk reserve; the upload is discarded", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put_chunks(
    State(s): State<AppState>,
    caller: Caller,
    Path((item, first)): Path<(String, u32)>,
    body: OctetStream,
) -> Result<axum::Json<UploadState>, ApiError> {
    let id = parse_id(&item)?;
    let limit = s.settings.storage.quota_for(caller.account.role);
    let claim = match claim_chunks(&s, &caller, id, first, body.declared, limit).await {
        Ok(claim) => Arc::new(claim),
        Err(e) => {
            // Read (and drop) what the client is still sending, so that it sees this answer
            // rather than a reset stream.
            super::routes::drain(&mut body.body.into_data_stream()).await;
            return Err(e);
        }
    };
    let room = MAX_CHUNKS.saturating_sub(first) as usize * SEALED_CHUNK;
    let deadline = body.deadline;
    let stored = tokio::time::timeout_at(
        deadline,
        receive_chunks(&s, &claim, id, first, body.body, CHUNKS_LIMIT.min(room)),
    )
    .await
    .map_err(|_| ApiError::Timeout)??;
    let len = stored.len;
    let count = u32::try_from(stored.digests.len()).map_err(|_| ApiError::TooLarge)?;
    // hyper holds a body to its declared length (a shorter one ends in an error above).
    if body.declared.is_none() {
        check_body(&s, &caller, &id, first, len, limit).await?;
    }
    // The chunks are on disk; they are recorded once every chunk before them is.
    let rec = tokio::time::timeout_at(deadline, claim.turn(&s.store))
        .await
        .map_err(|_| ApiError::Timeout)??;
    upload_open(&rec)?;
    let mut new = rec.clone();
    new.received += count;
    new.received_bytes += len;
    new.updated_at = s.now();
    if let Err(over) = s.store.record_chunks(&rec, &new, &stored.digests, limit)? {
        // Another upload of the same account took the room meanwhile.
        return Err(discard(&s, &id, over_quota(over.used, over.limit, len)).await);
    }
    claim.recorded();
    s.store.commit().await?;
    s.metrics.chunks_received(u64::from(count), len);
    Ok(axum::Json(UploadState {
        item,
        received: new.received,
    }))
}

/// How long a request ahead waits for the requests before it to claim their chunks.
const WAIT_FOR_CLAIMS: Duration = Duration::from_secs(1);

/// Checks a chunk request before its body is read, and claims its chunks (see `inflight`).
async fn claim_chunks(
    s: &AppState,
    caller: &Caller,
    id: [u8; 16],
    first: u32,
    declared: Option<u64>,
    limit: Option<u64>,
) -> Result<Claim, ApiError> {
    let rec = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
    decide(s, caller, Action::Upload(&rec)).await?;
    // A request may come ahead of the one being recorded, if it says how many chunks it
    // carries and requests in flight carry the chunks between.
    let ahead = first > rec.received && first - rec.received <= AHEAD && declared.is_some();
    if first != rec.received && !ahead {
        return Err(wrong_offset(rec.received));
    }
    let claimed = match declared {
        Some(len) => first..first.saturating_add(chunks_in(len)),
        None => first..MAX_CHUNKS,
    };
    // A request ahead may be taken up before the requests sent before it: it waits a little
    // for them to claim the chunks between, looking again whenever any request claims or ends.
    // Each look reads the record after marking the activity seen, so a request recorded (and
    // its claim released) meanwhile is either in that read or wakes the wait.
    let mut activity = s.uploads.activity();
    let deadline = tokio::time::Instant::now() + WAIT_FOR_CLAIMS;
    let claim = loop {
        activity.borrow_and_update();
        let rec = uncommitted(&s.store, &id)?;
        match s.uploads.claim(id, claimed.clone(), rec.received) {
            Err(ApiError::Conflict("wrong_offset", _))
                if tokio::time::timeout_at(deadline, activity.changed())
                    .await
                    .is_ok_and(|r| r.is_ok()) => {}
            other => break other?,
        }
    };
    // Looked at again under the claim, which no other request may record into, nor a commit
    // take: the upload is still open and not yet past `first`.
    let rec = uncommitted(&s.store, &id)?;
    if rec.received > first {
        return Err(wrong_offset(rec.received));
    }
    upload_open(&rec)?;
    // With a declared length, everything is checked before a byte is read; a chunked body
    // is checked as it arrives and once it is in.
    if let Some(len) = declared {
        check_body(s, caller, &id, first, len, limit).await?;
    }
    Ok(claim)
}

/// Refuses more chunks after a short one: it was the item's last.
fn upload_open(rec: &ItemRecord) -> Result<(), ApiError> {
    if rec.received_bytes != u64::from(rec.received) * SEALED_CHUNK as u64 {
        return Err(ApiError::Conflict(
            "upload_complete",
            "the last chunk received was short, so it was the item's last; commit the upload"
                .into(),
        ));
    }
    Ok(())
}

/// Chunks in a body of `len` bytes.
fn chunks_in(len: u64) -> u32 {
    u32::try_from(len.div_ceil(SEALED_CHUNK as u64)).unwrap_or(u32::MAX)
}

/// Bytes written to the blob store at a time: 16 chunks.
const PIECE: usize = 16 * SEALED_CHUNK;

/// What a chunk request stored.
struct Stored {
    len: u64,
    digests: Vec<[u8; 32]>,
}

/// Checks a chunk body of `len` bytes at chunk `first`: not empty, not past the item's
/// largest size, within the account's quota and the server's free-disk reserve (a refusal
/// of the last two discards the upload).
async fn check_body(
    s: &AppState,
    caller: &Caller,
    id: &[u8; 16],
    first: u32,
    len: u64,
    limit: Option<u64>,
) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::BadRequest("the body holds no chunk".into()));
    }
    let count = len.div_ceil(SEALED_CHUNK as u64);
    if count > MAX_CHUNKS_PER_REQUEST as u64 {
        return Err(ApiError::TooLarge);
    }
    if u64::from(first) + count > u64::from(MAX_CHUNKS) {
        return Err(too_many_chunks());
    }
    let used = s.store.usage(&caller.account.email)?;
    if let Some(limit) = limit.filter(|&l| used.saturating_add(len) > l) {
        return Err(discard(s, id, over_quota(used, limit, len)).await);
    }
    if let Some(refusal) = reserve_refusal(s, len)? {
        return Err(discard(s, id, refusal).await);
    }
    Ok(())
}

fn too_many_chunks() -> ApiError {
    ApiError::BadRequest(format!("an item has at most {MAX_CHUNKS} chunks"))
}

/// Streams a chunk body of at most `max` bytes into the blob store from chunk `first`, in
/// pieces of [`PIECE`] bytes written on a blocking thread while the next piece arrives, and
/// makes it durable. Waits for the writer on every path, so the upload's next request never
/// meets a write of this one still running.
async fn receive_chunks(
    s: &AppState,
    claim: &Arc<Claim>,
    id: [u8; 16],
    first: u32,
    body: Body,
    max: usize,
) -> Result<Stored, ApiError> {
    use futures_util::StreamExt;
    let (pieces, mut inbox) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let (spare_tx, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    // Set when the body fails: what was written is not recorded, so it is not synced either.
    let failed = Arc::new(AtomicBool::new(false));
    let store = s.store.clone();
    let abandoned = failed.clone();
    // The writer keeps the chunks claimed until it is done, even if the request is dropped.
    let claim = claim.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let _claim = claim;
        let mut out = store.blobs().writer(&id, first)?;
        let mut digests = Vec::new();
        while let Some(piece) = inbox.blocking_recv() {
            digests.extend(
                piece
                    .chunks(SEALED_CHUNK)
                    .map(|c| *blake3::hash(c).as_bytes()),
            );
            out.write(&piece)?;
            let _ = spare_tx.send(piece);
        }
        if !abandoned.load(Ordering::Acquire) {
            out.finish()?;
        }
        // An upload discarded meanwhile (over a quota, by another of its requests) is gone:
        // what this request wrote after its deletion goes too.
        if store.item(&id)?.is_none() {
            store.blobs().delete_item(&id)?;
        }
        Ok::<_, crate::storage::StorageError>(digests)
    });
    // Owns the spare buffers' receiver (which may not be shared between threads); the sending
    // side of the pieces is dropped below, once the writer knows whether the body failed.
    let sender = &pieces;
    let read = async move {
        let mut stream = body.into_data_stream();
        let mut piece = Vec::with_capacity(PIECE);
        let mut len = 0usize;
        while let Some(frame) = stream.next().await {
            let frame = frame
                .map_err(|_| ApiError::BadRequest("the body ended before its last byte".into()))?;
            len += frame.len();
            if len > max {
                super::routes::drain(&mut stream).await;
                return Err(if max < CHUNKS_LIMIT {
                    too_many_chunks()
                } else {
                    ApiError::TooLarge
                });
            }
            let mut data = &frame[..];
            while !data.is_empty() {
                let take = (PIECE - piece.len()).min(data.len());
                piece.extend_from_slice(&data[..take]);
                data = &data[take..];
                if piece.len() == PIECE {
                    let next = spare
                        .try_recv()
                        .map(|mut v| {
                            v.clear();
                            v
                        })
                        .unwrap_or_else(|_| Vec::with_capacity(PIECE));
                    let full = std::mem::replace(&mut piece, next);
                    if sender.send(full).await.is_err() {
                        // The writer failed; its error is the answer.
                        return Ok(len);
                    }
                }
            }
        }
        if !piece.is_empty() {
            let _ = sender.send(piece).await;
        }
        Ok(len)
    };
    let read = read.await;
    failed.store(read.is_err(), Ordering::Release);
    drop(pieces);
    // The writer finishes (and syncs) what it was given unless the body failed, and is waited
    // for on every path.
    let written = writer
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let len = read?;
    let digests = written?;
    Ok(Stored {
        len: len as u64,
        digests,
    })
}

/// The refusal of an upload over its account's quota.
pub(crate) fn over_quota(used: u64, limit: u64, asked: u64) -> ApiError {
    ApiError::InsufficientStorage(format!(
        "over your storage quota: you store {used} of {limit} bytes and this upload needs \
         {asked} more; the upload was discarded"
    ))
}

/// The refusal of a write of `len` bytes that would leave less free disk than the reserve.
pub(crate) fn reserve_refusal(s: &AppState, len: u64) -> Result<Option<ApiError>, ApiError> {
    let reserve = s.settings.storage.disk_reserve_bytes;
    let free = crate::storage::free_space(&s.settings.data)?;
    Ok((free.saturating_sub(len) < reserve).then(|| {
        ApiError::InsufficientStorage(format!(
            "the server is low on disk space: {free} bytes are free and it keeps {reserve} in \
             reserve, so it cannot take {len} more; the upload was discarded"
        ))
    }))
}

/// Deletes an upload that cannot go on (its bytes count against the quota and the disk until
/// then) and returns `refusal`; a failure to delete is logged, the sweep retries it.
async fn discard(s: &AppState, id: &[u8; 16], refusal: ApiError) -> ApiError {
    let deleted = s.store.discard_upload(id).map_err(ApiError::from);
    let committed = match deleted {
        Ok(_) => s.store.commit().await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = committed {
        tracing::error!(error = ?e, "could not discard a refused upload");
    }
    refusal
}

/// Where an upload stands, to resume it.
#[utoipa::path(get, path = "/v1/items/{item}/upload", params(("item" = String, Path, description = "item id")),
    responses((status = 200, body = UploadState), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn upload_state(
    State(s): State<AppState>,
    caller: Caller,
    Path(item): Path<String>,
) -> Result<axum::Json<UploadState>, ApiError> {
    let id = parse_id(&item)?;
    let rec = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::Upload(&rec)).await?;
    Ok(axum::Json(UploadState {
        item,
        received: rec.received,
    }))
}

/// Finishes an upload: checks the signed manifest against every stored chunk, stores the key
/// packages and makes the item visible to its readers.
#[utoipa::path(post, path = "/v1/items/{item}/commit", params(("item" = String, Path, description = "item id")),
    request_body = CommitItem,
    responses((status = 200, body = UploadState), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn commit(
    State(s): State<AppState>,
    caller: Caller,
    Path(item): Path<String>,
    Json(req): Json<CommitItem>,
) -> Result<axum::Json<UploadState>, ApiError> {
    let id = parse_id(&item)?;
    let hold = Arc::new(s.uploads.commit(id)?);
    let mut rec = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::Upload(&rec)).await?;
    let preamble = Preamble::parse(&rec.preamble)
        .map_err(|_| ApiError::Internal("stored preamble invalid".into()))?;
    let (manifest, manifest_bytes) = parse_manifest(&caller, &req.manifest, &preamble)?;
    if manifest.chunk_count() != rec.received {
        return Err(ApiError::Rejected(
            "chunk_count_mismatch",
            format!(
                "the manifest lists {} chunks but {} were uploaded",
                manifest.chunk_count(),
                rec.received
            ),
        ));
    }
    let packages = key_packages(&s.store, &caller.account.email, &req.key_packages)?;
    if let Some(refusal) = commit_refusal(&s, &caller, manifest_bytes.len() as u64)? {
        return Err(refusal);
    }
    let store = s.store.clone();
    let (count, bytes) = (rec.received, rec.received_bytes);
    let hold_while_blocking = hold.clone();
    let checked = tokio::task::spawn_blocking(move || {
        // Held until the file is cut, even if the request is dropped meanwhile.
        let _hold = hold_while_blocking;
        check_chunks(&store, &id, &manifest, count, bytes)?;
        // Whatever a failed request left past the last chunk goes, durably.
        Ok::<_, ApiError>(store.blobs().trim(&id, count, bytes)?)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    checked?;
    rec.committed = true;
    rec.manifest = Some(manifest_bytes);
    rec.updated_at = s.now();
    s.store.commit_item(&rec, &packages)?;
    s.audit(&caller, "item.commit", &item, None)?;
    s.store.commit().await?;
    Ok(axum::Json(UploadState {
        item,
        received: rec.received,
    }))
}

fn key_packages(
    store: &Store,
    uploader: &str,
    given: &[KeyPackageFor],
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    if given.len() > MAX_RECIPIENTS + 1 {
        return Err(ApiError::BadRequest(format!(
            "at most {} key packages",
            MAX_RECIPIENTS + 1
        )));
    }
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(given.len());
    for kp in given {
        let email = super::valid_email(&kp.email)?;
        let package = STANDARD
            .decode(kp.package.trim())
            .map_err(|_| ApiError::BadRequest("key packages must be base64".into()))?;
        if package.is_empty() || package.len() > MAX_KEY_PACKAGE_LEN {
            return Err(ApiError::BadRequest(format!(
                "a key package is 1 to {MAX_KEY_PACKAGE_LEN} bytes"
            )));
        }
        if out.iter().any(|(e, _)| e == &email) {
            return Err(ApiError::BadRequest(format!(
                "two key packages for {email}"
            )));
        }
        if store.account(&email)?.is_none() {
            return Err(ApiError::Rejected(
                "unknown_recipient",
                format!("{email} has no account"),
            ));
        }
        out.push((email, package));
    }
    if !out.iter().any(|(e, _)| e == uploader) {
        return Err(ApiError::BadRequest(
            "the key packages must include one for the uploader".into(),
        ));
    }
    Ok(out)
}

/// Why a commit cannot be taken now (the upload stays, to be committed later): over the
/// quota (lowered since the chunks came) or into the free-disk reserve.
fn commit_refusal(s: &AppState, caller: &Caller, len: u64) -> Result<Option<ApiError>, ApiError> {
    let used = s.store.usage(&caller.account.email)?;
    if let Some(limit) = s.settings.storage.quota_for(caller.account.role) {
        if used > limit {
            return Ok(Some(ApiError::InsufficientStorage(format!(
                "over your storage quota: you store {used} of {limit} bytes; the upload waits \
                 uncommitted"
            ))));
        }
    }
    let reserve = s.settings.storage.disk_reserve_bytes;
    let free = crate::storage::free_space(&s.settings.data)?;
    Ok((free.saturating_sub(len) < reserve).then(|| {
        ApiError::InsufficientStorage(format!(
            "the server is low on disk space: {free} bytes are free and it keeps {reserve} in \
             reserve; the upload waits uncommitted"
        ))
    }))
}

/// Checks every chunk against the signed manifest: its length, and the digest taken when it
/// arrived (a chunk stored without one, by an older server, is read back and hashed). Every
/// chunk but the last of an upload is full (the upload refuses more after a short one), so
/// the lengths agree when the totals do.
fn check_chunks(
    store: &Store,
    id: &[u8; 16],
    manifest: &Manifest,
    count: u32,
    received_bytes: u64,
) -> Result<(), ApiError> {
    for (i, digest) in (0..count).zip(store.chunk_digests(id, count)?) {
        match digest {
            Some(d) => {
                let expected = manifest.chunk_len(i).unwrap_or(0);
                let stored = if i + 1 < count {
                    SEALED_CHUNK as u64
                } else {
                    received_bytes.saturating_sub(u64::from(i) * SEALED_CHUNK as u64)
                };
                if stored != expected as u64 {
                    return Err(ApiError::Rejected(
                        "chunk_mismatch",
                        format!("chunk {i} is {stored} bytes long; the manifest says {expected}"),
                    ));
                }
                if d[..] != *manifest.chunk_digest(i) {
                    return Err(ApiError::Rejected(
                        "chunk_mismatch",
                        format!("chunk {i} does not match the signed manifest"),
                    ));
                }
            }
            None => {
                let chunk = store.blobs().chunk(id, i)?.ok_or_else(|| {
                    ApiError::Rejected("chunk_missing", format!("chunk {i} was not uploaded"))
                })?;
                manifest
                    .check_chunk(i, &chunk)
                    .map_err(|e| ApiError::Rejected("chunk_mismatch", e.to_string()))?;
            }
        }
    }
    Ok(())
}

/// What a reader needs before the chunks: preamble, manifest and the caller's key package.
#[utoipa::path(get, path = "/v1/items/{item}", params(("item" = String, Path, description = "item id")),
    responses((status = 200, body = ItemHeader), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn header(
    State(s): State<AppState>,
    caller: Caller,
    Path(item): Path<String>,
) -> Result<axum::Json<ItemHeader>, ApiError> {
    let id = parse_id(&item)?;
    let rec = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::ReadItem(&rec)).await?;
    Ok(axum::Json(header_of(&s, &caller, &rec)?))
}

/// The header of the committed item `rec` for `caller`, who may read it (the caller of this
/// checked and audited that).
pub(crate) fn header_of(
    s: &AppState,
    caller: &Caller,
    rec: &ItemRecord,
) -> Result<ItemHeader, ApiError> {
    let package = s
        .store
        .key_package(&rec.id, &caller.account.email)?
        .ok_or(ApiError::NotFound)?;
    let sender = s
        .store
        .account(&rec.uploader)?
        .ok_or_else(|| ApiError::Internal("item without uploader account".into()))?;
    let manifest = rec
        .manifest
        .as_deref()
        .ok_or_else(|| ApiError::Internal("committed item without manifest".into()))?;
    Ok(ItemHeader {
        item: to_hex(&rec.id),
        sender: account_view(&sender)?,
        preamble: STANDARD.encode(&rec.preamble),
        manifest: STANDARD.encode(manifest),
        key_package: STANDARD.encode(package),
        ciphertext_len: rec.received_bytes,
    })
}

/// Query of a download.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChunkQuery {
    /// First chunk to send (to resume a download); 0 if absent.
    from: Option<u32>,
}

/// Streams the ciphertext from chunk `from` (or a byte offset) to the end, 1 MiB in memory at
/// a time.
#[utoipa::path(get, path = "/v1/items/{item}/chunks", params(("item" = String, Path, description = "item id"), ChunkQuery),
    responses((status = 200, description = "the concatenated sealed chunks", content_type = "application/octet-stream"),
        (status = 206, description = "the ciphertext from the `Range: bytes=START-` offset", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path(item): Path<String>,
    Query(q): Query<ChunkQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&item)?;
    let rec = s.store.item(&id)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::ReadChunks(&rec)).await?;
    let total = rec.received_bytes;
    let count = rec.received;
    let range = match headers.get(header::RANGE) {
        Some(v) => Some(parse_range(v.to_str().unwrap_or_default(), total)?),
        None => None,
    };
    // Every chunk but the last is full, so byte offsets map to chunk indexes directly.
    let start = match (range, q.from) {
        (Some(start), _) => start,
        (None, Some(from)) if from > count => {
            return Err(ApiError::BadRequest(format!("the item has {count} chunks")));
        }
        (None, from) => (u64::from(from.unwrap_or(0)) * SEALED_CHUNK as u64).min(total),
    };
    let first = u32::try_from(start / SEALED_CHUNK as u64).unwrap_or(u32::MAX);
    let skip = usize::try_from(start % SEALED_CHUNK as u64).unwrap_or(0);
    let store = s.store.clone();
    // Blocks of up to READ_CHUNKS chunks, each read on a blocking thread (one `pread` from the
    // file store), so that the runtime's threads never wait on the disk.
    let stream = futures_util::stream::unfold(first, move |i| {
        let store = store.clone();
        async move {
            if i >= count {
                return None;
            }
            let n = READ_CHUNKS.min(count - i);
            let r = tokio::task::spawn_blocking(move || store.blobs().chunks(&id, i, n)).await;
            let block = match r {
                Ok(Ok(Some(mut c))) => {
                    if i == first && skip > 0 {
                        c.drain(..skip.min(c.len()));
                    }
                    Ok(axum::body::Bytes::from(c))
                }
                Ok(Ok(None)) => Err(std::io::Error::other("chunk missing from the store")),
                Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Err(e) = &block {
                tracing::error!(error = %e, "download stopped");
            }
            Some((block, i + n))
        }
    });
    s.metrics.download_started();
    let mut res = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, (total - start).to_string()),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if range.is_some() {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = if start < total {
            format!("bytes {start}-{}/{total}", total - 1)
        } else {
            format!("bytes */{total}")
        };
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(res)
}

/// Parses `bytes=START-` (the resume form; a closed range is served from START to the end).
fn parse_range(value: &str, total: u64) -> Result<u64, ApiError> {
    let start = value
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, _)| a.trim().parse::<u64>().ok())
        .ok_or_else(|| ApiError::BadRequest("Range must be `bytes=START-`".into()))?;
    if start > total {
        return Err(ApiError::BadRequest(format!("the item has {total} bytes")));
    }
    Ok(start)
}
