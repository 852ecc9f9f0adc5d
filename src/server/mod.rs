//! The server: configuration, TLS, the route table, authorization, handlers.
//!
//! It handles only ciphertext sealed by clients, public keys and routing metadata: it never
//! names a secret key type or an opening function. Start it in-process with [`Server::start`]
//! on an already bound listener, then [`Server::run`]; `attache serve` does the same.
//!
//! ```no_run
//! # async fn demo() -> Result<(), attache::server::ServerError> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let server = attache::server::Server::start(attache::server::Config::default(), listener).await?;
//! println!("listening on {}", server.url());
//! server.run(attache::server::shutdown_signal()).await
//! # }
//! ```

mod accounts;
mod audit;
mod auditkey;
mod authz;
mod clock;
pub mod control;
mod error;
mod extract;
mod grants;
mod inflight;
mod items;
mod limits;
mod matters;
mod messages;
pub(crate) mod metrics;
mod routes;
mod signatures;
mod sweep;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use rustls::ServerConfig;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use clock::TEST_CLOCK_ENV;
pub use error::ApiError;
pub use limits::{Limits, Rate};
pub use routes::{
    CHUNKS_LIMIT, COMMIT_LIMIT, JSON_LIMIT, ROUTES, RouteInfo, SEND_LIMIT, api_markdown, openapi,
};

pub(crate) use clock::Clock;

use crate::crypto::PublicKeys;
use crate::storage::{AccountRecord, StorageError, Store};
use crate::wire::api::{Account, MAX_EMAIL_LEN, Role};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest header block of an HTTP/2 request (HTTP/1.1 is bounded by hyper's read buffer).
const MAX_H2_HEADER_BYTES: u32 = 64 * 1024;
/// HTTP/2 receive windows of a stream and of a whole connection (see `Server::run`).
const H2_STREAM_WINDOW: u32 = 4 << 20;
const H2_CONNECTION_WINDOW: u32 = 8 << 20;

/// Settings of the server. The one secret, the SMTP password in `mail`, is redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database folder (sled).
    pub data: PathBuf,
    /// Folder of the self-signed certificate and the bootstrap invite.
    pub keys: PathBuf,
    /// The URL clients use, e.g. `https://portal.example.com`; default `https://LISTEN_ADDR`.
    pub public_url: Option<String>,
    /// PEM certificate chain (with `tls_key`); reloaded on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// Also offer TLS 1.2.
    pub tls12: bool,
    /// sled page cache in MiB.
    pub cache_mb: u64,
    /// Invites expire after this many days.
    pub invite_days: u32,
    /// Sessions end after this many idle minutes.
    pub session_idle_minutes: u32,
    /// Sessions end this many hours after sign-in.
    pub session_hours: u32,
    /// Uncommitted uploads idle this long are deleted.
    pub upload_abandon_hours: u32,
    /// Days a closed matter's content is kept before deletion, unless the closing says
    /// otherwise (at most [`crate::wire::api::MAX_RETAIN_DAYS`]).
    pub retention_days: u32,
    /// Seconds between sweeps (grant expiry, retention deletion, checkpoints, expired records);
    /// at least 1.
    pub sweep_seconds: u64,
    /// Hours before a signature deadline at which the signer is reminded.
    pub signature_reminder_hours: Vec<u32>,
    /// Email notices: relay, sender, firm name, coalescing window, DKIM.
    pub mail: crate::mail::MailSettings,
    /// Rates, sign-in back-off, connection and concurrency limits, deadlines.
    pub limits: Limits,
    /// Blob store, quotas and the free-disk reserve.
    pub storage: crate::storage::StorageSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data: "data".into(),
            keys: "keys".into(),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            tls12: false,
            cache_mb: 64,
            invite_days: 7,
            session_idle_minutes: 60,
            session_hours: 12,
            upload_abandon_hours: 24,
            retention_days: 2555,
            sweep_seconds: 600,
            signature_reminder_hours: vec![72, 24],
            mail: crate::mail::MailSettings::default(),
            limits: Limits::default(),
            storage: crate::storage::StorageSettings::default(),
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The database could not be opened or written.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The certificate or key could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The settings contradict each other.
    #[error("configuration: {0}")]
    Config(String),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) settings: Arc<Config>,
    /// The origin sign-in signatures are bound to, e.g. `https://127.0.0.1:8443`.
    pub(crate) origin: String,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) limiter: Arc<limits::Limiter>,
    /// Slots of requests being handled (`None`: no limit).
    pub(crate) in_flight: Option<Arc<Semaphore>>,
    /// The notice outbox's wake-up signal and counters.
    pub(crate) outbox: crate::mail::Outbox,
    /// The one clock every expiry reads.
    pub(crate) clock: Clock,
    /// Signs audit checkpoints and evidence attestations.
    pub(crate) audit_key: Arc<auditkey::AuditKey>,
    /// Held while a matter's state is checked and something is added to it or its state
    /// changes, so that nothing joins a matter that is being closed or deleted.
    matters: Arc<Mutex<()>>,
    /// Requests in flight on each upload.
    pub(crate) uploads: inflight::InFlight,
}

/// The client's address, attached to every request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl AppState {
    /// The server clock's current time, in seconds.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Takes the matter lock (held only for synchronous checks and writes, never across an
    /// await).
    pub(crate) fn lock_matters(&self) -> MutexGuard<'_, ()> {
        self.matters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an audit entry for an action by `caller` (not yet durable).
    pub(crate) fn audit(
        &self,
        caller: &extract::Caller,
        action: &str,
        object: &str,
        matter: Option<&[u8; 16]>,
    ) -> Result<(), ApiError> {
        self.store.audit(
            self.now(),
            &caller.account.email,
            &caller.addr,
            action,
            object,
            matter,
        )?;
        Ok(())
    }

    /// Signs a checkpoint if the audit log advanced since the last one (not yet durable).
    pub(crate) fn checkpoint(&self) -> Result<(), StorageError> {
        let key = self.audit_key.clone();
        self.store
            .checkpoint(self.now(), &move |m: &[u8]| key.sign(m))?;
        Ok(())
    }
}

/// A started server: store open, certificate loaded, socket bound; not yet serving.
pub struct Server {
    listener: std::net::TcpListener,
    state: AppState,
    tls: Arc<RwLock<Arc<ServerConfig>>>,
    fingerprint: String,
    bootstrap_invite: Option<String>,
    mailer: Arc<crate::mail::Mailer>,
    /// The control socket (`attache backup`), if it could be bound.
    control: Option<tokio::net::UnixListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.state.origin)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the store, loads or creates the certificate and, on first start with an empty
    /// store, creates the bootstrap invite (also written to `keys/bootstrap-invite`, mode
    /// 0600). Must run inside a tokio runtime.
    pub async fn start(
        config: Config,
        listener: std::net::TcpListener,
    ) -> Result<Self, ServerError> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        for dir in [&config.keys, &config.data] {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        let loaded = tls::load_or_create(&config, addr.ip())?;
        let origin = match &config.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => default_url(addr),
        };
        config.limits.check().map_err(ServerError::Config)?;
        if config.retention_days > crate::wire::api::MAX_RETAIN_DAYS {
            return Err(ServerError::Config(format!(
                "retention_days is at most {}",
                crate::wire::api::MAX_RETAIN_DAYS
            )));
        }
        let clock = Clock::from_env();
        if let Some(path) = clock.offset_file() {
            tracing::warn!(
                file = %path.display(),
                "{TEST_CLOCK_ENV} is set: the server's clock is moved by the number of seconds \
                 in this file. This is for tests only; never set it in production"
            );
        }
        let audit_key = Arc::new(auditkey::AuditKey::load_or_create(&config.keys)?);
        let store = Store::open_with(
            &config.data,
            config.cache_mb.saturating_mul(1 << 20),
            Some(config.storage.blob_store),
        )?;
        // A path too long for a Unix socket (108 bytes) must not stop the server: it runs
        // without online backups and says so.
        let control = match control::bind(&config.data) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot open the control socket in the data folder: `attache backup` will not work"
                );
                None
            }
        };
        let keys = config.keys.clone();
        let mailer = crate::mail::Mailer::new(&config.mail, &origin, &config.data)
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let outbox = crate::mail::Outbox::new(&config.mail, clock.clone());
        let limiter = Arc::new(limits::Limiter::new(&config.limits));
        let in_flight = (config.limits.max_requests_in_flight > 0)
            .then(|| Arc::new(Semaphore::new(config.limits.max_requests_in_flight)));
        let state = AppState {
            store,
            settings: Arc::new(config),
            origin,
            metrics: Arc::default(),
            limiter,
            in_flight,
            outbox,
            clock,
            audit_key,
            matters: Arc::default(),
            uploads: inflight::InFlight::default(),
        };
        let bootstrap_invite = if state.store.is_empty()? {
            let (url, _) =
                accounts::new_invite(&state, None, None, Role::Admin, None).map_err(|e| {
                    ServerError::Config(format!("cannot create the bootstrap invite: {e:?}"))
                })?;
            state.store.commit().await?;
            tls::write_private(
                &keys.join("bootstrap-invite"),
                format!("{url}\n").as_bytes(),
            )?;
            Some(url)
        } else {
            None
        };
        Ok(Self {
            listener,
            state,
            tls: Arc::new(RwLock::new(loaded.config)),
            fingerprint: loaded.fingerprint,
            bootstrap_invite,
            mailer: Arc::new(mailer),
            control,
        })
    }

    /// The public URL (`https://HOST:PORT`).
    pub fn url(&self) -> &str {
        &self.state.origin
    }

    /// Lower-case hex SHA-256 of the DER certificate, for clients to pin.
    pub fn certificate_sha256(&self) -> &str {
        &self.fingerprint
    }

    /// The bootstrap invite URL, on a first start with an empty store.
    pub fn bootstrap_invite(&self) -> Option<&str> {
        self.bootstrap_invite.as_deref()
    }

    /// The audit key's Ed25519 public key, base64: verifiers pin it to check checkpoints and
    /// evidence attestations.
    pub fn audit_public_key(&self) -> String {
        self.state.audit_key.public_base64()
    }

    /// Lower-case hex SHA-256 of the audit key's 32-byte public key.
    pub fn audit_key_sha256(&self) -> String {
        self.state.audit_key.sha256_hex()
    }

    /// The router alone (no TLS), for tests that drive it directly.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish (up to 30 seconds). Reloads a configured certificate on SIGHUP.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let limits = self.state.settings.limits.clone();
        let secs = Duration::from_secs;
        let service = TowerToHyperService::new(routes::router(self.state.clone()));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(secs(limits.header_timeout_secs));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(Some(limits.max_streams_per_connection).filter(|n| *n > 0))
            .max_header_list_size(MAX_H2_HEADER_BYTES)
            // Flow-control windows sized for chunk uploads: a client may send this much ahead
            // of what the handler has read, so an upload is not held to one window per round
            // trip; the connection window bounds what one connection can have buffered.
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .keep_alive_interval(Some(Duration::from_secs(60)));
        let graceful = GracefulShutdown::new();
        let slots =
            (limits.max_connections > 0).then(|| Arc::new(Semaphore::new(limits.max_connections)));
        let per_ip = Arc::new(limits::Connections::default());
        let sweeper = tokio::spawn(sweep::run(self.state.clone()));
        let notices = tokio::spawn(crate::mail::run(
            self.state.store.clone(),
            self.mailer.clone(),
            self.state.outbox.clone(),
            self.state.origin.clone(),
        ));
        let reloader = tokio::spawn(reload_on_hangup(
            self.state.settings.clone(),
            self.tls.clone(),
        ));
        let control = self.control.map(|listener| {
            tokio::spawn(control::serve(
                listener,
                self.state.store.clone(),
                self.state.settings.data.clone(),
            ))
        });
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = &mut shutdown => break,
            };
            let (tcp, peer) = match accepted {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Refused connections are closed at once, before any TLS work.
            let slot = match &slots {
                Some(slots) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        self.state.metrics.connection_refused("total");
                        tracing::debug!("connection limit reached; closing a connection");
                        continue;
                    }
                },
                None => None,
            };
            let Some(ip_slot) = per_ip.open(peer.ip(), limits.max_connections_per_ip) else {
                self.state.metrics.connection_refused("per_ip");
                tracing::debug!("per-address connection limit reached; closing a connection");
                continue;
            };
            let config = self
                .tls
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let acceptor = TlsAcceptor::from(config);
            let service = service.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let metrics = self.state.metrics.clone();
            let store = self.state.store.clone();
            let (handshake, idle) = (
                secs(limits.handshake_timeout_secs),
                secs(limits.idle_timeout_secs),
            );
            tokio::spawn(async move {
                let _slots = (slot, ip_slot);
                let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let activity = limits::Activity::new();
                let watched = activity.clone();
                let service = hyper::service::service_fn(move |mut req| {
                    req.extensions_mut().insert(Peer(peer));
                    let (open, running) = watched.request();
                    let (service, store) = (service.clone(), store.clone());
                    async move {
                        // Every request holds the write gate while its handler runs (a backup
                        // takes it exclusively); a streamed response body goes on without it.
                        let writing = store.writing().await;
                        let res = hyper::service::Service::call(&service, req).await;
                        drop(writing);
                        drop(running);
                        // The request stays open until its response body is done or dropped.
                        res.map(|r| {
                            r.map(|body| {
                                axum::body::Body::new(http_body_util::BodyExt::map_frame(
                                    body,
                                    move |frame| {
                                        let _open = &open;
                                        frame
                                    },
                                ))
                            })
                        })
                    }
                });
                let io = TokioIo::new(limits::Watched::new(stream, activity.clone()));
                let conn = builder.serve_connection_with_upgrades(io, service);
                tokio::select! {
                    r = watcher.watch(conn.into_owned()) => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    }
                    () = activity.idle(idle) => {
                        metrics.connection_idle();
                        tracing::debug!("closing an idle connection");
                    }
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down: finishing in-flight requests");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish in time");
        }
        sweeper.abort();
        reloader.abort();
        notices.abort();
        if let Some(control) = control {
            control.abort();
            let _ = control.await;
            let _ = std::fs::remove_file(self.state.settings.data.join(control::SOCKET));
        }
        // Wait until the aborted tasks have dropped their store handles, so that the database
        // is closed when `run` returns (an in-process restart can reopen it at once).
        let _ = sweeper.await;
        let _ = reloader.await;
        let _ = notices.await;
        self.state.store.commit().await?;
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn reload_on_hangup(settings: Arc<Config>, tls: Arc<RwLock<Arc<ServerConfig>>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let (cert, key) = tls::paths(&settings);
            match tls::load(&cert, &key, settings.tls12) {
                Ok(loaded) => {
                    *tls.write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded.config;
                    tracing::info!(certificate = %loaded.fingerprint, "reloaded the certificate");
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificate reload failed; keeping the old one")
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (settings, tls);
    }
}

fn default_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}

pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, b);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A new id for a record listed newest first (message, signature request, matter): the wall
/// clock's milliseconds, inverted, in 48 bits big-endian, then 80 random bits. The listings'
/// keys are `inverted time in seconds || id`, so within one second the newest comes first too
/// (wholly random ids listed one second's messages in random order); ids made in the same
/// millisecond take the next ones, so the order holds between them as well. New records also
/// join their trees' newest leaf. The id tells its creation time to the ones who may see it
/// (who also see the record's dates); 80 random bits keep it unguessable, and access is
/// decided by the caller, never by the id. Item ids stay wholly random: the file blob store
/// spreads items over folders by their first byte.
pub(crate) fn new_listed_id() -> Result<[u8; 16], ApiError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let prev = LAST_MS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    let ms = now.max(prev.saturating_add(1));
    let mut id: [u8; 16] = random()?;
    id[..6].copy_from_slice(&(!ms).to_be_bytes()[2..]);
    Ok(id)
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| ApiError::Internal("the system random generator failed".into()))?;
    Ok(out)
}

/// Compares two secret digests in constant time (HMAC both, then `hmac::verify`).
pub(crate) fn secret_matches(given: &[u8; 32], stored: &[u8; 32]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"attache secret comparison");
    hmac::verify(&key, given, hmac::sign(&key, stored).as_ref()).is_ok()
}

/// Normalises and checks an email address (lower case, one `@`, no spaces or controls).
pub(crate) fn valid_email(s: &str) -> Result<String, ApiError> {
    let e = s.trim().to_lowercase();
    let ok = e.len() <= MAX_EMAIL_LEN
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/');
    if ok {
        Ok(e)
    } else {
        Err(ApiError::BadRequest(format!(
            "not an email address (at most {MAX_EMAIL_LEN} bytes, one @)"
        )))
    }
}

pub(crate) fn account_view(a: &AccountRecord) -> Result<Account, ApiError> {
    let keys = PublicKeys::from_bytes(&a.public_keys)
        .map_err(|_| ApiError::Internal("stored public keys invalid".into()))?;
    Ok(Account {
        email: a.email.clone(),
        name: a.name.clone(),
        role: a.role,
        public_keys: STANDARD.encode(keys.to_bytes()),
        fingerprint: keys.fingerprint().to_string(),
    })
}
