//! Storage in sled: versioned records under versioned big-endian keys, group commit, the
//! ciphertext blob store and the hash-chained audit log.
//!
//! Owns every byte the server keeps on disk. It stores only ciphertext, public keys and the
//! metadata the server needs to route and authorize (emails, ids, sizes, times); it must never
//! see a plaintext, a secret key or a session token (tokens and invite secrets arrive here
//! already hashed). Layout and durability are written down in `docs/STORAGE.md`.

mod blobs;
mod commit;
mod outbox;
mod records;

use std::path::Path;
use std::sync::{Arc, Mutex};

use ring::digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;

pub use blobs::{BlobStore, SledBlobs};
pub use commit::FlushStats;
pub use outbox::{NoticeKind, NoticeRecord, NoticeState};
pub use records::{
    AccountRecord, AuditEntry, ChallengeRecord, InviteRecord, ItemRecord, MessageRecord,
    SessionRecord,
};

/// The version byte every key and every record starts with.
pub const FORMAT_VERSION: u8 = 1;

/// Why a storage operation failed. Never shown to clients (the server logs it and answers
/// `internal`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// sled reported an error.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// A file operation (the durability sync) failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record could not be decoded (wrong version or corrupt).
    #[error("corrupt record in tree {tree}")]
    Corrupt {
        /// The tree holding the record.
        tree: &'static str,
    },
    /// The group-commit task is gone (the server is shutting down).
    #[error("the commit task has stopped")]
    CommitStopped,
}

/// Outcome of [`Store::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The account was created and the invite consumed.
    Joined,
    /// The invite was already used.
    InviteUsed,
    /// The email already has an account.
    EmailTaken,
}

/// The whole database: one `sled::Db` and its trees. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    accounts: sled::Tree,
    invites: sled::Tree,
    challenges: sled::Tree,
    sessions: sled::Tree,
    items: sled::Tree,
    key_packages: sled::Tree,
    messages: sled::Tree,
    inbox: sled::Tree,
    sent: sled::Tree,
    contacts: sled::Tree,
    audit: sled::Tree,
    outbox: sled::Tree,
    blobs: SledBlobs,
    audit_head: Arc<Mutex<AuditHead>>,
    committer: commit::Committer,
}

struct AuditHead {
    next_seq: u64,
    last_hash: [u8; 32],
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`. Must be
    /// called inside a tokio runtime: it starts the group-commit task.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Every acknowledged write is flushed explicitly (group commit); a timer flush would
            // only add IO.
            .flush_every_ms(None)
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let audit = tree("audit")?;
        let audit_head = match audit.last()? {
            Some((k, v)) => AuditHead {
                next_seq: key_u64(&k).map_or(0, |s| s + 1),
                last_hash: sha256(&v),
            },
            None => AuditHead {
                next_seq: 0,
                last_hash: [0; 32],
            },
        };
        let committer = commit::Committer::start(db.clone(), dir)?;
        Ok(Self {
            accounts: tree("accounts")?,
            invites: tree("invites")?,
            challenges: tree("challenges")?,
            sessions: tree("sessions")?,
            items: tree("items")?,
            key_packages: tree("key_packages")?,
            messages: tree("messages")?,
            inbox: tree("inbox")?,
            sent: tree("sent")?,
            contacts: tree("contacts")?,
            outbox: tree("outbox")?,
            blobs: SledBlobs::new(tree("chunks")?),
            audit,
            audit_head: Arc::new(Mutex::new(audit_head)),
            committer,
            db,
        })
    }

    /// Waits until every write made before this call is durable. Concurrent callers share one
    /// flush (group commit).
    pub async fn commit(&self) -> Result<(), StorageError> {
        self.committer.commit().await
    }

    /// Flush counters for `/metrics`.
    pub fn flush_stats(&self) -> FlushStats {
        self.committer.stats()
    }

    /// Whether the store holds no account and no invite (a first start).
    pub fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.accounts.is_empty() && self.invites.is_empty())
    }

    /// The ciphertext chunk store.
    pub fn blobs(&self) -> &dyn BlobStore {
        &self.blobs
    }

    // ---- accounts ----

    /// The account registered under `email`.
    pub fn account(&self, email: &str) -> Result<Option<AccountRecord>, StorageError> {
        get(&self.accounts, "accounts", &key_str(email))
    }

    /// Every account, in email order.
    pub fn accounts(&self) -> Result<Vec<AccountRecord>, StorageError> {
        self.accounts
            .iter()
            .map(|r| {
                let (_, v) = r?;
                decode(&v, "accounts")
            })
            .collect()
    }

    /// Consumes `invite` (stored under `invite_key`) and creates `account`, atomically.
    pub fn join(
        &self,
        invite_id: &[u8; 16],
        invite: &InviteRecord,
        account: &AccountRecord,
    ) -> Result<JoinOutcome, StorageError> {
        let ikey = key_bytes(invite_id);
        let akey = key_str(&account.email);
        let mut used = invite.clone();
        used.used = true;
        let used = encode(&used);
        let acc = encode(account);
        let r = (&self.invites, &self.accounts).transaction(|(inv, acc_tree)| {
            let current = inv.get(&ikey)?;
            let Some(current) = current else {
                return Ok(JoinOutcome::InviteUsed);
            };
            let current: InviteRecord = decode(&current, "invites")
                .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
            if current.used {
                return Ok(JoinOutcome::InviteUsed);
            }
            if acc_tree.get(&akey)?.is_some() {
                return Ok(JoinOutcome::EmailTaken);
            }
            inv.insert(ikey.as_slice(), used.as_slice())?;
            acc_tree.insert(akey.as_slice(), acc.as_slice())?;
            Ok(JoinOutcome::Joined)
        });
        r.map_err(tx_error)
    }

    // ---- invites ----

    /// Stores a new invite.
    pub fn put_invite(&self, id: &[u8; 16], invite: &InviteRecord) -> Result<(), StorageError> {
        self.put_invite_with_notice(id, invite, None)
    }

    /// Stores a new invite and the notice that emails it, in one transaction.
    pub fn put_invite_with_notice(
        &self,
        id: &[u8; 16],
        invite: &InviteRecord,
        notice: Option<&NoticeRecord>,
    ) -> Result<(), StorageError> {
        let ikey = key_bytes(id);
        let rec = encode(invite);
        let n = notice.map(|n| (outbox::notice_key(n), encode(n)));
        (&self.invites, &self.outbox)
            .transaction(|(invites, outbox)| {
                invites.insert(ikey.as_slice(), rec.as_slice())?;
                if let Some((k, v)) = &n {
                    outbox.insert(k.as_slice(), v.as_slice())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<StorageError>>(())
            })
            .map_err(tx_error)
    }

    /// The invite with this id.
    pub fn invite(&self, id: &[u8; 16]) -> Result<Option<InviteRecord>, StorageError> {
        get(&self.invites, "invites", &key_bytes(id))
    }

    // ---- challenges and sessions ----

    /// Stores a sign-in challenge.
    pub fn put_challenge(
        &self,
        id: &[u8; 16],
        challenge: &ChallengeRecord,
    ) -> Result<(), StorageError> {
        self.challenges.insert(key_bytes(id), encode(challenge))?;
        Ok(())
    }

    /// Removes and returns a challenge: each can be answered once.
    pub fn take_challenge(&self, id: &[u8; 16]) -> Result<Option<ChallengeRecord>, StorageError> {
        match self.challenges.remove(key_bytes(id))? {
            Some(v) => Ok(Some(decode(&v, "challenges")?)),
            None => Ok(None),
        }
    }

    /// Stores a session under the SHA-256 of its token.
    pub fn put_session(
        &self,
        token_hash: &[u8; 32],
        session: &SessionRecord,
    ) -> Result<(), StorageError> {
        self.sessions
            .insert(key_bytes(token_hash), encode(session))?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`.
    pub fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StorageError> {
        get(&self.sessions, "sessions", &key_bytes(token_hash))
    }

    /// Deletes a session.
    pub fn remove_session(&self, token_hash: &[u8; 32]) -> Result<(), StorageError> {
        self.sessions.remove(key_bytes(token_hash))?;
        Ok(())
    }

    /// Removes expired challenges, sessions and invites; returns how many records went.
    pub fn purge_expired(&self, now: i64) -> Result<usize, StorageError> {
        let mut n = 0;
        for r in self.challenges.iter() {
            let (k, v) = r?;
            let c: ChallengeRecord = decode(&v, "challenges")?;
            if c.expires_at < now {
                self.challenges.remove(k)?;
                n += 1;
            }
        }
        for r in self.sessions.iter() {
            let (k, v) = r?;
            let s: SessionRecord = decode(&v, "sessions")?;
            if s.expires_at < now {
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- items ----

    /// Stores an item record (new or updated).
    pub fn put_item(&self, item: &ItemRecord) -> Result<(), StorageError> {
        self.items.insert(key_bytes(&item.id), encode(item))?;
        Ok(())
    }

    /// The item record with this id, committed or not.
    pub fn item(&self, id: &[u8; 16]) -> Result<Option<ItemRecord>, StorageError> {
        get(&self.items, "items", &key_bytes(id))
    }

    /// Marks `item` committed and stores its key packages, atomically.
    pub fn commit_item(
        &self,
        item: &ItemRecord,
        packages: &[(String, Vec<u8>)],
    ) -> Result<(), StorageError> {
        let ikey = key_bytes(&item.id);
        let rec = encode(item);
        let pk: Vec<(Vec<u8>, Vec<u8>)> = packages
            .iter()
            .map(|(email, p)| (package_key(&item.id, email), versioned_raw(p)))
            .collect();
        (&self.items, &self.key_packages)
            .transaction(|(items, kps)| {
                for (k, v) in &pk {
                    kps.insert(k.as_slice(), v.as_slice())?;
                }
                items.insert(ikey.as_slice(), rec.as_slice())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<StorageError>>(())
            })
            .map_err(tx_error)
    }

    /// `email`'s key package for `item`.
    pub fn key_package(
        &self,
        item: &[u8; 16],
        email: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        match self.key_packages.get(package_key(item, email))? {
            Some(v) => match v.split_first() {
                Some((&FORMAT_VERSION, rest)) => Ok(Some(rest.to_vec())),
                _ => Err(StorageError::Corrupt {
                    tree: "key_packages",
                }),
            },
            None => Ok(None),
        }
    }

    /// Whether `email` holds a key package for `item`.
    pub fn has_key_package(&self, item: &[u8; 16], email: &str) -> Result<bool, StorageError> {
        Ok(self.key_packages.contains_key(package_key(item, email))?)
    }

    /// Deletes uncommitted items last touched before `cutoff`, with their chunks. Returns how
    /// many went.
    pub fn delete_abandoned(&self, cutoff: i64) -> Result<usize, StorageError> {
        let mut n = 0;
        for r in self.items.iter() {
            let (k, v) = r?;
            let item: ItemRecord = decode(&v, "items")?;
            if !item.committed && item.updated_at < cutoff {
                self.blobs.delete_item(&item.id)?;
                self.items.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- messages ----

    /// Stores a message with its inbox, sent and contact index entries in one transaction.
    pub fn put_message(&self, m: &MessageRecord) -> Result<(), StorageError> {
        self.put_message_with_notices(m, &[])
    }

    /// [`Store::put_message`] with the message's notices in the same transaction (so the same
    /// flush makes both durable).
    pub fn put_message_with_notices(
        &self,
        m: &MessageRecord,
        notices: &[NoticeRecord],
    ) -> Result<(), StorageError> {
        let notices: Vec<(Vec<u8>, Vec<u8>)> = notices
            .iter()
            .map(|n| (outbox::notice_key(n), encode(n)))
            .collect();
        let mkey = key_bytes(&m.id);
        let rec = encode(m);
        let suffix = index_suffix(m.sent_at, &m.id);
        let sent_key = index_key(&m.from, &suffix);
        let inbox_keys: Vec<Vec<u8>> = m.to.iter().map(|t| index_key(t, &suffix)).collect();
        let mut pairs = Vec::new();
        for t in &m.to {
            pairs.push(pair_key(&m.from, t));
            pairs.push(pair_key(t, &m.from));
        }
        (
            &self.messages,
            &self.inbox,
            &self.sent,
            &self.contacts,
            &self.outbox,
        )
            .transaction(|(msgs, inbox, sent, contacts, outbox)| {
                msgs.insert(mkey.as_slice(), rec.as_slice())?;
                for (k, v) in &notices {
                    outbox.insert(k.as_slice(), v.as_slice())?;
                }
                sent.insert(sent_key.as_slice(), &[][..])?;
                for k in &inbox_keys {
                    inbox.insert(k.as_slice(), &[][..])?;
                }
                for k in &pairs {
                    contacts.insert(k.as_slice(), &[][..])?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<StorageError>>(())
            })
            .map_err(tx_error)
    }

    /// The message with this id.
    pub fn message(&self, id: &[u8; 16]) -> Result<Option<MessageRecord>, StorageError> {
        get(&self.messages, "messages", &key_bytes(id))
    }

    /// One page of `email`'s inbox (or sent box), newest first, starting after the cursor
    /// `before` (an index suffix from a previous page). Returns the page and the next cursor.
    pub fn message_page(
        &self,
        email: &str,
        sent: bool,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<MessageRecord>, Option<Vec<u8>>), StorageError> {
        let tree = if sent { &self.sent } else { &self.inbox };
        let prefix = index_key(email, &[]);
        let start = match before {
            Some(c) => {
                // Strictly after the cursor: append a byte so the cursor itself is excluded.
                let mut k = index_key(email, c);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        let mut next = None;
        for r in tree.range(start..) {
            let (k, _) = r?;
            if !k.starts_with(&prefix) {
                break;
            }
            let suffix = &k[prefix.len()..];
            if out.len() == limit {
                next = out
                    .last()
                    .map(|m: &MessageRecord| index_suffix(m.sent_at, &m.id));
                break;
            }
            let id: [u8; 16] = suffix
                .get(8..24)
                .and_then(|s| s.try_into().ok())
                .ok_or(StorageError::Corrupt { tree: "inbox" })?;
            let m = self
                .message(&id)?
                .ok_or(StorageError::Corrupt { tree: "messages" })?;
            out.push(m);
        }
        Ok((out, next))
    }

    /// Whether `a` and `b` have exchanged a message.
    pub fn are_correspondents(&self, a: &str, b: &str) -> Result<bool, StorageError> {
        Ok(self.contacts.contains_key(pair_key(a, b))?)
    }

    /// The emails `email` has exchanged messages with.
    pub fn correspondents(&self, email: &str) -> Result<Vec<String>, StorageError> {
        let prefix = index_key(email, &[]);
        self.contacts
            .scan_prefix(&prefix)
            .map(|r| {
                let (k, _) = r?;
                String::from_utf8(k[prefix.len()..].to_vec())
                    .map_err(|_| StorageError::Corrupt { tree: "contacts" })
            })
            .collect()
    }

    // ---- audit ----

    /// Appends an entry to the hash-chained audit log (not yet durable: call
    /// [`Store::commit`]).
    pub fn audit(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        object: &str,
    ) -> Result<(), StorageError> {
        // The head lock is held only for one insert, never across an await.
        let mut head = self
            .audit_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = AuditEntry {
            seq: head.next_seq,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            object: object.to_owned(),
            prev: crate::wire::to_hex(&head.last_hash),
        };
        let bytes = encode(&entry);
        self.audit
            .insert(key_u64_bytes(entry.seq), bytes.as_slice())?;
        head.next_seq += 1;
        head.last_hash = sha256(&bytes);
        Ok(())
    }

    /// Every audit entry in order, and whether the hash chain is intact.
    pub fn audit_log(&self) -> Result<(Vec<AuditEntry>, bool), StorageError> {
        let mut prev = [0u8; 32];
        let mut ok = true;
        let mut out = Vec::new();
        for r in self.audit.iter() {
            let (_, v) = r?;
            let e: AuditEntry = decode(&v, "audit")?;
            ok &= e.prev == crate::wire::to_hex(&prev);
            prev = sha256(&v);
            out.push(e);
        }
        Ok((out, ok))
    }

    /// The underlying database (for size reports).
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.db.size_on_disk()?)
    }
}

// ---- encoding helpers ----

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serialising these plain records to JSON cannot fail (no maps with non-string keys).
    serde_json::to_writer(&mut out, record).expect("records serialise");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8], tree: &'static str) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|_| StorageError::Corrupt { tree })
        }
        _ => Err(StorageError::Corrupt { tree }),
    }
}

fn versioned_raw(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(FORMAT_VERSION);
    v.extend_from_slice(bytes);
    v
}

fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match tree.get(key)? {
        Some(v) => Ok(Some(decode(&v, name)?)),
        None => Ok(None),
    }
}

fn key_bytes(b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(b.len() + 1);
    k.push(FORMAT_VERSION);
    k.extend_from_slice(b);
    k
}

fn key_str(s: &str) -> Vec<u8> {
    key_bytes(s.as_bytes())
}

fn key_u64_bytes(n: u64) -> Vec<u8> {
    key_bytes(&n.to_be_bytes())
}

fn key_u64(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
}

fn package_key(item: &[u8; 16], email: &str) -> Vec<u8> {
    let mut k = key_bytes(item);
    k.extend_from_slice(email.as_bytes());
    k
}

/// `version || email || 0 || suffix`: emails never contain a NUL byte (checked at join).
fn index_key(email: &str, suffix: &[u8]) -> Vec<u8> {
    let mut k = key_str(email);
    k.push(0);
    k.extend_from_slice(suffix);
    k
}

/// `inverted time (u64 BE) || message id`, so that ascending key order is newest first.
fn index_suffix(sent_at: i64, id: &[u8; 16]) -> Vec<u8> {
    let t = u64::try_from(sent_at).unwrap_or(0);
    let mut s = (u64::MAX - t).to_be_bytes().to_vec();
    s.extend_from_slice(id);
    s
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    index_key(a, b.as_bytes())
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, b);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn tx_error(e: sled::transaction::TransactionError<StorageError>) -> StorageError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StorageError::Db(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::api::Role;

    fn message(id: u8, at: i64, from: &str, to: &str) -> MessageRecord {
        MessageRecord {
            id: [id; 16],
            thread: [id; 16],
            from: from.into(),
            to: vec![to.into()],
            sent_at: at,
            item: [id; 16],
            documents: vec![],
        }
    }

    #[tokio::test]
    async fn inbox_pages_newest_first_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = Store::open(dir.path(), 1 << 20).expect("open");
            for i in 1..=5u8 {
                store
                    .put_message(&message(i, 1000 + i64::from(i), "a@x", "b@x"))
                    .expect("put");
            }
            store.commit().await.expect("commit");
            assert!(store.flush_stats().flushes >= 1);
        }
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        let (page, next) = store.message_page("b@x", false, None, 2).expect("page");
        assert_eq!(page.iter().map(|m| m.id[0]).collect::<Vec<_>>(), [5, 4]);
        let (page, next) = store
            .message_page("b@x", false, next.as_deref(), 2)
            .expect("page 2");
        assert_eq!(page.iter().map(|m| m.id[0]).collect::<Vec<_>>(), [3, 2]);
        let (page, next) = store
            .message_page("b@x", false, next.as_deref(), 2)
            .expect("page 3");
        assert_eq!(page.iter().map(|m| m.id[0]).collect::<Vec<_>>(), [1]);
        assert!(next.is_none());
        let (sent, _) = store.message_page("a@x", true, None, 10).expect("sent");
        assert_eq!(sent.len(), 5);
        assert!(store.are_correspondents("b@x", "a@x").expect("pair"));
        assert!(!store.are_correspondents("b@x", "c@x").expect("pair"));
    }

    #[tokio::test]
    async fn invite_is_used_once_and_audit_chain_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let invite = InviteRecord {
            secret_sha256: [7; 32],
            email: None,
            name: None,
            role: Role::Admin,
            invited_by: None,
            expires_at: 10,
            used: false,
        };
        store.put_invite(&[1; 16], &invite).expect("invite");
        let account = |email: &str| AccountRecord {
            email: email.into(),
            name: "n".into(),
            role: Role::Admin,
            public_keys: vec![0; 64],
            created_at: 0,
        };
        assert_eq!(
            store
                .join(&[1; 16], &invite, &account("a@x"))
                .expect("join"),
            JoinOutcome::Joined
        );
        assert_eq!(
            store
                .join(&[1; 16], &invite, &account("b@x"))
                .expect("join"),
            JoinOutcome::InviteUsed
        );
        for i in 0..3 {
            store.audit(i, "a@x", "item.read", "00").expect("audit");
        }
        let (entries, intact) = store.audit_log().expect("log");
        assert_eq!(entries.len(), 3);
        assert!(intact);
    }
}
