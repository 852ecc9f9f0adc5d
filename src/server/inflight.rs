//! Requests in flight on each upload: the chunk ranges being received, and the order in which
//! they are recorded.
//!
//! A client may send the next request of an upload before the previous one is answered, so
//! that one request's `fdatasync` overlaps the transfer of the next. Each request claims the
//! range of chunks it carries (overlapping claims get `409 upload_busy`), writes and syncs
//! them at their place, and then waits for its turn: it is recorded only once every chunk
//! before it is, so the item record always counts a contiguous prefix. A request whose
//! predecessors are no longer in flight (one failed) stops waiting with `409 wrong_offset`,
//! and the client resumes from where the record stands. A request that arrives ahead of the
//! ones carrying the chunks before it (they were sent first, but the server took this one up
//! first) waits a little for them to claim their chunks before it is refused.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::error::ApiError;
use crate::storage::{ItemRecord, Store};

/// How far past the recorded chunks a request may start: two requests of the largest size
/// ahead of the one being recorded (the CLI keeps four requests of at most 64 chunks on their
/// way, so its last starts at most 192 chunks ahead).
pub(crate) const AHEAD: u32 = 2 * crate::wire::api::MAX_CHUNKS_PER_REQUEST as u32;

#[derive(Default, Clone)]
pub(crate) struct InFlight {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    items: Mutex<HashMap<[u8; 16], Entry>>,
    /// Bumped whenever any request claims chunks or ends: a request that came ahead of the
    /// requests carrying the chunks before it waits on this for them to claim.
    activity: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 16], Entry>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }
}

struct Entry {
    /// The chunk ranges of the requests in flight.
    ranges: Vec<Range<u32>>,
    /// A commit holds the item: no request may claim chunks.
    committing: bool,
    /// Bumped whenever a request records its chunks or ends; waiters look again.
    changed: watch::Sender<u64>,
}

impl Entry {
    fn new() -> Self {
        Self {
            ranges: Vec::new(),
            committing: false,
            changed: watch::Sender::new(0),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn busy() -> ApiError {
    ApiError::Conflict(
        "upload_busy",
        "another request is changing this upload".into(),
    )
}

/// The record of upload `id`, still open: `404` if it is gone or committed.
pub(crate) fn uncommitted(store: &Store, id: &[u8; 16]) -> Result<ItemRecord, ApiError> {
    store
        .item(id)?
        .filter(|r| !r.committed)
        .ok_or(ApiError::NotFound)
}

/// The refusal of a request that does not start where the upload stands.
pub(crate) fn wrong_offset(received: u32) -> ApiError {
    ApiError::Conflict(
        "wrong_offset",
        format!("the upload is at chunk {received}; resume from there"),
    )
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 16], Entry>> {
        self.shared.lock()
    }

    /// Changes whenever a request claims chunks or ends, on any upload. Subscribe before
    /// [`InFlight::claim`] to wait for the claims that would cover a gap.
    pub(crate) fn activity(&self) -> watch::Receiver<u64> {
        self.shared.activity.subscribe()
    }

    /// Claims chunks `range` of upload `id` for one request, the upload having `received`
    /// chunks recorded: refused while another request in flight carries any of them or the
    /// upload is being committed (`409 upload_busy`), and, for a request ahead, unless
    /// requests in flight claim every chunk between (`409 wrong_offset`: nothing is written
    /// that could not be recorded).
    pub(crate) fn claim(
        &self,
        id: [u8; 16],
        range: Range<u32>,
        received: u32,
    ) -> Result<Claim, ApiError> {
        let mut items = self.lock();
        let entry = items.entry(id).or_insert_with(Entry::new);
        if entry.committing
            || entry
                .ranges
                .iter()
                .any(|r| r.start < range.end && range.start < r.end)
        {
            return Err(busy());
        }
        if !covered(&entry.ranges, received..range.start) {
            if entry.ranges.is_empty() {
                items.remove(&id);
            }
            return Err(wrong_offset(received));
        }
        entry.ranges.push(range.clone());
        drop(items);
        self.shared.bump();
        Ok(Claim {
            shared: self.shared.clone(),
            id,
            range,
        })
    }

    /// Holds upload `id` for its commit: refused while a request is in flight on it.
    pub(crate) fn commit(&self, id: [u8; 16]) -> Result<CommitHold, ApiError> {
        let mut items = self.lock();
        let entry = items.entry(id).or_insert_with(Entry::new);
        if entry.committing || !entry.ranges.is_empty() {
            return Err(busy());
        }
        entry.committing = true;
        Ok(CommitHold {
            shared: self.shared.clone(),
            id,
        })
    }
}

/// Whether `ranges` cover every chunk of `gap`.
fn covered(ranges: &[Range<u32>], gap: Range<u32>) -> bool {
    let mut at = gap.start;
    while at < gap.end {
        match ranges.iter().find(|r| r.contains(&at)) {
            Some(r) => at = r.end,
            None => return false,
        }
    }
    true
}

/// One request's claim on a range of chunks; released (and the waiters told) when dropped.
/// The request and its blocking writer each hold it, so a request dropped part way (a
/// timeout, a client gone) keeps its chunks claimed until its writer is done.
pub(crate) struct Claim {
    shared: Arc<Shared>,
    id: [u8; 16],
    range: Range<u32>,
}

impl Claim {
    /// Waits until every chunk before this claim's is recorded, and returns the item record
    /// as it then stands. Refuses with `409 wrong_offset` as soon as a chunk before it is
    /// neither recorded nor claimed by a request in flight, or if its chunks were recorded by
    /// another request meanwhile; with `404` if the upload is gone or committed.
    pub(crate) async fn turn(&self, store: &Store) -> Result<ItemRecord, ApiError> {
        let first = self.range.start;
        let Some(mut changed) = self.subscribe() else {
            return Err(ApiError::NotFound);
        };
        loop {
            // Marks the current version seen before looking, so no change is missed.
            changed.borrow_and_update();
            let rec = uncommitted(store, &self.id)?;
            if rec.received == first {
                return Ok(rec);
            }
            if rec.received > first || !self.covered(rec.received..first) {
                return Err(wrong_offset(rec.received));
            }
            if changed.changed().await.is_err() {
                return Err(wrong_offset(rec.received));
            }
        }
    }

    fn subscribe(&self) -> Option<watch::Receiver<u64>> {
        self.shared
            .lock()
            .get(&self.id)
            .map(|e| e.changed.subscribe())
    }

    /// Whether requests in flight claim every chunk of `gap`.
    fn covered(&self, gap: Range<u32>) -> bool {
        self.shared
            .lock()
            .get(&self.id)
            .is_some_and(|entry| covered(&entry.ranges, gap))
    }

    /// Tells the requests waiting behind this one that its chunks are recorded.
    pub(crate) fn recorded(&self) {
        if let Some(entry) = self.shared.lock().get(&self.id) {
            entry.bump();
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        release(&self.shared, &self.id, |entry| {
            if let Some(i) = entry.ranges.iter().position(|r| *r == self.range) {
                entry.ranges.swap_remove(i);
            }
            entry.bump();
        });
    }
}

/// Changes upload `id`'s entry with `change`, then forgets the entry if nothing holds it.
fn release(shared: &Shared, id: &[u8; 16], change: impl FnOnce(&mut Entry)) {
    let mut items = shared.lock();
    if let Some(entry) = items.get_mut(id) {
        change(entry);
        if entry.ranges.is_empty() && !entry.committing {
            items.remove(id);
        }
    }
    drop(items);
    shared.bump();
}

/// A commit's hold on an upload; released when dropped.
pub(crate) struct CommitHold {
    shared: Arc<Shared>,
    id: [u8; 16],
}

impl Drop for CommitHold {
    fn drop(&mut self) {
        release(&self.shared, &self.id, |entry| entry.committing = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_claims_and_a_commit_during_requests_are_busy() {
        let f = InFlight::default();
        let id = [1; 16];
        let a = f.claim(id, 0..16, 0).unwrap();
        let b = f.claim(id, 16..48, 0).unwrap();
        assert!(matches!(
            f.claim(id, 40..41, 0),
            Err(ApiError::Conflict("upload_busy", _))
        ));
        assert!(matches!(
            f.commit(id),
            Err(ApiError::Conflict("upload_busy", _))
        ));
        drop(a);
        drop(b);
        let hold = f.commit(id).unwrap();
        assert!(matches!(
            f.claim(id, 0..1, 0),
            Err(ApiError::Conflict("upload_busy", _))
        ));
        drop(hold);
        assert!(f.lock().is_empty(), "nothing is kept for an idle upload");
        let _c = f.claim(id, 0..1, 0).unwrap();
    }

    #[test]
    fn a_gap_counts_as_covered_only_while_requests_claim_all_of_it() {
        let f = InFlight::default();
        let id = [2; 16];
        assert!(matches!(
            f.claim(id, 16..32, 0),
            Err(ApiError::Conflict("wrong_offset", _))
        ));
        assert!(f.lock().is_empty(), "a refused claim leaves nothing");
        assert!(matches!(
            f.claim(id, 16..32, 0),
            Err(ApiError::Conflict("wrong_offset", _))
        ));
        assert!(f.lock().is_empty(), "a refused claim leaves nothing");
        let a = f.claim(id, 0..16, 0).unwrap();
        let b = f.claim(id, 16..32, 0).unwrap();
        let c = f.claim(id, 32..48, 0).unwrap();
        assert!(matches!(
            f.claim(id, 49..50, 0),
            Err(ApiError::Conflict("wrong_offset", _))
        ));
        assert!(matches!(
            f.claim(id, 49..50, 0),
            Err(ApiError::Conflict("wrong_offset", _))
        ));
        assert!(c.covered(0..32));
        drop(b);
        assert!(!c.covered(0..32), "the middle request is gone");
        assert!(c.covered(0..16));
        drop(a);
        assert!(!c.covered(0..1));
        assert!(c.covered(5..5), "an empty gap");
    }
}
