//! The server's one clock: system time plus an offset that tests can move.
//!
//! Every expiry the server enforces (sessions, challenges, invites, grants, signature
//! deadlines, reminders, retention) reads this clock, so a test moves them all at once by
//! writing a number of seconds into the file named by [`TEST_CLOCK_ENV`]. The file is read on
//! each use; a missing or garbled file means no offset. Production servers leave the variable
//! unset, and the server warns loudly at start when it is set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming the offset file (tests only).
pub const TEST_CLOCK_ENV: &str = "ATTACHE_TEST_CLOCK_FILE";

/// Largest offset honoured, either way: 200 years.
const MAX_OFFSET_SECS: i64 = 200 * 366 * 86_400;
/// Longest offset file read.
const MAX_FILE_LEN: usize = 64;

/// System time, moved by the test offset if one is configured. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    offset_file: Option<Arc<PathBuf>>,
}

impl Clock {
    /// The clock from the environment: with an offset file if [`TEST_CLOCK_ENV`] is set.
    pub(crate) fn from_env() -> Self {
        let offset_file = std::env::var_os(TEST_CLOCK_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| Arc::new(PathBuf::from(v)));
        Self { offset_file }
    }

    /// The offset file, when a test clock is configured.
    pub(crate) fn offset_file(&self) -> Option<&std::path::Path> {
        self.offset_file.as_deref().map(PathBuf::as_path)
    }

    /// Seconds since the Unix epoch.
    pub(crate) fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        system.saturating_add(self.offset_secs().saturating_mul(1000))
    }

    fn offset_secs(&self) -> i64 {
        let Some(path) = &self.offset_file else {
            return 0;
        };
        let Ok(bytes) = std::fs::read(path.as_path()) else {
            return 0;
        };
        if bytes.len() > MAX_FILE_LEN {
            return 0;
        }
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .map_or(0, |s| s.clamp(-MAX_OFFSET_SECS, MAX_OFFSET_SECS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_moves_the_clock_and_garbage_means_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("clock");
        let clock = Clock {
            offset_file: Some(Arc::new(path.clone())),
        };
        let system = Clock::default();
        assert!(
            (clock.now() - system.now()).abs() <= 1,
            "missing file: no offset"
        );
        std::fs::write(&path, "86400\n").expect("write");
        assert!((clock.now() - system.now() - 86_400).abs() <= 1);
        std::fs::write(&path, "-3600").expect("write");
        assert!((clock.now() - system.now() + 3_600).abs() <= 1);
        std::fs::write(&path, "tomorrow").expect("write");
        assert!(
            (clock.now() - system.now()).abs() <= 1,
            "garbled: no offset"
        );
        std::fs::write(&path, "9".repeat(100)).expect("write");
        assert!(
            (clock.now() - system.now()).abs() <= 1,
            "oversize: no offset"
        );
    }
}
