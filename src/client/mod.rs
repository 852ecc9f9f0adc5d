//! The HTTPS client of an Attache server: profile, sign-in, upload while sealing, download while
//! opening.
//!
//! Everything secret happens here, on the user's machine: sealing, key packages, opening and
//! checking seals. The server sees ciphertext, public keys and addresses only. This module never
//! imports the server or storage modules and pulls in no async runtime of its own (reqwest's
//! blocking client runs one internally).
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//!
//! use attache::client::{Client, NoProgress, Outgoing, Profile};
//!
//! # fn main() -> Result<(), attache::client::ClientError> {
//! let profile = Profile::load(Path::new("/home/ann/.config/attache"))?;
//! let client = Client::connect(profile, Box::new(|| Ok("passphrase".to_owned())))?;
//! let sent = client.send(
//!     &Outgoing {
//!         to: vec!["client@example.com".into()],
//!         subject: "Engagement letter".into(),
//!         body: "Please sign and return.".into(),
//!         files: vec!["engagement-letter.pdf".into()],
//!         ..Outgoing::default()
//!     },
//!     &NoProgress,
//! )?;
//! for message in client.inbox(false, 50)? {
//!     println!("{} {} {}", message.id, message.from, message.subject);
//! }
//! let written = client.download(&sent.id, Path::new("."), &NoProgress)?;
//! # let _ = written;
//! # Ok(())
//! # }
//! ```

pub mod agent;
mod error;
mod http;
mod invite;
mod legal;
mod profile;
mod tls;
mod upload;

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};
use serde::Serialize;

pub use error::ClientError;
pub use invite::{CertPin, InviteLink, normalize_origin};
pub use legal::{
    AuditFilter, AuditView, ExportFailure, ExportReport, ExportedDocument, GrantInfo, MatterInfo,
    SignAnswer, SignPrompt, SignatureAsk,
};
pub use profile::{Contact, Contacts, Profile, ProfileConfig};

use self::http::{Http, UPLOAD_TIMEOUT, read_json};
use self::upload::{UploadSink, UploadTransport};
use crate::crypto::{
    CHUNK_SIZE, Identity, ItemOpener, Manifest, Metadata, PREAMBLE_LEN, Parallelism, Preamble,
    PublicKeys, SEALED_CHUNK_LEN, Sealed, WriteSink, open_key_package, seal_item, seal_key_package,
};
use crate::wire::api::{
    Account, Challenge, ChallengeRequest, CommitItem, ContactList, Invite, InviteRequest,
    ItemHeader, JoinRequest, KeyPackageFor, Message, MessageList, NewItem, Role, SealedItem,
    SendMessage, Session, SessionRequest, UploadState, sign_in_message,
};
use crate::wire::{from_hex, to_hex};

/// First line of a message record: the sealed content of a message item, listing the documents
/// it carries so that a server cannot swap them.
const RECORD_HEADER: &str = "attache-message v1";
/// The largest message record read.
const MAX_RECORD: u64 = 1 << 20;
/// How long one client reuses a recipient's keys, once checked against the pinned ones, before
/// asking the directory again (a long-lived client sending many messages; every command of the
/// CLI asks afresh).
const RECHECK_KEYS_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Item headers of an inbox listing fetched at once (each is one request for a key package).
const INBOX_THREADS: usize = 16;

/// Supplies the key file's passphrase when the client first needs the secret keys.
pub type Unlock = Box<dyn Fn() -> Result<String, ClientError>>;

/// Reports progress of uploads and downloads, in bytes. Every method defaults to nothing.
pub trait Progress {
    /// A transfer of `total` bytes named `label` starts.
    fn begin(&self, _label: &str, _total: u64) {}
    /// `bytes` more were transferred.
    fn advance(&self, _bytes: u64) {}
    /// The transfer ended.
    fn end(&self) {}
}

/// Progress that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What [`Client::join`] did.
#[derive(Debug)]
pub struct Joined {
    /// The new profile.
    pub profile: Profile,
    /// The registered account.
    pub account: Account,
    /// The pinned server certificate.
    pub certificate: CertPin,
    /// Whether the certificate was pinned on first use (not given by the user).
    pub trusted_on_first_use: bool,
}

/// A correspondent as `contacts` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ContactInfo {
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The fingerprint of the keys the server gives now, computed here.
    pub fingerprint: String,
    /// Whether the user verified the pinned keys.
    pub verified: bool,
    /// Whether the server's keys differ from the pinned ones (sending is refused).
    pub key_changed: bool,
}

/// A document of a message, decrypted locally.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentInfo {
    /// The item id.
    pub item: String,
    /// The file name the sender sealed.
    pub name: String,
    /// Its media type.
    #[serde(skip)]
    pub media_type: String,
    /// Its true size in bytes.
    pub size: u64,
}

/// A message as listed, decrypted locally.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    /// The message id.
    pub id: String,
    /// The thread id.
    pub thread: String,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// When the server accepted it (seconds since the epoch).
    pub sent_at: i64,
    /// Subject.
    pub subject: String,
    /// Documents.
    pub documents: Vec<DocumentInfo>,
    /// The matter, hex.
    pub matter: Option<String>,
}

/// A whole message, opened and checked.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// The message id.
    pub id: String,
    /// The thread id.
    pub thread: String,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// When the server accepted it.
    pub sent_at: i64,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Documents.
    pub documents: Vec<DocumentInfo>,
    /// The sender's seal verified: every item is signed by the sender's key, every chunk
    /// matched, and the documents are the ones the sender sealed into the message.
    pub verified: bool,
    /// The sender's fingerprint (safety number).
    pub sender_fingerprint: String,
    /// Whether the user verified the sender's safety number (`attache verify`).
    pub sender_verified: bool,
    /// The matter, hex.
    pub matter: Option<String>,
    /// The matter's name as the sender sealed it (empty if none).
    pub matter_name: String,
    /// The message's own sealed item (subject, body and the document record), hex.
    pub item: String,
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// Recipients' emails.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Documents to seal and attach.
    pub files: Vec<PathBuf>,
    /// The message this one answers.
    pub in_reply_to: Option<String>,
    /// The matter it belongs to, hex. Its name, when this user can open it, goes into the
    /// sealed metadata.
    pub matter: Option<String>,
}

/// A signed-in (or ready to sign in) client of one server, for one profile.
///
/// Blocking, and meant for one thread (it caches the session and the unlocked identity in
/// cells); make one per thread if needed. The session token is cached in the profile, so a new
/// `Client` for the same profile reuses it until it expires.
pub struct Client {
    profile: Profile,
    http: Http,
    unlock: Unlock,
    identity: OnceCell<Identity>,
    /// The session token, and whether it came from the cache (and may be stale).
    token: RefCell<Option<(String, bool)>>,
    /// Recipients' keys as the directory gave them and the pinned ones matched, with when:
    /// reused for [`RECHECK_KEYS_AFTER`], so a client sending many messages asks once.
    checked_keys: RefCell<HashMap<String, (PublicKeys, Instant)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.profile.config.server)
            .field("email", &self.profile.config.email)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Registers with an invite: creates the key file in `dir` if absent (the passphrase from
    /// `new_passphrase`, asked only then), pins the server certificate (`pin`, else the one
    /// presented), consumes the invite and writes the profile.
    pub fn join(
        dir: &Path,
        invite: &InviteLink,
        email: Option<&str>,
        name: Option<&str>,
        pin: Option<CertPin>,
        passphrase: &dyn Fn(bool) -> Result<String, ClientError>,
    ) -> Result<Joined, ClientError> {
        if Profile::exists(dir) {
            let existing = Profile::load(dir)?;
            return Err(ClientError::Profile(format!(
                "{} already holds the profile of {} at {} (set ATTACHE_HOME to another folder)",
                dir.display(),
                existing.config.email,
                existing.config.server
            )));
        }
        profile::create_dir(dir)?;
        let key_path = Profile::key_file_path(dir);
        let identity = if key_path.exists() {
            profile::unlock_key_file(dir, &zeroize::Zeroizing::new(passphrase(false)?))?
        } else {
            let identity = Identity::generate()?;
            let file = crate::crypto::seal_key_file(
                &identity,
                &zeroize::Zeroizing::new(passphrase(true)?),
                crate::crypto::DEFAULT_WORK_FACTOR,
            )?;
            profile::write_atomic(&key_path, &file)?;
            identity
        };
        let http = Http::new(&invite.origin, pin)?;
        let request = JoinRequest {
            invite_id: invite.id.clone(),
            secret: invite.secret.clone(),
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
            public_keys: STANDARD.encode(identity.public().to_bytes()),
        };
        let account: Account = read_json(
            http.send(
                http.json_request(Method::POST, "/join", None)
                    .json(&request),
            )?,
        )?;
        if account_keys(&account)? != *identity.public() {
            return Err(ClientError::Protocol(
                "the server registered other keys than ours".into(),
            ));
        }
        let certificate = pin
            .or_else(|| http.presented_certificate())
            .ok_or_else(|| ClientError::Protocol("no certificate was presented".into()))?;
        let profile = Profile::create(
            dir,
            ProfileConfig {
                server: invite.origin.clone(),
                email: account.email.clone(),
                certificate: certificate.to_string(),
            },
        )?;
        Ok(Joined {
            profile,
            account,
            certificate,
            trusted_on_first_use: pin.is_none(),
        })
    }

    /// A client for `profile`. Nothing is sent yet; `unlock` is called once, when the secret
    /// keys are first needed (to sign in without a cached session, to seal or to open).
    pub fn connect(profile: Profile, unlock: Unlock) -> Result<Self, ClientError> {
        let http = Http::new(&profile.config.server, Some(profile.certificate()?))?;
        Ok(Self {
            profile,
            http,
            unlock,
            identity: OnceCell::new(),
            token: RefCell::new(None),
            checked_keys: RefCell::default(),
        })
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The unlocked identity: from the profile's key agent if one runs ([`agent`]), else by
    /// unlocking the key file on first use.
    pub fn identity(&self) -> Result<&Identity, ClientError> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        if let Some(identity) = agent::fetch(self.profile.dir()) {
            return Ok(self.identity.get_or_init(|| identity));
        }
        let passphrase = zeroize::Zeroizing::new((self.unlock)()?);
        let identity = self.profile.unlock(&passphrase)?;
        Ok(self.identity.get_or_init(|| identity))
    }

    /// Signs in by challenge-response, caching the session. Called on demand by every other
    /// operation; call it directly to check the key and the server.
    pub fn sign_in(&self) -> Result<Session, ClientError> {
        let identity = self.identity()?;
        let email = &self.profile.config.email;
        let challenge: Challenge = read_json(
            self.http.send(
                self.http
                    .json_request(Method::POST, "/auth/challenge", None)
                    .json(&ChallengeRequest {
                        email: email.clone(),
                    }),
            )?,
        )?;
        let expected = &self.profile.config.server;
        if normalize_origin(&challenge.origin).ok().as_ref() != Some(expected) {
            return Err(ClientError::OriginMismatch {
                expected: expected.clone(),
                got: challenge.origin,
            });
        }
        let id: [u8; 16] = from_hex(&challenge.challenge_id)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ClientError::Protocol("malformed challenge id".into()))?;
        let nonce: [u8; 32] = STANDARD
            .decode(&challenge.nonce)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ClientError::Protocol("malformed challenge nonce".into()))?;
        let signature = identity.sign(&sign_in_message(&challenge.origin, email, &id, &nonce));
        let session: Session = read_json(
            self.http.send(
                self.http
                    .json_request(Method::POST, "/auth/session", None)
                    .json(&SessionRequest {
                        challenge_id: challenge.challenge_id,
                        email: email.clone(),
                        signature: STANDARD.encode(signature),
                    }),
            )?,
        )?;
        self.profile
            .save_session(&session.token, session.expires_at)?;
        *self.token.borrow_mut() = Some((session.token.clone(), false));
        Ok(session)
    }

    /// The signed-in account.
    pub fn whoami(&self) -> Result<Account, ClientError> {
        self.get_json("/me")
    }

    /// Creates an invite (firm roles only) and returns it; its URL holds the secret.
    pub fn invite(
        &self,
        email: &str,
        role: Role,
        name: Option<&str>,
    ) -> Result<Invite, ClientError> {
        let body = InviteRequest {
            email: email.to_owned(),
            role,
            name: name.map(str::to_owned),
        };
        read_json(self.authed(Method::POST, "/invites", |r| r.json(&body))?)
    }

    /// The accounts one may send to, with their pinning state. Unpinned ones are pinned now
    /// (trust on first use).
    pub fn contacts(&self) -> Result<Vec<ContactInfo>, ClientError> {
        let list: ContactList = self.get_json("/contacts")?;
        let mut pinned = self.profile.contacts()?;
        let mut changed = false;
        let mut out = Vec::with_capacity(list.contacts.len());
        for account in list.contacts {
            let keys = account_keys(&account)?;
            let entry = pinned
                .contacts
                .entry(account.email.clone())
                .or_insert_with(|| {
                    changed = true;
                    Contact::pin(&keys)
                });
            let key_changed = entry.keys()? != keys;
            out.push(ContactInfo {
                fingerprint: keys.fingerprint().to_string(),
                verified: entry.verified && !key_changed,
                key_changed,
                email: account.email,
                name: account.name,
                role: account.role,
            });
        }
        if changed {
            self.profile.save_contacts(&pinned)?;
        }
        Ok(out)
    }

    /// Marks `email` verified after the user compared `safety_number` with them. If the keys
    /// the server gives now match it, they replace any pinned keys (this is how a changed key
    /// is accepted).
    pub fn verify(&self, email: &str, safety_number: &str) -> Result<ContactInfo, ClientError> {
        let account: Account = self.get_json(&format!("/directory/{}", path_segment(email)))?;
        let keys = account_keys(&account)?;
        let fingerprint = keys.fingerprint();
        if !fingerprint.matches_safety_number(safety_number) {
            return Err(ClientError::FingerprintMismatch {
                email: account.email,
                given: safety_number.trim().to_owned(),
                actual: fingerprint.to_string(),
            });
        }
        let mut contacts = self.profile.contacts()?;
        let mut contact = Contact::pin(&keys);
        contact.verified = true;
        contacts.contacts.insert(account.email.clone(), contact);
        self.profile.save_contacts(&contacts)?;
        Ok(ContactInfo {
            email: account.email,
            name: account.name,
            role: account.role,
            fingerprint: fingerprint.to_string(),
            verified: true,
            key_changed: false,
        })
    }

    /// Seals and uploads the documents and the message, then sends it. Every recipient's keys
    /// must match the pinned ones (unknown recipients are pinned now).
    pub fn send(
        &self,
        outgoing: &Outgoing,
        progress: &dyn Progress,
    ) -> Result<Message, ClientError> {
        let identity = self.identity()?;
        let me = self.profile.config.email.clone();
        let mut readers: Vec<(String, PublicKeys)> = vec![(me.clone(), *identity.public())];
        let mut to = Vec::new();
        for email in &outgoing.to {
            let email = email.trim().to_owned();
            if to.contains(&email) {
                continue;
            }
            let keys = self.recipient_keys(&email)?;
            if !readers.iter().any(|(e, _)| *e == email) {
                readers.push((email.clone(), keys));
            }
            to.push(email);
        }
        if to.is_empty() {
            return Err(ClientError::Profile(
                "a message needs at least one recipient".into(),
            ));
        }
        let fingerprints: Vec<_> = readers.iter().map(|(_, k)| k.fingerprint()).collect();
        let matter_name = match &outgoing.matter {
            Some(id) => self.matter_label(id),
            None => String::new(),
        };
        let mut record = format!("{RECORD_HEADER}\n");
        let mut documents = Vec::new();
        for path in &outgoing.files {
            let file = File::open(path)
                .map_err(|e| ClientError::io(format!("cannot read {}", path.display()), e))?;
            let total = file.metadata().map(|m| m.len()).unwrap_or(0);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let metadata = Metadata {
                media_type: media_type(&name).to_owned(),
                file_name: name.clone(),
                readers: fingerprints.clone(),
                matter: matter_name.clone(),
                ..Metadata::default()
            };
            progress.begin(&name, total);
            let uploaded =
                self.upload_item(&metadata, CountingReader::new(file, progress), &readers);
            progress.end();
            let (item, manifest) = uploaded?;
            record.push_str(&format!("{item} {}\n", to_hex(&manifest.digest())));
            documents.push(item);
        }
        let metadata = Metadata {
            subject: outgoing.subject.clone(),
            body: outgoing.body.clone(),
            readers: fingerprints,
            matter: matter_name,
            ..Metadata::default()
        };
        // A message item of one short chunk (the usual case) goes with the message itself:
        // one request and one flush on the server instead of four.
        let (item, sealed) = match self.seal_small(&metadata, record.as_bytes(), &readers)? {
            Some(sealed) => (None, Some(sealed)),
            None => {
                let (item, _) = self.upload_item(&metadata, record.as_bytes(), &readers)?;
                (Some(item), None)
            }
        };
        let body = SendMessage {
            item,
            sealed,
            documents,
            to,
            in_reply_to: outgoing.in_reply_to.clone(),
            matter: outgoing.matter.clone(),
        };
        read_json(self.authed(Method::POST, "/messages", |r| r.json(&body))?)
    }

    /// Replies to message `id`: same thread, to every other participant. The subject defaults
    /// to `Re: ` and the original subject.
    pub fn reply(
        &self,
        id: &str,
        subject: Option<String>,
        body: String,
        files: Vec<PathBuf>,
        progress: &dyn Progress,
    ) -> Result<Message, ClientError> {
        let original = self.read(id)?;
        let me = &self.profile.config.email;
        let mut to: Vec<String> = Vec::new();
        for email in std::iter::once(&original.from).chain(&original.to) {
            if email != me && !to.contains(email) {
                to.push(email.clone());
            }
        }
        if to.is_empty() {
            // A note to oneself stays one.
            to.push(me.clone());
        }
        let subject = subject.unwrap_or_else(|| {
            if original.subject.starts_with("Re: ") {
                original.subject.clone()
            } else {
                format!("Re: {}", original.subject)
            }
        });
        self.send(
            &Outgoing {
                to,
                subject,
                body,
                files,
                in_reply_to: Some(original.id),
                matter: None,
            },
            progress,
        )
    }

    /// The newest `limit` messages received (or sent), decrypted locally.
    pub fn inbox(&self, sent: bool, limit: u32) -> Result<Vec<MessageSummary>, ClientError> {
        let mailbox = if sent { "sent" } else { "inbox" };
        let path = format!("/messages?box={mailbox}&limit={limit}");
        // The listing carries the items' headers (one request, one audited flush); a server
        // that does not offer them refuses the parameter, and gets asked item by item.
        let list: MessageList = match self.get_json(&format!("{path}&headers=true")) {
            Err(ClientError::Api { status: 400, .. }) => self.get_json(&path)?,
            other => other?,
        };
        let messages = list.messages;
        let mut headers: HashMap<String, ItemHeader> = list
            .headers
            .into_iter()
            .map(|h| (h.item.clone(), h))
            .collect();
        let missing: Vec<&str> = messages
            .iter()
            .flat_map(|m| {
                std::iter::once(m.item.as_str()).chain(m.documents.iter().map(|d| d.item.as_str()))
            })
            .filter(|item| !headers.contains_key(*item))
            .collect();
        for (item, header) in missing.iter().zip(self.prefetch_headers(&missing)) {
            if let Some(h) = header {
                headers.insert((*item).to_owned(), h);
            }
        }
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let (_, opener) =
                self.open_prefetched(headers.get(&m.item).cloned(), &m.item, &m.from)?;
            let mut documents = Vec::with_capacity(m.documents.len());
            for d in &m.documents {
                let (_, doc) =
                    self.open_prefetched(headers.get(&d.item).cloned(), &d.item, &m.from)?;
                documents.push(document_info(&d.item, &doc));
            }
            let subject = opener.metadata().subject.clone();
            out.push(summary(m, subject, documents));
        }
        Ok(out)
    }

    /// The headers of `items` (`GET /items/{item}`), a few requests at once with the current
    /// session: each releases a key package, which the server audits and flushes, and
    /// requests in flight together share one flush. `None` for any that failed; the caller
    /// fetches that one again the ordinary way (which signs in again if the session ended)
    /// and reports its error.
    fn prefetch_headers(&self, items: &[&str]) -> Vec<Option<ItemHeader>> {
        let Ok((token, _)) = self.token() else {
            return vec![None; items.len()];
        };
        let (http, token) = (&self.http, token.as_str());
        let per_thread = items.len().div_ceil(INBOX_THREADS).max(1);
        std::thread::scope(|scope| {
            let groups: Vec<_> = items
                .chunks(per_thread)
                .map(|group| {
                    let fetch = move || {
                        group
                            .iter()
                            .map(|item| {
                                let path = format!("/items/{}", path_segment(item));
                                http.send(http.request(Method::GET, &path, Some(token)))
                                    .and_then(read_json::<ItemHeader>)
                                    .ok()
                            })
                            .collect::<Vec<_>>()
                    };
                    (group.len(), scope.spawn(fetch))
                })
                .collect();
            groups
                .into_iter()
                .flat_map(|(n, g)| g.join().unwrap_or_else(|_| vec![None; n]))
                .collect()
        })
    }

    /// Opens `item`'s header as sealed by `sender`, from `prefetched` when it is that item's.
    fn open_prefetched(
        &self,
        prefetched: Option<ItemHeader>,
        item: &str,
        sender: &str,
    ) -> Result<(Manifest, ItemOpener), ClientError> {
        match prefetched {
            Some(header) if header.item == item => {
                let keys = self.sender_keys(&header.sender, sender, &header.item)?;
                self.open_with(&header, &keys)
            }
            _ => self.open_header(item, Some(sender)),
        }
    }

    /// Reads message `id` whole, checking the sender's seal on the message and each document
    /// and that the documents are the ones the sender sealed into it.
    pub fn read(&self, id: &str) -> Result<MessageView, ClientError> {
        let message: Message = self.get_json(&format!("/messages/{}", path_segment(id)))?;
        let (sender, record) = self.open_record(&message)?;
        let mut documents = Vec::new();
        for d in &message.documents {
            let (manifest, opener) = self.open_header(&d.item, Some(&message.from))?;
            if record.iter().find(|(item, _)| *item == d.item).map(|r| r.1)
                != Some(manifest.digest())
            {
                return Err(ClientError::DocumentsMismatch(message.id));
            }
            documents.push(document_info(&d.item, &opener));
        }
        let contacts = self.profile.contacts()?;
        let sender_verified = contacts
            .contacts
            .get(&message.from)
            .is_some_and(|c| c.verified && c.keys().ok() == Some(sender.1));
        let sender_verified = sender_verified || self.profile.config.email == message.from;
        let (subject, body) = (sender.0.subject.clone(), sender.0.body.clone());
        let matter_name = sender.0.matter.clone();
        Ok(MessageView {
            id: message.id,
            thread: message.thread,
            from: message.from,
            to: message.to,
            sent_at: message.sent_at,
            subject,
            body,
            documents,
            verified: true,
            sender_fingerprint: sender.1.fingerprint().to_string(),
            sender_verified,
            matter: message.matter,
            matter_name,
            item: message.item,
        })
    }

    /// Downloads every document of message `id` (or the one document whose item id is `id`)
    /// into `out_dir`, each checked chunk by chunk in constant memory and written to a
    /// temporary file renamed only after the last chunk and the seal checked out. Returns the
    /// paths written.
    pub fn download(
        &self,
        id: &str,
        out_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<Vec<PathBuf>, ClientError> {
        let items: Vec<(String, String)> = match self
            .get_json::<Message>(&format!("/messages/{}", path_segment(id)))
        {
            Ok(message) => {
                let (_, record) = self.open_record(&message)?;
                let mut items = Vec::new();
                for d in &message.documents {
                    let (manifest, _) = self.open_header(&d.item, Some(&message.from))?;
                    if record.iter().find(|(item, _)| *item == d.item).map(|r| r.1)
                        != Some(manifest.digest())
                    {
                        return Err(ClientError::DocumentsMismatch(message.id));
                    }
                    items.push((d.item.clone(), message.from.clone()));
                }
                items
            }
            Err(e) if e.is_not_found() => {
                let header: ItemHeader = self.get_json(&format!("/items/{}", path_segment(id)))?;
                vec![(header.item, header.sender.email)]
            }
            Err(e) => return Err(e),
        };
        let mut written = Vec::new();
        for (item, sender) in items {
            written.push(self.download_item(&item, &sender, out_dir, progress)?);
        }
        Ok(written)
    }

    fn download_item(
        &self,
        item: &str,
        sender: &str,
        out_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<PathBuf, ClientError> {
        let (manifest, opener) = self.open_header(item, Some(sender))?;
        let name = safe_file_name(&opener.metadata().file_name, item);
        let target = unused_path(out_dir, &name);
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(target.file_name().unwrap_or_default());
        partial_name.push(format!(".partial-{}", std::process::id()));
        let partial = out_dir.join(partial_name);
        let result = (|| {
            let file = profile::create_private(&partial)
                .map_err(|e| ClientError::io(format!("cannot create {}", partial.display()), e))?;
            let chunks = ResumingChunks::new(
                |from| {
                    self.authed(
                        Method::GET,
                        &format!("/items/{item}/chunks?from={from}"),
                        |r| r,
                    )
                    .map_err(io::Error::other)
                },
                manifest.ciphertext_len(),
                manifest.chunk_len(0).unwrap_or(1) as u64,
            );
            progress.begin(&name, manifest.ciphertext_len());
            let opened = opener.open_chunks(
                CountingReader::new(chunks, progress),
                io::BufWriter::with_capacity(CHUNK_SIZE, &file),
                Parallelism::All,
            );
            progress.end();
            opened?;
            file.sync_all()
                .map_err(|e| ClientError::io(format!("cannot write {}", partial.display()), e))?;
            fs::rename(&partial, &target)
                .map_err(|e| ClientError::io(format!("cannot write {}", target.display()), e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result.map(|()| target)
    }

    /// Opens a message item, returning its metadata with the sender's keys, and the document
    /// record it carries.
    #[allow(clippy::type_complexity, reason = "a private helper's pair of results")]
    fn open_record(
        &self,
        message: &Message,
    ) -> Result<((Metadata, PublicKeys), Vec<(String, [u8; 32])>), ClientError> {
        let header: ItemHeader =
            self.get_json(&format!("/items/{}", path_segment(&message.item)))?;
        let sender = self.sender_keys(&header.sender, &message.from, &header.item)?;
        let (_, opener) = self.open_with(&header, &sender)?;
        if opener.metadata().true_size > MAX_RECORD {
            return Err(ClientError::ItemMismatch {
                item: header.item,
                reason: "the message record is too large",
            });
        }
        let mut content = Vec::new();
        let chunks = self.authed(
            Method::GET,
            &format!("/items/{}/chunks?from=0", header.item),
            |r| r,
        )?;
        opener.open_chunks(chunks, &mut content, Parallelism::One)?;
        let record = parse_record(&content)
            .ok_or_else(|| ClientError::DocumentsMismatch(message.id.clone()))?;
        let listed: BTreeSet<&str> = message.documents.iter().map(|d| d.item.as_str()).collect();
        let sealed: BTreeSet<&str> = record.iter().map(|(i, _)| i.as_str()).collect();
        if listed != sealed || sealed.len() != record.len() {
            return Err(ClientError::DocumentsMismatch(message.id.clone()));
        }
        Ok(((opener.metadata().clone(), sender), record))
    }

    /// Fetches an item's header and checks everything before the chunks.
    fn open_header(
        &self,
        item: &str,
        sender: Option<&str>,
    ) -> Result<(Manifest, ItemOpener), ClientError> {
        let header: ItemHeader = self.get_json(&format!("/items/{}", path_segment(item)))?;
        let expected = sender.unwrap_or(&header.sender.email).to_owned();
        let keys = self.sender_keys(&header.sender, &expected, &header.item)?;
        self.open_with(&header, &keys)
    }

    fn open_with(
        &self,
        header: &ItemHeader,
        sender: &PublicKeys,
    ) -> Result<(Manifest, ItemOpener), ClientError> {
        let preamble = Preamble::parse(&decode(&header.preamble, "preamble")?)?;
        let manifest = Manifest::parse(&decode(&header.manifest, "manifest")?)?;
        let key = open_key_package(
            &decode(&header.key_package, "key package")?,
            self.identity()?,
            &preamble.item_id(),
        )?;
        let opener = ItemOpener::new(&key, &preamble, &manifest, sender)?;
        Ok((manifest, opener))
    }

    /// The keys an item's sender signs with: the account's, which must be `expected` and
    /// match the pinned keys (pinned now if new).
    fn sender_keys(
        &self,
        account: &Account,
        expected: &str,
        item: &str,
    ) -> Result<PublicKeys, ClientError> {
        if account.email != expected {
            return Err(ClientError::ItemMismatch {
                item: item.to_owned(),
                reason: "sealed by someone other than the message's sender",
            });
        }
        let keys = account_keys(account)?;
        if account.email == self.profile.config.email {
            if keys != *self.identity()?.public() {
                return Err(ClientError::ChangedKey {
                    email: account.email.clone(),
                    pinned: self.identity()?.fingerprint().to_string(),
                    presented: keys.fingerprint().to_string(),
                });
            }
            return Ok(keys);
        }
        self.check_pin(&account.email, &keys)?;
        Ok(keys)
    }

    /// A recipient's keys from the directory, checked against the pin.
    fn recipient_keys(&self, email: &str) -> Result<PublicKeys, ClientError> {
        if email == self.profile.config.email {
            return Ok(*self.identity()?.public());
        }
        if let Some((keys, at)) = self.checked_keys.borrow().get(email) {
            if at.elapsed() < RECHECK_KEYS_AFTER {
                return Ok(*keys);
            }
        }
        let account: Account = self.get_json(&format!("/directory/{}", path_segment(email)))?;
        let keys = account_keys(&account)?;
        self.check_pin(email, &keys)?;
        self.checked_keys
            .borrow_mut()
            .insert(email.to_owned(), (keys, Instant::now()));
        Ok(keys)
    }

    /// Refuses keys that differ from the pinned ones; pins unknown ones.
    fn check_pin(&self, email: &str, keys: &PublicKeys) -> Result<(), ClientError> {
        let mut contacts = self.profile.contacts()?;
        match contacts.contacts.get(email) {
            Some(contact) => {
                let pinned = contact.keys()?;
                if pinned != *keys {
                    return Err(ClientError::ChangedKey {
                        email: email.to_owned(),
                        pinned: pinned.fingerprint().to_string(),
                        presented: keys.fingerprint().to_string(),
                    });
                }
                Ok(())
            }
            None => {
                contacts
                    .contacts
                    .insert(email.to_owned(), Contact::pin(keys));
                self.profile.save_contacts(&contacts)
            }
        }
    }

    /// Seals `content` while uploading it, then commits it with one key package per reader.
    fn upload_item<R: Read>(
        &self,
        metadata: &Metadata,
        content: R,
        readers: &[(String, PublicKeys)],
    ) -> Result<(String, Manifest), ClientError> {
        let identity = self.identity()?;
        let mut sink = UploadSink::new(HttpUpload { client: self });
        let sealed = match seal_item(identity, metadata, content, &mut sink, Parallelism::All) {
            Ok(sealed) => sealed,
            Err(e) => return Err(sink.take_error().unwrap_or(ClientError::Item(e))),
        };
        let item = sink.finish()?;
        let commit = CommitItem {
            manifest: STANDARD.encode(sealed.manifest.as_bytes()),
            key_packages: key_packages(&sealed, readers)?,
        };
        self.authed(Method::POST, &format!("/items/{item}/commit"), |r| {
            r.timeout(UPLOAD_TIMEOUT).json(&commit)
        })?;
        Ok((item, sealed.manifest))
    }

    /// Seals `content` in memory; returns it ready to go whole with its message if its
    /// ciphertext is one short chunk (which the server keeps without an upload), else `None`.
    fn seal_small(
        &self,
        metadata: &Metadata,
        content: &[u8],
        readers: &[(String, PublicKeys)],
    ) -> Result<Option<SealedItem>, ClientError> {
        // Content of a whole chunk or more never seals to one short chunk: not sealed here,
        // only once by the upload.
        if content.len() >= CHUNK_SIZE {
            return Ok(None);
        }
        let identity = self.identity()?;
        let mut out = WriteSink(Vec::new());
        let sealed = seal_item(identity, metadata, content, &mut out, Parallelism::One)
            .map_err(ClientError::Item)?;
        let (preamble, chunk) = out.0.split_at(PREAMBLE_LEN.min(out.0.len()));
        if sealed.manifest.chunk_count() != 1 || chunk.len() >= SEALED_CHUNK_LEN {
            return Ok(None);
        }
        Ok(Some(SealedItem {
            preamble: STANDARD.encode(preamble),
            chunk: STANDARD.encode(chunk),
            manifest: STANDARD.encode(sealed.manifest.as_bytes()),
            key_packages: key_packages(&sealed, readers)?,
        }))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        read_json(self.authed(Method::GET, path, |r| r)?)
    }

    /// Sends an authenticated request, signing in first if there is no session, and once more
    /// if a cached session turns out to be expired.
    fn authed(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let (token, cached) = self.token()?;
        let request = |token: &str| {
            // Chunk streams may run long; uploads of chunks set their own timeout.
            let base = if !path.contains("/chunks") {
                self.http.json_request(method.clone(), path, Some(token))
            } else {
                self.http.request(method.clone(), path, Some(token))
            };
            build(base)
        };
        match self.http.send(request(&token)) {
            Err(e) if e.is_unauthorized() && cached => {
                self.profile.forget_session();
                let session = self.sign_in()?;
                self.http.send(request(&session.token))
            }
            other => other,
        }
    }

    fn token(&self) -> Result<(String, bool), ClientError> {
        if let Some(t) = self.token.borrow().clone() {
            return Ok(t);
        }
        if let Some(token) = self.profile.cached_session(now()) {
            *self.token.borrow_mut() = Some((token.clone(), true));
            return Ok((token, true));
        }
        Ok((self.sign_in()?.token, false))
    }
}

/// One key package per reader for the item `sealed`.
fn key_packages(
    sealed: &Sealed,
    readers: &[(String, PublicKeys)],
) -> Result<Vec<KeyPackageFor>, ClientError> {
    readers
        .iter()
        .map(|(email, keys)| {
            Ok(KeyPackageFor {
                email: email.clone(),
                package: STANDARD.encode(seal_key_package(
                    &sealed.content_key,
                    &sealed.preamble.item_id(),
                    keys,
                )?),
            })
        })
        .collect()
}

/// The real upload transport.
struct HttpUpload<'a> {
    client: &'a Client,
}

impl UploadTransport for HttpUpload<'_> {
    fn start(&mut self, preamble: &[u8]) -> Result<UploadState, ClientError> {
        let body = NewItem {
            preamble: STANDARD.encode(preamble),
        };
        read_json(
            self.client
                .authed(Method::POST, "/items", |r| r.json(&body))?,
        )
    }

    fn put_chunks(
        &mut self,
        item: &str,
        first: u32,
        body: &[u8],
    ) -> Result<UploadState, ClientError> {
        read_json(self.client.authed(
            Method::PUT,
            &format!("/items/{item}/chunks/{first}"),
            |r| {
                r.timeout(UPLOAD_TIMEOUT)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.to_vec())
            },
        )?)
    }

    fn state(&mut self, item: &str) -> Result<UploadState, ClientError> {
        self.client.get_json(&format!("/items/{item}/upload"))
    }

    fn sender(&mut self) -> Option<upload::PutChunks> {
        // The session of the upload's start; if it lapses mid-upload, the calling thread's
        // retry signs in again.
        let (token, _) = self.client.token().ok()?;
        let http = self.client.http.clone();
        Some(std::sync::Arc::new(
            move |item: &str, first: u32, body: bytes::Bytes| {
                read_json(
                    http.send(
                        http.request(
                            Method::PUT,
                            &format!("/items/{item}/chunks/{first}"),
                            Some(&token),
                        )
                        .timeout(UPLOAD_TIMEOUT)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(body),
                    )?,
                )
            },
        ))
    }
}

/// Attempts to resume one download after its stream broke.
const DOWNLOAD_RETRIES: usize = 3;

/// An item's ciphertext chunks as one stream that, when the connection breaks, asks again from
/// the chunk it was in (`?from=N`) and skips what it already delivered. What arrives after a
/// resume is checked against the signed manifest like the rest, so a splice is caught.
struct ResumingChunks<F, R> {
    /// Opens the stream from a chunk index.
    fetch: F,
    response: Option<R>,
    /// Bytes delivered so far.
    offset: u64,
    /// Bytes the item has.
    total: u64,
    /// Bytes per chunk (all but the last).
    stride: u64,
    retries: usize,
}

impl<F: FnMut(u64) -> io::Result<R>, R: Read> ResumingChunks<F, R> {
    fn new(fetch: F, total: u64, stride: u64) -> Self {
        Self {
            fetch,
            response: None,
            offset: 0,
            total,
            stride: stride.max(1),
            retries: 0,
        }
    }

    fn reconnect(&mut self) -> io::Result<R> {
        let from = self.offset / self.stride;
        let mut response = (self.fetch)(from)?;
        let skip = self.offset - from * self.stride;
        let skipped = io::copy(&mut (&mut response).take(skip), &mut io::sink())?;
        if skipped != skip {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the resumed download ended early",
            ));
        }
        Ok(response)
    }
}

impl<F: FnMut(u64) -> io::Result<R>, R: Read> Read for ResumingChunks<F, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let response = match &mut self.response {
                Some(r) => r,
                None => {
                    let r = self.reconnect()?;
                    self.response.insert(r)
                }
            };
            let result = response.read(buf);
            let broken = match &result {
                Ok(0) => self.offset < self.total && !buf.is_empty(),
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::Interrupted,
            };
            if broken && self.retries < DOWNLOAD_RETRIES {
                self.retries += 1;
                self.response = None;
                continue;
            }
            if let Ok(n) = result {
                self.offset += n as u64;
            }
            return result;
        }
    }
}

/// Counts bytes read for a progress bar.
struct CountingReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<'a, R> CountingReader<'a, R> {
    fn new(inner: R, progress: &'a dyn Progress) -> Self {
        Self { inner, progress }
    }
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

fn summary(m: Message, subject: String, documents: Vec<DocumentInfo>) -> MessageSummary {
    MessageSummary {
        id: m.id,
        thread: m.thread,
        from: m.from,
        to: m.to,
        sent_at: m.sent_at,
        subject,
        documents,
        matter: m.matter,
    }
}

fn document_info(item: &str, opener: &ItemOpener) -> DocumentInfo {
    let metadata = opener.metadata();
    DocumentInfo {
        item: item.to_owned(),
        name: metadata.file_name.clone(),
        media_type: metadata.media_type.clone(),
        size: metadata.true_size,
    }
}

/// An account's public keys.
fn account_keys(account: &Account) -> Result<PublicKeys, ClientError> {
    Ok(PublicKeys::from_bytes(&decode(
        &account.public_keys,
        "public keys",
    )?)?)
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, ClientError> {
    STANDARD
        .decode(text)
        .map_err(|_| ClientError::Protocol(format!("the {what} is not base64")))
}

/// Parses a message record: the header line, then `ITEM MANIFEST-DIGEST` per document.
fn parse_record(content: &[u8]) -> Option<Vec<(String, [u8; 32])>> {
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines();
    if lines.next()? != RECORD_HEADER {
        return None;
    }
    lines
        .map(|line| {
            let (item, digest) = line.split_once(' ')?;
            let digest: [u8; 32] = from_hex(digest)?.try_into().ok()?;
            from_hex(item)?;
            Some((item.to_owned(), digest))
        })
        .collect()
}

/// Escapes a value for one URL path segment (emails and hex ids; anything else is encoded).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file name that stays inside the output folder: the last component of what the sender
/// wrote, without control characters, else the item id.
fn safe_file_name(name: &str, item: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        format!("{item}.bin")
    } else {
        cleaned
    }
}

/// `dir/name`, or `dir/stem (N).ext` if taken.
fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (1..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .expect("an unbounded range yields a free name")
}

/// A media type from the file extension (the common ones in legal work).
fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Some("txt") => "text/plain",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("zip") => "application/zip",
        Some("eml") => "message/rfc822",
        _ => "application/octet-stream",
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let digest = [9u8; 32];
        let text = format!("{RECORD_HEADER}\n{} {}\n", "ab".repeat(16), to_hex(&digest));
        assert_eq!(
            parse_record(text.as_bytes()),
            Some(vec![("ab".repeat(16), digest)])
        );
        assert_eq!(
            parse_record(format!("{RECORD_HEADER}\n").as_bytes()),
            Some(vec![])
        );
        assert_eq!(parse_record(b""), None);
        assert_eq!(
            parse_record(format!("{RECORD_HEADER}\nxx yy\n").as_bytes()),
            None
        );
    }

    #[test]
    fn file_names_stay_in_the_folder() {
        assert_eq!(safe_file_name("../../etc/passwd", "id"), "passwd");
        assert_eq!(safe_file_name("C:\\x\\a.pdf", "id"), "a.pdf");
        assert_eq!(safe_file_name("..", "id"), "id.bin");
        assert_eq!(safe_file_name("", "id"), "id.bin");
        assert_eq!(safe_file_name(".bashrc", "id"), "bashrc");
        assert_eq!(safe_file_name("a\nb.txt", "id"), "ab.txt");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("ann@firm.example"), "ann@firm.example");
        assert_eq!(path_segment("a/b?c"), "a%2Fb%3Fc");
    }

    /// Fails every read with the error it holds (then with another).
    struct ErrReader(Option<io::Error>);

    impl Read for ErrReader {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(self.0.take().unwrap_or_else(|| io::Error::other("again")))
        }
    }

    #[test]
    fn downloads_resume_from_the_chunk_they_broke_in() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let calls = std::cell::RefCell::new(Vec::new());
        let mut out = Vec::new();
        {
            // Serves from a chunk index; the first two connections break after 250 bytes.
            let fetch = |from: u64| -> io::Result<io::Chain<io::Cursor<Vec<u8>>, ErrReader>> {
                let mut calls = calls.borrow_mut();
                calls.push(from);
                let rest = &data[(from * 100) as usize..];
                let (arrived, tail) = if calls.len() <= 2 {
                    let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
                    (250.min(rest.len()), ErrReader(Some(reset)))
                } else {
                    (rest.len(), ErrReader(None))
                };
                Ok(io::Cursor::new(rest[..arrived].to_vec()).chain(tail))
            };
            let mut chunks = ResumingChunks::new(fetch, data.len() as u64, 100);
            let mut buf = [0u8; 64];
            while out.len() < data.len() {
                let n = chunks.read(&mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(out, data);
        // Broke at 250 (in chunk 2), then at 200 + 250 = 450 (in chunk 4), then ran on.
        assert_eq!(*calls.borrow(), vec![0, 2, 4]);
    }

    #[test]
    fn downloads_give_up_after_a_few_breaks() {
        let mut chunks =
            ResumingChunks::new(|_| -> io::Result<ErrReader> { Ok(ErrReader(None)) }, 10, 5);
        let mut out = Vec::new();
        assert!(chunks.read_to_end(&mut out).is_err());
        assert_eq!(chunks.retries, DOWNLOAD_RETRIES);
    }

    #[test]
    fn media_types_by_extension() {
        assert_eq!(media_type("Letter.PDF"), "application/pdf");
        assert_eq!(media_type("noext"), "application/octet-stream");
    }
}
