//! Online backup: a consistent copy of the data folder, taken while the server runs.
//!
//! Owns the write gate ([`Writing`]) that every request and background writer holds shared
//! and a backup holds exclusively while it copies the database, and the copy itself: every
//! sled tree into a new database in the output folder, committed documents' files linked (or
//! copied) into its `chunks/`, then everything synced. It never reads a chunk's content and
//! never touches the keys folder. Layout and the rules are in `docs/OPERATIONS.md`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::{Blobs, ItemRecord, StorageError, Store, decode, key_bytes, key_str, versioned_raw};

/// Held (shared) by whoever changes the store; a backup takes the gate exclusively, so while
/// it copies, no change is half made. Drop it when the change is written.
pub struct Writing {
    _guard: OwnedRwLockReadGuard<()>,
}

impl std::fmt::Debug for Writing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writing")
    }
}

/// The gate itself, shared by every clone of a [`Store`].
#[derive(Clone, Default)]
pub(super) struct Gate(Arc<RwLock<()>>);

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The snapshot folder.
    pub path: PathBuf,
    /// Accounts in it.
    pub accounts: u64,
    /// Messages in it.
    pub messages: u64,
    /// Committed documents (items) in it.
    pub documents: u64,
    /// Uploads in progress left out (they start over after a restore).
    pub uploads_left_out: u64,
    /// Records in every sled tree, the left-out uploads' excluded.
    pub records: u64,
    /// Document files linked into the snapshot (same file system).
    pub files_linked: u64,
    /// Document files copied (another file system).
    pub files_copied: u64,
    /// Bytes of the snapshot's database folder (sled's files).
    pub database_bytes: u64,
    /// Bytes of the document files.
    pub file_bytes: u64,
    /// How long writes were paused (the gate held exclusively).
    pub pause: Duration,
    /// How long the backup waited for the requests in flight before the pause.
    pub wait: Duration,
}

/// Why a backup failed. Shown to the operator who asked for it.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The output folder is already there; a backup never writes into an existing folder.
    #[error("the output folder {0} already exists")]
    Exists(PathBuf),
    /// Requests in flight kept the gate for every attempt; nothing was written.
    #[error(
        "requests in flight (a slow upload, perhaps) kept the store busy for {attempts} tries of {secs} s; nothing was written, try again"
    )]
    Busy {
        /// Tries made.
        attempts: u32,
        /// Seconds each try waited.
        secs: u64,
    },
    /// Reading the store or writing the snapshot failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl From<io::Error> for BackupError {
    fn from(e: io::Error) -> Self {
        Self::Storage(StorageError::Io(e))
    }
}

impl From<sled::Error> for BackupError {
    fn from(e: sled::Error) -> Self {
        Self::Storage(StorageError::Db(e))
    }
}

/// Tries at taking the gate exclusively, and how long each waits.
const GATE_TRIES: u32 = 5;
const GATE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// An upload left out of a snapshot, with what must be taken out with it.
struct LeftOut {
    id: [u8; 16],
    uploader: String,
    bytes: u64,
}

/// What the copy under the gate found.
#[derive(Default)]
struct Copied {
    records: u64,
    accounts: u64,
    messages: u64,
    documents: u64,
    files_linked: u64,
    files_copied: u64,
    file_bytes: u64,
    left_out: Vec<LeftOut>,
}

impl Store {
    /// Waits until no backup is copying, then holds the gate shared until the returned value is
    /// dropped: every request and background writer holds it while it changes the store.
    pub async fn writing(&self) -> Writing {
        Writing {
            _guard: self.gate.0.clone().read_owned().await,
        }
    }

    /// Writes a consistent snapshot of the data folder to `out`, a folder that must not exist
    /// yet (its parent is created). Waits for the changes in flight, pauses every writer while
    /// the database is copied and committed documents' files are linked, then lets them go on
    /// and syncs the snapshot (files and folders) before returning. Uploads in progress are left
    /// out, with their records, digests and quota bytes. The snapshot opens as a data folder
    /// with the same blob store.
    pub async fn backup(&self, out: &Path) -> Result<BackupReport, BackupError> {
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)?;
        }
        match fs::create_dir(out) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists(out.to_path_buf()));
            }
            Err(e) => return Err(e.into()),
        }
        fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let target = out.to_path_buf();
        let db = tokio::task::spawn_blocking(move || {
            sled::Config::new()
                .path(&target)
                .flush_every_ms(None)
                .open()
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))??;

        let asked = Instant::now();
        // A request holds the gate while its body arrives (up to the body deadline), and
        // requests that come after the backup asked queue behind it: so the backup waits a
        // little at a time, letting the queue through between tries, and gives up rather
        // than stall the server behind one slow upload.
        let mut gate = None;
        for _ in 0..GATE_TRIES {
            match tokio::time::timeout(GATE_WAIT, self.gate.0.clone().write_owned()).await {
                Ok(g) => {
                    gate = Some(g);
                    break;
                }
                Err(_) => tokio::time::sleep(GATE_WAIT / 4).await,
            }
        }
        let Some(gate) = gate else {
            drop(db);
            let _ = fs::remove_dir_all(out);
            return Err(BackupError::Busy {
                attempts: GATE_TRIES,
                secs: GATE_WAIT.as_secs(),
            });
        };
        // A send hands its write to the group-commit task and waits there, holding the gate; a
        // send dropped while waiting (its client gone) released the gate, but its write is
        // still queued. The queue is served in order, so this flush applies every such write
        // before the copy starts.
        if let Err(e) = self.commit().await {
            drop(gate);
            drop(db);
            let _ = fs::remove_dir_all(out);
            return Err(e.into());
        }
        let wait = asked.elapsed();
        let paused = Instant::now();
        let (store, snapshot, chunks_out) = (self.clone(), db.clone(), out.join("chunks"));
        let copied =
            tokio::task::spawn_blocking(move || copy_under_gate(&store, &snapshot, &chunks_out))
                .await;
        drop(gate);
        let pause = paused.elapsed();
        let mut copied = copied.map_err(|e| StorageError::Io(io::Error::other(e)))??;

        let target = out.to_path_buf();
        let finished = tokio::task::spawn_blocking(move || -> Result<Copied, BackupError> {
            let removed = leave_out(&db, &copied.left_out)?;
            copied.records = copied.records.saturating_sub(removed);
            db.flush()?;
            drop(db);
            sync_tree(&target)?;
            if let Some(parent) = target.parent() {
                File::open(parent)?.sync_all()?;
            }
            Ok(copied)
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))??;
        copied = finished;
        let database_bytes = folder_bytes(out, &out.join("chunks"))?;
        tracing::info!(
            path = %out.display(),
            documents = copied.documents,
            pause_ms = pause.as_millis() as u64,
            "backup written"
        );
        Ok(BackupReport {
            path: out.to_path_buf(),
            accounts: copied.accounts,
            messages: copied.messages,
            documents: copied.documents,
            uploads_left_out: copied.left_out.len() as u64,
            records: copied.records,
            files_linked: copied.files_linked,
            files_copied: copied.files_copied,
            database_bytes,
            file_bytes: copied.file_bytes,
            pause,
            wait,
        })
    }
}

/// Copies every tree of `store` into `snapshot` and links committed documents' files into
/// `chunks_out`. Runs while the gate is held exclusively, so the trees agree with each other
/// and with the files.
///
/// This is what `sled::Db::export` and `import` do (every tree, every key and value, in
/// order), written out so that an IO error is returned instead of panicking inside the server,
/// and so that items can be looked at as they pass.
fn copy_under_gate(
    store: &Store,
    snapshot: &sled::Db,
    chunks_out: &Path,
) -> Result<Copied, BackupError> {
    let mut copied = Copied::default();
    for name in store.db.tree_names() {
        let from = store.db.open_tree(&name)?;
        let to = snapshot.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0usize;
        for r in from.iter() {
            let (k, v) = r?;
            copied.records += 1;
            match &name[..] {
                b"accounts" => copied.accounts += 1,
                b"messages" => copied.messages += 1,
                b"items" => {
                    let item: ItemRecord = decode(&v, "items")?;
                    if !item.committed {
                        copied.left_out.push(LeftOut {
                            id: item.id,
                            uploader: item.uploader,
                            bytes: item.received_bytes,
                        });
                        continue;
                    }
                    copied.documents += 1;
                    if let Blobs::Files(_) = &store.blobs {
                        link_file(&store.dir, chunks_out, &item.id, &mut copied)?;
                    }
                }
                _ => {}
            }
            batch.insert(k, v);
            in_batch += 1;
            if in_batch == 1024 {
                to.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        to.apply_batch(batch)?;
    }
    Ok(copied)
}

/// Links (or, across file systems, copies) the file of committed item `id` from the data
/// folder `data`, if it has one (an item of one short chunk lives in sled and came with the
/// database). The path is `FileBlobs`' layout: `chunks/XX/ID`.
fn link_file(
    data: &Path,
    chunks_out: &Path,
    id: &[u8; 16],
    copied: &mut Copied,
) -> Result<(), BackupError> {
    let hex = crate::wire::to_hex(id);
    let from = data.join("chunks").join(&hex[..2]).join(&hex);
    let len = match fs::metadata(&from) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let dir = chunks_out.join(&hex[..2]);
    fs::create_dir_all(&dir)?;
    let to = dir.join(&hex);
    match fs::hard_link(&from, &to) {
        Ok(()) => copied.files_linked += 1,
        Err(e) if e.kind() == ErrorKind::CrossesDevices => {
            fs::copy(&from, &to)?;
            copied.files_copied += 1;
        }
        Err(e) => return Err(e.into()),
    }
    copied.file_bytes += len;
    Ok(())
}

/// Takes the left-out uploads out of the snapshot: their records (already skipped), chunk
/// digests and chunks kept in sled, and their bytes from the uploaders' usage. Returns how
/// many records it removed.
fn leave_out(db: &sled::Db, left_out: &[LeftOut]) -> Result<u64, BackupError> {
    let mut removed = 0;
    if left_out.is_empty() {
        return Ok(removed);
    }
    let digests = db.open_tree("chunk_digests")?;
    let chunks = db.open_tree("chunks")?;
    let usage = db.open_tree("usage")?;
    let mut give_back: BTreeMap<&str, u64> = BTreeMap::new();
    for upload in left_out {
        for tree in [&digests, &chunks] {
            for k in tree.scan_prefix(key_bytes(&upload.id)).keys() {
                tree.remove(k?)?;
                removed += 1;
            }
        }
        *give_back.entry(upload.uploader.as_str()).or_default() += upload.bytes;
    }
    for (email, bytes) in give_back {
        let key = key_str(email);
        let used = match usage.get(&key)?.as_deref() {
            Some([super::FORMAT_VERSION, rest @ ..]) => rest
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StorageError::Corrupt { tree: "usage" })?,
            None => 0,
            Some(_) => return Err(StorageError::Corrupt { tree: "usage" }.into()),
        };
        usage.insert(
            key,
            versioned_raw(&used.saturating_sub(bytes).to_be_bytes()),
        )?;
    }
    Ok(removed)
}

/// `fsync`s every file and folder under `dir`, and `dir` itself, children first.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            File::open(entry.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

/// Bytes of the files under `dir`, not counting the folder `skip`.
fn folder_bytes(dir: &Path, skip: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if path != skip {
                total += folder_bytes(&path, skip)?;
            }
        } else {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::committed_item;
    use crate::storage::{BlobStoreKind, SEALED_CHUNK};

    /// An upload in progress by `c@x`: two full chunks received, not committed.
    fn upload_in_progress(store: &Store, id: [u8; 16]) {
        let empty = ItemRecord {
            id,
            uploader: "c@x".into(),
            preamble: vec![0; 88],
            received: 0,
            received_bytes: 0,
            committed: false,
            manifest: None,
            created_at: 1,
            updated_at: 1,
            matter: None,
        };
        store.put_item(&empty).expect("put");
        store
            .blobs()
            .put_chunks(&id, 0, &vec![7; 2 * SEALED_CHUNK])
            .expect("chunks");
        let mut two = empty.clone();
        two.received = 2;
        two.received_bytes = 2 * SEALED_CHUNK as u64;
        store
            .record_chunks(&empty, &two, &[[1; 32], [2; 32]], None)
            .expect("record")
            .expect("no quota");
    }

    #[tokio::test]
    async fn a_request_holding_the_gate_throughout_makes_the_backup_give_up_and_write_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("data"), 1 << 20).expect("open");
        committed_item(&store, [1; 16], 1, &["a@x"]);
        store.commit().await.expect("commit");
        // A slow upload: its request holds the gate shared for longer than every try.
        let slow = store.writing().await;
        let out = dir.path().join("backups/busy");
        let started = Instant::now();
        let busy = store.backup(&out).await;
        assert!(
            matches!(
                busy,
                Err(BackupError::Busy {
                    attempts: 5,
                    secs: 1
                })
            ),
            "{busy:?}"
        );
        assert!(started.elapsed() < GATE_WAIT * (GATE_TRIES + 2));
        assert!(!out.exists(), "nothing is left of the refused backup");
        // Between tries the queue behind the backup went through: a request asking now gets
        // the gate at once, and once the slow one is done a backup succeeds.
        let quick = tokio::time::timeout(std::time::Duration::from_millis(100), store.writing())
            .await
            .expect("the gate is not held by the failed backup");
        drop((quick, slow));
        store.backup(&out).await.expect("backup");
    }

    #[tokio::test]
    async fn a_snapshot_holds_committed_items_and_leaves_uploads_in_progress_out() {
        for kind in [BlobStoreKind::Files, BlobStoreKind::Sled] {
            let dir = tempfile::tempdir().expect("temp dir");
            let store =
                Store::open_with(&dir.path().join("data"), 1 << 20, Some(kind)).expect("open");
            committed_item(&store, [1; 16], 3, &["a@x", "b@x"]);
            committed_item(&store, [2; 16], 1, &["a@x"]);
            upload_in_progress(&store, [3; 16]);
            store.commit().await.expect("commit");
            assert_eq!(store.usage("c@x").expect("usage"), 2 * SEALED_CHUNK as u64);

            let out = dir.path().join("backups/one");
            let report = store.backup(&out).await.expect("backup");
            assert_eq!(
                (
                    report.documents,
                    report.uploads_left_out,
                    report.path.clone()
                ),
                (2, 1, out.clone()),
                "{kind}"
            );
            let linked = u64::from(kind == BlobStoreKind::Files);
            assert_eq!((report.files_linked, report.files_copied), (linked, 0));

            let again = store.backup(&out).await;
            assert!(
                matches!(&again, Err(BackupError::Exists(p)) if *p == out),
                "{again:?}"
            );

            let snapshot = Store::open(&out, 1 << 20).expect("the snapshot opens");
            assert_eq!(snapshot.blob_store(), kind);
            for (id, chunks) in [([1; 16], 3), ([2; 16], 1)] {
                let item = snapshot.item(&id).expect("item").expect("present");
                assert!(item.committed);
                let copy = snapshot.blobs().chunks(&id, 0, chunks).expect("read");
                assert!(copy.is_some());
                assert_eq!(copy, store.blobs().chunks(&id, 0, chunks).expect("read"));
                assert_eq!(
                    snapshot
                        .count_prefix("key_packages", &key_bytes(&id))
                        .expect("count"),
                    store
                        .count_prefix("key_packages", &key_bytes(&id))
                        .expect("count")
                );
            }
            assert_eq!(snapshot.item(&[3; 16]).expect("item"), None);
            assert_eq!(snapshot.blobs().count(&[3; 16]).expect("count"), 0);
            assert_eq!(
                snapshot
                    .count_prefix("chunk_digests", &key_bytes(&[3; 16]))
                    .expect("count"),
                Some(0)
            );
            assert_eq!(snapshot.usage("c@x").expect("usage"), 0);
            // The source is untouched: the upload goes on.
            assert!(store.item(&[3; 16]).expect("item").is_some());
        }
    }
}
