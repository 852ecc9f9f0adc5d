//! The one authorization function every route calls.
//!
//! A refusal for an object never says whether it exists: "missing" and "not yours" are both
//! `not_found`. The one exception is a grantee whose grant to the object ended (expired or
//! revoked): they get `410 access_expired` with the date, also after the sweeper deleted their
//! key packages. Every decision that releases ciphertext or a key package is appended to the
//! audit log (who, from which address, which item, its matter) and made durable before the
//! release.

use super::AppState;
use super::error::ApiError;
use super::extract::Caller;
use crate::storage::{
    AccountRecord, GrantRecord, ItemRecord, MatterRecord, MessageRecord, SignatureRecord,
};
use crate::wire::api::Role;
use crate::wire::to_hex;

/// What the caller wants to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action<'a> {
    /// Create an invite for an account with this role.
    CreateInvite(Role),
    /// Upload chunks to, query or commit an uncommitted item.
    Upload(&'a ItemRecord),
    /// Read an item's header and own key package (releases a key package).
    ReadItem(&'a ItemRecord),
    /// [`Action::ReadItem`] for one item of a listing: audited the same, but the caller makes
    /// the audit entries durable (one flush for the whole page) before it answers.
    ReadListedItem(&'a ItemRecord),
    /// Download an item's ciphertext (releases ciphertext).
    ReadChunks(&'a ItemRecord),
    /// Send a message carrying this (committed) item.
    SendItem(&'a ItemRecord),
    /// Read a message: its sender and recipients, or a grantee of its item.
    ReadMessage(&'a MessageRecord),
    /// Reply to a message: its sender and recipients only.
    ReplyTo(&'a MessageRecord),
    /// See an account's public keys.
    ViewAccount(&'a AccountRecord),
    /// Create a matter (firm roles).
    CreateMatter,
    /// See or change a matter: its owner or an admin.
    ManageMatter(&'a MatterRecord),
    /// File a message in a matter by naming it: a firm user who owns it, or an admin.
    UseMatter(&'a MatterRecord),
    /// Ask for a signature on a document of this message: its sender.
    RequestSignature(&'a MessageRecord),
    /// See a signature request or its evidence: requester or signer.
    ReadSignature(&'a SignatureRecord),
    /// Sign or decline: the signer.
    AnswerSignature(&'a SignatureRecord),
    /// Create a grant (firm roles).
    CreateGrant,
    /// Share this item through a grant: a holder of a key package for it.
    ShareItem(&'a ItemRecord),
    /// Share this message through a grant: its sender or a recipient.
    ShareMessage(&'a MessageRecord),
    /// Revoke a grant: its grantor or an admin.
    RevokeGrant(&'a GrantRecord),
    /// Read the audit log, whole or filtered.
    ReadAudit(AuditScope<'a>),
}

/// Which part of the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AuditScope<'a> {
    /// All of it: admins only.
    All,
    /// A matter's chain: its owner or an admin.
    Matter(&'a MatterRecord),
    /// The entries about an item (`None`: no such item): a firm user or client who holds a
    /// key package for it, or an admin.
    Item(Option<&'a ItemRecord>),
}

/// Allows or refuses `action` for `caller`.
pub(crate) async fn decide(
    s: &AppState,
    caller: &Caller,
    action: Action<'_>,
) -> Result<(), ApiError> {
    let store = &s.store;
    let me = &caller.account;
    let is_admin = me.role == Role::Admin;
    let allow_or_404 = |ok: bool| if ok { Ok(()) } else { Err(ApiError::NotFound) };
    match action {
        Action::CreateInvite(role) => {
            let allowed = match me.role {
                Role::Admin => true,
                Role::Attorney | Role::Staff => matches!(role, Role::Client | Role::Cocounsel),
                Role::Client | Role::Cocounsel => false,
            };
            if allowed {
                Ok(())
            } else {
                Err(ApiError::Forbidden("your role may not invite this role"))
            }
        }
        Action::Upload(item) => allow_or_404(item.uploader == me.email && !item.committed),
        Action::SendItem(item) => allow_or_404(item.uploader == me.email && item.committed),
        Action::ReadItem(item) | Action::ReadListedItem(item) | Action::ReadChunks(item) => {
            if !item.committed {
                return Err(ApiError::NotFound);
            }
            if let Some(g) = store.grant_for(&item.id, &me.email)? {
                if g.ended(s.now()) {
                    return Err(ApiError::AccessExpired(g.end()));
                }
            }
            if !store.has_key_package(&item.id, &me.email)? {
                return Err(ApiError::NotFound);
            }
            let what = if matches!(action, Action::ReadChunks(_)) {
                "ciphertext.release"
            } else {
                "key_package.release"
            };
            s.audit(caller, what, &to_hex(&item.id), item.matter.as_ref())?;
            if !matches!(action, Action::ReadListedItem(_)) {
                store.commit().await?;
            }
            Ok(())
        }
        Action::ReadMessage(m) => {
            if is_participant(me, m) {
                return Ok(());
            }
            match store.grant_for(&m.item, &me.email)? {
                Some(g) if covers_message(&g, m) => {
                    if g.ended(s.now()) {
                        Err(ApiError::AccessExpired(g.end()))
                    } else {
                        Ok(())
                    }
                }
                _ => Err(ApiError::NotFound),
            }
        }
        Action::ReplyTo(m) | Action::ShareMessage(m) => allow_or_404(is_participant(me, m)),
        Action::ViewAccount(other) => allow_or_404(
            me.role.is_firm()
                || other.role.is_firm()
                || other.email == me.email
                || store.are_correspondents(&me.email, &other.email)?,
        ),
        Action::CreateMatter => firm_only(me, "only firm users may create matters"),
        Action::ManageMatter(m) => allow_or_404(is_admin || m.owner == me.email),
        Action::UseMatter(m) => {
            firm_only(me, "only firm users may file messages in a matter")?;
            allow_or_404(is_admin || m.owner == me.email)
        }
        Action::RequestSignature(m) => allow_or_404(m.from == me.email),
        Action::ReadSignature(r) => allow_or_404(r.requester == me.email || r.signer == me.email),
        Action::AnswerSignature(r) => allow_or_404(r.signer == me.email),
        Action::CreateGrant => firm_only(me, "only firm users may grant access"),
        Action::ShareItem(item) => {
            allow_or_404(item.committed && store.has_key_package(&item.id, &me.email)?)
        }
        Action::RevokeGrant(g) => allow_or_404(is_admin || g.grantor == me.email),
        Action::ReadAudit(AuditScope::All) => {
            if is_admin {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "only an administrator may read the whole audit log; filter by matter or item",
                ))
            }
        }
        Action::ReadAudit(AuditScope::Matter(m)) => allow_or_404(is_admin || m.owner == me.email),
        Action::ReadAudit(AuditScope::Item(item)) => {
            if me.role == Role::Cocounsel {
                return Err(ApiError::Forbidden("co-counsel may not read the audit log"));
            }
            let Some(item) = item else {
                return Err(ApiError::NotFound);
            };
            allow_or_404(
                item.committed && (is_admin || store.has_key_package(&item.id, &me.email)?),
            )
        }
    }
}

fn is_participant(me: &AccountRecord, m: &MessageRecord) -> bool {
    m.from == me.email || m.to.iter().any(|t| t == &me.email)
}

/// Whether a grant reaches this message: it shares the message, or its item.
fn covers_message(g: &GrantRecord, m: &MessageRecord) -> bool {
    g.message == Some(m.id) || g.items.contains(&m.item)
}

fn firm_only(me: &AccountRecord, why: &'static str) -> Result<(), ApiError> {
    if me.role.is_firm() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(why))
    }
}
