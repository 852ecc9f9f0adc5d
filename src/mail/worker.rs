//! The outbox worker: groups due message notices per address (coalescing), delivers, retries
//! with exponential backoff and jitter, and records every final state durably.
//!
//! Crash safety: a group's content (its count) is fixed and flushed before the first attempt,
//! so a retry after a crash sends the same email with the same Message-ID; `Sent` is flushed
//! after the relay accepts, with up to `SETTLE_EVERY` other final states. A crash between
//! acceptance and that flush can send those emails twice, each with its one Message-ID, which
//! receiving systems fold into one. Logs name notices by id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use super::{DeliveryError, Mailer, Outbox, TOPIC_SIGNATURE_DEADLINE, compose};
use crate::storage::{NoticeKind, NoticeRecord, NoticeState, StorageError, Store};
use crate::wire::to_hex;

/// The first retry waits about this long; each further one twice as long.
const BACKOFF_BASE_MS: i64 = 1_000;
/// The longest wait between attempts.
const BACKOFF_MAX_MS: i64 = 300_000;
/// The worker looks at the outbox at least this often.
const IDLE_MS: i64 = 30_000;
/// Delivered notices whose final states are written and flushed together (and at the end of
/// a pass): one flush instead of one per email, so that the worker keeps up with hundreds of
/// sends a second. A crash before that flush sends those emails again, each with its one
/// Message-ID.
const SETTLE_EVERY: usize = 64;
/// Final notices are kept this long (for administrators), then purged.
const KEEP_FINAL_MS: i64 = 30 * 86_400_000;

/// Drains the outbox until the task is aborted. Pending notices left by a previous run (a
/// crash, an outage) are picked up by the first pass.
pub(crate) async fn run(store: Store, mailer: Arc<Mailer>, outbox: Outbox, link: String) {
    if let Some(dir) = mailer.folder() {
        tracing::info!(folder = %dir.display(), "no --smtp: notices are written as .eml files");
    }
    let mut last_purge = 0i64;
    loop {
        // Looking: every notice queued from here on wakes the next pass (see `Outbox::queued`).
        outbox.inner.next_look_ms.store(i64::MAX, Ordering::SeqCst);
        outbox.inner.passes.fetch_add(1, Ordering::Relaxed);
        let next = match pass(&store, &mailer, &outbox, &link).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "outbox pass failed");
                Some(outbox.now_ms() + 5_000)
            }
        };
        let now = outbox.now_ms();
        if now - last_purge > 3_600_000 {
            last_purge = now;
            let writing = store.writing().await;
            let purged = store.purge_notices(now - KEEP_FINAL_MS);
            drop(writing);
            match purged {
                Ok(0) => {}
                Ok(n) => tracing::info!(notices = n, "purged old final notices"),
                Err(e) => tracing::error!(error = %e, "outbox purge failed"),
            }
            // The gauge is counted over the kept records here, and counted on between purges.
            match store.undeliverable_notices() {
                Ok(n) => outbox.inner.undeliverable.store(n, Ordering::Relaxed),
                Err(e) => tracing::error!(error = %e, "counting undeliverable notices failed"),
            }
        }
        let now = outbox.now_ms();
        let wait = next.map_or(IDLE_MS, |t| (t - now).clamp(0, IDLE_MS));
        outbox
            .inner
            .next_look_ms
            .store(now.saturating_add(wait), Ordering::SeqCst);
        tokio::select! {
            () = outbox.inner.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))) => {}
        }
    }
}

/// Writes notice records under the store's write gate, so that a backup never copies half of
/// a group's records.
async fn put(store: &Store, notices: &[NoticeRecord]) -> Result<(), StorageError> {
    let _writing = store.writing().await;
    store.put_notices(notices)
}

/// Writes the records in `settled` and flushes them, then empties it.
async fn settle(store: &Store, settled: &mut Vec<NoticeRecord>) -> Result<(), StorageError> {
    if settled.is_empty() {
        return Ok(());
    }
    put(store, settled).await?;
    store.commit().await?;
    settled.clear();
    Ok(())
}

/// One look at the outbox; returns when the next pending notice falls due.
async fn pass(
    store: &Store,
    mailer: &Mailer,
    outbox: &Outbox,
    link: &str,
) -> Result<Option<i64>, StorageError> {
    let mut all = store.pending_notices()?;
    let now = outbox.now_ms();

    // Coalescing: once the oldest ungrouped message notice to an address is due, every
    // ungrouped message notice to that address joins its email.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, n) in all.iter().enumerate() {
        if n.state == NoticeState::Pending
            && !n.grouped
            && matches!(n.kind, NoticeKind::Message { .. })
        {
            groups.entry(n.to.as_str()).or_default().push(i);
        }
    }
    let mut changed = Vec::new();
    for members in groups.values() {
        let Some(&lead) = members.first() else {
            continue;
        };
        if all[lead].due_ms > now {
            continue;
        }
        changed.push((lead, members.clone()));
    }
    if !changed.is_empty() {
        let mut writes = Vec::new();
        for (lead, members) in changed {
            let lead_id = all[lead].id;
            all[lead].grouped = true;
            all[lead].count = u32::try_from(members.len()).unwrap_or(u32::MAX);
            all[lead].due_ms = now;
            writes.push(all[lead].clone());
            for &m in &members[1..] {
                all[m].state = NoticeState::Merged { into: lead_id };
                writes.push(all[m].clone());
            }
        }
        put(store, &writes).await?;
        store.commit().await?;
    }

    // Changed records are written and flushed together, every `SETTLE_EVERY` and at the end.
    let mut settled: Vec<NoticeRecord> = Vec::new();
    for n in all.iter_mut() {
        if settled.len() >= SETTLE_EVERY {
            settle(store, &mut settled).await?;
        }
        if n.state != NoticeState::Pending || !n.grouped || n.due_ms > now {
            continue;
        }
        let composed = match &n.kind {
            NoticeKind::Message { .. } => compose::message_notice(outbox.firm(), link, n.count),
            NoticeKind::Invite {
                url,
                invited_by,
                inviter_name,
                expires_at,
            } => compose::invite_notice(outbox.firm(), inviter_name, invited_by, url, *expires_at),
            NoticeKind::Reminder { topic, about } => {
                if topic == "reply_target" && replied(store, &n.to, about.as_ref())? {
                    n.state = NoticeState::Sent { at_ms: now };
                    n.kind = NoticeKind::Reminder {
                        topic: "reply_target_answered".into(),
                        about: *about,
                    };
                    settled.push(n.clone());
                    continue;
                }
                if topic == TOPIC_SIGNATURE_DEADLINE
                    && !awaits_signature(store, about.as_ref(), now.div_euclid(1000))?
                {
                    n.state = NoticeState::Sent { at_ms: now };
                    n.kind = NoticeKind::Reminder {
                        topic: "signature_deadline_answered".into(),
                        about: *about,
                    };
                    settled.push(n.clone());
                    continue;
                }
                compose::reminder_notice(outbox.firm(), link, topic)
            }
        };
        let result = mailer.deliver(&n.id, &n.to, &composed).await;
        let id = to_hex(&n.id);
        match result {
            Ok(()) => {
                n.state = NoticeState::Sent {
                    at_ms: outbox.now_ms(),
                };
                erase_secret(n);
                settled.push(n.clone());
                outbox.inner.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(notice = %id, count = n.count, "notice sent");
            }
            Err(DeliveryError::Permanent(code, error)) => {
                n.state = NoticeState::Undeliverable {
                    at_ms: outbox.now_ms(),
                    code,
                };
                erase_secret(n);
                settled.push(n.clone());
                outbox.inner.undeliverable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(notice = %id, code, error = %error, "notice undeliverable; not retrying");
            }
            Err(DeliveryError::Transient(error)) => {
                n.attempts = n.attempts.saturating_add(1);
                n.due_ms = outbox.now_ms() + backoff(n.attempts);
                settled.push(n.clone());
                outbox.inner.failed_attempts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(notice = %id, attempt = n.attempts, error = %error,
                    "notice delivery failed; will retry");
            }
        }
    }
    settle(store, &mut settled).await?;

    let (mut pending, mut reminders, mut next) = (0u64, 0u64, None::<i64>);
    for n in &all {
        if n.state == NoticeState::Pending {
            // Reminders wait for their hour by design; they are not a backlog.
            if matches!(n.kind, NoticeKind::Reminder { .. }) {
                reminders += 1;
            } else {
                pending += 1;
            }
            next = Some(next.map_or(n.due_ms, |t| t.min(n.due_ms)));
        }
    }
    outbox.inner.pending.store(pending, Ordering::Relaxed);
    outbox.inner.reminders.store(reminders, Ordering::Relaxed);
    Ok(next)
}

/// Whether `member` has sent a message in the thread of `about` since it arrived.
fn replied(store: &Store, member: &str, about: Option<&[u8; 16]>) -> Result<bool, StorageError> {
    let Some(about) = about else {
        return Ok(false);
    };
    let Some(m) = store.message(about)? else {
        return Ok(true);
    };
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let (page, next) = store.message_page(member, true, cursor.as_deref(), 200)?;
        for s in &page {
            if s.sent_at < m.sent_at {
                return Ok(false);
            }
            if s.thread == m.thread {
                return Ok(true);
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return Ok(false),
        }
    }
}

/// Whether the signature request `about` still waits for its signer at `now` (seconds):
/// unanswered and before its deadline.
fn awaits_signature(
    store: &Store,
    about: Option<&[u8; 16]>,
    now: i64,
) -> Result<bool, StorageError> {
    let Some(id) = about else {
        return Ok(false);
    };
    Ok(store
        .signature(id)?
        .is_some_and(|r| r.answered_at.is_none() && now < r.deadline))
}

/// An invite's URL holds its secret: it is kept only while the notice may still be sent.
fn erase_secret(n: &mut NoticeRecord) {
    if let NoticeKind::Invite { url, .. } = &mut n.kind {
        *url = String::new();
    }
}

/// Exponential backoff with ±25 % jitter, so that many notices do not retry in step.
fn backoff(attempts: u32) -> i64 {
    let exp = BACKOFF_BASE_MS
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
        .min(BACKOFF_MAX_MS);
    let mut r = [0u8; 2];
    let jitter = match SystemRandom::new().fill(&mut r) {
        Ok(()) => f64::from(u16::from_be_bytes(r)) / 65_536.0,
        Err(_) => 0.5,
    };
    (exp as f64 * (0.75 + jitter * 0.5)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!((750..=1250).contains(&backoff(1)));
        assert!((1500..=2500).contains(&backoff(2)));
        assert!(backoff(40) <= BACKOFF_MAX_MS * 5 / 4);
    }
}
