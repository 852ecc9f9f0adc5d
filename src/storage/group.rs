//! Group apply: writes that wait for the same flush are applied in one sled transaction by
//! the group-commit task, instead of one transaction each.
//!
//! sled 0.34 seals its log buffer twice per transaction (`PageCache::pin_log`) and hands each
//! sealed buffer to one of its IO threads, so under many concurrent sends the IO threads and
//! their wake-ups took about 30% of the server's CPU. Sends are applied here, together, with
//! their audit entries: each write is checked against what the writes before it in the group
//! left (its expectations, its counts against their limits), skipped if it no longer holds
//! (its sender builds it again from what is stored), and otherwise staged with its audit
//! entries chained after theirs.

use std::sync::{Arc, Mutex};

use sled::Transactional;

use super::audit::{AuditEvent, Chain, ChainTree};
use super::records::MatterHeadRecord;
use super::{AuditHead, Batch, Ops, StorageError, decode, key_bytes, tx_error};

/// A write with its audit entries, owned, to be applied by the group-commit task.
pub(super) struct Grouped {
    trees: Vec<sled::Tree>,
    ops: Ops,
    at: i64,
    actor: String,
    addr: String,
    /// `(action, object, matter)` of each audit entry.
    events: Vec<(String, String, Option<[u8; 16]>)>,
}

impl Grouped {
    /// `b` with the entries of `events`, by `actor` from `addr` at `at`.
    pub(super) fn new(
        b: Batch<'_>,
        (at, actor, addr): (i64, &str, &str),
        events: &[AuditEvent<'_>],
    ) -> Self {
        let (trees, ops) = b.owned();
        Self {
            trees,
            ops,
            at,
            actor: actor.to_owned(),
            addr: addr.to_owned(),
            events: events
                .iter()
                .map(|e| (e.action.to_owned(), e.object.to_owned(), e.matter.copied()))
                .collect(),
        }
    }
}

/// What a grouped write came to: applied (the sequence number of its first audit entry),
/// not applied because what it read has changed (`None`), or refused.
pub(super) type Outcome = Result<Option<u64>, StorageError>;

/// The audit chain's trees and head, which the group-commit task needs to apply grouped
/// writes.
#[derive(Clone)]
pub(super) struct Applier {
    /// In [`ChainTree`] order: `audit`, `audit_objects`, `matter_heads`, `matter_index`.
    chain_trees: [sled::Tree; 4],
    head: Arc<Mutex<AuditHead>>,
}

fn chain_slot(t: ChainTree) -> usize {
    match t {
        ChainTree::Audit => 0,
        ChainTree::Objects => 1,
        ChainTree::MatterHeads => 2,
        ChainTree::MatterIndex => 3,
    }
}

impl Applier {
    pub(super) fn new(chain_trees: [sled::Tree; 4], head: Arc<Mutex<AuditHead>>) -> Self {
        Self { chain_trees, head }
    }

    /// Applies `group` in one transaction, in order: each write whose expectations hold (and
    /// whose counts stay within their limits) in what the writes before it left, with its
    /// audit entries. Returns each write's outcome; an error of the transaction itself fails
    /// them all.
    pub(super) fn apply(&self, group: &[Grouped]) -> Result<Vec<Outcome>, StorageError> {
        // Held for the transaction, as by `Store::apply_audited`: the chain grows in one order.
        let mut head = self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut trees: Vec<sled::Tree> = self.chain_trees.to_vec();
        // Each write's trees among the transaction's, by name: one tree, one view.
        let slots: Vec<Vec<usize>> = group
            .iter()
            .map(|g| g.trees.iter().map(|t| slot(&mut trees, t)).collect())
            .collect();
        let (outcomes, chain) = trees
            .as_slice()
            .transaction(|views| {
                let mut chain = Chain::at(&head);
                let mut outcomes = Vec::with_capacity(group.len());
                for (g, at) in group.iter().zip(&slots) {
                    let counted = match g.ops.check(views, at)? {
                        Ok(Some(counted)) => counted,
                        Ok(None) => {
                            outcomes.push(Ok(None));
                            continue;
                        }
                        Err(e) => {
                            outcomes.push(Err(e));
                            continue;
                        }
                    };
                    // The matters' heads as the writes before this one left them.
                    let mut heads = Vec::new();
                    for m in g.events.iter().filter_map(|e| e.2.as_ref()) {
                        let stored = views[chain_slot(ChainTree::MatterHeads)].get(key_bytes(m))?;
                        heads.push((*m, stored));
                    }
                    let stored_head =
                        |m: &[u8; 16]| -> Result<Option<MatterHeadRecord>, StorageError> {
                            match heads.iter().find(|(id, _)| id == m) {
                                Some((_, Some(v))) => decode(v, "matter_heads").map(Some),
                                _ => Ok(None),
                            }
                        };
                    let events: Vec<AuditEvent<'_>> = g
                        .events
                        .iter()
                        .map(|(action, object, matter)| AuditEvent {
                            action,
                            object,
                            matter: matter.as_ref(),
                        })
                        .collect();
                    let first = chain.seq;
                    let writes = match chain.append(g.at, &g.actor, &g.addr, &events, stored_head) {
                        Ok(w) => w,
                        Err(e) => {
                            outcomes.push(Err(e));
                            continue;
                        }
                    };
                    g.ops.stage(views, at, &counted)?;
                    for (t, k, v) in writes {
                        views[chain_slot(t)].insert(k, v)?;
                    }
                    outcomes.push(Ok(Some(first)));
                }
                Ok((outcomes, chain))
            })
            .map_err(tx_error)?;
        chain.leave(&mut head);
        Ok(outcomes)
    }
}

/// The position of `tree` among `trees`, by name, added at the end if absent.
fn slot(trees: &mut Vec<sled::Tree>, tree: &sled::Tree) -> usize {
    let name = tree.name();
    match trees.iter().position(|t| t.name() == name) {
        Some(i) => i,
        None => {
            trees.push(tree.clone());
            trees.len() - 1
        }
    }
}
