//! `attache serve`: configuration from flags, environment and file, then the server.
//!
//! Precedence: a flag beats its `ATTACHE_*` variable, which beats the key in `--config`,
//! which beats the built-in default. Prints the startup lines scripts read on stdout; logs go
//! to stderr.

use std::io::Write;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use attache::mail::MailSettings;
use attache::server::{Config, Limits, Server, shutdown_signal};
use attache::storage::StorageSettings;
use clap::ValueEnum;
use serde::Deserialize;

/// Settings of `attache serve`. Each flag also reads `ATTACHE_<NAME>` and the key of the same
/// name (with `_` for `-`) in the `--config` TOML file.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Tests only: ATTACHE_TEST_CLOCK_FILE=FILE moves the server's clock by the \
number of seconds written in FILE (re-read on each use; missing or garbled = 0), so that \
sessions, invites, grants, deadlines, reminders and retention can be tested without waiting. \
The server warns loudly at start when it is set. Never set it in production."
)]
pub(crate) struct ServeArgs {
    /// A TOML file with any of the settings below (keys like `listen`, `cache_mb`).
    #[arg(long, env = "ATTACHE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8443].
    #[arg(long, env = "ATTACHE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Database folder [default: ./data].
    #[arg(long, env = "ATTACHE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Folder of the self-signed certificate and the bootstrap invite [default: ./keys].
    #[arg(long, env = "ATTACHE_KEYS", value_name = "DIR")]
    keys: Option<PathBuf>,
    /// The URL clients use [default: https://LISTEN_ADDRESS].
    #[arg(long, env = "ATTACHE_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// PEM certificate chain; with --tls-key. Reloaded on SIGHUP. Without it a self-signed
    /// certificate is created in the keys folder on first start.
    #[arg(long, env = "ATTACHE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ATTACHE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Also offer TLS 1.2 (TLS 1.3 only by default).
    #[arg(long, env = "ATTACHE_TLS12", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    tls12: Option<bool>,
    /// sled page cache in MiB [default: 64].
    #[arg(long, env = "ATTACHE_CACHE_MB", value_name = "MIB")]
    cache_mb: Option<u64>,
    /// Invites expire after this many days [default: 7].
    #[arg(long, env = "ATTACHE_INVITE_DAYS", value_name = "DAYS")]
    invite_days: Option<u32>,
    /// Sessions end after this many idle minutes [default: 60].
    #[arg(long, env = "ATTACHE_SESSION_IDLE_MINUTES", value_name = "MINUTES")]
    session_idle_minutes: Option<u32>,
    /// Sessions end this many hours after sign-in [default: 12].
    #[arg(long, env = "ATTACHE_SESSION_HOURS", value_name = "HOURS")]
    session_hours: Option<u32>,
    /// Unfinished uploads idle this long are deleted [default: 24].
    #[arg(long, env = "ATTACHE_UPLOAD_ABANDON_HOURS", value_name = "HOURS")]
    upload_abandon_hours: Option<u32>,
    /// Days a closed matter's documents and messages are kept before they are deleted, unless
    /// the closing names its own period or a legal hold is set [default: 2555, about 7 years].
    #[arg(long, env = "ATTACHE_RETENTION_DAYS", value_name = "DAYS")]
    retention_days: Option<u32>,
    /// Seconds between sweeps: ended grants are cut off, matters past retention deleted,
    /// the audit log checkpointed, expired records removed [default: 600].
    #[arg(long, env = "ATTACHE_SWEEP_SECONDS", value_name = "SECONDS")]
    sweep_seconds: Option<u64>,
    /// Remind a signer this many hours before a signature deadline, comma-separated; empty
    /// for none [default: 72,24].
    #[arg(
        long,
        env = "ATTACHE_SIGNATURE_REMINDER_HOURS",
        value_name = "HOURS,..."
    )]
    signature_reminder_hours: Option<String>,
    /// Log format on stderr [default: text]. `RUST_LOG` sets the level (default `info`).
    #[arg(long, env = "ATTACHE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Mail relay for notices: smtp://HOST:PORT (STARTTLS required), smtps://HOST:PORT
    /// (implicit TLS) or smtp+insecure://HOST:PORT (no TLS). Without it, notices are written
    /// as .eml files to --mail-dir.
    #[arg(long, env = "ATTACHE_SMTP", value_name = "URL")]
    smtp: Option<String>,
    /// SMTP AUTH user name (with --smtp-password-file).
    #[arg(long, env = "ATTACHE_SMTP_USER", value_name = "NAME")]
    smtp_user: Option<String>,
    /// A file holding the SMTP AUTH password (one line).
    #[arg(long, env = "ATTACHE_SMTP_PASSWORD_FILE", value_name = "FILE")]
    smtp_password_file: Option<PathBuf>,
    /// A PEM CA certificate to trust for the relay (private CA or self-signed relay).
    #[arg(long, env = "ATTACHE_SMTP_CA", value_name = "FILE")]
    smtp_ca: Option<PathBuf>,
    /// Folder for .eml notices when no --smtp is set [default: DATA/mail].
    #[arg(long, env = "ATTACHE_MAIL_DIR", value_name = "DIR")]
    mail_dir: Option<PathBuf>,
    /// From address of notices [default: attache@HOST of the public URL].
    #[arg(long, env = "ATTACHE_MAIL_FROM", value_name = "ADDRESS")]
    mail_from: Option<String>,
    /// The firm's display name in notices [default: Attache].
    #[arg(long, env = "ATTACHE_FIRM_NAME", value_name = "NAME")]
    firm_name: Option<String>,
    /// Notices to one person within this many seconds become one email; 0 disables
    /// [default: 120].
    #[arg(long, env = "ATTACHE_NOTICE_WINDOW", value_name = "SECONDS")]
    notice_window: Option<u64>,
    /// Remind the firm when a client's message waited this many hours without a reply
    /// (fractions allowed) [default: 24].
    #[arg(long, env = "ATTACHE_REPLY_TARGET", value_name = "HOURS")]
    reply_target: Option<f64>,
    /// DKIM private key, PEM (RSA PKCS#1 or Ed25519 PKCS#8); with --dkim-selector.
    #[arg(long, env = "ATTACHE_DKIM_KEY", value_name = "FILE")]
    dkim_key: Option<PathBuf>,
    /// DKIM selector (the DNS name under _domainkey).
    #[arg(long, env = "ATTACHE_DKIM_SELECTOR", value_name = "S")]
    dkim_selector: Option<String>,
    /// DKIM signing domain [default: the domain of --mail-from].
    #[arg(long, env = "ATTACHE_DKIM_DOMAIN", value_name = "D")]
    dkim_domain: Option<String>,
    /// Sign-in and join requests per client address per minute; 0: no limit [default: 60].
    #[arg(long, env = "ATTACHE_RATE_AUTH_PER_IP", value_name = "N")]
    rate_auth_per_ip: Option<u32>,
    /// Write requests (POST, PUT) per account per minute, chunk uploads aside; 0: no limit
    /// [default: 600].
    #[arg(long, env = "ATTACHE_RATE_WRITES_PER_ACCOUNT", value_name = "N")]
    rate_writes_per_account: Option<u32>,
    /// Write requests per client address per minute, chunk uploads aside; 0: no limit [default:
    /// 3000].
    #[arg(long, env = "ATTACHE_RATE_WRITES_PER_IP", value_name = "N")]
    rate_writes_per_ip: Option<u32>,
    /// Chunk uploads (1 to 8 MiB each; a 4 GiB document is at most 4,096) per account per minute; 0:
    /// no limit [default: 12000].
    #[arg(long, env = "ATTACHE_RATE_CHUNKS_PER_ACCOUNT", value_name = "N")]
    rate_chunks_per_account: Option<u32>,
    /// Chunk uploads per client address per minute; 0: no limit [default: 24000].
    #[arg(long, env = "ATTACHE_RATE_CHUNKS_PER_IP", value_name = "N")]
    rate_chunks_per_ip: Option<u32>,
    /// Invites per account per hour; 0: no limit [default: 60].
    #[arg(long, env = "ATTACHE_RATE_INVITES_PER_ACCOUNT", value_name = "N")]
    rate_invites_per_account: Option<u32>,
    /// Failed sign-ins for one email (known or not) within --signin-window before it is locked
    /// out; 0: no back-off [default: 10].
    #[arg(long, env = "ATTACHE_SIGNIN_FAILURES", value_name = "N")]
    signin_failures: Option<u32>,
    /// Seconds after which failed sign-ins are forgotten [default: 900].
    #[arg(long, env = "ATTACHE_SIGNIN_WINDOW", value_name = "SECONDS")]
    signin_window: Option<u64>,
    /// Seconds of the first lockout; each further failure doubles it [default: 60].
    #[arg(long, env = "ATTACHE_SIGNIN_LOCKOUT", value_name = "SECONDS")]
    signin_lockout: Option<u64>,
    /// Longest lockout in seconds [default: 3600].
    #[arg(long, env = "ATTACHE_SIGNIN_LOCKOUT_MAX", value_name = "SECONDS")]
    signin_lockout_max: Option<u64>,
    /// Connections served at once; more are closed on accept; 0: no limit [default: 1024].
    #[arg(long, env = "ATTACHE_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Connections served at once from one client address; 0: no limit [default: 128].
    #[arg(long, env = "ATTACHE_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Requests handled at once; more wait up to 5 s, then get 503 busy; 0: no limit [default:
    /// 256].
    #[arg(long, env = "ATTACHE_MAX_REQUESTS_IN_FLIGHT", value_name = "N")]
    max_requests_in_flight: Option<usize>,
    /// Concurrent HTTP/2 streams per connection [default: 64].
    #[arg(long, env = "ATTACHE_MAX_STREAMS_PER_CONNECTION", value_name = "N")]
    max_streams_per_connection: Option<u32>,
    /// Seconds a client may take for the TLS handshake [default: 10].
    #[arg(long, env = "ATTACHE_HANDSHAKE_TIMEOUT", value_name = "SECONDS")]
    handshake_timeout: Option<u64>,
    /// Seconds a client may take to send a request's headers, and to start its next request on
    /// a kept-alive HTTP/1.1 connection [default: 15].
    #[arg(long, env = "ATTACHE_HEADER_TIMEOUT", value_name = "SECONDS")]
    header_timeout: Option<u64>,
    /// Seconds a connection may stay open with no request in flight, or with a response the
    /// client stopped reading [default: 60].
    #[arg(long, env = "ATTACHE_IDLE_TIMEOUT", value_name = "SECONDS")]
    idle_timeout: Option<u64>,
    /// Seconds from a request's arrival by which its whole body must have arrived, else 408
    /// timeout [default: 120].
    #[arg(long, env = "ATTACHE_BODY_TIMEOUT", value_name = "SECONDS")]
    body_timeout: Option<u64>,
    /// Where a new data folder keeps documents: `files` (one file per document, small
    /// messages in sled) or `sled`. An existing folder keeps the store it was created with
    /// [default: files].
    #[arg(long, env = "ATTACHE_BLOB_STORE", value_name = "STORE")]
    blob_store: Option<String>,
    /// Document bytes (ciphertext) a client or co-counsel account may store; 0: no limit
    /// [default: 10240].
    #[arg(long, env = "ATTACHE_QUOTA_MIB", value_name = "MIB")]
    quota_mib: Option<u64>,
    /// Document bytes a firm account (admin, attorney, staff) may store; 0: no limit
    /// [default: 0].
    #[arg(long, env = "ATTACHE_FIRM_QUOTA_MIB", value_name = "MIB")]
    firm_quota_mib: Option<u64>,
    /// Free space the data folder's disk keeps: uploads that would leave less get 507
    /// [default: 1024].
    #[arg(long, env = "ATTACHE_DISK_RESERVE_MIB", value_name = "MIB")]
    disk_reserve_mib: Option<u64>,
}

/// Log line format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The `--config` file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data: Option<PathBuf>,
    keys: Option<PathBuf>,
    public_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls12: Option<bool>,
    cache_mb: Option<u64>,
    invite_days: Option<u32>,
    session_idle_minutes: Option<u32>,
    session_hours: Option<u32>,
    upload_abandon_hours: Option<u32>,
    retention_days: Option<u32>,
    sweep_seconds: Option<u64>,
    signature_reminder_hours: Option<String>,
    log_format: Option<LogFormat>,
    smtp: Option<String>,
    smtp_user: Option<String>,
    smtp_password_file: Option<PathBuf>,
    smtp_ca: Option<PathBuf>,
    mail_dir: Option<PathBuf>,
    mail_from: Option<String>,
    firm_name: Option<String>,
    notice_window: Option<u64>,
    reply_target: Option<f64>,
    dkim_key: Option<PathBuf>,
    dkim_selector: Option<String>,
    dkim_domain: Option<String>,
    rate_auth_per_ip: Option<u32>,
    rate_writes_per_account: Option<u32>,
    rate_writes_per_ip: Option<u32>,
    rate_chunks_per_account: Option<u32>,
    rate_chunks_per_ip: Option<u32>,
    rate_invites_per_account: Option<u32>,
    signin_failures: Option<u32>,
    signin_window: Option<u64>,
    signin_lockout: Option<u64>,
    signin_lockout_max: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_requests_in_flight: Option<usize>,
    max_streams_per_connection: Option<u32>,
    handshake_timeout: Option<u64>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    body_timeout: Option<u64>,
    blob_store: Option<String>,
    quota_mib: Option<u64>,
    firm_quota_mib: Option<u64>,
    disk_reserve_mib: Option<u64>,
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn run(args: ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileSettings::default(),
    };
    let defaults = Config::default();
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8443".to_owned());
    let smtp_password = match args.smtp_password_file.or(file.smtp_password_file) {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read --smtp-password-file {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => None,
    };
    let mail_defaults = defaults.mail.clone();
    let mail = MailSettings {
        smtp: args.smtp.or(file.smtp),
        smtp_user: args.smtp_user.or(file.smtp_user),
        smtp_password,
        smtp_ca: args.smtp_ca.or(file.smtp_ca),
        mail_dir: args.mail_dir.or(file.mail_dir),
        mail_from: args.mail_from.or(file.mail_from),
        firm_name: args
            .firm_name
            .or(file.firm_name)
            .unwrap_or(mail_defaults.firm_name),
        notice_window_secs: args
            .notice_window
            .or(file.notice_window)
            .unwrap_or(mail_defaults.notice_window_secs),
        reply_target_hours: args
            .reply_target
            .or(file.reply_target)
            .unwrap_or(mail_defaults.reply_target_hours),
        dkim_key: args.dkim_key.or(file.dkim_key),
        dkim_selector: args.dkim_selector.or(file.dkim_selector),
        dkim_domain: args.dkim_domain.or(file.dkim_domain),
    };
    let d = defaults.limits.clone();
    let limits = Limits {
        auth_per_ip_per_minute: args
            .rate_auth_per_ip
            .or(file.rate_auth_per_ip)
            .unwrap_or(d.auth_per_ip_per_minute),
        writes_per_account_per_minute: args
            .rate_writes_per_account
            .or(file.rate_writes_per_account)
            .unwrap_or(d.writes_per_account_per_minute),
        writes_per_ip_per_minute: args
            .rate_writes_per_ip
            .or(file.rate_writes_per_ip)
            .unwrap_or(d.writes_per_ip_per_minute),
        chunks_per_account_per_minute: args
            .rate_chunks_per_account
            .or(file.rate_chunks_per_account)
            .unwrap_or(d.chunks_per_account_per_minute),
        chunks_per_ip_per_minute: args
            .rate_chunks_per_ip
            .or(file.rate_chunks_per_ip)
            .unwrap_or(d.chunks_per_ip_per_minute),
        invites_per_account_per_hour: args
            .rate_invites_per_account
            .or(file.rate_invites_per_account)
            .unwrap_or(d.invites_per_account_per_hour),
        signin_failures: args
            .signin_failures
            .or(file.signin_failures)
            .unwrap_or(d.signin_failures),
        signin_window_secs: args
            .signin_window
            .or(file.signin_window)
            .unwrap_or(d.signin_window_secs),
        signin_lockout_secs: args
            .signin_lockout
            .or(file.signin_lockout)
            .unwrap_or(d.signin_lockout_secs),
        signin_lockout_max_secs: args
            .signin_lockout_max
            .or(file.signin_lockout_max)
            .unwrap_or(d.signin_lockout_max_secs),
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections),
        max_connections_per_ip: args
            .max_connections_per_ip
            .or(file.max_connections_per_ip)
            .unwrap_or(d.max_connections_per_ip),
        max_requests_in_flight: args
            .max_requests_in_flight
            .or(file.max_requests_in_flight)
            .unwrap_or(d.max_requests_in_flight),
        max_streams_per_connection: args
            .max_streams_per_connection
            .or(file.max_streams_per_connection)
            .unwrap_or(d.max_streams_per_connection),
        handshake_timeout_secs: args
            .handshake_timeout
            .or(file.handshake_timeout)
            .unwrap_or(d.handshake_timeout_secs),
        header_timeout_secs: args
            .header_timeout
            .or(file.header_timeout)
            .unwrap_or(d.header_timeout_secs),
        idle_timeout_secs: args
            .idle_timeout
            .or(file.idle_timeout)
            .unwrap_or(d.idle_timeout_secs),
        body_timeout_secs: args
            .body_timeout
            .or(file.body_timeout)
            .unwrap_or(d.body_timeout_secs),
    };
    let config = Config {
        data: args.data.or(file.data).unwrap_or(defaults.data),
        keys: args.keys.or(file.keys).unwrap_or(defaults.keys),
        public_url: args.public_url.or(file.public_url),
        tls_cert: args.tls_cert.or(file.tls_cert),
        tls_key: args.tls_key.or(file.tls_key),
        tls12: args.tls12.or(file.tls12).unwrap_or(defaults.tls12),
        cache_mb: args.cache_mb.or(file.cache_mb).unwrap_or(defaults.cache_mb),
        invite_days: args
            .invite_days
            .or(file.invite_days)
            .unwrap_or(defaults.invite_days),
        session_idle_minutes: args
            .session_idle_minutes
            .or(file.session_idle_minutes)
            .unwrap_or(defaults.session_idle_minutes),
        session_hours: args
            .session_hours
            .or(file.session_hours)
            .unwrap_or(defaults.session_hours),
        upload_abandon_hours: args
            .upload_abandon_hours
            .or(file.upload_abandon_hours)
            .unwrap_or(defaults.upload_abandon_hours),
        retention_days: args
            .retention_days
            .or(file.retention_days)
            .unwrap_or(defaults.retention_days),
        sweep_seconds: args
            .sweep_seconds
            .or(file.sweep_seconds)
            .unwrap_or(defaults.sweep_seconds),
        signature_reminder_hours: match args
            .signature_reminder_hours
            .or(file.signature_reminder_hours)
        {
            Some(list) => reminder_hours(&list)?,
            None => defaults.signature_reminder_hours,
        },
        mail,
        limits,
        storage: storage_settings(
            args.blob_store.or(file.blob_store),
            args.quota_mib.or(file.quota_mib),
            args.firm_quota_mib.or(file.firm_quota_mib),
            args.disk_reserve_mib.or(file.disk_reserve_mib),
        )?,
    };
    if config.sweep_seconds == 0 {
        anyhow::bail!("--sweep-seconds must be at least 1");
    }
    let log_format = args
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text);
    init_logs(log_format);
    tracing::debug!(?config, "settings");

    let addr = listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen}: not an address"))?
        .next()
        .with_context(|| format!("--listen {listen}: resolves to no address"))?;
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (in use? try --listen 127.0.0.1:0)"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config, listener)
            .await
            .context("cannot start the server")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url())?;
        writeln!(out, "certificate sha256:{}", server.certificate_sha256())?;
        writeln!(out, "audit key ed25519:{}", server.audit_public_key())?;
        writeln!(out, "audit key sha256:{}", server.audit_key_sha256())?;
        if let Some(invite) = server.bootstrap_invite() {
            writeln!(out, "bootstrap invite: {invite}")?;
        }
        out.flush()?;
        drop(out);
        tracing::info!(url = server.url(), "serving");
        server.run(shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Parses `--signature-reminder-hours`: hours before the deadline, comma-separated.
fn reminder_hours(list: &str) -> Result<Vec<u32>> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.parse::<u32>()
                .ok()
                .filter(|n| *n <= 24 * 366 * 5)
                .with_context(|| {
                    format!(
                        "--signature-reminder-hours: {h:?} is not a number of hours (e.g. 72,24)"
                    )
                })
        })
        .collect()
}

/// The storage settings from their flags (MiB; a quota of 0 means none).
fn storage_settings(
    blob_store: Option<String>,
    quota_mib: Option<u64>,
    firm_quota_mib: Option<u64>,
    disk_reserve_mib: Option<u64>,
) -> Result<StorageSettings> {
    let d = StorageSettings::default();
    let mib = |v: u64| v.saturating_mul(1 << 20);
    let quota = |v: Option<u64>, default: Option<u64>| match v {
        Some(0) => None,
        Some(v) => Some(mib(v)),
        None => default,
    };
    Ok(StorageSettings {
        blob_store: match blob_store {
            Some(s) => s
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--blob-store: {e}"))?,
            None => d.blob_store,
        },
        quota_bytes: quota(quota_mib, d.quota_bytes),
        firm_quota_bytes: quota(firm_quota_mib, d.firm_quota_bytes),
        disk_reserve_bytes: disk_reserve_mib.map_or(d.disk_reserve_bytes, mib),
    })
}

fn read_file(path: &Path) -> Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the config file {}", path.display()))
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
