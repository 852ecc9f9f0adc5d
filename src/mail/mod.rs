//! Email notices: composition (pure, in [`compose`]), delivery by SMTP or to a folder of
//! `.eml` files, and the worker that drains the durable outbox.
//!
//! A notice says that something is waiting, from which firm, and where to read it; it never
//! carries a message's subject, body, file names, matter or any sender-written text (the
//! composition functions are never given them). Logs name notices by id, never by content,
//! and never print the SMTP password or an invite secret. This module never names a secret key
//! type or an opening function.

pub mod compose;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

pub use compose::Composed;
pub(crate) use worker::run;

use crate::server::metrics::write_metric;

/// Reminder topic: a signature requested from the recipient is due soon.
pub(crate) const TOPIC_SIGNATURE_DEADLINE: &str = "signature_deadline";
/// Reminder topic: a signature request the recipient made was answered.
pub(crate) const TOPIC_SIGNATURE_ANSWERED: &str = "signature_answered";
use crate::storage::{NoticeKind, NoticeRecord, NoticeState};

/// Mail settings of the server. `Debug` redacts the SMTP password.
#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://HOST:PORT` (STARTTLS required), `smtps://HOST:PORT` (implicit TLS) or
    /// `smtp+insecure://HOST:PORT` (no TLS). `None`: write `.eml` files to `mail_dir`.
    pub smtp: Option<String>,
    /// SMTP AUTH user name.
    pub smtp_user: Option<String>,
    /// SMTP AUTH password (read from a file by `attache serve`).
    pub smtp_password: Option<String>,
    /// A PEM CA certificate to trust for the relay (a private CA or a self-signed relay).
    pub smtp_ca: Option<PathBuf>,
    /// Where `.eml` files go without SMTP; default `<data>/mail`.
    pub mail_dir: Option<PathBuf>,
    /// The From address; default `attache@<host of the public URL>`.
    pub mail_from: Option<String>,
    /// The firm's display name in every notice.
    pub firm_name: String,
    /// Notices to one address within this many seconds become one email; 0 disables.
    pub notice_window_secs: u64,
    /// Hours a client's message may wait for a firm reply before the firm is reminded.
    pub reply_target_hours: f64,
    /// DKIM private key (PEM: RSA PKCS#1 or Ed25519 PKCS#8).
    pub dkim_key: Option<PathBuf>,
    /// DKIM selector.
    pub dkim_selector: Option<String>,
    /// DKIM signing domain; default the From address's domain.
    pub dkim_domain: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp: None,
            smtp_user: None,
            smtp_password: None,
            smtp_ca: None,
            mail_dir: None,
            mail_from: None,
            firm_name: "Attache".into(),
            notice_window_secs: 120,
            reply_target_hours: 24.0,
            dkim_key: None,
            dkim_selector: None,
            dkim_domain: None,
        }
    }
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &self.smtp)
            .field("smtp_user", &self.smtp_user)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "<redacted>"),
            )
            .field("smtp_ca", &self.smtp_ca)
            .field("mail_dir", &self.mail_dir)
            .field("mail_from", &self.mail_from)
            .field("firm_name", &self.firm_name)
            .field("notice_window_secs", &self.notice_window_secs)
            .field("reply_target_hours", &self.reply_target_hours)
            .field("dkim_key", &self.dkim_key)
            .field("dkim_selector", &self.dkim_selector)
            .field("dkim_domain", &self.dkim_domain)
            .finish()
    }
}

/// Why the mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The `--smtp` URL is not one of the accepted forms.
    #[error("--smtp: {0}")]
    Url(String),
    /// A file (CA, DKIM key) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS settings were refused.
    #[error("smtp tls: {0}")]
    Tls(String),
    /// An address is not a valid email address.
    #[error("not an email address: {0}")]
    Address(String),
    /// The DKIM settings are incomplete or the key is not usable.
    #[error("dkim: {0}")]
    Dkim(String),
}

/// How one delivery attempt failed.
#[derive(Debug)]
pub(crate) enum DeliveryError {
    /// A permanent refusal (5xx): the notice is marked undeliverable.
    Permanent(Option<u16>, String),
    /// Anything else (4xx, no connection, TLS, timeout): retried with backoff.
    Transient(String),
}

/// Delivers composed notices.
pub(crate) struct Mailer {
    transport: Transport,
    from: Mailbox,
    domain: String,
    dkim: Option<DkimConfig>,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

impl Mailer {
    /// Builds the transport from the settings. `origin` is the server's public URL; `data` the
    /// database folder (for the default mail folder).
    pub(crate) fn new(
        s: &MailSettings,
        origin: &str,
        data: &std::path::Path,
    ) -> Result<Self, MailError> {
        let from_addr = match &s.mail_from {
            Some(a) => a.clone(),
            None => format!("attache@{}", mail_host(origin)),
        };
        let address: lettre::Address = from_addr
            .parse()
            .map_err(|_| MailError::Address(from_addr.clone()))?;
        let domain = address.domain().to_owned();
        let from = Mailbox::new(Some(s.firm_name.clone()), address);
        let transport = match &s.smtp {
            None => Transport::Folder(s.mail_dir.clone().unwrap_or_else(|| data.join("mail"))),
            Some(url) => Transport::Smtp(smtp_transport(url, s)?),
        };
        let dkim = match (&s.dkim_key, &s.dkim_selector) {
            (None, None) => None,
            (Some(key), Some(selector)) => {
                let pem = std::fs::read_to_string(key).map_err(|source| MailError::Read {
                    path: key.clone(),
                    source,
                })?;
                let signing = dkim_key(&pem)?;
                Some(DkimConfig::default_config(
                    selector.clone(),
                    s.dkim_domain.clone().unwrap_or_else(|| domain.clone()),
                    signing,
                ))
            }
            _ => {
                return Err(MailError::Dkim(
                    "--dkim-key and --dkim-selector go together".into(),
                ));
            }
        };
        Ok(Self {
            transport,
            from,
            domain,
            dkim,
        })
    }

    /// Whether notices go to a folder rather than a mail server.
    pub(crate) fn folder(&self) -> Option<&std::path::Path> {
        match &self.transport {
            Transport::Folder(p) => Some(p),
            Transport::Smtp(_) => None,
        }
    }

    /// The stable Message-ID of a notice's email.
    pub(crate) fn message_id(&self, id: &[u8; 16]) -> String {
        format!("<{}.notice@{}>", crate::wire::to_hex(id), self.domain)
    }

    /// Sends one email; `Ok` means the relay accepted it (or the file is written and synced).
    pub(crate) async fn deliver(
        &self,
        id: &[u8; 16],
        to: &str,
        c: &Composed,
    ) -> Result<(), DeliveryError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| DeliveryError::Permanent(None, "invalid recipient address".into()))?;
        let mut message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(c.subject.clone())
            .message_id(Some(self.message_id(id)))
            .multipart(MultiPart::alternative_plain_html(
                c.text.clone(),
                c.html.clone(),
            ))
            .map_err(|e| DeliveryError::Permanent(None, format!("cannot build the email: {e}")))?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        match &self.transport {
            Transport::Smtp(t) => match t.send(message).await {
                Ok(_) => Ok(()),
                // A refused login (530, 534, 535, 538) is a problem of our settings, not of the
                // recipient: the notice waits for the administrator to fix them.
                Err(e) if e.is_permanent() && !is_auth_refusal(e.status().map(u16::from)) => Err(
                    DeliveryError::Permanent(e.status().map(u16::from), e.to_string()),
                ),
                Err(e) => Err(DeliveryError::Transient(e.to_string())),
            },
            Transport::Folder(dir) => {
                let bytes = message.formatted();
                let dir = dir.clone();
                let name = format!("{}.eml", crate::wire::to_hex(id));
                tokio::task::spawn_blocking(move || write_eml(&dir, &name, &bytes))
                    .await
                    .map_err(|e| DeliveryError::Transient(e.to_string()))?
                    .map_err(|e| DeliveryError::Transient(format!("mail folder: {e}")))
            }
        }
    }
}

/// What the server's handlers and the worker share: the wake-up signal, counters and settings.
#[derive(Clone)]
pub(crate) struct Outbox {
    inner: Arc<OutboxInner>,
}

struct OutboxInner {
    wake: Notify,
    /// When the worker will next look at the outbox (server clock, ms); `i64::MAX` while it
    /// is looking. A new notice due later than this needs no wake-up.
    next_look_ms: AtomicI64,
    /// Passes made over the outbox.
    passes: AtomicU64,
    clock: crate::server::Clock,
    window_ms: i64,
    reply_target_ms: i64,
    firm: String,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    undeliverable: AtomicU64,
    pending: AtomicU64,
    reminders: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(s: &MailSettings, clock: crate::server::Clock) -> Self {
        let window_ms =
            i64::try_from(s.notice_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        // Hours as a fraction, so that tests can set seconds; clamp to a sane range.
        let reply_target_ms = (s.reply_target_hours.clamp(0.0, 24.0 * 365.0) * 3_600_000.0) as i64;
        Self {
            inner: Arc::new(OutboxInner {
                wake: Notify::new(),
                next_look_ms: AtomicI64::new(i64::MAX),
                passes: AtomicU64::new(0),
                clock,
                window_ms,
                reply_target_ms,
                firm: s.firm_name.clone(),
                sent: AtomicU64::new(0),
                failed_attempts: AtomicU64::new(0),
                undeliverable: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                reminders: AtomicU64::new(0),
            }),
        }
    }

    /// The server clock's time in milliseconds: due times follow the server's one clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Tells the worker that new notices are durable.
    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Tells the worker that `notices` are durable, waking it only if one falls due before it
    /// looks anyway: a message's notices wait out the coalescing window, and a pass reads the
    /// whole outbox, so waking the worker for each message would only repeat that read.
    pub(crate) fn queued(&self, notices: &[NoticeRecord]) {
        let i = &self.inner;
        let Some(due) = notices.iter().map(|n| n.due_ms).min() else {
            return;
        };
        // Read after the notices were stored: a pass that began before then either saw them
        // or left `i64::MAX` here (so every notice wakes the next pass), and one that begins
        // after sees them.
        if due < i.next_look_ms.load(Ordering::SeqCst) {
            i.wake.notify_one();
            return;
        }
        // No pass will count them before it falls due: keep the gauges current meanwhile.
        // (Stored just as a pass finished counting them, they count twice until the next.)
        for n in notices {
            match n.kind {
                NoticeKind::Reminder { .. } => i.reminders.fetch_add(1, Ordering::Relaxed),
                _ => i.pending.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    /// The firm's display name.
    pub(crate) fn firm(&self) -> &str {
        &self.inner.firm
    }

    /// The notices a new message causes: one per recipient, due after the coalescing window.
    pub(crate) fn message_notices(
        &self,
        message: &[u8; 16],
        to: &[String],
    ) -> Result<Vec<NoticeRecord>, crate::server::ApiError> {
        let now = self.now_ms();
        to.iter()
            .map(|t| {
                new_notice(
                    t,
                    NoticeKind::Message { message: *message },
                    now,
                    now.saturating_add(self.inner.window_ms),
                    false,
                )
            })
            .collect()
    }

    /// The reply-target reminder for a client's message to a firm member, due after the target.
    pub(crate) fn reply_reminder(
        &self,
        message: &[u8; 16],
        firm_member: &str,
    ) -> Result<NoticeRecord, crate::server::ApiError> {
        let now = self.now_ms();
        new_notice(
            firm_member,
            NoticeKind::Reminder {
                topic: "reply_target".into(),
                about: Some(*message),
            },
            now,
            now.saturating_add(self.inner.reply_target_ms),
            true,
        )
    }

    /// A reminder to `signer` of the signature request `request`, due at `at` (seconds). The
    /// worker drops it if the request was answered (or has passed its deadline) by then.
    pub(crate) fn signature_reminder(
        &self,
        request: &[u8; 16],
        signer: &str,
        at: i64,
    ) -> Result<NoticeRecord, crate::server::ApiError> {
        new_notice(
            signer,
            NoticeKind::Reminder {
                topic: TOPIC_SIGNATURE_DEADLINE.into(),
                about: Some(*request),
            },
            self.now_ms(),
            at.saturating_mul(1000),
            true,
        )
    }

    /// The notice to `requester` that the signature request `request` was answered, due now.
    pub(crate) fn signature_answered(
        &self,
        request: &[u8; 16],
        requester: &str,
    ) -> Result<NoticeRecord, crate::server::ApiError> {
        let now = self.now_ms();
        new_notice(
            requester,
            NoticeKind::Reminder {
                topic: TOPIC_SIGNATURE_ANSWERED.into(),
                about: Some(*request),
            },
            now,
            now,
            true,
        )
    }

    /// The notice that emails an invite.
    pub(crate) fn invite_notice(
        &self,
        to: &str,
        url: &str,
        invited_by: &str,
        inviter_name: &str,
        expires_at: i64,
    ) -> Result<NoticeRecord, crate::server::ApiError> {
        let now = self.now_ms();
        new_notice(
            to,
            NoticeKind::Invite {
                url: url.to_owned(),
                invited_by: invited_by.to_owned(),
                inviter_name: inviter_name.to_owned(),
                expires_at,
            },
            now,
            now,
            true,
        )
    }

    /// The Prometheus lines of the notice counters.
    pub(crate) fn render_metrics(&self) -> String {
        let i = &self.inner;
        let mut out = String::new();
        for (name, kind, help, v) in [
            (
                "attache_outbox_passes_total",
                "counter",
                "Looks the notice worker took at the whole outbox.",
                i.passes.load(Ordering::Relaxed),
            ),
            (
                "attache_notices_sent_total",
                "counter",
                "Notice emails accepted by the relay (or written to the mail folder).",
                i.sent.load(Ordering::Relaxed),
            ),
            (
                "attache_notice_attempts_failed_total",
                "counter",
                "Notice delivery attempts that failed and will be retried.",
                i.failed_attempts.load(Ordering::Relaxed),
            ),
            (
                "attache_notices_undeliverable",
                "gauge",
                "Notices refused for good (permanent 5xx) still in the outbox.",
                i.undeliverable.load(Ordering::Relaxed),
            ),
            (
                "attache_notices_pending",
                "gauge",
                "Notices (not reminders) waiting in the outbox: coalescing, retrying or queued.",
                i.pending.load(Ordering::Relaxed),
            ),
            (
                "attache_reminders_scheduled",
                "gauge",
                "Reminders waiting for their time.",
                i.reminders.load(Ordering::Relaxed),
            ),
        ] {
            write_metric(&mut out, name, kind, help, v);
        }
        out
    }
}

fn new_notice(
    to: &str,
    kind: NoticeKind,
    now: i64,
    due_ms: i64,
    grouped: bool,
) -> Result<NoticeRecord, crate::server::ApiError> {
    let tail: [u8; 8] = crate::server::random()?;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&u64::try_from(now).unwrap_or(0).to_be_bytes());
    id[8..].copy_from_slice(&tail);
    Ok(NoticeRecord {
        id,
        to: to.to_owned(),
        kind,
        created_ms: now,
        due_ms,
        state: NoticeState::Pending,
        attempts: 0,
        count: 1,
        grouped,
    })
}

/// The host of the public URL, for the default From address (an IP becomes `localhost`, which
/// a bare address cannot carry).
fn mail_host(origin: &str) -> String {
    let host = origin
        .split("://")
        .nth(1)
        .unwrap_or(origin)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        "localhost".into()
    } else {
        host.to_owned()
    }
}

fn smtp_transport(
    url: &str,
    s: &MailSettings,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| MailError::Url(format!("{url}: expected smtp://HOST:PORT")))?;
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') || rest.is_empty() {
        return Err(MailError::Url(format!(
            "{url}: expected SCHEME://HOST:PORT (credentials go in --smtp-user and --smtp-password-file)"
        )));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            Some(
                p.parse::<u16>()
                    .map_err(|_| MailError::Url(format!("{url}: bad port")))?,
            ),
        ),
        None => (rest.to_owned(), None),
    };
    let tls_params = || -> Result<TlsParameters, MailError> {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(ca) = &s.smtp_ca {
            let pem = std::fs::read(ca).map_err(|source| MailError::Read {
                path: ca.clone(),
                source,
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| MailError::Tls(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| MailError::Tls(e.to_string()))
    };
    let (tls, default_port) = match scheme {
        "smtp" => (Tls::Required(tls_params()?), 587),
        "smtps" => (Tls::Wrapper(tls_params()?), 465),
        "smtp+insecure" => (Tls::None, 25),
        other => {
            return Err(MailError::Url(format!(
                "unknown scheme {other}: use smtp:// (STARTTLS), smtps:// (implicit TLS) or smtp+insecure://"
            )));
        }
    };
    // `relay` sets implicit TLS with the public roots; the port and TLS mode are replaced.
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
        .map_err(|e| MailError::Url(format!("{url}: {e}")))?
        .port(port.unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(Duration::from_secs(15)));
    match (&s.smtp_user, &s.smtp_password) {
        (Some(u), Some(p)) => b = b.credentials(Credentials::new(u.clone(), p.clone())),
        (None, None) => {}
        _ => {
            return Err(MailError::Url(
                "--smtp-user and --smtp-password-file go together".into(),
            ));
        }
    }
    Ok(b.build())
}

/// Parses a DKIM key: PEM `RSA PRIVATE KEY` (PKCS#1) or an Ed25519 `PRIVATE KEY` (PKCS#8).
fn dkim_key(pem: &str) -> Result<DkimSigningKey, MailError> {
    use base64::Engine;
    let bad = |m: &str| MailError::Dkim(m.to_owned());
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return DkimSigningKey::new(pem, DkimSigningAlgorithm::Rsa)
            .map_err(|_| bad("the RSA key is not a PKCS#1 PEM key"));
    }
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| bad("expected a PEM RSA (PKCS#1) or Ed25519 (PKCS#8) private key"))?;
    // PKCS#8 for Ed25519: SEQUENCE { version 0 (v1, 48 bytes) or 1 (v2, with the public key
    // after), AlgorithmIdentifier { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed(32) } }.
    const ALGORITHM_AND_SEED: [u8; 11] = [
        0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    let v1_or_v2 = der.first() == Some(&0x30)
        && matches!(der.get(2..5), Some([0x02, 0x01, 0x00 | 0x01]))
        && der.get(5..16) == Some(&ALGORITHM_AND_SEED[..]);
    match der.get(16..48) {
        Some(seed) if v1_or_v2 => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(seed);
            DkimSigningKey::new(&b64, DkimSigningAlgorithm::Ed25519)
                .map_err(|_| bad("the Ed25519 key is not usable"))
        }
        _ => Err(bad(
            "expected an RSA (PKCS#1, BEGIN RSA PRIVATE KEY) or Ed25519 (PKCS#8) PEM key",
        )),
    }
}

fn is_auth_refusal(code: Option<u16>) -> bool {
    matches!(code, Some(530 | 534 | 535 | 538))
}

fn write_eml(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn smtp_urls() {
        // The pooled transport starts its connection task on the runtime.
        let s = MailSettings::default();
        assert!(smtp_transport("smtp://relay.example:587", &s).is_ok());
        assert!(smtp_transport("smtps://relay.example", &s).is_ok());
        assert!(smtp_transport("smtp+insecure://127.0.0.1:25", &s).is_ok());
        assert!(smtp_transport("http://relay.example", &s).is_err());
        assert!(smtp_transport("smtp://u:p@relay.example", &s).is_err());
    }

    #[test]
    fn password_is_redacted() {
        let s = MailSettings {
            smtp_password: Some("hunter2".into()),
            ..MailSettings::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn folder_delivery_is_dkim_signed_with_an_ed25519_key() {
        use base64::Engine;
        let dir = tempfile::tempdir().expect("temp dir");
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .expect("key");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let key = dir.path().join("dkim.pem");
        std::fs::write(&key, pem).expect("write key");
        let s = MailSettings {
            mail_dir: Some(dir.path().join("mail")),
            mail_from: Some("notices@firm.example".into()),
            dkim_key: Some(key),
            dkim_selector: Some("attache".into()),
            ..MailSettings::default()
        };
        let mailer = Mailer::new(&s, "https://portal.firm.example", dir.path()).expect("mailer");
        let c = compose::message_notice("Firm", "https://portal.firm.example", 1);
        mailer
            .deliver(&[7; 16], "carol@client.example", &c)
            .await
            .expect("deliver");
        let eml = std::fs::read_to_string(
            dir.path()
                .join("mail")
                .join(format!("{}.eml", crate::wire::to_hex(&[7; 16]))),
        )
        .expect("eml");
        assert!(
            eml.contains("DKIM-Signature: v=1; a=ed25519-sha256"),
            "{eml}"
        );
        assert!(eml.contains("d=firm.example"), "{eml}");
        assert!(eml.contains("s=attache"), "{eml}");
        assert!(eml.contains(&mailer.message_id(&[7; 16])), "{eml}");
    }

    #[test]
    fn dkim_key_refuses_what_it_cannot_use() {
        assert!(dkim_key("not a key").is_err());
        assert!(
            dkim_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }

    #[test]
    fn mail_host_from_origin() {
        assert_eq!(
            mail_host("https://portal.example.com:8443"),
            "portal.example.com"
        );
        assert_eq!(mail_host("https://127.0.0.1:8443"), "localhost");
    }
}
