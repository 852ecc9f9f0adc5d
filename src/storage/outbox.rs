//! The notice outbox (tree `outbox`): one versioned record per email to send, written in the
//! same sled transaction as the message or invite that causes it, so that one group-commit
//! flush makes both durable.
//!
//! A record holds the recipient's address and what kind of event it announces, never any
//! sender-written text. The one secret it may hold is an invite URL, which is erased when the
//! notice reaches a final state. The state machine is written down in `docs/STORAGE.md`.

use serde::{Deserialize, Serialize};

use super::{Batch, StorageError, Store, decode, encode, key_bytes};

/// What a notice announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NoticeKind {
    /// A message is waiting for the recipient (coalesced with others to the same address).
    Message {
        /// The message id.
        message: [u8; 16],
    },
    /// An invite to join; `url` holds the secret and is erased once the notice is final.
    Invite {
        /// `https://HOST/i/ID#SECRET`, or empty once erased.
        url: String,
        /// The inviter's email.
        invited_by: String,
        /// The inviter's display name.
        inviter_name: String,
        /// When the invite expires.
        expires_at: i64,
    },
    /// A reminder due at the record's `due_ms` (generic: later features set `topic`).
    Reminder {
        /// A fixed code chosen by the server, e.g. `signature_deadline`; never user text.
        topic: String,
        /// The message or item the reminder is about, if any.
        about: Option<[u8; 16]>,
    },
}

/// Where a notice is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NoticeState {
    /// Waiting for its time, or for a retry.
    Pending,
    /// Folded into another notice's email (coalescing); final.
    Merged {
        /// The notice whose email carries this one.
        into: [u8; 16],
    },
    /// Accepted by the mail server (or written to the mail folder); final.
    Sent {
        /// When, in milliseconds since the epoch.
        at_ms: i64,
    },
    /// Refused for good (a permanent 5xx); final, never retried.
    Undeliverable {
        /// When, in milliseconds since the epoch.
        at_ms: i64,
        /// The SMTP reply code, if the server gave one.
        code: Option<u16>,
    },
}

/// One notice (tree `outbox`, key: 16-byte id whose first 8 bytes are the creation time in
/// milliseconds, big-endian, so that keys sort in creation order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// Notice id; also the stable Message-ID of its email.
    pub id: [u8; 16],
    /// Recipient address (the only personal data).
    pub to: String,
    /// What it announces.
    pub kind: NoticeKind,
    /// Creation time, milliseconds.
    pub created_ms: i64,
    /// Not to be sent before this time (the coalescing window, a retry, a reminder's time).
    pub due_ms: i64,
    /// State.
    pub state: NoticeState,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// How many items the email announces; fixed (with `grouped`) before the first attempt.
    pub count: u32,
    /// Whether the group (coalescing) is decided; from then on the email's content is fixed, so
    /// a retry after a crash sends the very same email.
    pub grouped: bool,
}

impl NoticeRecord {
    /// Whether the notice will never be sent (again).
    pub fn is_final(&self) -> bool {
        !matches!(self.state, NoticeState::Pending)
    }
}

impl Store {
    /// The notices still to send (`pending`), in creation order. Notices in a final state are
    /// kept apart (tree `outbox_final`), so that a look at the outbox costs what is pending,
    /// not the 30 days of history kept for administrators.
    pub fn pending_notices(&self) -> Result<Vec<NoticeRecord>, StorageError> {
        read_all(&self.outbox, "outbox")
    }

    /// The notices kept in a final state, in creation order.
    pub fn final_notices(&self) -> Result<Vec<NoticeRecord>, StorageError> {
        read_all(&self.outbox_final, "outbox_final")
    }

    /// How many kept final notices were undeliverable.
    pub fn undeliverable_notices(&self) -> Result<u64, StorageError> {
        let mut n = 0;
        for r in self.final_notices()? {
            n += u64::from(matches!(r.state, NoticeState::Undeliverable { .. }));
        }
        Ok(n)
    }

    /// Writes notices (new or changed) atomically; durable after [`Store::commit`]. A notice
    /// in a final state leaves the outbox for `outbox_final` in the same transaction.
    pub fn put_notices(&self, notices: &[NoticeRecord]) -> Result<(), StorageError> {
        // One pending record needs no transaction: sled's batches (like its transactions) each
        // close its log buffer and hand a write to its IO threads, a cost a single insert does
        // not have.
        if let [n] = notices
            && !n.is_final()
        {
            self.outbox.insert(notice_key(n), encode(n))?;
            return Ok(());
        }
        let mut b = Batch::default();
        for n in notices {
            if n.is_final() {
                b.remove(&self.outbox, notice_key(n));
                b.put(&self.outbox_final, notice_key(n), encode(n));
            } else {
                b.put(&self.outbox, notice_key(n), encode(n));
            }
        }
        self.apply(b)?;
        Ok(())
    }

    /// Moves final notices that an earlier version kept in the outbox to `outbox_final`.
    /// Returns how many moved.
    pub(super) fn move_final_notices(&self) -> Result<usize, StorageError> {
        let moved: Vec<NoticeRecord> = self
            .pending_notices()?
            .into_iter()
            .filter(NoticeRecord::is_final)
            .collect();
        for group in moved.chunks(256) {
            self.put_notices(group)?;
        }
        Ok(moved.len())
    }

    /// Deletes notices that reached a final state before `cutoff_ms`.
    pub fn purge_notices(&self, cutoff_ms: i64) -> Result<usize, StorageError> {
        let mut n = 0;
        for r in self.outbox_final.iter() {
            let (k, v) = r?;
            let rec: NoticeRecord = decode(&v, "outbox_final")?;
            let at = match rec.state {
                // Not final: never here (`put_notices`), so it is kept.
                NoticeState::Pending => continue,
                NoticeState::Merged { .. } => rec.due_ms,
                NoticeState::Sent { at_ms } | NoticeState::Undeliverable { at_ms, .. } => at_ms,
            };
            if at < cutoff_ms {
                self.outbox_final.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn read_all(tree: &sled::Tree, name: &'static str) -> Result<Vec<NoticeRecord>, StorageError> {
    tree.iter()
        .map(|r| {
            let (_, v) = r?;
            decode(&v, name)
        })
        .collect()
}

pub(super) fn notice_key(n: &NoticeRecord) -> Vec<u8> {
    key_bytes(&n.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(n: u8, state: NoticeState) -> NoticeRecord {
        NoticeRecord {
            id: [n; 16],
            to: format!("u{n}@firm.example"),
            kind: NoticeKind::Message { message: [n; 16] },
            created_ms: 1_000,
            due_ms: 1_000 + i64::from(n),
            state,
            attempts: 0,
            count: 1,
            grouped: true,
        }
    }

    fn ids(notices: &[NoticeRecord]) -> Vec<u8> {
        notices.iter().map(|n| n.id[0]).collect()
    }

    #[tokio::test]
    async fn final_notices_leave_the_outbox_and_those_of_an_older_version_move_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let pending: Vec<NoticeRecord> = (1..=3).map(|n| notice(n, NoticeState::Pending)).collect();
        store.put_notices(&pending).expect("put");
        assert_eq!(ids(&store.pending_notices().expect("pending")), [1, 2, 3]);
        assert!(store.final_notices().expect("final").is_empty());

        // Sent and undeliverable, in one write: both leave the outbox.
        let sent = notice(1, NoticeState::Sent { at_ms: 5_000 });
        let refused = notice(
            2,
            NoticeState::Undeliverable {
                at_ms: 9_000,
                code: Some(550),
            },
        );
        store
            .put_notices(&[sent.clone(), refused.clone()])
            .expect("settle");
        assert_eq!(
            store.pending_notices().expect("pending"),
            [pending[2].clone()]
        );
        assert_eq!(store.final_notices().expect("final"), [sent, refused]);
        assert_eq!(store.undeliverable_notices().expect("count"), 1);

        // A final record where an earlier version kept it, in the outbox, moves at the first
        // open by this version (an earlier one set no mark in `meta`).
        let merged = notice(4, NoticeState::Merged { into: [3; 16] });
        store
            .outbox
            .insert(notice_key(&merged), encode(&merged))
            .expect("old layout");
        store
            .db
            .open_tree("meta")
            .and_then(|meta| meta.remove(super::super::META_FINAL_NOTICES))
            .expect("earlier version");
        store.commit().await.expect("commit");
        drop(store);
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(ids(&store.pending_notices().expect("pending")), [3]);
        assert_eq!(ids(&store.final_notices().expect("final")), [1, 2, 4]);

        // Purging removes final notices settled before the cutoff (a merged one counts from
        // its due time, 1,004), never a pending one.
        assert_eq!(store.purge_notices(6_000).expect("purge"), 2);
        assert_eq!(ids(&store.final_notices().expect("final")), [2]);
        assert_eq!(ids(&store.pending_notices().expect("pending")), [3]);
    }
}
