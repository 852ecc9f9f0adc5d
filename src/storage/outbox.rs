//! The notice outbox (tree `outbox`): one versioned record per email to send, written in the
//! same sled transaction as the message or invite that causes it, so that one group-commit
//! flush makes both durable.
//!
//! A record holds the recipient's address and what kind of event it announces, never any
//! sender-written text. The one secret it may hold is an invite URL, which is erased when the
//! notice reaches a final state. The state machine is written down in `docs/STORAGE.md`.

use serde::{Deserialize, Serialize};

use super::{StorageError, Store, decode, encode, key_bytes};

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
    /// Every notice, in creation order.
    pub fn notices(&self) -> Result<Vec<NoticeRecord>, StorageError> {
        self.outbox
            .iter()
            .map(|r| {
                let (_, v) = r?;
                decode(&v, "outbox")
            })
            .collect()
    }

    /// Writes notices (new or changed) atomically; durable after [`Store::commit`].
    pub fn put_notices(&self, notices: &[NoticeRecord]) -> Result<(), StorageError> {
        // One record needs no batch: sled's batches (like its transactions) each close its
        // log buffer and hand a write to its IO threads, a cost a single insert does not have.
        if let [n] = notices {
            self.outbox.insert(key_bytes(&n.id), encode(n))?;
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for n in notices {
            batch.insert(key_bytes(&n.id), encode(n));
        }
        self.outbox.apply_batch(batch)?;
        Ok(())
    }

    /// Deletes notices that reached a final state before `cutoff_ms`.
    pub fn purge_notices(&self, cutoff_ms: i64) -> Result<usize, StorageError> {
        let mut n = 0;
        for r in self.outbox.iter() {
            let (k, v) = r?;
            let rec: NoticeRecord = decode(&v, "outbox")?;
            let at = match rec.state {
                NoticeState::Pending => continue,
                NoticeState::Merged { .. } => rec.due_ms,
                NoticeState::Sent { at_ms } | NoticeState::Undeliverable { at_ms, .. } => at_ms,
            };
            if at < cutoff_ms {
                self.outbox.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

pub(super) fn notice_key(n: &NoticeRecord) -> Vec<u8> {
    key_bytes(&n.id)
}
