//! The sweeper: every `sweep_seconds`, by the server's clock, it cuts off grants that ended
//! (deleting the grantee's key packages), deletes the content of closed matters past their
//! retention unless held, deletes abandoned uploads and expired sign-in records, and signs a
//! checkpoint of the audit log if the log advanced. One commit per sweep makes it durable.
//!
//! Every cut-off and deletion is written to the audit log by the actor `server`, with counts
//! and ids only.

use std::time::Duration;

use super::AppState;
use crate::storage::{AddOutcome, StorageError};
use crate::wire::to_hex;

/// The actor of the server's own audit entries.
pub(crate) const SERVER_ACTOR: &str = "server";

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Swept {
    uploads: usize,
    expired: usize,
    grants: usize,
    matters: usize,
}

/// Sweeps until the task is aborted.
pub(crate) async fn run(state: AppState) {
    let period = Duration::from_secs(state.settings.sweep_seconds.max(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = state.clone();
        // A sweep's deletions are several steps: a backup must not copy half of them.
        let writing = state.store.writing().await;
        match tokio::task::spawn_blocking(move || {
            let swept = once(&s);
            drop(writing);
            swept
        })
        .await
        {
            Ok(Ok(swept)) => {
                if swept.uploads + swept.expired + swept.grants + swept.matters > 0 {
                    tracing::info!(
                        uploads = swept.uploads,
                        expired = swept.expired,
                        grants = swept.grants,
                        matters = swept.matters,
                        "swept abandoned uploads, expired records, ended grants and matters past retention"
                    );
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "sweep failed"),
            Err(e) => tracing::error!(error = %e, "sweep task failed"),
        }
        match state.store.commit().await {
            Ok(()) => state.metrics.swept(),
            Err(e) => tracing::error!(error = %e, "sweep flush failed"),
        }
        // Reminders fall due by the same clock; let the outbox look.
        state.outbox.wake();
    }
}

/// One sweep (blocking: run it off the async threads). Not yet durable: commit after.
pub(crate) fn once(s: &AppState) -> Result<Swept, StorageError> {
    let store = &s.store;
    let now = s.now();
    let mut swept = Swept {
        uploads: store.delete_abandoned(now - i64::from(s.settings.upload_abandon_hours) * 3600)?,
        expired: store.purge_expired(now)?,
        ..Swept::default()
    };

    for id in store.grants_due(now)? {
        let Some(old) = store.grant(&id)? else {
            continue;
        };
        if old.cut_off_at.is_some() || !old.ended(now) {
            continue;
        }
        let mut new = old.clone();
        new.cut_off_at = Some(now);
        let (outcome, packages) = store.update_grant(&old, &new)?;
        if outcome == AddOutcome::Done {
            store.audit(
                now,
                SERVER_ACTOR,
                "",
                "grant.expire",
                &to_hex(&id),
                old.matter.as_ref(),
            )?;
            tracing::info!(grant = %to_hex(&id), packages, "grant ended: key packages deleted");
            swept.grants += 1;
        }
    }

    for id in store.matters_due(now)? {
        // Nothing joins the matter while its content goes.
        let _matters = s.lock_matters();
        let Some(old) = store.matter(&id)? else {
            continue;
        };
        if old.hold || old.deleted_at.is_some() {
            continue;
        }
        let counts = store.delete_matter_content(&id, now)?;
        let mut new = old.clone();
        new.deleted_at = Some(now);
        if store.update_matter(&old, &new)? == AddOutcome::Conflict {
            continue;
        }
        let object = format!(
            "{} items={} chunks={} key_packages={} messages={} statements={} grants={}",
            to_hex(&id),
            counts.items,
            counts.chunks,
            counts.key_packages,
            counts.messages,
            counts.statements,
            counts.grants
        );
        store.audit(now, SERVER_ACTOR, "", "matter.delete", &object, Some(&id))?;
        tracing::info!(matter = %to_hex(&id), ?counts, "matter content deleted at the end of retention");
        swept.matters += 1;
    }

    s.checkpoint()?;
    Ok(swept)
}
