//! The one authorization function every route calls.
//!
//! A refusal for an object never says whether it exists: "missing" and "not yours" are both
//! `not_found`. Every decision that releases ciphertext or a key package is appended to the
//! audit log and made durable before the release.

use super::error::ApiError;
use super::extract::Caller;
use super::now;
use crate::storage::{AccountRecord, ItemRecord, MessageRecord, Store};
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
    /// Download an item's ciphertext (releases ciphertext).
    ReadChunks(&'a ItemRecord),
    /// Send a message carrying this (committed) item.
    SendItem(&'a ItemRecord),
    /// Read or reply to a message.
    ReadMessage(&'a MessageRecord),
    /// See an account's public keys.
    ViewAccount(&'a AccountRecord),
}

/// Allows or refuses `action` for `caller`.
pub(crate) async fn decide(
    store: &Store,
    caller: &Caller,
    action: Action<'_>,
) -> Result<(), ApiError> {
    let me = &caller.account;
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
        Action::Upload(item) => {
            if item.uploader == me.email && !item.committed {
                Ok(())
            } else {
                Err(ApiError::NotFound)
            }
        }
        Action::SendItem(item) => {
            if item.uploader == me.email && item.committed {
                Ok(())
            } else {
                Err(ApiError::NotFound)
            }
        }
        Action::ReadItem(item) | Action::ReadChunks(item) => {
            if !item.committed || !store.has_key_package(&item.id, &me.email)? {
                return Err(ApiError::NotFound);
            }
            let what = if matches!(action, Action::ReadItem(_)) {
                "key_package.release"
            } else {
                "ciphertext.release"
            };
            store.audit(now(), &me.email, what, &to_hex(&item.id))?;
            store.commit().await?;
            Ok(())
        }
        Action::ReadMessage(m) => {
            if m.from == me.email || m.to.iter().any(|t| t == &me.email) {
                Ok(())
            } else {
                Err(ApiError::NotFound)
            }
        }
        Action::ViewAccount(other) => {
            if me.role.is_firm()
                || other.role.is_firm()
                || other.email == me.email
                || store.are_correspondents(&me.email, &other.email)?
            {
                Ok(())
            } else {
                Err(ApiError::NotFound)
            }
        }
    }
}
