//! Handlers for invites, joining, sign-in and the key directory.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ED25519, UnparsedPublicKey};

use super::authz::{Action, decide};
use super::error::ApiError;
use super::extract::{Caller, ClientAddr, Json, parse_id};
use super::{AppState, account_view, random, secret_matches, sha256, valid_email};
use crate::crypto::PublicKeys;
use crate::storage::{AccountRecord, ChallengeRecord, InviteRecord, JoinOutcome, SessionRecord};
use crate::wire::api::{
    Account, Challenge, ChallengeRequest, ContactList, ErrorBody, Invite, InviteRequest,
    JoinRequest, MAX_NAME_LEN, Session, SessionRequest, sign_in_message,
};
use crate::wire::to_hex;

/// How long a sign-in challenge stays valid.
const CHALLENGE_SECONDS: i64 = 120;
/// Bytes of an Ed25519 signature.
const ED25519_SIGNATURE_LEN: usize = 64;
/// Bytes of an invite secret.
const INVITE_SECRET_LEN: usize = 32;

/// Creates an invite and returns its URL.
#[utoipa::path(post, path = "/v1/invites", request_body = InviteRequest,
    responses((status = 201, body = Invite), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_invite(
    State(s): State<AppState>,
    caller: Caller,
    Json(req): Json<InviteRequest>,
) -> Result<(StatusCode, axum::Json<Invite>), ApiError> {
    let email = valid_email(&req.email)?;
    let name = valid_name(req.name.as_deref())?;
    decide(&s, &caller, Action::CreateInvite(req.role)).await?;
    if s.store.account(&email)?.is_some() {
        return Err(ApiError::Conflict(
            "email_taken",
            "this email already has an account".into(),
        ));
    }
    let (url, expires_at) = new_invite(&s, Some(email), name, req.role, Some(&caller))?;
    s.store.commit().await?;
    s.outbox.wake();
    Ok((
        StatusCode::CREATED,
        axum::Json(Invite {
            url,
            expires_at,
            emailed: true,
        }),
    ))
}

/// Stores a new invite and returns its URL (with the secret) and expiry.
pub(crate) fn new_invite(
    s: &AppState,
    email: Option<String>,
    name: Option<String>,
    role: crate::wire::api::Role,
    inviter: Option<&Caller>,
) -> Result<(String, i64), ApiError> {
    let invited_by = inviter.map(|c| c.account.email.as_str());
    let id: [u8; 16] = random()?;
    let secret: [u8; 32] = random()?;
    let expires_at = s.now() + i64::from(s.settings.invite_days) * 86_400;
    let record = InviteRecord {
        secret_sha256: sha256(&secret),
        email,
        name,
        role,
        invited_by: invited_by.map(str::to_owned),
        expires_at,
        used: false,
    };
    let url = format!(
        "{}/i/{}#{}",
        s.origin,
        to_hex(&id),
        URL_SAFE_NO_PAD.encode(secret)
    );
    // An invite for a named address from a person is emailed, in the same transaction.
    let notice = match (&record.email, invited_by) {
        (Some(to), Some(by)) => {
            let by_name = s.store.account(by)?.map(|a| a.name).unwrap_or_default();
            Some(s.outbox.invite_notice(to, &url, by, &by_name, expires_at)?)
        }
        _ => None,
    };
    s.store
        .put_invite_with_notice(&id, &record, notice.as_ref())?;
    if let (Some(caller), Some(invited)) = (inviter, &record.email) {
        s.audit(caller, "invite.create", invited, None)?;
    }
    Ok((url, expires_at))
}

/// The page an invite link opens: how to join. Consumes nothing.
#[utoipa::path(get, path = "/i/{id}", params(("id" = String, Path, description = "invite id")),
    responses((status = 200, description = "an HTML page", content_type = "text/html")))]
pub(crate) async fn invite_page(Path(_id): Path<String>) -> Response {
    const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Attache invitation</title></head><body>\n<h1>You are invited to Attache</h1>\n\
<p>To accept, install the <code>attache</code> tool and run</p>\n\
<pre>attache join &lt;this link, including the part after #&gt;</pre>\n\
<p>Copy the whole link from your email or chat: the part after <code>#</code> is the secret \
and never reaches the server until you join.</p>\n</body></html>\n";
    // The common layer adds the strict content security policy and `Referrer-Policy`.
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// Consumes an invite and registers an account with its public keys.
#[utoipa::path(post, path = "/v1/join", request_body = JoinRequest,
    responses((status = 201, body = Account), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn join(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<JoinRequest>,
) -> Result<(StatusCode, axum::Json<Account>), ApiError> {
    let id = parse_id(&req.invite_id)?;
    let secret = URL_SAFE_NO_PAD
        .decode(req.secret.trim())
        .ok()
        .filter(|b| b.len() == INVITE_SECRET_LEN)
        .ok_or(ApiError::NotFound)?;
    let invite = s.store.invite(&id)?.ok_or(ApiError::NotFound)?;
    if !secret_matches(&sha256(&secret), &invite.secret_sha256) {
        return Err(ApiError::NotFound);
    }
    if invite.used {
        return Err(ApiError::InviteUsed);
    }
    if invite.expires_at <= s.now() {
        return Err(ApiError::InviteExpired);
    }
    let email = match (&invite.email, &req.email) {
        (Some(invited), None) => invited.clone(),
        (Some(invited), Some(given)) => {
            let given = valid_email(given)?;
            if &given != invited {
                return Err(ApiError::BadRequest(
                    "this invite is for another email address".into(),
                ));
            }
            given
        }
        (None, Some(given)) => valid_email(given)?,
        (None, None) => {
            return Err(ApiError::BadRequest(
                "the bootstrap invite needs an email (pass --email)".into(),
            ));
        }
    };
    let keys = STANDARD
        .decode(req.public_keys.trim())
        .ok()
        .and_then(|b| PublicKeys::from_bytes(&b).ok())
        .ok_or_else(|| ApiError::BadRequest("public_keys must be 64 bytes of base64".into()))?;
    let name = valid_name(req.name.as_deref())?
        .or_else(|| invite.name.clone())
        .unwrap_or_else(|| email.clone());
    let account = AccountRecord {
        email: email.clone(),
        name,
        role: invite.role,
        public_keys: keys.to_bytes().to_vec(),
        created_at: s.now(),
    };
    match s.store.join(&id, &invite, &account)? {
        JoinOutcome::Joined => {}
        JoinOutcome::InviteUsed => return Err(ApiError::InviteUsed),
        JoinOutcome::EmailTaken => {
            return Err(ApiError::Conflict(
                "email_taken",
                "this email already has an account".into(),
            ));
        }
    }
    s.store
        .audit(s.now(), &email, &addr, "account.join", &to_hex(&id), None)?;
    s.store.commit().await?;
    tracing::info!(role = account.role.as_str(), "account joined");
    Ok((StatusCode::CREATED, axum::Json(account_view(&account)?)))
}

/// Issues a one-time sign-in challenge (for any email, so it reveals nothing).
#[utoipa::path(post, path = "/v1/auth/challenge", request_body = ChallengeRequest,
    responses((status = 200, body = Challenge)))]
pub(crate) async fn challenge(
    State(s): State<AppState>,
    Json(req): Json<ChallengeRequest>,
) -> Result<axum::Json<Challenge>, ApiError> {
    let email = valid_email(&req.email)?;
    let id: [u8; 16] = random()?;
    let nonce: [u8; 32] = random()?;
    let expires_at = s.now() + CHALLENGE_SECONDS;
    s.store.put_challenge(
        &id,
        &ChallengeRecord {
            email,
            nonce,
            expires_at,
        },
    )?;
    Ok(axum::Json(Challenge {
        challenge_id: to_hex(&id),
        nonce: STANDARD.encode(nonce),
        origin: s.origin.clone(),
        expires_at,
    }))
}

/// Answers a challenge with an Ed25519 signature and opens a session.
///
/// Failed sign-ins are counted per email as given (normalised): after
/// [`Limits::signin_failures`](super::Limits::signin_failures) of them the email is locked
/// out (`429 rate_limited` with `Retry-After`, even with a good signature) for a time that
/// doubles with each further failure. Unknown emails are counted and locked out alike, so the
/// answers never tell whether an account exists.
#[utoipa::path(post, path = "/v1/auth/session", request_body = SessionRequest,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody)))]
pub(crate) async fn session(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<SessionRequest>,
) -> Result<axum::Json<Session>, ApiError> {
    // Not an email: no account can have it, so there is nothing to count or to reveal.
    let Ok(email) = valid_email(&req.email) else {
        return Err(ApiError::Unauthorized);
    };
    s.limiter
        .signin_allowed(&email)
        .map_err(ApiError::RateLimited)?;
    match open_session(&s, &addr, &email, &req).await {
        Ok(session) => {
            s.limiter.signin_succeeded(&email);
            Ok(axum::Json(session))
        }
        Err(ApiError::Unauthorized) => {
            s.limiter.signin_failed(&email);
            Err(ApiError::Unauthorized)
        }
        Err(e) => Err(e),
    }
}

/// Checks the challenge and its signature and stores a new session.
async fn open_session(
    s: &AppState,
    addr: &str,
    email: &str,
    req: &SessionRequest,
) -> Result<Session, ApiError> {
    let id = parse_id(&req.challenge_id).map_err(|_| ApiError::Unauthorized)?;
    let challenge = s.store.take_challenge(&id)?.ok_or(ApiError::Unauthorized)?;
    let now = s.now();
    if challenge.email != email || challenge.expires_at <= now {
        return Err(ApiError::Unauthorized);
    }
    let account = s.store.account(email)?.ok_or(ApiError::Unauthorized)?;
    let signature = STANDARD
        .decode(req.signature.trim())
        .ok()
        .filter(|sig| sig.len() == ED25519_SIGNATURE_LEN)
        .ok_or(ApiError::Unauthorized)?;
    let keys = PublicKeys::from_bytes(&account.public_keys)
        .map_err(|_| ApiError::Internal("stored public keys invalid".into()))?;
    let message = sign_in_message(&s.origin, email, &id, &challenge.nonce);
    UnparsedPublicKey::new(&ED25519, keys.ed25519)
        .verify(&message, &signature)
        .map_err(|_| ApiError::Unauthorized)?;
    let token: [u8; 32] = random()?;
    let expires_at = now + i64::from(s.settings.session_hours) * 3600;
    s.store.put_session(
        &sha256(&token),
        &SessionRecord {
            email: email.to_owned(),
            last_seen: now,
            expires_at,
        },
    )?;
    s.store
        .audit(now, email, addr, "session.open", email, None)?;
    s.store.commit().await?;
    Ok(Session {
        token: URL_SAFE_NO_PAD.encode(token),
        expires_at,
        account: account_view(&account)?,
    })
}

/// The signed-in account.
#[utoipa::path(get, path = "/v1/me", responses((status = 200, body = Account)), security(("bearer" = [])))]
pub(crate) async fn me(caller: Caller) -> Result<axum::Json<Account>, ApiError> {
    Ok(axum::Json(account_view(&caller.account)?))
}

/// The accounts the caller may send to: everyone for the firm; firm users and correspondents
/// for clients and co-counsel.
#[utoipa::path(get, path = "/v1/contacts", responses((status = 200, body = ContactList)), security(("bearer" = [])))]
pub(crate) async fn contacts(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<ContactList>, ApiError> {
    let me = &caller.account;
    let mut out = Vec::new();
    let correspondents = if me.role.is_firm() {
        Vec::new()
    } else {
        s.store.correspondents(&me.email)?
    };
    for a in s.store.accounts()? {
        if a.email == me.email {
            continue;
        }
        if me.role.is_firm() || a.role.is_firm() || correspondents.contains(&a.email) {
            out.push(account_view(&a)?);
        }
    }
    Ok(axum::Json(ContactList { contacts: out }))
}

/// One account's public keys and fingerprint, for those allowed to see it.
#[utoipa::path(get, path = "/v1/directory/{email}", params(("email" = String, Path, description = "account email")),
    responses((status = 200, body = Account), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn directory(
    State(s): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<axum::Json<Account>, ApiError> {
    let email = valid_email(&email).map_err(|_| ApiError::NotFound)?;
    let other = s.store.account(&email)?.ok_or(ApiError::NotFound)?;
    decide(&s, &caller, Action::ViewAccount(&other)).await?;
    Ok(axum::Json(account_view(&other)?))
}

fn valid_name(name: Option<&str>) -> Result<Option<String>, ApiError> {
    match name.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.len() > MAX_NAME_LEN || n.chars().any(char::is_control) => {
            Err(ApiError::BadRequest(format!(
                "name must be at most {MAX_NAME_LEN} bytes, without control characters"
            )))
        }
        Some(n) => Ok(Some(n.to_owned())),
    }
}
