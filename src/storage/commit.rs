//! Group commit: every acknowledged write waits for one shared flush, which is made as strong
//! as `fsync` (see `docs/STORAGE.md`: sled 0.34's flush issues only `sync_file_range` on
//! Linux and never syncs its blob files). Sends hand their writes to the same task, which
//! applies those of one flush in one transaction just before it (`group.rs`).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::StorageError;
use super::group::{Applier, Grouped, Outcome};

/// A request for durability. It carries its own handle on the database, so that the commit
/// task holds none between flushes and the database closes when the last `Store` is dropped.
struct Waiter {
    reply: Reply,
    db: sled::Db,
}

/// What a waiter asked for, and where its answer goes.
enum Reply {
    /// Durability of the writes made before it asked.
    Flush(oneshot::Sender<Result<(), String>>),
    /// A write to apply with the others of the flush, then durability. It carries the
    /// applier (with its trees) for the same reason as the database handle.
    Apply(Box<Grouped>, Applier, oneshot::Sender<Outcome>),
}

/// Counters of the group-commit task.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlushStats {
    /// Flushes run.
    pub flushes: u64,
    /// Commit requests served (each waited for one flush).
    pub commits: u64,
    /// Total time spent flushing, in microseconds.
    pub flush_micros: u64,
    /// Flushes that failed.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    commits: AtomicU64,
    flush_micros: AtomicU64,
    failures: AtomicU64,
}

/// The handle requests use to wait for durability.
#[derive(Clone)]
pub(super) struct Committer {
    db: sled::Db,
    applier: Applier,
    tx: mpsc::UnboundedSender<Waiter>,
    counters: Arc<Counters>,
}

impl Committer {
    pub(super) fn start(db: sled::Db, dir: &Path, applier: Applier) -> Result<Self, StorageError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let syncer = Syncer::open(dir)?;
        tokio::spawn(run(rx, syncer, counters.clone()));
        Ok(Self {
            db,
            applier,
            tx,
            counters,
        })
    }

    pub(super) async fn commit(&self) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.send(Reply::Flush(tx))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::Io(std::io::Error::other(e))),
            Err(_) => Err(StorageError::CommitStopped),
        }
    }

    /// Applies `write` with the other writes of the next flush (see `group.rs`) and returns
    /// once it is durable; `Ok(None)`: not applied, since what it read has changed.
    pub(super) async fn apply(&self, write: Grouped) -> Outcome {
        let (tx, rx) = oneshot::channel();
        self.send(Reply::Apply(Box::new(write), self.applier.clone(), tx))?;
        rx.await.map_err(|_| StorageError::CommitStopped)?
    }

    fn send(&self, reply: Reply) -> Result<(), StorageError> {
        self.tx
            .send(Waiter {
                reply,
                db: self.db.clone(),
            })
            .map_err(|_| StorageError::CommitStopped)
    }

    pub(super) fn stats(&self) -> FlushStats {
        FlushStats {
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            flush_micros: self.counters.flush_micros.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
        }
    }
}

/// How long a flush waits for more writers to share it while the server is busy. A flush
/// costs about the same for one write as for fifty (sealing sled's buffer, waking its IO
/// thread, `pwrite`, `fdatasync`); under 64 concurrent senders, flushing at once shared each
/// flush among 2 commits, and this wait raises that to about 25, for 15% more sends a second
/// and half the p99 latency (`docs/PERFORMANCE.md`).
const LINGER: Duration = Duration::from_millis(1);

/// The most requests one flush serves: a group's writes are applied in one transaction, which
/// holds sled's lock (and every read) and the audit lock for its length; the rest wait for the
/// next flush.
const MAX_GROUP: usize = 256;

async fn run(mut rx: mpsc::UnboundedReceiver<Waiter>, mut syncer: Syncer, counters: Arc<Counters>) {
    // Commits the last flush served: a lone writer (one at a time) never waits.
    let mut last_group = 0usize;
    while let Some(first) = rx.recv().await {
        // Everyone who asked before this flush starts shares it: their writes are already in
        // sled's buffers, or are applied just before it.
        let db = first.db;
        let mut waiters = vec![first.reply];
        drain(&mut rx, &mut waiters);
        if last_group > 1 || waiters.len() > 1 {
            // Busy: other writes are under way, and this flush can carry them too.
            tokio::time::sleep(LINGER).await;
            drain(&mut rx, &mut waiters);
        }
        last_group = waiters.len();
        let mut flushes = Vec::new();
        let mut writes = Vec::new();
        let mut applied = Vec::new();
        let mut applier = None;
        for w in waiters {
            match w {
                Reply::Flush(done) => flushes.push(done),
                Reply::Apply(write, a, done) => {
                    writes.push(*write);
                    applied.push(done);
                    applier = Some(a);
                }
            }
        }
        let started = Instant::now();
        // The grouped writes, the blocking `flush` (not `flush_async`, whose sled worker
        // thread keeps a handle on the database for a moment after answering) and our syncs,
        // on one blocking thread; the handle is dropped before anyone is answered, so the
        // database closes as soon as the last `Store` goes.
        let r = tokio::task::spawn_blocking(move || {
            // A panic in the apply fails this group's sends, not the task: later writes
            // still find it running.
            let outcomes = match &applier {
                Some(applier) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    applier.apply(&writes)
                }))
                .unwrap_or_else(|_| Err(StorageError::Io(std::io::Error::other("apply panicked")))),
                None => Ok(Vec::new()),
            };
            drop((applier, writes));
            let r = db
                .flush()
                .map_err(|e| e.to_string())
                .and_then(|_| syncer.sync().map_err(|e| e.to_string()));
            drop(db);
            (syncer, outcomes, r)
        })
        .await;
        let (outcomes, result) = match r {
            Ok((s, outcomes, r)) => {
                syncer = s;
                (outcomes, r)
            }
            Err(e) => {
                tracing::error!(error = %e, "the sync task failed; stopping commits");
                for w in flushes {
                    let _ = w.send(Err("sync task failed".into()));
                }
                for w in applied {
                    let _ = w.send(Err(StorageError::CommitStopped));
                }
                return;
            }
        };
        counters.flushes.fetch_add(1, Ordering::Relaxed);
        counters
            .commits
            .fetch_add((flushes.len() + applied.len()) as u64, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.flush_micros.fetch_add(micros, Ordering::Relaxed);
        if let Err(e) = &result {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "flush failed");
        }
        for w in flushes {
            let _ = w.send(result.clone());
        }
        // A grouped write is answered with its outcome only if the group applied and the
        // flush made it durable; otherwise with the failure of either.
        let outcomes = outcomes
            .map_err(|e| {
                tracing::error!(error = %e, "applying grouped writes failed");
                e.to_string()
            })
            .and_then(|outcomes| result.clone().map(|()| outcomes));
        match outcomes {
            Ok(outcomes) => {
                for (w, outcome) in applied.into_iter().zip(outcomes) {
                    let _ = w.send(outcome);
                }
            }
            Err(e) => {
                for w in applied {
                    let _ = w.send(Err(StorageError::Io(std::io::Error::other(e.clone()))));
                }
            }
        }
    }
}

/// Adds the commit requests queued so far to `waiters`, up to `MAX_GROUP` in all.
fn drain(rx: &mut mpsc::UnboundedReceiver<Waiter>, waiters: &mut Vec<Reply>) {
    while waiters.len() < MAX_GROUP
        && let Ok(w) = rx.try_recv()
    {
        waiters.push(w.reply);
    }
}

/// Closes the gap between sled's flush and `fsync`: `fsync` of the log file (its size and the
/// drive's write cache), of every new blob file and of the blob directory.
///
/// sled 0.34 writes a blob file once, whole, while it holds the log reservation that names it
/// (`create_new`, then the content), and its flush waits for every reservation taken before the
/// flush began. So a blob file listed after one flush is complete by the end of the next one:
/// syncing each file when first listed and once more at the next sync covers it, and no file
/// is ever looked at again (before, every flush took a `stat` of every blob file).
struct Syncer {
    db_file: File,
    dir: PathBuf,
    blobs_dir: PathBuf,
    /// Blob files synced after the flush that followed their first listing: complete on disk.
    done: HashSet<OsString>,
    /// Blob files first listed at the last sync (synced then, perhaps not yet complete).
    fresh: HashSet<OsString>,
}

impl Syncer {
    fn open(dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            db_file: File::open(dir.join("db"))?,
            dir: dir.to_path_buf(),
            blobs_dir: dir.join("blobs"),
            done: HashSet::new(),
            fresh: HashSet::new(),
        })
    }

    fn sync(&mut self) -> std::io::Result<()> {
        // `fdatasync`: the data and the file size (needed to read it back), without the
        // timestamps that `fsync` would also journal on every commit.
        self.db_file.sync_data()?;
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut done = HashSet::with_capacity(self.done.len());
        let mut fresh = HashSet::new();
        for entry in entries {
            let name = entry?.file_name();
            if self.done.contains(&name) {
                done.insert(name);
                continue;
            }
            match File::open(self.blobs_dir.join(&name)) {
                Ok(f) => f.sync_all()?,
                // Deleted by sled's garbage collection since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            if self.fresh.contains(&name) {
                done.insert(name);
            } else {
                fresh.insert(name);
            }
        }
        // Files that left the folder are forgotten with the old sets.
        self.done = done;
        let any_new = !fresh.is_empty();
        self.fresh = fresh;
        if any_new {
            File::open(&self.blobs_dir)?.sync_all()?;
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &HashSet<OsString>) -> Vec<String> {
        let mut v: Vec<String> = set
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_blob_file_is_synced_when_first_listed_and_once_more_then_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("db"), b"log").expect("db");
        let mut syncer = Syncer::open(dir.path()).expect("open");
        // No blob folder yet: only the log is synced.
        syncer.sync().expect("sync");
        assert!(syncer.done.is_empty() && syncer.fresh.is_empty());

        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).expect("blobs");
        std::fs::write(blobs.join("100"), b"first").expect("blob");
        syncer.sync().expect("sync");
        assert_eq!(names(&syncer.fresh), ["100"]);
        assert!(syncer.done.is_empty());

        std::fs::write(blobs.join("200"), b"second").expect("blob");
        syncer.sync().expect("sync");
        assert_eq!(names(&syncer.done), ["100"]);
        assert_eq!(names(&syncer.fresh), ["200"]);

        std::fs::remove_file(blobs.join("100")).expect("gc");
        syncer.sync().expect("sync");
        assert_eq!(names(&syncer.done), ["200"]);
        assert!(syncer.fresh.is_empty());
    }
}
