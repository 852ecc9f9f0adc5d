//! The HTTPS API's request and response bodies (JSON under `/v1`) and the routes' paths: the
//! one contract between `client` and `server`.
//!
//! Binary fields (preambles, manifests, key packages, signatures, public keys) travel as
//! standard base64 with padding; ids as 32 lower-case hex digits (16 random bytes); times as
//! seconds since the Unix epoch (UTC). Ciphertext chunks travel as raw
//! `application/octet-stream` bodies, never in JSON. Every body is versioned by its path
//! (`/v1`); unknown fields are refused.

use serde::{Deserialize, Serialize};

/// Path prefix of every API route.
pub const API_PREFIX: &str = "/v1";
/// Most chunks one upload request may carry (1 MiB of content).
pub const MAX_CHUNKS_PER_REQUEST: usize = 16;
/// Domain-separation prefix of the sign-in signature. The signed message is this prefix, then
/// `u32 len || origin`, `u32 len || email`, `challenge id (16)`, `nonce (32)`.
pub const SIGN_IN_DOMAIN: &[u8] = b"attache/v1 sign-in\0";
/// Longest email address accepted anywhere.
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest display name accepted anywhere.
pub const MAX_NAME_LEN: usize = 128;
/// Most recipients of one message.
pub const MAX_RECIPIENTS: usize = 64;
/// Most documents in one message.
pub const MAX_DOCUMENTS: usize = 64;
/// Most entries one listing returns.
pub const MAX_PAGE: u32 = 200;

/// An account's role. Firm roles (`Admin`, `Attorney`, `Staff`) may invite and see the firm's
/// directory; `Client` and `Cocounsel` see only their correspondents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Firm administrator.
    Admin,
    /// Attorney of the firm.
    Attorney,
    /// Staff of the firm.
    Staff,
    /// A client of the firm.
    Client,
    /// Outside co-counsel.
    Cocounsel,
}

impl Role {
    /// Whether the role belongs to the firm itself.
    pub fn is_firm(self) -> bool {
        matches!(self, Self::Admin | Self::Attorney | Self::Staff)
    }

    /// The lower-case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Attorney => "attorney",
            Self::Staff => "staff",
            Self::Client => "client",
            Self::Cocounsel => "cocounsel",
        }
    }
}

/// The error body of every refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// A stable machine-readable code, such as `not_found` or `invite_used`.
    pub error: String,
    /// A short human-readable explanation, never containing secrets or internals.
    pub message: String,
}

/// `POST /v1/join`: consume an invite and register public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The invite id (from the URL path).
    pub invite_id: String,
    /// The invite secret (from the URL fragment), base64url without padding.
    pub secret: String,
    /// The email to register; required only for the bootstrap invite, else it must be absent
    /// or equal the invited address.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// The 64-byte public keys (`x25519 || ed25519`), base64.
    pub public_keys: String,
}

/// An account as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Email address (the account's name).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The 64-byte public keys, base64.
    pub public_keys: String,
    /// The fingerprint as a safety number (six groups of five digits).
    pub fingerprint: String,
}

/// `POST /v1/auth/challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// Who wants to sign in.
    pub email: String,
}

/// A sign-in challenge. Answered for any email, so that it reveals nothing about accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// The challenge id, hex.
    pub challenge_id: String,
    /// 32 random bytes, base64.
    pub nonce: String,
    /// The server origin the signature is bound to, e.g. `https://127.0.0.1:8443`.
    pub origin: String,
    /// When the challenge expires.
    pub expires_at: i64,
}

/// `POST /v1/auth/session`: answer a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The challenge id, hex.
    pub challenge_id: String,
    /// Email signing in.
    pub email: String,
    /// Ed25519 signature over the sign-in message (see [`SIGN_IN_DOMAIN`]), base64.
    pub signature: String,
}

/// A session: send `Authorization: Bearer TOKEN` on every later request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The session token (32 random bytes, base64url without padding). Secret.
    pub token: String,
    /// Absolute expiry; the session also ends after an idle period.
    pub expires_at: i64,
    /// The signed-in account.
    pub account: Account,
}

/// `POST /v1/invites` (firm roles only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Email of the person invited.
    pub email: String,
    /// Role they will have.
    pub role: Role,
    /// Display name, if known.
    pub name: Option<String>,
}

/// A created invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// `https://HOST:PORT/i/ID#SECRET`. Contains the secret: show it only to the inviter.
    pub url: String,
    /// When it expires.
    pub expires_at: i64,
    /// Whether the server queued an email with the link to the invited address.
    #[serde(default)]
    pub emailed: bool,
}

/// `POST /v1/items`: start an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// The 88-byte preamble, base64.
    pub preamble: String,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadState {
    /// The item id, hex.
    pub item: String,
    /// Chunks received so far, contiguous from 0. Resume with
    /// `PUT /v1/items/{item}/chunks/{received}`.
    pub received: u32,
}

/// A key package for one reader, sent with the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyPackageFor {
    /// The reader's email.
    pub email: String,
    /// The age file, base64.
    pub package: String,
}

/// `POST /v1/items/{item}/commit`: finish an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitItem {
    /// The signed manifest, base64. Its signer must be the uploader's Ed25519 key, and every
    /// received chunk must match it.
    pub manifest: String,
    /// One key package per reader, the uploader included.
    pub key_packages: Vec<KeyPackageFor>,
}

/// `GET /v1/items/{item}`: what a reader needs before the chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ItemHeader {
    /// The item id, hex.
    pub item: String,
    /// The sender.
    pub sender: Account,
    /// The preamble, base64.
    pub preamble: String,
    /// The signed manifest, base64.
    pub manifest: String,
    /// The caller's own key package, base64.
    pub key_package: String,
    /// Total ciphertext bytes (`GET /v1/items/{item}/chunks` returns this many).
    pub ciphertext_len: u64,
}

/// `POST /v1/messages`: send a committed message item with its committed documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The message item (subject and body in its metadata), hex.
    pub item: String,
    /// Document items it carries, hex.
    pub documents: Vec<String>,
    /// Recipients' emails. Each must hold a key package for the message and every document.
    pub to: Vec<String>,
    /// The message this one replies to, hex; `None` starts a thread.
    pub in_reply_to: Option<String>,
}

/// A message as listed and read. The subject, body and file names are inside the sealed items;
/// the server sees only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// The message id, hex.
    pub id: String,
    /// The thread id, hex (the id of the first message).
    pub thread: String,
    /// Sender's email.
    pub from: String,
    /// Recipients' emails.
    pub to: Vec<String>,
    /// When the server accepted it.
    pub sent_at: i64,
    /// The message item, hex.
    pub item: String,
    /// The document items, hex, with their ciphertext sizes.
    pub documents: Vec<DocumentRef>,
}

/// A document carried by a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentRef {
    /// The item id, hex.
    pub item: String,
    /// Ciphertext bytes (padded size plus tags): all the server knows of its size.
    pub ciphertext_len: u64,
}

/// `GET /v1/messages?box=inbox|sent&before=CURSOR&limit=N`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessageList {
    /// The page.
    pub messages: Vec<Message>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// `GET /v1/contacts`: the accounts the caller may send to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContactList {
    /// Accounts, by email.
    pub contacts: Vec<Account>,
}

/// The sign-in message for [`SIGN_IN_DOMAIN`].
pub fn sign_in_message(
    origin: &str,
    email: &str,
    challenge_id: &[u8; 16],
    nonce: &[u8; 32],
) -> Vec<u8> {
    let mut w =
        super::Writer::with_capacity(SIGN_IN_DOMAIN.len() + origin.len() + email.len() + 64);
    w.bytes(SIGN_IN_DOMAIN)
        .bytes32(origin.as_bytes())
        .bytes32(email.as_bytes())
        .bytes(challenge_id)
        .bytes(nonce);
    w.into_vec()
}
