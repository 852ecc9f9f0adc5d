//! The messaging commands: join, whoami, invite, contacts, verify, send, inbox, read,
//! download, reply. A thin layer over [`attache::client`]: argument parsing, passphrase
//! prompts, progress bars, output formats, and hints on errors.

use std::cell::RefCell;
use std::fmt;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attache::client::{
    CertPin, Client, ClientError, InviteLink, MessageSummary, MessageView, Outgoing, Profile,
    Progress,
};
use attache::crypto::{ItemError, KeyFileError, KeyPackageError, PublicKeys};
use attache::wire::api::Role;
use attache::wire::format_utc;
use indicatif::{ProgressBar, ProgressStyle};

/// Messaging commands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Join a server with an invite: creates your profile and keys if absent, registers, and
    /// pins the server's certificate.
    Join {
        /// The invite link, `https://HOST:PORT/i/ID#SECRET` (quote it: it contains `#`).
        invite_url: String,
        /// Your email (only for the server's bootstrap invite).
        #[arg(long)]
        email: Option<String>,
        /// Your display name.
        #[arg(long)]
        name: Option<String>,
        /// The server certificate's fingerprint as the server printed it; without it the
        /// certificate presented now is trusted and shown (trust on first use).
        #[arg(long, value_name = "sha256:HEX")]
        cert_fingerprint: Option<String>,
    },
    /// Show your account: email, role, fingerprint.
    Whoami {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Invite someone (firm users only); prints the invite link to pass on.
    Invite {
        /// Their email.
        email: String,
        /// Their role: admin, attorney, staff, client or cocounsel.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Their display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the people you can write to, with fingerprints and verification status.
    Contacts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark a contact verified after comparing their safety number with them.
    Verify {
        /// The contact's email.
        email: String,
        /// The safety number they read to you (30 digits; quote it if it has spaces).
        fingerprint: String,
    },
    /// Seal and send a message with documents; prints the message id.
    Send {
        /// A recipient; repeat the flag or separate with commas.
        #[arg(
            long = "to",
            value_name = "EMAIL",
            required = true,
            value_delimiter = ','
        )]
        to: Vec<String>,
        /// Subject line.
        #[arg(long, default_value = "")]
        subject: String,
        /// The matter the message belongs to (see `attache matter list`).
        #[arg(long, value_name = "ID")]
        matter: Option<String>,
        #[command(flatten)]
        compose: Compose,
    },
    /// List received (or sent) messages, decrypted locally.
    Inbox {
        /// Sent messages instead.
        #[arg(long)]
        sent: bool,
        /// How many of the newest messages.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a whole message and the verification of its seal.
    Read {
        /// The message id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download and verify every document of a message, or one document by its id.
    Download {
        /// A message id or a document (item) id.
        id: String,
        /// The folder to write into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Reply in the same thread to the other participants.
    Reply {
        /// The message answered.
        id: String,
        /// Subject (default: `Re: ` and the original).
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        compose: Compose,
    },
}

/// What `send` and `reply` share: the text, the documents and the output format.
#[derive(clap::Args, Debug)]
pub(crate) struct Compose {
    /// Message text.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the message text from a file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Documents to attach.
    files: Vec<PathBuf>,
    /// Print `{"id": …}`.
    #[arg(long)]
    json: bool,
}

/// Runs a messaging command.
pub(crate) fn run(command: Command) -> Result<()> {
    run_inner(command).map_err(|e| match e.downcast::<ClientError>() {
        Ok(client) => with_hint(client),
        Err(other) => other,
    })
}

/// The exit code for a client error, if it has its own: 3 forged, tampered or not for us (a
/// statement, grant, evidence or audit log that does not verify included); 4 wrong passphrase;
/// 5 a pinned key, certificate or audit key changed; 6 access ended (a grant expired or was revoked, a
/// signature request's deadline passed).
pub(crate) fn exit_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    let error = if let Some(h) = cause.downcast_ref::<Hinted>() {
        &h.error
    } else {
        cause.downcast_ref::<ClientError>()?
    };
    Some(match error {
        ClientError::KeyFile(KeyFileError::WrongPassphrase) => 4,
        ClientError::KeyPackage(_)
        | ClientError::DocumentsMismatch(_)
        | ClientError::ItemMismatch { .. } => 3,
        ClientError::Item(ItemError::Io(_)) => 1,
        ClientError::Item(_) => 3,
        ClientError::Statement(_)
        | ClientError::Grant(_)
        | ClientError::Evidence(_)
        | ClientError::Audit(_)
        | ClientError::Sealed { .. } => 3,
        ClientError::ChangedKey { .. }
        | ClientError::CertificateChanged { .. }
        | ClientError::AuditKeyChanged { .. } => 5,
        ClientError::AccessExpired { .. } => 6,
        ClientError::Api {
            status: 410, code, ..
        } if code == "request_expired" => 6,
        _ => 1,
    })
}

fn run_inner(command: Command) -> Result<()> {
    match command {
        Command::Join {
            invite_url,
            email,
            name,
            cert_fingerprint,
        } => join(
            &invite_url,
            email.as_deref(),
            name.as_deref(),
            cert_fingerprint.as_deref(),
        ),
        Command::Whoami { json } => {
            let client = connect()?;
            let account = client.whoami()?;
            let fingerprint = account_fingerprint(&account.public_keys)?;
            if json {
                print_json(&serde_json::json!({
                    "email": account.email,
                    "name": account.name,
                    "role": account.role,
                    "fingerprint": fingerprint,
                    "server": client.profile().config.server,
                }))
            } else {
                println!("email:       {}", account.email);
                if !account.name.is_empty() {
                    println!("name:        {}", account.name);
                }
                println!("role:        {}", account.role.as_str());
                println!("fingerprint: {fingerprint}");
                println!("server:      {}", client.profile().config.server);
                Ok(())
            }
        }
        Command::Invite { email, role, name } => {
            let invite = connect()?.invite(&email, role, name.as_deref())?;
            println!("{}", invite.url);
            eprintln!(
                "the link is valid until {} and works once; pass it to {email} privately",
                format_utc(invite.expires_at)
            );
            if invite.emailed {
                eprintln!("the server has also emailed the link to {email}");
            }
            Ok(())
        }
        Command::Contacts { json } => {
            let contacts = connect()?.contacts()?;
            if json {
                return print_json(&contacts);
            }
            if contacts.is_empty() {
                eprintln!("no contacts yet");
            }
            for c in contacts {
                let status = if c.key_changed {
                    "KEY CHANGED"
                } else if c.verified {
                    "verified"
                } else {
                    "not verified"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.email,
                    c.role.as_str(),
                    c.fingerprint,
                    status,
                    c.name
                );
            }
            Ok(())
        }
        Command::Verify { email, fingerprint } => {
            let contact = connect()?.verify(&email, &fingerprint)?;
            println!("verified {} ({})", contact.email, contact.fingerprint);
            Ok(())
        }
        Command::Send {
            to,
            subject,
            matter,
            compose,
        } => {
            let body = body_text(compose.body, compose.body_file.as_deref())?;
            let (files, json) = (compose.files, compose.json);
            let client = connect()?;
            let progress = Bar::new(!json);
            let message = client.send(
                &Outgoing {
                    to,
                    subject,
                    body,
                    files,
                    in_reply_to: None,
                    matter,
                },
                &progress,
            )?;
            print_id(&message.id, json)
        }
        Command::Reply {
            id,
            subject,
            compose,
        } => {
            let body = body_text(compose.body, compose.body_file.as_deref())?;
            let (files, json) = (compose.files, compose.json);
            let client = connect()?;
            let progress = Bar::new(!json);
            let message = client.reply(&id, subject, body, files, &progress)?;
            print_id(&message.id, json)
        }
        Command::Inbox { sent, limit, json } => {
            let messages = connect()?.inbox(sent, limit)?;
            if json {
                return print_json(&messages);
            }
            if messages.is_empty() {
                eprintln!("no messages");
            }
            for m in &messages {
                print_summary(m, sent);
            }
            Ok(())
        }
        Command::Read { id, json } => {
            let message = connect()?.read(&id)?;
            if json {
                print_json(&message)
            } else {
                print_message(&message);
                Ok(())
            }
        }
        Command::Download { id, out } => {
            if !out.is_dir() {
                bail!("{} is not a folder (create it first)", out.display());
            }
            let client = connect()?;
            let progress = Bar::new(true);
            let written = client.download(&id, &out, &progress)?;
            if written.is_empty() {
                eprintln!("the message has no documents");
            }
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

fn join(
    url: &str,
    email: Option<&str>,
    name: Option<&str>,
    cert_fingerprint: Option<&str>,
) -> Result<()> {
    let invite = InviteLink::parse(url)?;
    let pin = cert_fingerprint.map(CertPin::parse).transpose()?;
    let dir = profile_dir()?;
    let ask = |new: bool| -> Result<String, ClientError> {
        let result = if new {
            eprintln!(
                "choose a passphrase for your new key file ({})",
                Profile::key_file_path(&dir).display()
            );
            super::new_passphrase()
        } else {
            super::passphrase("passphrase for your key file: ")
        };
        result.map_err(|e| ClientError::Profile(format!("{e:#}")))
    };
    let joined = Client::join(&dir, &invite, email, name, pin, &ask)?;
    let fingerprint = account_fingerprint(&joined.account.public_keys)?;
    println!(
        "joined {} as {} ({})",
        joined.profile.config.server,
        joined.account.email,
        joined.account.role.as_str()
    );
    println!("certificate {}", joined.certificate);
    println!("fingerprint: {fingerprint}");
    if joined.trusted_on_first_use {
        eprintln!(
            "the server's certificate was trusted on first use: check that it matches the one the \
             server printed (next time pass --cert-fingerprint)"
        );
    }
    eprintln!("profile in {}", dir.display());
    Ok(())
}

/// `$ATTACHE_HOME`, else the platform's config folder.
pub(super) fn profile_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("ATTACHE_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    Ok(dirs::config_dir()
        .context("no config folder on this system: set ATTACHE_HOME")?
        .join("attache"))
}

pub(super) fn connect() -> Result<Client> {
    let profile = Profile::load(&profile_dir()?)?;
    let unlock = Box::new(|| {
        super::passphrase("passphrase for your key file: ")
            .map_err(|e| ClientError::Profile(format!("{e:#}")))
    });
    Ok(Client::connect(profile, unlock)?)
}

fn body_text(body: Option<String>, file: Option<&Path>) -> Result<String> {
    match (body, file) {
        (Some(b), _) => Ok(b),
        (None, Some(p)) if p == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the body from standard input")?;
            Ok(s)
        }
        (None, Some(p)) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the body from {}", p.display())),
        (None, None) => Ok(String::new()),
    }
}

fn account_fingerprint(public_keys: &str) -> Result<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(public_keys)
        .context("the server sent malformed public keys")?;
    Ok(PublicKeys::from_bytes(&bytes)?.fingerprint().to_string())
}

pub(super) fn print_id(id: &str, json: bool) -> Result<()> {
    if json {
        print_json(&serde_json::json!({ "id": id }))
    } else {
        println!("{id}");
        Ok(())
    }
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_summary(m: &MessageSummary, sent: bool) {
    let who = if sent {
        format!("to {}", m.to.join(", "))
    } else {
        m.from.clone()
    };
    let subject = if m.subject.is_empty() {
        "(no subject)"
    } else {
        &m.subject
    };
    println!("{}  {}  {}  {}", m.id, format_utc(m.sent_at), who, subject);
    for d in &m.documents {
        println!("    {} ({})", d.name, format_size(d.size));
    }
}

fn print_message(m: &MessageView) {
    println!("id:      {}", m.id);
    println!("thread:  {}", m.thread);
    println!("from:    {}", m.from);
    println!("to:      {}", m.to.join(", "));
    println!("date:    {}", format_utc(m.sent_at));
    println!("subject: {}", m.subject);
    for d in &m.documents {
        println!(
            "document: {} ({}, {}) [{}]",
            d.name,
            format_size(d.size),
            d.media_type,
            d.item
        );
    }
    println!(
        "seal:    {} by {} (fingerprint {}{})",
        if m.verified {
            "verified"
        } else {
            "NOT VERIFIED"
        },
        m.from,
        m.sender_fingerprint,
        if m.sender_verified {
            ", safety number verified"
        } else {
            "; compare it with the sender, then `attache verify`"
        }
    );
    println!();
    println!("{}", m.body);
}

pub(super) fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s.to_ascii_lowercase().as_str() {
        "admin" => Ok(Role::Admin),
        "attorney" => Ok(Role::Attorney),
        "staff" => Ok(Role::Staff),
        "client" => Ok(Role::Client),
        "cocounsel" => Ok(Role::Cocounsel),
        _ => Err("expected admin, attorney, staff, client or cocounsel".into()),
    }
}

/// A client error with a hint on what the user can do.
#[derive(Debug)]
struct Hinted {
    error: ClientError,
    hint: Option<String>,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

// No `source()`: the error is printed whole by `Display`, so `{:#}` shows it once.
impl std::error::Error for Hinted {}

pub(super) fn with_hint(error: ClientError) -> anyhow::Error {
    let hint = match &error {
        ClientError::ChangedKey { email, .. } => Some(format!(
            "refusing to seal anything for {email}: compare safety numbers with them (in person or \
             by phone), then run `attache verify {email} FINGERPRINT`"
        )),
        ClientError::CertificateChanged { .. } => Some(
            "someone may be intercepting the connection; if the server's certificate was \
             replaced on purpose, ask its administrator for the new fingerprint"
                .into(),
        ),
        ClientError::Transport(_) => Some("is the server running, and the address right?".into()),
        ClientError::KeyFile(KeyFileError::WrongPassphrase) => {
            Some("check ATTACHE_PASSPHRASE or retype the passphrase".into())
        }
        ClientError::KeyPackage(KeyPackageError::NotForThisIdentity) => {
            Some("this item was not sealed for your key".into())
        }
        ClientError::Item(_) | ClientError::DocumentsMismatch(_) => Some(
            "the content was altered after the sender sealed it, or was not sealed by them: \
             nothing was written"
                .into(),
        ),
        ClientError::Api { status: 401, .. } => {
            Some("sign-in was refused: is this profile's account still active?".into())
        }
        ClientError::Api { status: 404, .. } => {
            Some("check the id (`attache inbox` lists them); you may not be a reader of it".into())
        }
        ClientError::AccessExpired { .. } => Some(
            "the grant that gave you access has ended; ask the attorney who shared it for a new \
             one"
            .into(),
        ),
        ClientError::Api {
            status: 410, code, ..
        } if code == "request_expired" => {
            Some("the deadline has passed; ask the requester to send a new request".into())
        }
        ClientError::Api {
            status: 409, code, ..
        } if code == "already_answered" => {
            Some("the request was answered already; `attache signatures` shows how".into())
        }
        ClientError::Api {
            status: 409, code, ..
        } if code == "not_answered" => Some(
            "there is no evidence before the signer answers; `attache signatures` shows the \
             status"
                .into(),
        ),
        ClientError::Evidence(_) | ClientError::Statement(_) | ClientError::Grant(_) => Some(
            "the signed data does not check out: it was altered, or signed by another key; \
             nothing was written"
                .into(),
        ),
        ClientError::AuditKeyChanged { .. } => Some(
            "compare with the `audit key sha256:` line the server prints at start; if the firm \
             replaced the key on purpose, delete audit-key.txt from your profile folder"
                .into(),
        ),
        ClientError::Audit(_) => Some(
            "the server's audit log was altered after it was written, or the server signs with \
             another key than before"
                .into(),
        ),
        ClientError::FingerprintMismatch { .. } => Some(
            "do not verify: the number you were given belongs to other keys than the server's"
                .into(),
        ),
        _ => None,
    };
    anyhow::Error::new(Hinted { error, hint })
}

/// Progress bars on standard error, shown only on a terminal.
pub(super) struct Bar {
    enabled: bool,
    bar: RefCell<Option<ProgressBar>>,
}

impl Bar {
    pub(super) fn new(wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            bar: RefCell::new(None),
        }
    }
}

impl Progress for Bar {
    fn begin(&self, label: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.inc(bytes);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(5), "5 B");
        assert_eq!(format_size(10 * 1024 * 1024 + 1), "10.0 MiB");
    }

    #[test]
    fn changed_keys_exit_with_5() {
        let e = with_hint(ClientError::ChangedKey {
            email: "a@b".into(),
            pinned: "1".into(),
            presented: "2".into(),
        });
        assert!(format!("{e:#}").contains("attache verify a@b"));
        assert_eq!(e.chain().find_map(exit_code), Some(5));
    }
}
