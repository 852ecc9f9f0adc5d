//! Abuse limits: request rates per address and per account, the failed-sign-in back-off,
//! connection counts per address, requests in flight and the per-connection idle watchdog.
//!
//! Everything here is in memory and forgotten at restart (a restart is not an attacker's
//! tool: it is the operator's). Time is the monotonic clock, never the server's test clock,
//! so that moving the test clock cannot open or close a limit. Every map is bounded: past
//! [`MAX_KEYS`] keys, entries back at rest are dropped, and if that is not enough a new key is
//! let through rather than refused (failing open for unknown keys keeps a flood of fresh
//! addresses from locking everyone out; the connection and concurrency limits still hold).
//! Nothing here logs an email address or a token.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most keys (addresses, accounts, emails) one limiter remembers.
pub(crate) const MAX_KEYS: usize = 100_000;

/// The abuse limits of a server. A rate or count of 0 switches that limit off; the deadlines
/// are at least one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sign-in and join requests (`/v1/auth/*`, `/v1/join`) per client address per minute.
    pub auth_per_ip_per_minute: u32,
    /// Write requests (every POST and PUT but sign-in, join and chunk uploads) per account per
    /// minute.
    pub writes_per_account_per_minute: u32,
    /// Write requests per client address per minute (an office behind one NAT shares it).
    pub writes_per_ip_per_minute: u32,
    /// Chunk uploads (`PUT /v1/items/{item}/chunks/{first}`, 1 to 8 MiB each) per account per
    /// minute. A 4 GiB document is 4,096 of them; the default lets several through at full
    /// speed.
    pub chunks_per_account_per_minute: u32,
    /// Chunk uploads per client address per minute.
    pub chunks_per_ip_per_minute: u32,
    /// Invites per account per hour (each one sends an email).
    pub invites_per_account_per_hour: u32,
    /// Failed sign-ins for one email within the failure window before it is locked out.
    pub signin_failures: u32,
    /// Failures older than this many seconds are forgotten.
    pub signin_window_secs: u64,
    /// The first lockout, in seconds; it doubles with each further failure.
    pub signin_lockout_secs: u64,
    /// The longest lockout, in seconds.
    pub signin_lockout_max_secs: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one client address.
    pub max_connections_per_ip: usize,
    /// Requests being handled at once; more wait up to 5 s, then get `503 busy`.
    pub max_requests_in_flight: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// Seconds a client may take to complete the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds a client may take to send a request's headers (HTTP/1.1; also bounds a
    /// keep-alive connection waiting for its next request).
    pub header_timeout_secs: u64,
    /// Seconds a connection may stay open without a request in flight, or with a response
    /// that the client stopped reading.
    pub idle_timeout_secs: u64,
    /// Seconds from a request's arrival by which its whole body must have arrived.
    pub body_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            auth_per_ip_per_minute: 60,
            writes_per_account_per_minute: 600,
            writes_per_ip_per_minute: 3000,
            chunks_per_account_per_minute: 12_000,
            chunks_per_ip_per_minute: 24_000,
            invites_per_account_per_hour: 60,
            signin_failures: 10,
            signin_window_secs: 15 * 60,
            signin_lockout_secs: 60,
            signin_lockout_max_secs: 3600,
            max_connections: 1024,
            max_connections_per_ip: 128,
            max_requests_in_flight: 256,
            max_streams_per_connection: 64,
            handshake_timeout_secs: 10,
            header_timeout_secs: 15,
            idle_timeout_secs: 60,
            body_timeout_secs: 120,
        }
    }
}

impl Limits {
    /// Refuses deadlines of zero (they would cut every connection at once).
    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("handshake_timeout", self.handshake_timeout_secs),
            ("header_timeout", self.header_timeout_secs),
            ("idle_timeout", self.idle_timeout_secs),
            ("body_timeout", self.body_timeout_secs),
            ("signin_window", self.signin_window_secs),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// How long a request waits for a slot when [`Limits::max_requests_in_flight`] are busy.
pub(crate) const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Which rate a route counts against; a column of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    /// Not rate-limited (reads).
    None,
    /// Sign-in and join: per address.
    Auth,
    /// A write: per account and per address.
    Write,
    /// An invite: a write, and also per account per hour.
    Invite,
    /// A chunk upload: its own, generous rate per account and per address.
    Chunks,
}

impl Rate {
    /// How the route table shows it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Auth => "auth (per address)",
            Self::Write => "writes (per account and address)",
            Self::Invite => "writes + invites (per account)",
            Self::Chunks => "chunks (per account and address)",
        }
    }
}

/// Every rate limiter and the sign-in back-off of a server.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Limits,
    auth_ip: Buckets<IpAddr>,
    write_ip: Buckets<IpAddr>,
    chunk_ip: Buckets<IpAddr>,
    write_account: Buckets<String>,
    chunk_account: Buckets<String>,
    invite_account: Buckets<String>,
    signins: Mutex<Bounded<String, Failures>>,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        let minute = Duration::from_secs(60);
        let l = limits;
        Self {
            limits: l.clone(),
            auth_ip: Buckets::new(l.auth_per_ip_per_minute, minute),
            write_ip: Buckets::new(l.writes_per_ip_per_minute, minute),
            chunk_ip: Buckets::new(l.chunks_per_ip_per_minute, minute),
            write_account: Buckets::new(l.writes_per_account_per_minute, minute),
            chunk_account: Buckets::new(l.chunks_per_account_per_minute, minute),
            invite_account: Buckets::new(l.invites_per_account_per_hour, Duration::from_secs(3600)),
            signins: Mutex::new(Bounded::default()),
        }
    }

    /// Counts a request of class `rate` from `ip`; `Err(seconds to wait)` if over the limit.
    pub(crate) fn by_address(&self, rate: Rate, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        match rate {
            Rate::None => Ok(()),
            Rate::Auth => self.auth_ip.take(ip, now),
            Rate::Write | Rate::Invite => self.write_ip.take(ip, now),
            Rate::Chunks => self.chunk_ip.take(ip, now),
        }
    }

    /// Counts a request of class `rate` by the signed-in `account`.
    pub(crate) fn by_account(&self, rate: Rate, account: &str) -> Result<(), u64> {
        let now = Instant::now();
        match rate {
            Rate::None | Rate::Auth => Ok(()),
            Rate::Write => self.write_account.take(account.to_owned(), now),
            Rate::Invite => {
                self.write_account.take(account.to_owned(), now)?;
                self.invite_account.take(account.to_owned(), now)
            }
            Rate::Chunks => self.chunk_account.take(account.to_owned(), now),
        }
    }

    /// `Err(seconds)` while sign-ins for `email` are locked out. Known and unknown emails are
    /// treated alike: the back-off is keyed by the address as given, never by an account.
    pub(crate) fn signin_allowed(&self, email: &str) -> Result<(), u64> {
        if self.limits.signin_failures == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let map = lock(&self.signins);
        match map.entries.get(email).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(ceil_secs(until - now)),
            _ => Ok(()),
        }
    }

    /// Records a failed sign-in for `email`; from the `signin_failures`-th failure within the
    /// window on, locks it out for `signin_lockout_secs`, doubling with each further failure.
    pub(crate) fn signin_failed(&self, email: &str) {
        let l = &self.limits;
        if l.signin_failures == 0 {
            return;
        }
        let now = Instant::now();
        let window = Duration::from_secs(l.signin_window_secs);
        let mut map = lock(&self.signins);
        let at_rest = |f: &Failures| {
            now.duration_since(f.last) >= window && f.locked_until.is_none_or(|u| u <= now)
        };
        let Some(f) = map.entry(email.to_owned(), now, at_rest, || Failures {
            count: 0,
            last: now,
            locked_until: None,
        }) else {
            return;
        };
        if now.duration_since(f.last) >= window {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count >= l.signin_failures {
            let doublings = (f.count - l.signin_failures).min(30);
            let lockout = l
                .signin_lockout_secs
                .saturating_mul(1 << doublings)
                .min(l.signin_lockout_max_secs.max(l.signin_lockout_secs));
            f.locked_until = Some(now + Duration::from_secs(lockout));
        }
    }

    /// Forgets the failures of `email` after a successful sign-in.
    pub(crate) fn signin_succeeded(&self, email: &str) {
        lock(&self.signins).entries.remove(email);
    }
}

#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Token buckets of one rate, one per key: `per` requests per `period`, as a burst of `per`
/// refilled evenly over the period.
#[derive(Debug)]
struct Buckets<K> {
    per: u32,
    period: Duration,
    map: Mutex<Bounded<K, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(per: u32, period: Duration) -> Self {
        Self {
            per,
            period,
            map: Mutex::new(Bounded::default()),
        }
    }

    fn take(&self, key: K, now: Instant) -> Result<(), u64> {
        if self.per == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per);
        let rate = capacity / self.period.as_secs_f64();
        let refill = |b: &Bucket| b.tokens + now.duration_since(b.at).as_secs_f64() * rate;
        let mut map = lock(&self.map);
        let at_rest = |b: &Bucket| refill(b) >= capacity;
        let Some(b) = map.entry(key, now, at_rest, || Bucket {
            tokens: capacity,
            at: now,
        }) else {
            return Ok(());
        };
        b.tokens = refill(b).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(ceil_secs(Duration::from_secs_f64((1.0 - b.tokens) / rate)))
        }
    }
}

/// A map of at most [`MAX_KEYS`] entries.
#[derive(Debug)]
struct Bounded<K, V> {
    entries: HashMap<K, V>,
    pruned: Option<Instant>,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            pruned: None,
        }
    }
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// The entry of `key`, made with `new` if absent. When full, drops the entries
    /// `at_rest` says are back to their initial state (at most once a second, so a flood of
    /// new keys cannot make every request scan the map); if still full, `None`.
    fn entry(
        &mut self,
        key: K,
        now: Instant,
        at_rest: impl Fn(&V) -> bool,
        new: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(&key) {
            let recently = self
                .pruned
                .is_some_and(|p| now.duration_since(p) < Duration::from_secs(1));
            if !recently {
                self.entries.retain(|_, v| !at_rest(v));
                self.pruned = Some(now);
            }
            if self.entries.len() >= MAX_KEYS {
                return None;
            }
        }
        Some(self.entries.entry(key).or_insert_with(new))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// Open connections per client address.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Counts a connection from `ip`, or `None` if `ip` already has `max` (0: no limit).
    pub(crate) fn open(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ConnectionSlot> {
        let mut map = lock(&self.per_ip);
        let n = map.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            connections: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.connections.per_ip);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What one connection is doing, for the idle watchdog: requests open (from their headers to
/// the end of their response body), handlers running, and when bytes last moved.
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    open: AtomicUsize,
    running: AtomicUsize,
    /// Milliseconds since `started` of the last read or write of at least one byte.
    last_io: AtomicU64,
    /// Milliseconds since `started` at which the last request ended.
    last_end: AtomicU64,
}

/// A request open on a connection: from its headers to the end of its response body.
#[derive(Debug)]
pub(crate) struct OpenRequest(Arc<Activity>);

/// A handler running (reading the body, deciding, writing to the store).
#[derive(Debug)]
pub(crate) struct RunningHandler(Arc<Activity>);

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            open: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            last_io: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
        })
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn request(self: &Arc<Self>) -> (OpenRequest, RunningHandler) {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
        (OpenRequest(self.clone()), RunningHandler(self.clone()))
    }

    /// How long the connection has been idle: with no request open, since the last one ended;
    /// with responses open but no handler running, since bytes last moved (a client that
    /// stopped reading); while a handler runs, not idle (the body deadline bounds it).
    fn idle_for(&self) -> Duration {
        let now = self.millis();
        let since = if self.open.load(Ordering::SeqCst) == 0 {
            self.last_end.load(Ordering::SeqCst)
        } else if self.running.load(Ordering::SeqCst) == 0 {
            self.last_io.load(Ordering::SeqCst)
        } else {
            now
        };
        Duration::from_millis(now.saturating_sub(since))
    }

    /// Completes once the connection has been idle for `limit`.
    pub(crate) async fn idle(self: Arc<Self>, limit: Duration) {
        let tick = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.idle_for() >= limit {
                return;
            }
        }
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.last_end.store(self.0.millis(), Ordering::SeqCst);
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for RunningHandler {
    fn drop(&mut self) {
        self.0.last_io.store(self.0.millis(), Ordering::SeqCst);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream that records in [`Activity`] when bytes move.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    fn moved(&self) {
        self.activity
            .last_io
            .store(self.activity.millis(), Ordering::SeqCst);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let b = Buckets::new(3, Duration::from_secs(60));
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.take(1u8, t), Ok(()));
        }
        assert_eq!(b.take(1u8, t), Err(20), "one token every 20 s");
        assert_eq!(b.take(2u8, t), Ok(()), "keys are independent");
        assert_eq!(b.take(1u8, t + Duration::from_secs(20)), Ok(()));
        assert_eq!(Buckets::new(0, Duration::from_secs(1)).take(1u8, t), Ok(()));
    }

    #[test]
    fn a_4_gib_upload_at_1_mib_per_put_is_not_limited_by_default() {
        // Worst case: all 4,096 PUTs at the same instant, so nothing refills; two such uploads
        // from one account still fit.
        let l = Limiter::new(&Limits::default());
        let ip = IpAddr::from([127, 0, 0, 1]);
        for i in 0..2 * 4096 {
            assert_eq!(l.by_address(Rate::Chunks, ip), Ok(()), "PUT {i}");
            assert_eq!(l.by_account(Rate::Chunks, "a@b.example"), Ok(()), "PUT {i}");
        }
        // Chunks never use up the account's writes.
        assert_eq!(l.by_account(Rate::Write, "a@b.example"), Ok(()));
    }

    #[test]
    fn sign_in_failures_lock_out_with_a_doubling_delay() {
        let l = Limiter::new(&Limits {
            signin_failures: 2,
            signin_lockout_secs: 10,
            signin_lockout_max_secs: 25,
            ..Limits::default()
        });
        let e = "a@b.example";
        l.signin_failed(e);
        assert_eq!(l.signin_allowed(e), Ok(()));
        l.signin_failed(e);
        assert_eq!(l.signin_allowed(e), Err(10));
        l.signin_failed(e);
        assert_eq!(l.signin_allowed(e), Err(20));
        l.signin_failed(e);
        assert_eq!(l.signin_allowed(e), Err(25), "capped");
        assert_eq!(l.signin_allowed("other@b.example"), Ok(()));
        l.signin_succeeded(e);
        assert_eq!(l.signin_allowed(e), Ok(()));
    }

    #[test]
    fn a_full_map_drops_entries_at_rest_and_then_fails_open() {
        let mut m: Bounded<usize, u8> = Bounded::default();
        let t = Instant::now();
        for k in 0..MAX_KEYS {
            *m.entry(k, t, |_| false, || 1).unwrap() = 1;
        }
        assert!(m.entry(MAX_KEYS, t, |_| false, || 1).is_none());
        assert!(
            m.entry(0, t, |_| false, || 1).is_some(),
            "known keys still count"
        );
        let later = t + Duration::from_secs(2);
        assert!(m.entry(MAX_KEYS, later, |v| *v == 1, || 2).is_some());
        assert_eq!(m.entries.len(), 1);
    }
}
