//! Hand-written Prometheus counters: requests by route and status, uploads, messages, flushes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::FlushStats;

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    uploads: AtomicU64,
    chunks: AtomicU64,
    chunk_bytes: AtomicU64,
    downloads: AtomicU64,
    messages: AtomicU64,
    sweeps: AtomicU64,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    idle_closed: AtomicU64,
}

impl Metrics {
    pub(crate) fn request(&self, method: &str, route: &str, status: u16) {
        let mut m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    pub(crate) fn uploads_started(&self) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn chunks_received(&self, n: u64, bytes: u64) {
        self.chunks.fetch_add(n, Ordering::Relaxed);
        self.chunk_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn download_started(&self) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn message_sent(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed at once: `reason` is `total` or `per_ip`.
    pub(crate) fn connection_refused(&self, reason: &str) {
        let counter = if reason == "total" {
            &self.refused_total
        } else {
            &self.refused_per_ip
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An idle connection was closed.
    pub(crate) fn connection_idle(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// One sweep finished and was committed.
    pub(crate) fn swept(&self) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, flush: FlushStats) -> String {
        let mut out = String::new();
        out.push_str("# HELP attache_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE attache_requests_total counter\n");
        {
            let m = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "attache_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP attache_connections_refused_total Connections closed at once: over the total or the per-address limit.\n",
        );
        out.push_str("# TYPE attache_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "attache_connections_refused_total{{limit=\"total\"}} {}\nattache_connections_refused_total{{limit=\"per_ip\"}} {}",
            self.refused_total.load(Ordering::Relaxed),
            self.refused_per_ip.load(Ordering::Relaxed)
        );
        let counters = [
            (
                "attache_connections_idle_closed_total",
                "Connections closed by the idle deadline.",
                self.idle_closed.load(Ordering::Relaxed),
            ),
            (
                "attache_uploads_started_total",
                "Uploads started.",
                self.uploads.load(Ordering::Relaxed),
            ),
            (
                "attache_chunks_received_total",
                "Ciphertext chunks received.",
                self.chunks.load(Ordering::Relaxed),
            ),
            (
                "attache_chunk_bytes_received_total",
                "Ciphertext bytes received.",
                self.chunk_bytes.load(Ordering::Relaxed),
            ),
            (
                "attache_downloads_total",
                "Ciphertext downloads started.",
                self.downloads.load(Ordering::Relaxed),
            ),
            (
                "attache_messages_sent_total",
                "Messages accepted.",
                self.messages.load(Ordering::Relaxed),
            ),
            (
                "attache_sweeps_total",
                "Sweeps finished (grant cut-offs, retention deletions, checkpoints, cleanup).",
                self.sweeps.load(Ordering::Relaxed),
            ),
            (
                "attache_flushes_total",
                "Group-commit flushes.",
                flush.flushes,
            ),
            (
                "attache_commits_total",
                "Writes acknowledged after a flush.",
                flush.commits,
            ),
            (
                "attache_flush_failures_total",
                "Flushes that failed.",
                flush.failures,
            ),
        ];
        for (name, help, v) in counters {
            write_metric(&mut out, name, "counter", help, v);
        }
        write_metric(
            &mut out,
            "attache_flush_seconds_total",
            "counter",
            "Time spent in group-commit flushes.",
            flush.flush_micros as f64 / 1e6,
        );
        out
    }
}

/// Appends one metric without labels in the Prometheus text format.
pub(crate) fn write_metric(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
