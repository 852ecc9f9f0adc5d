//! Storage in sled: versioned records under versioned big-endian keys, group commit, the
//! ciphertext blob store and the hash-chained audit log.
//!
//! Owns every byte the server keeps on disk. It stores only ciphertext, public keys and the
//! metadata the server needs to route and authorize (emails, ids, sizes, times); it must never
//! see a plaintext, a secret key or a session token (tokens and invite secrets arrive here
//! already hashed). Layout and durability are written down in `docs/STORAGE.md`.

mod audit;
mod backup;
mod blobs;
mod commit;
mod group;
mod legal;
mod outbox;
mod records;
mod uploads;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::ConflictableTransactionError::Abort;
use sled::transaction::TransactionalTree;

pub use audit::{AuditEvent, StoredCheckpoint};
pub use backup::{BackupError, BackupReport, Writing};
pub use blobs::{BlobStore, BlobStoreKind, ChunkWriter, FileBlobs, SEALED_CHUNK, SledBlobs};
pub use commit::FlushStats;
pub use legal::{AddOutcome, DeletionCounts};
pub use outbox::{NoticeKind, NoticeRecord, NoticeState};
pub use records::{
    AccountRecord, ChallengeRecord, GrantRecord, InviteRecord, ItemRecord, MatterHeadRecord,
    MatterRecord, MessageRecord, SessionRecord, SignatureRecord,
};

/// The stored audit entry: the wire format itself (`crate::wire::audit`), so that what the
/// server stores is byte for byte what verifiers hash.
pub use crate::wire::audit::AuditEntry;

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
    /// A record would exceed its stored size limit.
    #[error("record too long for tree {tree}")]
    TooLong {
        /// The tree.
        tree: &'static str,
    },
    /// A record changed between reading and writing it (a concurrent request); try again.
    #[error("a concurrent change conflicted")]
    Conflict,
    /// The data folder cannot be opened with these settings.
    #[error("{0}")]
    Settings(String),
    /// A message names an item filed in another matter (or in a matter, for a message outside
    /// any).
    #[error("item {} belongs to another matter", crate::wire::to_hex(item))]
    OtherMatter {
        /// The item's id.
        item: [u8; 16],
    },
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

/// How many times a write is built again from what is stored when a concurrent write changed
/// what it read.
const WRITE_TRIES: usize = 8;

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
    audit_objects: sled::Tree,
    checkpoints: sled::Tree,
    matters: sled::Tree,
    matter_index: sled::Tree,
    matter_heads: sled::Tree,
    signatures: sled::Tree,
    grants: sled::Tree,
    grant_index: sled::Tree,
    person_index: sled::Tree,
    schedule: sled::Tree,
    outbox: sled::Tree,
    /// Notices in a final state, kept 30 days for administrators (see `outbox.rs`).
    outbox_final: sled::Tree,
    chunk_digests: sled::Tree,
    usage: sled::Tree,
    blobs: Blobs,
    audit_head: Arc<Mutex<AuditHead>>,
    committer: commit::Committer,
    /// Held shared by writers, exclusively by a backup ([`Store::writing`], [`Store::backup`]).
    gate: backup::Gate,
    /// The data folder.
    dir: PathBuf,
}

/// The audit log's tail, kept in memory under one lock so that entries are numbered and
/// chained in the order they are written.
struct AuditHead {
    next_seq: u64,
    last_hash: [u8; 32],
    /// Matters whose chain advanced since the last checkpoint.
    dirty: BTreeSet<[u8; 16]>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The chunk store in use.
#[derive(Clone)]
enum Blobs {
    Sled(SledBlobs),
    Files(FileBlobs),
}

/// Where documents are kept and how much of the disk they may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// The blob store of a new data folder (an existing one keeps its own).
    pub blob_store: BlobStoreKind,
    /// Ciphertext bytes a client or co-counsel account may hold (`None`: no limit).
    pub quota_bytes: Option<u64>,
    /// Ciphertext bytes a firm account (admin, attorney, staff) may hold (`None`: no limit).
    pub firm_quota_bytes: Option<u64>,
    /// Free bytes the data folder's file system keeps: an upload that would leave less is
    /// refused.
    pub disk_reserve_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            blob_store: BlobStoreKind::default(),
            quota_bytes: Some(10 << 30),
            firm_quota_bytes: None,
            disk_reserve_bytes: 1 << 30,
        }
    }
}

impl StorageSettings {
    /// The quota of an account with `role`.
    pub fn quota_for(&self, role: crate::wire::api::Role) -> Option<u64> {
        use crate::wire::api::Role;
        match role {
            Role::Admin | Role::Attorney | Role::Staff => self.firm_quota_bytes,
            Role::Client | Role::Cocounsel => self.quota_bytes,
        }
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir` (`statvfs`'s
/// `f_bavail × f_frsize`).
pub fn free_space(dir: &Path) -> Result<u64, StorageError> {
    Ok(fs2::available_space(dir)?)
}

/// What names an item, for [`Store::keep_in_matter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    Message,
    Grant,
}

/// A message's own item sent whole with it (one short chunk), stored with the message by
/// [`Store::put_message_audited`]: its record (committed), its key packages by reader email,
/// and the uploader's quota.
#[derive(Debug, Clone, Copy)]
pub struct SealedItem<'a> {
    /// The item's record.
    pub record: &'a ItemRecord,
    /// `(reader email, age file)` for each reader.
    pub packages: &'a [(String, Vec<u8>)],
    /// The uploader's quota in bytes, if any.
    pub limit: Option<u64>,
    /// The item's one chunk, shorter than [`SEALED_CHUNK`]: stored in sled's `chunks` tree in
    /// the same transaction, where either blob store keeps an item of one short chunk.
    pub chunk: &'a [u8],
}

/// How much ciphertext an account holds against its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Bytes the account holds.
    pub used: u64,
    /// Its limit.
    pub limit: u64,
}

/// Key in `meta` of the blob store a data folder was created with.
const META_BLOB_STORE: &[u8] = b"\x01blob_store";
/// Key in `meta` set once `usage` counts every item.
const META_USAGE: &[u8] = b"\x01usage";
/// Key in `meta` set once final notices are kept apart from the outbox (`outbox_final`).
const META_FINAL_NOTICES: &[u8] = b"\x01final_notices";

impl Store {
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`, with the
    /// blob store the folder was created with (the default for a new folder). Must be called
    /// inside a tokio runtime: it starts the group-commit task.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        Self::open_with(dir, cache_bytes, None)
    }

    /// [`Store::open`], asking for a blob store: a new folder is created with `blob_store`
    /// (`None`: the default); an existing one must have been created with it, since its chunks
    /// are where that store put them.
    pub fn open_with(
        dir: &Path,
        cache_bytes: u64,
        blob_store: Option<BlobStoreKind>,
    ) -> Result<Self, StorageError> {
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
        let checkpoints = tree("checkpoints")?;
        let audit_head = audit::head_at_open(&audit, &checkpoints)?;
        let meta = tree("meta")?;
        let chunks = tree("chunks")?;
        let kind = match meta.get(META_BLOB_STORE)? {
            Some(v) => std::str::from_utf8(v.get(1..).unwrap_or_default())
                .ok()
                .and_then(|k| k.parse::<BlobStoreKind>().ok())
                .ok_or(StorageError::Corrupt { tree: "meta" })?,
            // A folder from before the setting kept its chunks in sled.
            None if !chunks.is_empty() => BlobStoreKind::Sled,
            None => blob_store.unwrap_or_default(),
        };
        if blob_store.is_some_and(|asked| asked != kind) {
            return Err(StorageError::Settings(format!(
                "the data folder {} keeps its documents in the `{kind}` blob store; it cannot be \
                 opened with blob_store = {}",
                dir.display(),
                blob_store.unwrap_or_default()
            )));
        }
        meta.insert(META_BLOB_STORE, versioned_raw(kind.as_str().as_bytes()))?;
        let sled_blobs = SledBlobs::new(chunks);
        let blobs = match kind {
            BlobStoreKind::Sled => Blobs::Sled(sled_blobs),
            BlobStoreKind::Files => Blobs::Files(FileBlobs::open(dir.join("chunks"), sled_blobs)?),
        };
        let audit_head = Arc::new(Mutex::new(audit_head));
        let audit_objects = tree("audit_objects")?;
        let matter_heads = tree("matter_heads")?;
        let matter_index = tree("matter_index")?;
        let applier = group::Applier::new(
            [
                audit.clone(),
                audit_objects.clone(),
                matter_heads.clone(),
                matter_index.clone(),
            ],
            audit_head.clone(),
        );
        let committer = commit::Committer::start(db.clone(), dir, applier)?;
        let store = Self {
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
            outbox_final: tree("outbox_final")?,
            chunk_digests: tree("chunk_digests")?,
            usage: tree("usage")?,
            blobs,
            audit_objects,
            matters: tree("matters")?,
            matter_index,
            matter_heads,
            signatures: tree("signatures")?,
            grants: tree("grants")?,
            grant_index: tree("grant_index")?,
            person_index: tree("person_index")?,
            schedule: tree("schedule")?,
            checkpoints,
            audit,
            audit_head,
            committer,
            gate: backup::Gate::default(),
            dir: dir.to_path_buf(),
            db,
        };
        if meta.get(META_USAGE)?.is_none() {
            store.count_usage()?;
            meta.insert(META_USAGE, versioned_raw(&[]))?;
        }
        if meta.get(META_FINAL_NOTICES)?.is_none() {
            store.move_final_notices()?;
            meta.insert(META_FINAL_NOTICES, versioned_raw(&[]))?;
        }
        Ok(store)
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
        match &self.blobs {
            Blobs::Sled(b) => b,
            Blobs::Files(b) => b,
        }
    }

    /// sled's `chunks` tree, where both blob stores keep items of one short chunk.
    fn sled_chunks(&self) -> &sled::Tree {
        match &self.blobs {
            Blobs::Sled(b) => b.tree(),
            Blobs::Files(b) => b.small().tree(),
        }
    }

    /// Which blob store holds the chunks.
    pub fn blob_store(&self) -> BlobStoreKind {
        match &self.blobs {
            Blobs::Sled(_) => BlobStoreKind::Sled,
            Blobs::Files(_) => BlobStoreKind::Files,
        }
    }

    /// The file blob store, when it is the one in use (for store scans in tests).
    pub fn file_blobs(&self) -> Option<&FileBlobs> {
        match &self.blobs {
            Blobs::Files(b) => Some(b),
            Blobs::Sled(_) => None,
        }
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

    /// Marks `item` committed and stores its key packages, atomically; then drops the chunk
    /// digests kept for the upload.
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
            .map_err(tx_error)?;
        self.forget_chunk_digests(&item.id)
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
            let (_, v) = r?;
            let item: ItemRecord = decode(&v, "items")?;
            if !item.committed && item.updated_at < cutoff {
                self.remove_item(&item)?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- messages ----

    /// Stores a message with its inbox, sent and contact index entries in one transaction. A
    /// message in a matter also tags its items with the matter and enters the matter's index,
    /// in the same transaction. The server stores messages with [`Store::put_message_audited`];
    /// this serves the storage tests.
    #[cfg(test)]
    pub(crate) fn put_message(&self, m: &MessageRecord) -> Result<(), StorageError> {
        if self.apply(self.message_batch(m, &[], None)?)? {
            Ok(())
        } else {
            Err(StorageError::Conflict)
        }
    }

    /// Stores a message with its inbox, sent and contact index entries, its notices, the audit
    /// entries of `events` (by `actor` from `addr` at `at`) and its own item when it was sent
    /// whole (`item`), all in one transaction: nothing of the send is stored unless all of it
    /// is. A message in a matter also files its items in the matter and enters the matter's
    /// index; an item filed in another matter is refused (`StorageError::OtherMatter`). Refuses, storing
    /// nothing, if the item would take its uploader past the quota. Retries a few times when
    /// a concurrent write changed what it read (the uploader's usage, a document's record).
    /// Durable after [`Store::commit`]; [`Store::send_message`] applies it with the other
    /// writes of the next flush instead.
    pub fn put_message_audited(
        &self,
        m: &MessageRecord,
        notices: &[NoticeRecord],
        (at, actor, addr): (i64, &str, &str),
        events: &[AuditEvent<'_>],
        item: Option<&SealedItem<'_>>,
    ) -> Result<Result<(), OverQuota>, StorageError> {
        for _ in 0..WRITE_TRIES {
            let b = match self.message_write(m, notices, item)? {
                Ok(b) => b,
                Err(over) => return Ok(Err(over)),
            };
            match self.apply_audited(b, at, actor, addr, events) {
                Err(StorageError::Conflict) => continue,
                r => return r.map(|_| Ok(())),
            }
        }
        Err(StorageError::Conflict)
    }

    /// [`Store::put_message_audited`], applied by the group-commit task in one transaction
    /// with the other writes waiting for the same flush (see `group.rs`), and durable when it
    /// returns. No lock of the caller can be held across it: a send that must stay under one
    /// (a message filed in a matter) uses `put_message_audited`.
    pub async fn send_message(
        &self,
        m: &MessageRecord,
        notices: &[NoticeRecord],
        by: (i64, &str, &str),
        events: &[AuditEvent<'_>],
        item: Option<&SealedItem<'_>>,
    ) -> Result<Result<(), OverQuota>, StorageError> {
        for _ in 0..WRITE_TRIES {
            let b = match self.message_write(m, notices, item)? {
                Ok(b) => b,
                Err(over) => return Ok(Err(over)),
            };
            if self
                .committer
                .apply(group::Grouped::new(b, by, events))
                .await?
                .is_some()
            {
                return Ok(Ok(()));
            }
        }
        Err(StorageError::Conflict)
    }

    /// The writes of a send (see [`Store::put_message_audited`]) as stored now, or the quota
    /// refusal of its item.
    fn message_write(
        &self,
        m: &MessageRecord,
        notices: &[NoticeRecord],
        item: Option<&SealedItem<'_>>,
    ) -> Result<Result<Batch<'_>, OverQuota>, StorageError> {
        let mut b = self.message_batch(m, notices, item.map(|i| i.record.id))?;
        if let Some(item) = item {
            // The item joins the message's matter, if any.
            let record = ItemRecord {
                matter: m.matter,
                ..item.record.clone()
            };
            let item = SealedItem {
                record: &record,
                ..*item
            };
            if let Err(over) = self.add_sealed_item(&mut b, &item)? {
                return Ok(Err(over));
            }
        }
        Ok(Ok(b))
    }

    /// The writes that store a message and its notices (see [`Store::put_message_audited`]). `sealed`
    /// names the message's item when it is stored in the same batch (its record is not read).
    fn message_batch(
        &self,
        m: &MessageRecord,
        notices: &[NoticeRecord],
        sealed: Option<[u8; 16]>,
    ) -> Result<Batch<'_>, StorageError> {
        let mut b = Batch::default();
        b.put(&self.messages, key_bytes(&m.id), encode(m));
        for n in notices {
            b.put(&self.outbox, outbox::notice_key(n), encode(n));
        }
        let suffix = index_suffix(m.sent_at, &m.id);
        b.put(&self.sent, index_key(&m.from, &suffix), Vec::new());
        for t in &m.to {
            b.put(&self.inbox, index_key(t, &suffix), Vec::new());
            b.put(&self.contacts, pair_key(&m.from, t), Vec::new());
            b.put(&self.contacts, pair_key(t, &m.from), Vec::new());
        }
        if let Some(matter) = m.matter {
            b.put(
                &self.matter_index,
                legal::matter_key(&matter, legal::MATTER_MESSAGE, &suffix),
                Vec::new(),
            );
        }
        for id in std::iter::once(&m.item).chain(m.documents.iter().map(|(d, _)| d)) {
            if sealed != Some(*id) {
                self.keep_in_matter(&mut b, id, m.matter, Naming::Message)?;
            }
            if let Some(matter) = m.matter {
                b.put(
                    &self.matter_index,
                    legal::matter_key(&matter, legal::MATTER_ITEM, id),
                    Vec::new(),
                );
            }
        }
        Ok(b)
    }

    /// Adds to `b` what keeps item `id` in the one matter it was first filed in, for a record
    /// in `matter` that names it: refuses (`OtherMatter`) if the item is in another matter, or
    /// in any for a record outside matters; a message files a loose item into its matter (a
    /// grant refuses it). Where a concurrent send could still file the item, `b` applies only
    /// if the item's record is the one read here, so the loser of the race conflicts and its
    /// retry refuses. A missing record is corrupt, except for a message outside matters, which
    /// has never needed it.
    fn keep_in_matter<'s>(
        &'s self,
        b: &mut Batch<'s>,
        id: &[u8; 16],
        matter: Option<[u8; 16]>,
        naming: Naming,
    ) -> Result<(), StorageError> {
        let key = key_bytes(id);
        let Some(current) = self.items.get(&key)? else {
            if matter.is_some() || naming == Naming::Grant {
                return Err(StorageError::Corrupt { tree: "items" });
            }
            b.expect(&self.items, key, None);
            return Ok(());
        };
        let mut item: ItemRecord = decode(&current, "items")?;
        match (item.matter, matter) {
            (Some(theirs), ours) if Some(theirs) != ours => {
                Err(StorageError::OtherMatter { item: *id })
            }
            // Already in this matter, which it never leaves.
            (Some(_), _) => Ok(()),
            (None, None) => {
                b.expect(&self.items, key, Some(current.to_vec()));
                Ok(())
            }
            (None, Some(ours)) if naming == Naming::Message => {
                item.matter = Some(ours);
                b.expect(&self.items, key.clone(), Some(current.to_vec()));
                b.put(&self.items, key, encode(&item));
                Ok(())
            }
            (None, Some(_)) => Err(StorageError::OtherMatter { item: *id }),
        }
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
        self.page(tree, index_key(email, &[]), before, limit)
    }

    /// Pages through an index whose keys are `prefix || inverted time || message id`.
    fn page(
        &self,
        tree: &sled::Tree,
        prefix: Vec<u8>,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<MessageRecord>, Option<Vec<u8>>), StorageError> {
        let start = match before {
            Some(c) => {
                // Strictly after the cursor: append a byte so the cursor itself is excluded.
                let mut k = prefix.clone();
                k.extend_from_slice(c);
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

    /// The underlying database (for size reports).
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.db.size_on_disk()?)
    }

    /// How many keys of tree `tree` start with `prefix` (the version byte included): for
    /// tests and operators checking that a deletion left nothing behind. `None` for a tree
    /// that does not exist. `chunks` with an item's prefix (`version || item id`) counts the
    /// item's chunks in whichever blob store holds them.
    pub fn count_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Option<usize>, StorageError> {
        if let ("chunks", [FORMAT_VERSION, id @ ..]) = (tree, prefix) {
            if let Ok(id) = <[u8; 16]>::try_from(id) {
                return Ok(Some(self.blobs().count(&id)?));
            }
        }
        if !self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == tree.as_bytes())
        {
            return Ok(None);
        }
        let t = self.db.open_tree(tree)?;
        let mut n = 0;
        for r in t.scan_prefix(prefix).keys() {
            r?;
            n += 1;
        }
        Ok(Some(n))
    }

    /// Applies `b` in one sled transaction if every expectation in it still holds and no count
    /// passes its limit; returns whether it was applied.
    fn apply(&self, b: Batch<'_>) -> Result<bool, StorageError> {
        if b.trees.is_empty() {
            return Ok(true);
        }
        let slots: Vec<usize> = (0..b.trees.len()).collect();
        b.trees
            .as_slice()
            .transaction(|views| {
                let Some(counted) = b.ops.check(views, &slots)?.map_err(Abort)? else {
                    return Ok(false);
                };
                b.ops.stage(views, &slots, &counted)?;
                Ok(true)
            })
            .map_err(tx_error)
    }
}

/// Writes (and the values some keys must still have) for one transaction across trees.
#[derive(Default)]
struct Batch<'a> {
    trees: Vec<&'a sled::Tree>,
    ops: Ops,
}

impl<'a> Batch<'a> {
    fn slot(&mut self, tree: &'a sled::Tree) -> usize {
        match self.trees.iter().position(|t| std::ptr::eq(*t, tree)) {
            Some(i) => i,
            None => {
                self.trees.push(tree);
                self.trees.len() - 1
            }
        }
    }

    fn put(&mut self, tree: &'a sled::Tree, key: Vec<u8>, value: Vec<u8>) {
        let t = self.slot(tree);
        self.ops.writes.push((t, key, Some(value)));
    }

    fn remove(&mut self, tree: &'a sled::Tree, key: Vec<u8>) {
        let t = self.slot(tree);
        self.ops.writes.push((t, key, None));
    }

    /// Applies the batch only if `key` still holds `value` (`None`: is absent).
    fn expect(&mut self, tree: &'a sled::Tree, key: Vec<u8>, value: Option<Vec<u8>>) {
        let t = self.slot(tree);
        self.ops.guards.push((t, key, value));
    }

    /// Grows the counter at `key` (`0x01` ‖ u64 BE, absent: 0) by `delta` when the batch is
    /// applied, reading it then, so that concurrent batches adding to one counter do not
    /// conflict; the batch is not applied if an increase would pass `limit`.
    fn grow(&mut self, tree: &'a sled::Tree, key: Vec<u8>, delta: i64, limit: Option<u64>) {
        let t = self.slot(tree);
        self.ops.counts.push((t, key, delta, limit));
    }

    /// The batch with its trees held, to be applied later, on another thread.
    fn owned(self) -> (Vec<sled::Tree>, Ops) {
        (self.trees.into_iter().cloned().collect(), self.ops)
    }
}

/// What a batch does, each tree named by its position among the batch's trees.
#[derive(Default)]
struct Ops {
    writes: Vec<(usize, Vec<u8>, Option<Vec<u8>>)>,
    guards: Vec<(usize, Vec<u8>, Option<Vec<u8>>)>,
    counts: Vec<(usize, Vec<u8>, i64, Option<u64>)>,
}

/// What a look inside a transaction found: `Err` outside for sled (which may retry the
/// transaction), inside for a record that does not decode.
type Checked<T> = Result<Result<T, StorageError>, sled::transaction::UnabortableTransactionError>;

impl Ops {
    /// Whether every expectation holds in `views` (tree `i` of the batch is `views[at[i]]`),
    /// which show what the transaction staged so far, and no count passes its limit: `Some`
    /// with each counter's value after the counts, to stage with [`Ops::stage`], if so.
    fn check(
        &self,
        views: &[TransactionalTree],
        at: &[usize],
    ) -> Checked<Option<Vec<Counted<'_>>>> {
        for (t, k, expected) in &self.guards {
            if views[at[*t]].get(k)?.as_deref() != expected.as_deref() {
                return Ok(Ok(None));
            }
        }
        // Each counter as the counts before in this batch leave it.
        let mut counted: Vec<Counted<'_>> = Vec::new();
        for (t, k, delta, limit) in &self.counts {
            let used = match counted
                .iter()
                .position(|(ct, ck, _)| ct == t && *ck == k.as_slice())
            {
                Some(i) => counted.swap_remove(i).2,
                None => match uploads::read_usage(views[at[*t]].get(k)?.as_deref()) {
                    Ok(used) => used,
                    Err(e) => return Ok(Err(e)),
                },
            };
            let Ok(after) = uploads::grown(used, *delta, *limit) else {
                return Ok(Ok(None));
            };
            counted.push((*t, k, after));
        }
        Ok(Ok(Some(counted)))
    }

    /// Stages the writes and the counters' values from [`Ops::check`] into `views`.
    fn stage(
        &self,
        views: &[TransactionalTree],
        at: &[usize],
        counted: &[Counted<'_>],
    ) -> Result<(), sled::transaction::UnabortableTransactionError> {
        for (t, k, v) in &self.writes {
            match v {
                Some(v) => views[at[*t]].insert(k.as_slice(), v.as_slice())?,
                None => views[at[*t]].remove(k.as_slice())?,
            };
        }
        for (t, k, after) in counted {
            views[at[*t]].insert(*k, versioned_raw(&after.to_be_bytes()))?;
        }
        Ok(())
    }
}

/// A counter of a batch (tree position, key) and its value once the batch's counts are added.
type Counted<'a> = (usize, &'a [u8], u64);

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

/// The stored bytes of the record at `key` if they still decode to `old`: what a batch that
/// replaces `old` expects to find. `None` if the record is gone or has changed.
fn stored_as<T: DeserializeOwned + PartialEq>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
    old: &T,
) -> Result<Option<Vec<u8>>, StorageError> {
    let raw = tree.get(key)?;
    Ok(if decodes_to(raw.as_deref(), name, old)? {
        raw.map(|r| r.to_vec())
    } else {
        None
    })
}

/// Whether `raw` (a stored record, if any) is `old`. Decoded records are compared, not
/// `encode(old)`: a record written by an earlier version (byte strings as arrays of numbers)
/// encodes differently now.
fn decodes_to<T: DeserializeOwned + PartialEq>(
    raw: Option<&[u8]>,
    name: &'static str,
    old: &T,
) -> Result<bool, StorageError> {
    match raw {
        Some(raw) => Ok(decode::<T>(raw, name)? == *old),
        None => Ok(false),
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

/// A time as a key component: non-negative, big-endian.
fn time_be(t: i64) -> [u8; 8] {
    u64::try_from(t).unwrap_or(0).to_be_bytes()
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
    /// `record` stored as versions before base64 byte strings wrote it: each field named in
    /// `byte_fields` as an array of numbers.
    pub(super) fn legacy_form<T: serde::Serialize>(record: &T, byte_fields: &[&str]) -> Vec<u8> {
        let mut v = serde_json::to_value(record).expect("value");
        for f in byte_fields {
            let b64 = v[*f].as_str().map(str::to_owned);
            if let Some(b64) = b64 {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64");
                v[*f] = serde_json::json!(raw);
            }
        }
        let mut out = vec![FORMAT_VERSION];
        out.extend_from_slice(&serde_json::to_vec(&v).expect("json"));
        out
    }

    use super::*;
    use crate::wire::api::Role;
    use crate::wire::to_hex;

    fn message(id: u8, at: i64, from: &str, to: &str) -> MessageRecord {
        MessageRecord {
            id: [id; 16],
            thread: [id; 16],
            from: from.into(),
            to: vec![to.into()],
            sent_at: at,
            item: [id; 16],
            documents: vec![],
            matter: None,
        }
    }

    /// A committed item with `chunks` chunks and key packages for `readers`.
    pub(super) fn committed_item(store: &Store, id: [u8; 16], chunks: u32, readers: &[&str]) {
        // Full chunks but the last, as uploads are.
        let mut bytes = Vec::new();
        for i in 0..chunks {
            let len = if i + 1 < chunks { SEALED_CHUNK } else { 100 };
            bytes.extend(std::iter::repeat_n(i as u8, len));
        }
        store.blobs().put_chunks(&id, 0, &bytes).expect("chunks");
        let item = ItemRecord {
            id,
            uploader: readers[0].into(),
            preamble: vec![0; 88],
            received: chunks,
            received_bytes: SEALED_CHUNK as u64 * u64::from(chunks.saturating_sub(1)) + 100,
            committed: true,
            manifest: Some(vec![9; 200]),
            created_at: 1,
            updated_at: 1,
            matter: None,
        };
        let packages: Vec<(String, Vec<u8>)> = readers
            .iter()
            .map(|r| ((*r).to_owned(), vec![1; 300]))
            .collect();
        store.commit_item(&item, &packages).expect("commit item");
    }

    /// The record of item `[id; 16]`, uploaded by a@x as one short chunk of `len` bytes.
    fn sent_whole(id: u8, len: usize) -> ItemRecord {
        ItemRecord {
            id: [id; 16],
            uploader: "a@x".into(),
            preamble: vec![0; 88],
            received: 1,
            received_bytes: len as u64,
            committed: true,
            manifest: Some(vec![9; 200]),
            created_at: 1000,
            updated_at: 1000,
            matter: None,
        }
    }

    #[tokio::test]
    async fn an_item_sent_whole_is_stored_with_its_message_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        assert_eq!(store.blob_store(), BlobStoreKind::Files);
        let chunk = vec![7u8; 1200];
        let record = |id: u8| sent_whole(id, chunk.len());
        let packages = vec![("b@x".to_owned(), vec![1; 300])];
        let send_chunk = |id: u8, limit, chunk: &[u8]| {
            let item = record(id);
            let sealed = SealedItem {
                record: &item,
                packages: &packages,
                limit,
                chunk,
            };
            store.put_message_audited(
                &message(id, 1000, "a@x", "b@x"),
                &[],
                (1000, "a@x", "127.0.0.1"),
                &[],
                Some(&sealed),
            )
        };
        let send = |id: u8, limit| send_chunk(id, limit, &chunk);
        // A full chunk is never an item alone.
        let full = vec![7u8; SEALED_CHUNK];
        assert!(matches!(
            send_chunk(3, None, &full),
            Err(StorageError::TooLong { tree: "chunks" })
        ));
        assert_eq!(store.message(&[3; 16]).expect("read"), None);
        // Over the quota: neither the message, the record nor the chunk is stored.
        assert_eq!(
            send(1, Some(1000)).expect("send"),
            Err(OverQuota {
                used: 0,
                limit: 1000
            })
        );
        assert_eq!(store.message(&[1; 16]).expect("read"), None);
        assert_eq!(store.item(&[1; 16]).expect("read"), None);
        assert_eq!(store.blobs().chunk(&[1; 16], 0).expect("read"), None);
        // Within it: all of them, the chunk read back through the blob store.
        assert_eq!(send(2, Some(2000)).expect("send"), Ok(()));
        assert!(store.message(&[2; 16]).expect("read").is_some());
        assert_eq!(store.item(&[2; 16]).expect("read"), Some(record(2)));
        assert_eq!(
            store.blobs().chunk(&[2; 16], 0).expect("read"),
            Some(chunk.clone())
        );
        assert_eq!(store.blobs().count(&[2; 16]).expect("count"), 1);
        assert_eq!(store.usage("a@x").expect("usage"), chunk.len() as u64);
    }

    /// Sends that wait for one flush are applied together, each as if alone in that order:
    /// counts add up across them, a send whose expectation an earlier one broke is built again
    /// and refused, and the audit chain stays one chain.
    #[tokio::test]
    async fn sends_applied_together_count_guard_and_chain_as_if_one_by_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let chunk = vec![7u8; 1200];
        let packages = vec![("b@x".to_owned(), vec![1; 300])];
        // Five sends of 1,200 bytes each by one uploader whose quota holds three.
        let before = store.flush_stats();
        let mut sends = Vec::new();
        for id in 1..=5u8 {
            let (store, chunk, packages) = (store.clone(), chunk.clone(), packages.clone());
            sends.push(tokio::spawn(async move {
                let record = sent_whole(id, chunk.len());
                let sealed = SealedItem {
                    record: &record,
                    packages: &packages,
                    limit: Some(3_700),
                    chunk: &chunk,
                };
                let id_hex = to_hex(&[id; 16]);
                let events = [
                    AuditEvent {
                        action: "item.commit",
                        object: &id_hex,
                        matter: None,
                    },
                    AuditEvent {
                        action: "message.send",
                        object: &id_hex,
                        matter: None,
                    },
                ];
                store
                    .send_message(
                        &message(id, 1000, "a@x", "b@x"),
                        &[],
                        (1000, "a@x", "127.0.0.1"),
                        &events,
                        Some(&sealed),
                    )
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for s in sends {
            outcomes.push(s.await.expect("task").expect("send"));
        }
        let over = Err(OverQuota {
            used: 3_600,
            limit: 3_700,
        });
        assert_eq!(outcomes, [Ok(()), Ok(()), Ok(()), over, over]);
        let after = store.flush_stats();
        assert_eq!(after.commits - before.commits, 5);
        assert_eq!(
            after.flushes - before.flushes,
            1,
            "one flush carried all five"
        );
        assert_eq!(store.usage("a@x").expect("usage"), 3_600);
        for id in 1..=5u8 {
            assert_eq!(store.message(&[id; 16]).expect("read").is_some(), id <= 3);
            assert_eq!(store.item(&[id; 16]).expect("read").is_some(), id <= 3);
        }
        // Six entries, one chain: each names the hash of the one before.
        let (next, last) = store.audit_head();
        assert_eq!(next, 6);
        let mut prev = [0u8; 32];
        for (seq, stored) in store
            .audit_entries(next)
            .expect("entries")
            .iter()
            .enumerate()
        {
            let e = AuditEntry::from_stored(stored).expect("entry");
            assert_eq!(
                (e.seq, e.prev.as_str()),
                (seq as u64, to_hex(&prev).as_str())
            );
            prev = sha256(stored);
        }
        assert_eq!(prev, last);

        // In one group: a send filing document 9 in a matter, one outside matters naming it,
        // and one filing document 8 in the matter. The second's expectation (9's record
        // unchanged) no longer holds after the first, so it is skipped, built again from what
        // is stored, and refused; the third's entry follows the first's in the matter's chain.
        committed_item(&store, [9; 16], 1, &["a@x", "b@x"]);
        committed_item(&store, [8; 16], 1, &["a@x", "b@x"]);
        let matter = [0x4d; 16];
        let before = store.flush_stats();
        let mut sends = Vec::new();
        for (id, matter) in [(10u8, Some(matter)), (11, None), (12, Some(matter))] {
            let store = store.clone();
            sends.push(tokio::spawn(async move {
                let document = if id == 12 { [8; 16] } else { [9; 16] };
                let m = MessageRecord {
                    documents: vec![(document, 100)],
                    matter,
                    item: document,
                    ..message(id, 2000, "a@x", "b@x")
                };
                let object = to_hex(&m.id);
                let event = AuditEvent {
                    action: "message.send",
                    object: &object,
                    matter: matter.as_ref(),
                };
                store
                    .send_message(&m, &[], (2000, "a@x", ""), &[event], None)
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for s in sends {
            outcomes.push(s.await.expect("task"));
        }
        assert!(matches!(outcomes[0], Ok(Ok(()))));
        assert!(matches!(
            outcomes[1],
            Err(StorageError::OtherMatter { item }) if item == [9; 16]
        ));
        assert!(matches!(outcomes[2], Ok(Ok(()))));
        let after = store.flush_stats();
        assert_eq!(
            (
                after.flushes - before.flushes,
                after.commits - before.commits
            ),
            (1, 3),
            "the three were one group, and the refusal needed no second one"
        );
        assert_eq!(
            store.item(&[9; 16]).expect("read").and_then(|i| i.matter),
            Some(matter)
        );
        assert_eq!(store.message(&[11; 16]).expect("read"), None);
        // Two entries more, in one chain; the matter's chain holds both, the second after the
        // first.
        let (next, last) = store.audit_head();
        assert_eq!(next, 8);
        let entries = store.audit_entries(next).expect("entries");
        let mut prev = [0u8; 32];
        for stored in &entries {
            assert_eq!(
                AuditEntry::from_stored(stored).expect("entry").prev,
                to_hex(&prev)
            );
            prev = sha256(stored);
        }
        assert_eq!(prev, last);
        let (a, c) = (&entries[6], &entries[7]);
        let c_entry = AuditEntry::from_stored(c).expect("entry");
        assert_eq!(c_entry.object, to_hex(&[12; 16]));
        assert_eq!(c_entry.matter_prev, Some(to_hex(&sha256(a))));
        let head = store.matter_head(&matter).expect("read").expect("head");
        assert_eq!((head.count, head.head, head.last_seq), (2, sha256(c), 7));
    }

    #[tokio::test]
    async fn counts_on_one_key_add_up_against_the_limit_within_a_batch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let key = key_str("a@x");
        let mut b = Batch::default();
        b.grow(&store.usage, key.clone(), 60, Some(100));
        b.grow(&store.usage, key.clone(), 60, Some(100));
        assert!(
            !store.apply(b).expect("apply"),
            "120 passes the limit of 100"
        );
        assert_eq!(store.usage("a@x").expect("usage"), 0);
        let mut b = Batch::default();
        b.grow(&store.usage, key.clone(), 40, Some(100));
        b.grow(&store.usage, key, 50, Some(100));
        assert!(store.apply(b).expect("apply"));
        assert_eq!(store.usage("a@x").expect("usage"), 90);
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
    async fn invite_is_used_once() {
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
    }
}
