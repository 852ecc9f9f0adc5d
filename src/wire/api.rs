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
/// Most chunks one upload request may carry (8 MiB of content).
pub const MAX_CHUNKS_PER_REQUEST: usize = 128;
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

/// A small sealed item sent whole with its message (`SendMessage::sealed`): what `POST
/// /v1/items`, one chunk request and the commit would carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SealedItem {
    /// The preamble, base64.
    pub preamble: String,
    /// The item's one chunk, shorter than a full chunk (65,552 bytes), base64.
    pub chunk: String,
    /// The signed manifest, base64, signed by the sender's key.
    pub manifest: String,
    /// One key package per reader, the sender included.
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
    /// The message item (subject and body in its metadata), hex, uploaded and committed
    /// before; or `None` with the item in `sealed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The message item itself, when its ciphertext is one short chunk (under 65,552 bytes):
    /// stored, checked and committed with the message, in one request and one flush.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedItem>,
    /// Document items it carries, hex.
    pub documents: Vec<String>,
    /// Recipients' emails. Each must hold a key package for the message and every document.
    pub to: Vec<String>,
    /// The message this one replies to, hex; `None` starts a thread.
    pub in_reply_to: Option<String>,
    /// The matter it belongs to, hex (firm users: a matter they own, or any as admin). A reply
    /// without one joins its thread's matter.
    #[serde(default)]
    pub matter: Option<String>,
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
    /// The matter, hex.
    #[serde(default)]
    pub matter: Option<String>,
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
    /// With `headers=true`: the header (as `GET /v1/items/{item}` gives it) of each message
    /// item and document of the page that the caller may read, in the page's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ItemHeader>,
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

// ---- legal workflows: matters, signature requests, grants, audit ----

/// Longest sealed matter name (an age file to the matter's owner).
pub const MAX_SEALED_NAME_LEN: usize = 2048;
/// Longest sealed signature statement (an age file to requester and signer).
pub const MAX_SEALED_STATEMENT_LEN: usize = 16 * 1024;
/// Longest signed grant statement.
pub const MAX_GRANT_LEN: usize = 8 * 1024;
/// Longest retention a matter may be given, in days (100 years).
pub const MAX_RETAIN_DAYS: u32 = 36_500;
/// Farthest in the future a signature deadline or a grant's end may lie, in seconds (5 years).
pub const MAX_HORIZON_SECS: i64 = 5 * 366 * 24 * 3600;

/// A matter's life: open, closed (scheduled for deletion), deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MatterStatus {
    /// Open: messages, requests and grants may be added.
    Open,
    /// Closed: nothing may be added; deleted at `delete_after` unless held.
    Closed,
    /// Its ciphertext and key packages are gone; the record and the audit log remain.
    Deleted,
}

/// `POST /v1/matters` (firm roles only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMatter {
    /// The matter's name sealed as an age file to the creator's X25519 key, base64 (at most
    /// [`MAX_SEALED_NAME_LEN`] bytes). The server never sees the name.
    pub sealed_name: String,
}

/// A matter as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Matter {
    /// The matter id, hex.
    pub id: String,
    /// The firm user who created it.
    pub owner: String,
    /// The sealed name, base64 (see [`NewMatter`]).
    pub sealed_name: String,
    /// Creation time.
    pub created_at: i64,
    /// Open, closed or deleted.
    pub status: MatterStatus,
    /// When it was closed.
    pub closed_at: Option<i64>,
    /// When its ciphertext is deleted (closed matters), unless held.
    pub delete_after: Option<i64>,
    /// A legal hold suspends deletion.
    pub hold: bool,
    /// When its ciphertext was deleted.
    pub deleted_at: Option<i64>,
}

/// `GET /v1/matters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MatterList {
    /// The caller's matters (admins: all), newest first.
    pub matters: Vec<Matter>,
}

/// `POST /v1/matters/{id}/close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CloseMatter {
    /// Days to keep the matter's ciphertext after closing; default: the firm's setting.
    pub retain_days: Option<u32>,
}

/// Status of a signature request. `Expired` is a pending request past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SignatureStatus {
    /// Waiting for the signer.
    Pending,
    /// The signer signed.
    Signed,
    /// The signer declined.
    Declined,
    /// The deadline passed unanswered.
    Expired,
}

/// `POST /v1/signatures`: ask a recipient of a message to sign one of its documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSignatureRequest {
    /// The message carrying the document (sent by the caller), hex.
    pub message: String,
    /// The document to sign (one of the message's documents), hex.
    pub document: String,
    /// The signer: a recipient of the message.
    pub signer: String,
    /// Deadline, seconds since the epoch; in the future, within [`MAX_HORIZON_SECS`].
    pub deadline: i64,
}

/// A signature request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignatureRequest {
    /// The request id, hex.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// Who is asked to sign.
    pub signer: String,
    /// The message carrying the document, hex.
    pub message: String,
    /// The document, hex.
    pub document: String,
    /// The matter (the message's), hex.
    pub matter: Option<String>,
    /// When it was made.
    pub created_at: i64,
    /// Deadline.
    pub deadline: i64,
    /// Status, with `expired` computed from the server's clock.
    pub status: SignatureStatus,
    /// When the signer answered.
    pub answered_at: Option<i64>,
    /// The signed statement sealed to requester and signer (an age file), base64, once answered.
    pub sealed_statement: Option<String>,
}

/// `GET /v1/signatures`: requests to and by the caller, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignatureList {
    /// The requests.
    pub requests: Vec<SignatureRequest>,
}

/// Sign or decline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SignatureIntent {
    /// Sign.
    Sign,
    /// Decline.
    Decline,
}

/// `POST /v1/signatures/{id}/answer` (the signer only, before the deadline, once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnswerSignature {
    /// Sign or decline; must equal the intent inside the sealed statement (the server cannot
    /// check that; verifiers do).
    pub intent: SignatureIntent,
    /// The signed statement sealed as an age file to requester and signer, base64 (at most
    /// [`MAX_SEALED_STATEMENT_LEN`] bytes).
    pub sealed_statement: String,
}

/// One audit entry as stored: `raw` is the exact stored value (version byte then JSON of
/// [`crate::wire::audit::AuditEntry`]), whose SHA-256 the next entry's `prev` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The stored bytes, base64.
    pub raw: String,
}

/// A signed head of the audit chain (see [`crate::wire::audit::Checkpoint`]), as transported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// The encoded checkpoint, base64.
    pub checkpoint: String,
    /// The server's Ed25519 signature over the checkpoint's signed message, base64.
    pub signature: String,
}

/// `GET /v1/signatures/{id}/evidence` (requester or signer): what an evidence bundle needs from
/// the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvidenceMaterial {
    /// The request (answered).
    pub request: SignatureRequest,
    /// The requester's account.
    pub requester: Account,
    /// The signer's account.
    pub signer: Account,
    /// The audit entries about the request, its message and its document, in log order.
    pub audit: Vec<AuditRecord>,
    /// When the server attested them.
    pub attested_at: i64,
    /// The server's Ed25519 signature over
    /// [`crate::wire::audit::attestation_message`], base64.
    pub attestation: String,
    /// The server's Ed25519 public key (the audit signing key), base64.
    pub server_key: String,
}

/// `POST /v1/grants` (firm roles only): give co-counsel time-limited access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The grant statement signed by the caller (see `crypto::SignedGrant`), base64.
    pub grant: String,
    /// One key package for the grantee per item of the grant.
    pub key_packages: Vec<GrantPackage>,
}

/// A grantee's key package for one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantPackage {
    /// The item, hex.
    pub item: String,
    /// The age file, base64.
    pub package: String,
}

/// Status of a grant, from the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// Access is open.
    Active,
    /// `until` has passed.
    Expired,
    /// The grantor (or an admin) revoked it.
    Revoked,
}

/// A grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The grant id, hex (chosen by the grantor's client, inside the signed statement).
    pub id: String,
    /// The attorney who granted.
    pub grantor: String,
    /// Who may read.
    pub grantee: String,
    /// The message shared, if a message was shared, hex.
    pub message: Option<String>,
    /// The items readable through the grant, hex.
    pub items: Vec<String>,
    /// The matter, hex.
    pub matter: Option<String>,
    /// When it was made.
    pub created_at: i64,
    /// When access ends.
    pub until: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Active, expired or revoked.
    pub status: GrantStatus,
    /// The signed grant statement, base64, for anyone to check the grantor's signature.
    pub statement: String,
}

/// `GET /v1/grants`: grants by and to the caller, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantList {
    /// The grants.
    pub grants: Vec<Grant>,
}

/// `GET /v1/audit?matter=ID | item=ID`: audit entries with the signed heads that anchor them.
///
/// Without a filter (admins only) the whole log; with `matter` (its owner or an admin) the
/// matter's own chain (each entry's `matter_prev` links it); with `item` (a firm user who may
/// read the item, or a client who holds a key package for it) the entries about the item,
/// unchained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    /// Entries in log order.
    pub entries: Vec<AuditRecord>,
    /// Signed heads covering the entries: every checkpoint for the whole log; for a matter the
    /// checkpoints that name it. The server signs a fresh one before answering.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// The server's Ed25519 audit key, base64.
    pub server_key: String,
}
