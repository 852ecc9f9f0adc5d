//! Email notices against a real SMTP server in the test process (mailin-embedded over TCP,
//! STARTTLS with a self-signed certificate given to the server as `--smtp-ca`, AUTH PLAIN),
//! with the real `attache` binary as server and CLI.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};

use attache::client::{Client, NoProgress, Outgoing, Profile};

use crate::support::{PASSPHRASE, User, free_port, invite_url, start_server_with, temp_dir};

const FIRM: &str = "Smith Partners LLP";
const SUBJECT: &str = "You have a secure message from Smith Partners LLP";
const SMTP_USER: &str = "notices";
const SMTP_PASSWORD: &str = "relay-password-4711";

/// One email as the SMTP server received it.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    /// The raw DATA, with quoted-printable soft line breaks removed.
    data: String,
    at: Instant,
}

impl Received {
    fn message_id(&self) -> String {
        self.data
            .lines()
            .find_map(|l| {
                l.strip_prefix("Message-ID: ")
                    .or_else(|| l.strip_prefix("Message-Id: "))
            })
            .unwrap_or_else(|| panic!("no Message-ID in {}", self.data))
            .trim()
            .to_owned()
    }

    fn subject(&self) -> String {
        self.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
            .trim()
            .to_owned()
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

#[derive(Clone)]
struct Catcher {
    inbox: Inbox,
    authed: bool,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Catcher {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        if self.authed {
            response::OK
        } else {
            response::AUTHENTICATION_REQUIRED
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        // A mailbox that does not exist: a permanent refusal.
        if to.contains("nobody@") {
            response::NO_MAILBOX
        } else {
            response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = String::from_utf8_lossy(&self.data).replace("=\r\n", "");
        self.inbox.lock().unwrap().push(Received {
            to: std::mem::take(&mut self.to),
            data,
            at: Instant::now(),
        });
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.authed = user == SMTP_USER && password == SMTP_PASSWORD;
        if self.authed {
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

/// The relay's certificate files (for `--smtp-ca` and the SMTP server).
struct RelayCert {
    cert: PathBuf,
    key: PathBuf,
}

fn relay_cert(dir: &Path) -> RelayCert {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("relay-cert.pem");
    let key = dir.join("relay-key.pem");
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    RelayCert { cert, key }
}

/// Starts the SMTP server (STARTTLS + AUTH PLAIN, mailin's protocol engine) on `listener`:
/// one thread accepts, one thread per connection.
fn start_smtp(listener: TcpListener, cert: &RelayCert) -> Inbox {
    start_smtp_with(listener, cert, true)
}

/// [`start_smtp`], with or without STARTTLS on offer.
fn start_smtp_with(listener: TcpListener, cert: &RelayCert, starttls: bool) -> Inbox {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let mut builder = SessionBuilder::new("relay.test");
    builder.enable_auth(AuthMechanism::Plain);
    if starttls {
        builder.enable_start_tls();
    }
    let inbox = Inbox::default();
    let shared = inbox.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            // Replies are small writes: without this, delayed ACKs add tens of milliseconds each.
            let _ = tcp.set_nodelay(true);
            let handler = Catcher {
                inbox: shared.clone(),
                authed: false,
                to: Vec::new(),
                data: Vec::new(),
            };
            let builder = builder.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                let _ = smtp_session(tcp, &builder, tls, handler);
            });
        }
    });
    inbox
}

fn smtp_session(
    tcp: std::net::TcpStream,
    builder: &SessionBuilder,
    tls: Arc<rustls::ServerConfig>,
    handler: Catcher,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let mut session = builder.build(tcp.peer_addr()?.ip(), handler);
    let mut plain = BufReader::new(tcp);
    session.greeting().write_to(plain.get_mut())?;
    if !smtp_lines(&mut session, &mut plain)? {
        return Ok(());
    }
    // STARTTLS: the client waits for our 220 before its handshake, so nothing is buffered.
    let tcp = plain.into_inner();
    let conn = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut secure = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    session.tls_active();
    smtp_lines(&mut session, &mut secure)?;
    secure.get_mut().flush()?;
    return Ok(());

    /// Runs commands until the end of the session (false) or STARTTLS (true).
    fn smtp_lines<S: std::io::Read + Write>(
        session: &mut mailin::Session<Catcher>,
        stream: &mut BufReader<S>,
    ) -> std::io::Result<bool> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if stream.read_until(b'\n', &mut line)? == 0 {
                return Ok(false);
            }
            let res = session.process(&line);
            match res.action {
                Action::NoReply => continue,
                Action::Reply => res.write_to(stream.get_mut())?,
                Action::Close => {
                    res.write_to(stream.get_mut())?;
                    stream.get_mut().flush()?;
                    return Ok(false);
                }
                Action::UpgradeTls => {
                    res.write_to(stream.get_mut())?;
                    stream.get_mut().flush()?;
                    return Ok(true);
                }
            }
            stream.get_mut().flush()?;
        }
    }
}

/// Polls `inbox` until `done` holds of the emails to `to`, for at most 10 s.
fn wait_for(inbox: &Inbox, to: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Received> = inbox
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.to.iter().any(|t| t.contains(to)))
            .cloned()
            .collect();
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for mail to {to}; have {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metrics(url: &str) -> String {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn metric(url: &str, name: &str) -> u64 {
    let text = metrics(url);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `/metrics` until `name` reaches `want`, for at most 10 s.
fn wait_metric(url: &str, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(url, name) != want {
        assert!(Instant::now() < deadline, "{name} never reached {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn smtp_env(root: &Path, port: u16, cert: &RelayCert, window: &str) -> Vec<(String, String)> {
    let password = root.join("smtp-password");
    std::fs::write(&password, format!("{SMTP_PASSWORD}\n")).unwrap();
    vec![
        ("ATTACHE_SMTP".into(), format!("smtp://127.0.0.1:{port}")),
        ("ATTACHE_SMTP_USER".into(), SMTP_USER.into()),
        (
            "ATTACHE_SMTP_PASSWORD_FILE".into(),
            password.to_str().unwrap().into(),
        ),
        ("ATTACHE_SMTP_CA".into(), cert.cert.to_str().unwrap().into()),
        ("ATTACHE_FIRM_NAME".into(), FIRM.into()),
        ("ATTACHE_MAIL_FROM".into(), "notices@firm.example".into()),
        ("ATTACHE_NOTICE_WINDOW".into(), window.into()),
    ]
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The attorney joins with the bootstrap invite; returns the attorney.
fn attorney(root: &Path, server: &crate::support::Server) -> User {
    let a = User::new(root, "attorney");
    a.ok_both(&[
        "join",
        server.bootstrap.as_deref().unwrap(),
        "--email",
        "ada@firm.example",
        "--name",
        "Ada Attorney",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    a
}

fn send(from: &User, to: &str, subject: &str, body: &str, files: &[&Path]) -> String {
    let mut args = vec!["send", "--to", to, "--subject", subject, "--body", body];
    for f in files {
        args.push(f.to_str().unwrap());
    }
    args.push("--json");
    let (out, _) = from.ok_both(&args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

fn is_message_notice(r: &Received) -> bool {
    r.subject() == SUBJECT
}

#[test]
fn notices_say_only_that_something_waits_coalesce_and_invites_are_emailed() {
    let root = temp_dir();
    let root = root.path();
    let cert = relay_cert(root);
    let smtp = TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_port = smtp.local_addr().unwrap().port();
    let inbox = start_smtp(smtp, &cert);
    let env = smtp_env(root, smtp_port, &cert, "3");
    let server = start_server_with(root, free_port(), &as_refs(&env));
    let ada = attorney(root, &server);

    // The invite is emailed; the link in the email works.
    let (out, err) = ada.ok_both(&["invite", "carol@client.example", "--role", "client"]);
    assert!(err.contains("emailed"), "{err}");
    let printed = invite_url(&out);
    let mails = wait_for(&inbox, "carol@client.example", |m| !m.is_empty());
    assert_eq!(mails.len(), 1);
    let invite_mail = &mails[0].data;
    assert!(invite_mail.contains(&printed), "{invite_mail}");
    assert!(invite_mail.contains("Ada Attorney"), "{invite_mail}");
    assert!(invite_mail.contains(FIRM), "{invite_mail}");
    assert!(invite_mail.contains("expires"), "{invite_mail}");
    let carol = User::new(root, "carol");
    carol.ok_both(&[
        "join",
        &invite_url(invite_mail),
        "--cert-fingerprint",
        &server.certificate,
    ]);

    // A permanent refusal (550) marks the notice undeliverable, visible in /metrics.
    ada.ok_both(&["invite", "nobody@client.example", "--role", "client"]);
    wait_metric(&server.url, "attache_notices_undeliverable", 1);

    // One message: exactly one notice, the fixed subject, the link, nothing of the message.
    let docs = root.join("outgoing");
    std::fs::create_dir_all(&docs).unwrap();
    let marker = "MARKER-91c2-PRIVILEGED";
    let file = docs.join("Doe-Settlement-Terms.pdf");
    std::fs::write(&file, format!("terms {marker}")).unwrap();
    let subject = "Doe v. Roe: settlement figure";
    let body = format!("Carol, the figure is 1,250,000. {marker}");
    send(&ada, "carol@client.example", subject, &body, &[&file]);
    let mails = wait_for(&inbox, "carol@client.example", |m| {
        m.iter().filter(|r| is_message_notice(r)).count() >= 1
    });
    let notices: Vec<&Received> = mails.iter().filter(|r| is_message_notice(r)).collect();
    assert_eq!(notices.len(), 1);
    let n = &notices[0].data;
    assert!(n.contains(&server.url), "{n}");
    assert!(n.contains("A new secure item"), "{n}");
    assert!(n.contains("Content-Type: text/plain") && n.contains("Content-Type: text/html"));
    for secret in [
        subject,
        "Doe",
        "Roe",
        "settlement",
        "1,250,000",
        "Doe-Settlement-Terms",
        marker,
        "Carol, the figure",
    ] {
        assert!(!n.contains(secret), "the notice leaks {secret:?}:\n{n}");
    }

    // Five messages within the window (sent through the library, one unlock, well inside the
    // 3 s window): one email that says 5. Only the first wakes the notice worker: the others
    // fall due after the look it then plans, so they cost no pass over the outbox (each woke
    // it before).
    let client = library_client(&ada);
    let passes = metric(&server.url, "attache_outbox_passes_total");
    for i in 0..5 {
        client
            .send(
                &Outgoing {
                    to: vec!["carol@client.example".into()],
                    subject: format!("update {i}"),
                    body: "see the draft".into(),
                    ..Outgoing::default()
                },
                &NoProgress,
            )
            .unwrap();
    }
    // The gauge counts them without a pass (it may count one twice until the next pass).
    let pending = metric(&server.url, "attache_notices_pending");
    assert!((5..=6).contains(&pending), "{pending} pending");
    // One pass for the first; a second only if a send lands while that pass runs.
    let woken = metric(&server.url, "attache_outbox_passes_total") - passes;
    assert!(woken <= 2, "{woken} passes for 5 messages in one window");
    let mails = wait_for(&inbox, "carol@client.example", |m| {
        m.iter().filter(|r| is_message_notice(r)).count() >= 2
    });
    let notices: Vec<&Received> = mails.iter().filter(|r| is_message_notice(r)).collect();
    assert!(
        notices[1].data.contains("5 new secure items"),
        "{}",
        notices[1].data
    );
    wait_metric(&server.url, "attache_notices_pending", 0);
    let mails = wait_for(&inbox, "carol@client.example", |_| true);
    assert_eq!(mails.iter().filter(|r| is_message_notice(r)).count(), 2);
}

/// A signed-in library client for `user` (the key file is unlocked once, not per message).
fn library_client(user: &User) -> Client {
    let profile = Profile::load(&user.home).unwrap();
    Client::connect(profile, Box::new(|| Ok(PASSPHRASE.to_owned()))).unwrap()
}

#[test]
fn with_window_zero_every_notice_leaves_within_two_seconds() {
    let root = temp_dir();
    let root = root.path();
    let cert = relay_cert(root);
    let smtp = TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_port = smtp.local_addr().unwrap().port();
    let inbox = start_smtp(smtp, &cert);
    let env = smtp_env(root, smtp_port, &cert, "0");
    let server = start_server_with(root, free_port(), &as_refs(&env));
    let ada = attorney(root, &server);
    let (out, _) = ada.ok_both(&["invite", "carol@client.example", "--role", "client"]);
    User::new(root, "carol").ok_both(&[
        "join",
        &invite_url(&out),
        "--cert-fingerprint",
        &server.certificate,
    ]);
    wait_for(&inbox, "carol@client.example", |m| !m.is_empty());

    // 100 messages, one at a time: the time from the server's acknowledgement (send returns)
    // to the SMTP server accepting that message's notice.
    let client = library_client(&ada);
    let mut delays = Vec::new();
    for i in 0..100 {
        let before = inbox.lock().unwrap().len();
        client
            .send(
                &Outgoing {
                    to: vec!["carol@client.example".into()],
                    subject: format!("message {i}"),
                    body: "body".into(),
                    ..Outgoing::default()
                },
                &NoProgress,
            )
            .unwrap();
        let acknowledged = Instant::now();
        let mails = wait_for(&inbox, "carol@client.example", |_| {
            inbox.lock().unwrap().len() > before
        });
        let delay = mails
            .last()
            .unwrap()
            .at
            .saturating_duration_since(acknowledged);
        assert!(delay < Duration::from_secs(2), "notice {i} took {delay:?}");
        delays.push(delay);
    }
    delays.sort();
    println!(
        "notice delay, window 0, 100 messages: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        delays[49].as_secs_f64() * 1e3,
        delays[98].as_secs_f64() * 1e3,
        delays[99].as_secs_f64() * 1e3
    );
}

#[test]
fn without_smtp_notices_are_eml_files_and_window_zero_sends_each() {
    let root = temp_dir();
    let root = root.path();
    let server = start_server_with(
        root,
        free_port(),
        &[
            ("ATTACHE_NOTICE_WINDOW", "0"),
            ("ATTACHE_FIRM_NAME", FIRM),
            // 1.8 seconds, so that the reply-target reminder fires within the test.
            ("ATTACHE_REPLY_TARGET", "0.0005"),
        ],
    );
    let ada = attorney(root, &server);
    let (out, _) = ada.ok_both(&["invite", "carol@client.example", "--role", "client"]);
    let carol = User::new(root, "carol");
    carol.ok_both(&[
        "join",
        &invite_url(&out),
        "--cert-fingerprint",
        &server.certificate,
    ]);
    let first = send(
        &ada,
        "carol@client.example",
        "Privileged one",
        "body one",
        &[],
    );
    send(
        &ada,
        "carol@client.example",
        "Privileged two",
        "body two",
        &[],
    );
    let dir = root.join("data/mail");
    let emls = wait_for_eml(&dir, |emls| {
        emls.iter().filter(|e| e.contains(SUBJECT)).count() >= 2
    });
    let notices: Vec<&String> = emls.iter().filter(|e| e.contains(SUBJECT)).collect();
    assert_eq!(notices.len(), 2);
    assert_eq!(emls.len(), 3, "two notices and the invite");
    for n in notices {
        assert!(n.contains("A new secure item"));
        assert!(!n.contains("Privileged") && !n.contains("body "), "{n}");
    }

    // The client answers; nobody at the firm replies within the reply target (1.8 s): the
    // attorney gets the message notice, then a reminder that says nothing of the message.
    carol.ok_both(&["reply", &first, "--body", "Privileged answer", "--json"]);
    let emls = wait_for_eml(&dir, |emls| {
        emls.iter().any(|e| e.contains("Subject: Reminder from"))
    });
    let to_ada: Vec<&String> = emls
        .iter()
        .filter(|e| e.contains("To: ada@firm.example"))
        .collect();
    assert_eq!(to_ada.len(), 2, "{to_ada:#?}");
    let reminder = to_ada
        .iter()
        .find(|e| e.contains("Subject: Reminder from"))
        .unwrap();
    assert!(
        reminder.contains("longer than your reply target"),
        "{reminder}"
    );
    assert!(!reminder.contains("Privileged"), "{reminder}");
}

/// Polls `dir` until `done` holds of its `.eml` files, for at most 10 s.
fn wait_for_eml(dir: &Path, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let emls: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if done(&emls) {
            return emls;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; .eml files: {emls:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_starttls_or_bad_credentials_leave_the_notice_queued() {
    let root = temp_dir();
    let cert = relay_cert(root.path());
    // A relay that offers no STARTTLS: smtp:// requires it, so nothing is sent in the clear.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let plain_inbox = start_smtp_with(plain, &cert, false);
    // A proper relay, reached with the wrong password.
    let good = TcpListener::bind("127.0.0.1:0").unwrap();
    let good_port = good.local_addr().unwrap().port();
    let good_inbox = start_smtp(good, &cert);
    let wrong = root.path().join("wrong-password");
    std::fs::write(&wrong, "not the password\n").unwrap();
    for (name, port, extra) in [
        ("no-starttls", plain_port, None),
        ("bad-auth", good_port, Some(wrong.to_str().unwrap())),
    ] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut env = smtp_env(&dir, port, &cert, "0");
        if let Some(password_file) = extra {
            env.push(("ATTACHE_SMTP_PASSWORD_FILE".into(), password_file.into()));
        }
        let server = start_server_with(&dir, free_port(), &as_refs(&env));
        let ada = attorney(&dir, &server);
        ada.ok_both(&["invite", "carol@client.example", "--role", "client"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(&server.url, "attache_notice_attempts_failed_total") == 0 {
            assert!(Instant::now() < deadline, "{name}: no failed attempt");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The server is up, the notice is still queued, and not undeliverable.
        assert_eq!(metric(&server.url, "attache_notices_pending"), 1, "{name}");
        assert_eq!(
            metric(&server.url, "attache_notices_undeliverable"),
            0,
            "{name}"
        );
    }
    assert!(plain_inbox.lock().unwrap().is_empty());
    assert!(good_inbox.lock().unwrap().is_empty());
}

#[test]
fn notices_survive_an_smtp_outage_and_a_kill_and_arrive_once() {
    let root = temp_dir();
    let root = root.path();
    let cert = relay_cert(root);
    // The relay's port is chosen now and stays closed until the relay "comes back".
    let smtp_port = free_port();
    let env = smtp_env(root, smtp_port, &cert, "0");
    let port = free_port();
    let server = start_server_with(root, port, &as_refs(&env));
    let ada = attorney(root, &server);
    let (out, _) = ada.ok_both(&["invite", "carol@client.example", "--role", "client"]);
    let fingerprint = server.certificate.clone();
    User::new(root, "carol").ok_both(&[
        "join",
        &invite_url(&out),
        "--cert-fingerprint",
        &fingerprint,
    ]);

    // Acknowledged, then the server is killed (SIGKILL) before the notice could go out.
    send(&ada, "carol@client.example", "before the crash", "one", &[]);
    drop(server);
    let server = start_server_with(root, port, &as_refs(&env));
    // The relay is still down: sending works regardless.
    send(
        &ada,
        "carol@client.example",
        "during the outage",
        "two",
        &[],
    );
    assert!(metric(&server.url, "attache_notices_pending") >= 1);

    // The relay comes back: every notice arrives, each once.
    let inbox = start_smtp(TcpListener::bind(("127.0.0.1", smtp_port)).unwrap(), &cert);
    let mails = wait_for(&inbox, "carol@client.example", |m| m.len() >= 3);
    wait_metric(&server.url, "attache_notices_pending", 0);
    let mails_now = wait_for(&inbox, "carol@client.example", |_| true);
    assert_eq!(mails_now.len(), mails.len());
    let mut ids: Vec<String> = mails.iter().map(Received::message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{mails:#?}");
    assert_eq!(mails.iter().filter(|r| is_message_notice(r)).count(), 2);

    // Delay from acknowledgement (the CLI returning) to the relay accepting, window 0.
    let mut delays = Vec::new();
    for i in 0..5 {
        let before = inbox.lock().unwrap().len();
        send(&ada, "carol@client.example", "timed", &format!("{i}"), &[]);
        let acked = Instant::now();
        let deadline = acked + Duration::from_secs(10);
        let at = loop {
            if let Some(r) = inbox.lock().unwrap().get(before) {
                break r.at;
            }
            assert!(Instant::now() < deadline, "notice {i} did not arrive");
            std::thread::sleep(Duration::from_millis(2));
        };
        delays.push(at.saturating_duration_since(acked));
    }
    delays.sort();
    eprintln!(
        "notice delay after acknowledgement (window 0): median {:?}, all {delays:?}",
        delays[2]
    );
    assert!(delays[2] < Duration::from_secs(2), "{delays:?}");
}
