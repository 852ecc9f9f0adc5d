//! Matters, signature requests and co-counsel grants, their indexes, the time schedule the
//! sweeper reads, and the deletion of a matter's content at the end of its retention.
//!
//! Like the rest of storage it keeps only sealed bytes (matter names and signature statements
//! are age files it cannot open), ids, emails and times. Every change that must not race a
//! concurrent one is a transaction that first checks the record it read is still there
//! unchanged (`Batch::expect`). Layouts are in `docs/STORAGE.md`.

use super::records::{GrantRecord, ItemRecord, MatterRecord, MessageRecord, SignatureRecord};
use super::{
    Batch, Naming, NoticeRecord, StorageError, Store, decode, encode, get, index_key, index_suffix,
    key_bytes, outbox, package_key, time_be, versioned_raw,
};

/// Kind byte in `matter_index`: an item of the matter (`|| item id`).
pub(super) const MATTER_ITEM: u8 = 1;
/// Kind byte in `matter_index`: a message (`|| inverted time || message id`, newest first).
pub(super) const MATTER_MESSAGE: u8 = 2;
/// Kind byte in `matter_index`: a signature request (`|| request id`).
pub(super) const MATTER_SIGNATURE: u8 = 3;
/// Kind byte in `matter_index`: a grant (`|| grant id`).
pub(super) const MATTER_GRANT: u8 = 4;

/// Kind byte in `person_index`: a matter the person owns.
const PERSON_MATTER: u8 = 1;
/// Kind byte in `person_index`: a signature request by or to the person.
const PERSON_SIGNATURE: u8 = 2;
/// Kind byte in `person_index`: a grant by or to the person.
const PERSON_GRANT: u8 = 3;

/// Kind byte in `schedule`: a grant's end (`|| until || grant id`), until it is cut off.
const SCHEDULE_GRANT_END: u8 = 1;
/// Kind byte in `schedule`: a closed matter's deletion (`|| delete_after || matter id`), until
/// its content is deleted.
const SCHEDULE_MATTER_DELETION: u8 = 2;

/// What [`Store::delete_matter_content`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletionCounts {
    /// Item records (each with its preamble and signed manifest).
    pub items: usize,
    /// Ciphertext chunks.
    pub chunks: usize,
    /// Key packages, every reader's (grantees' included).
    pub key_packages: usize,
    /// Message records, with their inbox and sent entries.
    pub messages: usize,
    /// Sealed signature statements.
    pub statements: usize,
    /// Grants cut off by the deletion (their packages are counted in `key_packages`).
    pub grants: usize,
}

/// Whether a conditional write happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// Written.
    Done,
    /// Not written: the record already exists, or changed since it was read.
    Conflict,
}

impl From<bool> for AddOutcome {
    fn from(applied: bool) -> Self {
        if applied { Self::Done } else { Self::Conflict }
    }
}

/// `version || matter id || kind || rest`.
pub(super) fn matter_key(matter: &[u8; 16], kind: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = key_bytes(matter);
    k.push(kind);
    k.extend_from_slice(rest);
    k
}

/// `version || email || 0x00 || kind || inverted time || id`: newest first per person.
fn person_key(email: &str, kind: u8, at: i64, id: &[u8; 16]) -> Vec<u8> {
    let mut k = index_key(email, &[kind]);
    k.extend_from_slice(&index_suffix(at, id));
    k
}

fn person_prefix(email: &str, kind: u8) -> Vec<u8> {
    index_key(email, &[kind])
}

/// `version || kind || time || id`: ascending time.
fn schedule_key(kind: u8, at: i64, id: &[u8; 16]) -> Vec<u8> {
    let mut k = key_bytes(&[kind]);
    k.extend_from_slice(&time_be(at));
    k.extend_from_slice(id);
    k
}

fn tail_id(key: &[u8], tree: &'static str) -> Result<[u8; 16], StorageError> {
    key.len()
        .checked_sub(16)
        .and_then(|i| key.get(i..))
        .and_then(|b| b.try_into().ok())
        .ok_or(StorageError::Corrupt { tree })
}

/// When a matter is due for deletion: closed, not yet deleted.
fn deletion_due(m: &MatterRecord) -> Option<i64> {
    m.delete_after.filter(|_| m.deleted_at.is_none())
}

impl Store {
    // ---- matters ----

    /// Stores a new matter and indexes it under its owner.
    pub fn put_new_matter(&self, m: &MatterRecord) -> Result<(), StorageError> {
        let mut b = Batch::default();
        b.expect(&self.matters, key_bytes(&m.id), None);
        b.put(&self.matters, key_bytes(&m.id), encode(m));
        b.put(
            &self.person_index,
            person_key(&m.owner, PERSON_MATTER, m.created_at, &m.id),
            Vec::new(),
        );
        if self.apply(b)? {
            Ok(())
        } else {
            Err(StorageError::Conflict)
        }
    }

    /// The matter with this id.
    pub fn matter(&self, id: &[u8; 16]) -> Result<Option<MatterRecord>, StorageError> {
        get(&self.matters, "matters", &key_bytes(id))
    }

    /// Replaces `old` by `new` (closing, hold, release, deletion) if `old` is still what is
    /// stored, keeping the deletion schedule in step.
    pub fn update_matter(
        &self,
        old: &MatterRecord,
        new: &MatterRecord,
    ) -> Result<AddOutcome, StorageError> {
        let key = key_bytes(&old.id);
        let mut b = Batch::default();
        let Some(stored) = super::stored_as(&self.matters, "matters", &key, old)? else {
            return Ok(AddOutcome::Conflict);
        };
        b.expect(&self.matters, key.clone(), Some(stored));
        b.put(&self.matters, key, encode(new));
        let (before, after) = (deletion_due(old), deletion_due(new));
        if before != after {
            if let Some(t) = before {
                b.remove(
                    &self.schedule,
                    schedule_key(SCHEDULE_MATTER_DELETION, t, &old.id),
                );
            }
            if let Some(t) = after {
                b.put(
                    &self.schedule,
                    schedule_key(SCHEDULE_MATTER_DELETION, t, &new.id),
                    Vec::new(),
                );
            }
        }
        Ok(self.apply(b)?.into())
    }

    /// The matters `owner` created, newest first.
    pub fn matters_of(&self, owner: &str) -> Result<Vec<MatterRecord>, StorageError> {
        let mut out = Vec::new();
        for r in self
            .person_index
            .scan_prefix(person_prefix(owner, PERSON_MATTER))
            .keys()
        {
            let id = tail_id(&r?, "person_index")?;
            out.push(
                self.matter(&id)?
                    .ok_or(StorageError::Corrupt { tree: "matters" })?,
            );
        }
        Ok(out)
    }

    /// Every matter, newest first (for administrators).
    pub fn all_matters(&self) -> Result<Vec<MatterRecord>, StorageError> {
        let mut out: Vec<MatterRecord> = self
            .matters
            .iter()
            .map(|r| {
                let (_, v) = r?;
                decode(&v, "matters")
            })
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        Ok(out)
    }

    /// One page of a matter's messages, newest first (cursor as in
    /// [`Store::message_page`]).
    pub fn matter_message_page(
        &self,
        matter: &[u8; 16],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<MessageRecord>, Option<Vec<u8>>), StorageError> {
        self.page(
            &self.matter_index,
            matter_key(matter, MATTER_MESSAGE, &[]),
            before,
            limit,
        )
    }

    /// Closed matters whose deletion time is at or before `now` and whose content is not yet
    /// deleted (held ones included: the caller skips them).
    pub fn matters_due(&self, now: i64) -> Result<Vec<[u8; 16]>, StorageError> {
        self.due(SCHEDULE_MATTER_DELETION, now)
    }

    fn due(&self, kind: u8, now: i64) -> Result<Vec<[u8; 16]>, StorageError> {
        let start = key_bytes(&[kind]);
        let mut end = key_bytes(&[kind]);
        end.extend_from_slice(&time_be(now));
        end.extend_from_slice(&[0xff; 16]);
        let mut out = Vec::new();
        for r in self.schedule.range(start..=end).keys() {
            out.push(tail_id(&r?, "schedule")?);
        }
        Ok(out)
    }

    // ---- signature requests ----

    /// Stores a new signature request with its reminder notices, indexed under both parties
    /// and its matter.
    pub fn put_signature(
        &self,
        r: &SignatureRecord,
        notices: &[NoticeRecord],
    ) -> Result<(), StorageError> {
        let mut b = Batch::default();
        b.expect(&self.signatures, key_bytes(&r.id), None);
        b.put(&self.signatures, key_bytes(&r.id), encode(r));
        for who in [&r.requester, &r.signer] {
            b.put(
                &self.person_index,
                person_key(who, PERSON_SIGNATURE, r.created_at, &r.id),
                Vec::new(),
            );
        }
        if let Some(m) = &r.matter {
            b.put(
                &self.matter_index,
                matter_key(m, MATTER_SIGNATURE, &r.id),
                Vec::new(),
            );
        }
        for n in notices {
            b.put(&self.outbox, outbox::notice_key(n), encode(n));
        }
        if self.apply(b)? {
            Ok(())
        } else {
            Err(StorageError::Conflict)
        }
    }

    /// The signature request with this id.
    pub fn signature(&self, id: &[u8; 16]) -> Result<Option<SignatureRecord>, StorageError> {
        get(&self.signatures, "signatures", &key_bytes(id))
    }

    /// Replaces `old` by `new` (the answer) with its notices, if `old` is still what is stored:
    /// of two concurrent answers, one wins.
    pub fn answer_signature(
        &self,
        old: &SignatureRecord,
        new: &SignatureRecord,
        notices: &[NoticeRecord],
    ) -> Result<AddOutcome, StorageError> {
        let key = key_bytes(&old.id);
        let mut b = Batch::default();
        let Some(stored) = super::stored_as(&self.signatures, "signatures", &key, old)? else {
            return Ok(AddOutcome::Conflict);
        };
        b.expect(&self.signatures, key.clone(), Some(stored));
        b.put(&self.signatures, key, encode(new));
        for n in notices {
            b.put(&self.outbox, outbox::notice_key(n), encode(n));
        }
        Ok(self.apply(b)?.into())
    }

    /// Signature requests by and to `email`, newest first.
    pub fn signatures_of(&self, email: &str) -> Result<Vec<SignatureRecord>, StorageError> {
        let mut out = Vec::new();
        for r in self
            .person_index
            .scan_prefix(person_prefix(email, PERSON_SIGNATURE))
            .keys()
        {
            let id = tail_id(&r?, "person_index")?;
            out.push(
                self.signature(&id)?
                    .ok_or(StorageError::Corrupt { tree: "signatures" })?,
            );
        }
        Ok(out)
    }

    // ---- grants ----

    /// Stores a new grant with the grantee's key packages, if no grant has this id and the
    /// grantee holds no key package for any of the items (else nothing is written). Every item
    /// must still be in the grant's matter (or in none, for a grant outside matters) when the
    /// grant is stored: `StorageError::OtherMatter` if one is not; a concurrent send that files
    /// one in a matter makes the batch conflict, and it is built again from what is stored.
    pub fn put_grant(
        &self,
        g: &GrantRecord,
        packages: &[([u8; 16], Vec<u8>)],
    ) -> Result<AddOutcome, StorageError> {
        for _ in 0..super::WRITE_TRIES {
            let mut b = Batch::default();
            for id in &g.items {
                self.keep_in_matter(&mut b, id, g.matter, Naming::Grant)?;
            }
            b.expect(&self.grants, key_bytes(&g.id), None);
            b.put(&self.grants, key_bytes(&g.id), encode(g));
            for (item, package) in packages {
                let pk = package_key(item, &g.grantee);
                b.expect(&self.key_packages, pk.clone(), None);
                b.put(&self.key_packages, pk.clone(), versioned_raw(package));
                b.put(&self.grant_index, pk, versioned_raw(&g.id));
            }
            for who in [&g.grantor, &g.grantee] {
                b.put(
                    &self.person_index,
                    person_key(who, PERSON_GRANT, g.created_at, &g.id),
                    Vec::new(),
                );
            }
            b.put(
                &self.schedule,
                schedule_key(SCHEDULE_GRANT_END, g.until, &g.id),
                Vec::new(),
            );
            if let Some(m) = &g.matter {
                b.put(
                    &self.matter_index,
                    matter_key(m, MATTER_GRANT, &g.id),
                    Vec::new(),
                );
            }
            if self.apply(b)? {
                return Ok(AddOutcome::Done);
            }
            // Not applied: the grant or a package exists already, or an item's record changed.
            if self.grants.contains_key(key_bytes(&g.id))? {
                return Ok(AddOutcome::Conflict);
            }
            for (item, _) in packages {
                if self.has_key_package(item, &g.grantee)? {
                    return Ok(AddOutcome::Conflict);
                }
            }
        }
        Err(StorageError::Conflict)
    }

    /// The grant with this id.
    pub fn grant(&self, id: &[u8; 16]) -> Result<Option<GrantRecord>, StorageError> {
        get(&self.grants, "grants", &key_bytes(id))
    }

    /// The grant through which `email` reads `item`, if any (kept after the grant ends, so
    /// that an ended grant is told apart from no access at all).
    pub fn grant_for(
        &self,
        item: &[u8; 16],
        email: &str,
    ) -> Result<Option<GrantRecord>, StorageError> {
        let Some(v) = self.grant_index.get(package_key(item, email))? else {
            return Ok(None);
        };
        let id: [u8; 16] = match v.split_first() {
            Some((&super::FORMAT_VERSION, rest)) => {
                rest.try_into().map_err(|_| StorageError::Corrupt {
                    tree: "grant_index",
                })?
            }
            _ => {
                return Err(StorageError::Corrupt {
                    tree: "grant_index",
                });
            }
        };
        self.grant(&id)
    }

    /// Grants by and to `email`, newest first.
    pub fn grants_of(&self, email: &str) -> Result<Vec<GrantRecord>, StorageError> {
        let mut out = Vec::new();
        for r in self
            .person_index
            .scan_prefix(person_prefix(email, PERSON_GRANT))
            .keys()
        {
            let id = tail_id(&r?, "person_index")?;
            out.push(
                self.grant(&id)?
                    .ok_or(StorageError::Corrupt { tree: "grants" })?,
            );
        }
        Ok(out)
    }

    /// Every grant, newest first (for administrators).
    pub fn all_grants(&self) -> Result<Vec<GrantRecord>, StorageError> {
        let mut out: Vec<GrantRecord> = self
            .grants
            .iter()
            .map(|r| {
                let (_, v) = r?;
                decode(&v, "grants")
            })
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        Ok(out)
    }

    /// Grants whose end is at or before `now` and that are not yet cut off.
    pub fn grants_due(&self, now: i64) -> Result<Vec<[u8; 16]>, StorageError> {
        self.due(SCHEDULE_GRANT_END, now)
    }

    /// Replaces `old` by `new` (revoked and/or cut off) if `old` is still what is stored, and
    /// when `new` is cut off deletes the grantee's key packages for the grant's items at once.
    /// Returns the outcome and how many packages went. The grant index stays.
    pub fn update_grant(
        &self,
        old: &GrantRecord,
        new: &GrantRecord,
    ) -> Result<(AddOutcome, usize), StorageError> {
        let key = key_bytes(&old.id);
        let mut b = Batch::default();
        let Some(stored) = super::stored_as(&self.grants, "grants", &key, old)? else {
            return Ok((AddOutcome::Conflict, 0));
        };
        b.expect(&self.grants, key.clone(), Some(stored));
        b.put(&self.grants, key, encode(new));
        let mut removed = 0;
        if new.cut_off_at.is_some() && old.cut_off_at.is_none() {
            for item in &new.items {
                let pk = package_key(item, &new.grantee);
                if self.key_packages.contains_key(&pk)? {
                    removed += 1;
                }
                b.remove(&self.key_packages, pk);
            }
            b.remove(
                &self.schedule,
                schedule_key(SCHEDULE_GRANT_END, old.until, &old.id),
            );
        }
        let outcome: AddOutcome = self.apply(b)?.into();
        Ok((
            outcome,
            if outcome == AddOutcome::Done {
                removed
            } else {
                0
            },
        ))
    }

    // ---- retention ----

    /// Deletes everything of `matter` that holds content: every item's chunks, key packages
    /// (every reader's, grantees' included) and record (with its manifest), every message
    /// with its inbox and sent entries, the sealed statements of its signature requests; and
    /// cuts off its grants at `now`. Each step is idempotent, so a deletion interrupted by a
    /// crash completes when run again. The matter record, the requests and grants (without
    /// content) and the audit log remain. Not yet durable: call [`Store::commit`].
    pub fn delete_matter_content(
        &self,
        matter: &[u8; 16],
        now: i64,
    ) -> Result<DeletionCounts, StorageError> {
        let mut counts = DeletionCounts::default();
        for r in self
            .matter_index
            .scan_prefix(matter_key(matter, MATTER_MESSAGE, &[]))
            .keys()
        {
            let index = r?;
            let id = tail_id(&index, "matter_index")?;
            if let Some(m) = self.message(&id)? {
                self.delete_message(&m)?;
                counts.messages += 1;
            }
            self.matter_index.remove(index)?;
        }
        for r in self
            .matter_index
            .scan_prefix(matter_key(matter, MATTER_ITEM, &[]))
            .keys()
        {
            let index = r?;
            let id = tail_id(&index, "matter_index")?;
            if let Some(item) = self.item(&id)? {
                self.delete_item(&item, &mut counts)?;
            }
            self.matter_index.remove(index)?;
        }
        for r in self
            .matter_index
            .scan_prefix(matter_key(matter, MATTER_SIGNATURE, &[]))
            .keys()
        {
            let id = tail_id(&r?, "matter_index")?;
            let Some(old) = self.signature(&id)? else {
                continue;
            };
            if old.sealed_statement.is_some() {
                let mut new = old.clone();
                new.sealed_statement = None;
                self.signatures.insert(key_bytes(&id), encode(&new))?;
                counts.statements += 1;
            }
        }
        for r in self
            .matter_index
            .scan_prefix(matter_key(matter, MATTER_GRANT, &[]))
            .keys()
        {
            let id = tail_id(&r?, "matter_index")?;
            let Some(old) = self.grant(&id)? else {
                continue;
            };
            if old.cut_off_at.is_none() {
                let mut new = old.clone();
                new.cut_off_at = Some(now);
                let (outcome, removed) = self.update_grant(&old, &new)?;
                if outcome == AddOutcome::Conflict {
                    return Err(StorageError::Conflict);
                }
                counts.key_packages += removed;
                counts.grants += 1;
            }
        }
        Ok(counts)
    }

    /// Deletes a message record with its inbox and sent entries (contacts stay: they say only
    /// that two accounts corresponded).
    fn delete_message(&self, m: &MessageRecord) -> Result<(), StorageError> {
        let suffix = index_suffix(m.sent_at, &m.id);
        let mut b = Batch::default();
        b.remove(&self.sent, index_key(&m.from, &suffix));
        for t in &m.to {
            b.remove(&self.inbox, index_key(t, &suffix));
        }
        b.remove(&self.messages, key_bytes(&m.id));
        self.apply(b)?;
        Ok(())
    }

    /// Deletes an item's key packages and grant index entries, then its chunks, then its
    /// record: the record goes last, so an interrupted deletion is found again.
    pub(super) fn delete_item(
        &self,
        item: &ItemRecord,
        counts: &mut DeletionCounts,
    ) -> Result<(), StorageError> {
        let prefix = key_bytes(&item.id);
        for r in self.key_packages.scan_prefix(&prefix).keys() {
            self.key_packages.remove(r?)?;
            counts.key_packages += 1;
        }
        for r in self.grant_index.scan_prefix(&prefix).keys() {
            self.grant_index.remove(r?)?;
        }
        counts.chunks += self.remove_item(item)?;
        counts.items += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{committed_item, legacy_form};
    use super::*;
    use crate::storage::StorageError;
    use crate::wire::api::SignatureIntent;
    use crate::wire::to_hex;

    const MATTER: [u8; 16] = [0xaa; 16];
    const ANN: &str = "ann@firm.example";
    const CAROL: &str = "carol@client.example";
    const COLE: &str = "cole@cocounsel.example";

    fn matter(id: [u8; 16]) -> MatterRecord {
        MatterRecord {
            id,
            owner: ANN.into(),
            sealed_name: vec![1; 64],
            created_at: 100,
            closed_at: None,
            delete_after: None,
            hold: false,
            deleted_at: None,
        }
    }

    #[tokio::test]
    async fn a_matter_stored_by_an_earlier_version_is_updated() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let old = matter(MATTER);
        let legacy = legacy_form(&old, &["sealed_name"]);
        assert!(
            std::str::from_utf8(&legacy)
                .expect("utf8")
                .contains("[1,1,1")
        );
        store
            .matters
            .insert(key_bytes(&MATTER), legacy)
            .expect("insert");
        assert_eq!(store.matter(&MATTER).expect("read"), Some(old.clone()));
        let closed = MatterRecord {
            closed_at: Some(200),
            ..old.clone()
        };
        assert_eq!(
            store.update_matter(&old, &closed).expect("update"),
            AddOutcome::Done
        );
        assert_eq!(store.matter(&MATTER).expect("read"), Some(closed.clone()));
        // A record that changed since it was read is still refused.
        assert_eq!(
            store.update_matter(&old, &closed).expect("update"),
            AddOutcome::Conflict
        );
    }

    #[tokio::test]
    async fn an_item_filed_in_a_matter_is_never_named_by_a_message_outside_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let other_matter = [0xbb; 16];
        store.put_new_matter(&matter(MATTER)).expect("matter");
        store.put_new_matter(&matter(other_matter)).expect("other");
        let (msg_item, doc, reply_item) = ([1; 16], [2; 16], [3; 16]);
        for id in [msg_item, doc, reply_item] {
            committed_item(&store, id, 1, &[ANN, CAROL]);
        }
        store
            .put_message(&message(1, msg_item, &[doc], Some(MATTER)))
            .expect("filed");
        // A send that read the document before it was filed (as two concurrent sends both
        // do) builds its batch after: it is refused, and nothing of it is stored.
        for (id, matter) in [(2, Some(other_matter)), (3, None)] {
            let err = store
                .put_message(&message(id, reply_item, &[doc], matter))
                .expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("item {} belongs to another matter", to_hex(&doc))
            );
            assert!(matches!(err, StorageError::OtherMatter { item } if item == doc));
            assert_eq!(store.message(&[id; 16]).expect("read"), None);
        }
        let filed = |id| store.item(&id).expect("item").expect("stored").matter;
        assert_eq!((filed(doc), filed(reply_item)), (Some(MATTER), None));
        // In the same matter it goes on.
        store
            .put_message(&message(4, reply_item, &[doc], Some(MATTER)))
            .expect("same matter");
        assert_eq!(filed(reply_item), Some(MATTER));
    }

    fn message(
        id: u8,
        item: [u8; 16],
        docs: &[[u8; 16]],
        matter: Option<[u8; 16]>,
    ) -> MessageRecord {
        MessageRecord {
            id: [id; 16],
            thread: [id; 16],
            from: ANN.into(),
            to: vec![CAROL.into()],
            sent_at: 1000 + i64::from(id),
            item,
            documents: docs.iter().map(|d| (*d, 100)).collect(),
            matter,
        }
    }

    fn grant(id: u8, items: Vec<[u8; 16]>, until: i64) -> GrantRecord {
        GrantRecord {
            id: [id; 16],
            grantor: ANN.into(),
            grantee: COLE.into(),
            message: None,
            items,
            matter: Some(MATTER),
            created_at: 100,
            until,
            revoked_at: None,
            cut_off_at: None,
            statement: vec![5; 200],
        }
    }

    /// Keys left in `tree` under `version || prefix`.
    fn left(store: &Store, tree: &str, prefix: &[u8]) -> usize {
        store
            .count_prefix(tree, &key_bytes(prefix))
            .expect("scan")
            .expect("tree exists")
    }

    #[tokio::test]
    async fn deleting_a_matter_leaves_no_chunk_key_package_or_manifest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        store.put_new_matter(&matter(MATTER)).expect("matter");
        // In the matter: a message item and two documents; outside it: one of each.
        let (msg_item, doc1, doc2, other) = ([1; 16], [2; 16], [3; 16], [4; 16]);
        for id in [msg_item, doc1, doc2] {
            committed_item(&store, id, 3, &[ANN, CAROL]);
        }
        committed_item(&store, other, 2, &[ANN, CAROL]);
        let m = message(1, msg_item, &[doc1, doc2], Some(MATTER));
        store.put_message(&m).expect("message");
        store
            .put_message(&message(2, other, &[], None))
            .expect("other message");
        assert_eq!(
            store.item(&doc1).expect("item").expect("doc1").matter,
            Some(MATTER)
        );
        let signature = SignatureRecord {
            id: [9; 16],
            requester: ANN.into(),
            signer: CAROL.into(),
            message: m.id,
            document: doc1,
            matter: Some(MATTER),
            created_at: 1001,
            deadline: 5000,
            answered_at: Some(1002),
            intent: Some(SignatureIntent::Sign),
            sealed_statement: Some(vec![3; 500]),
        };
        store.put_signature(&signature, &[]).expect("signature");
        let g = grant(8, vec![doc2], 4000);
        assert_eq!(
            store.put_grant(&g, &[(doc2, vec![2; 300])]).expect("grant"),
            AddOutcome::Done
        );
        assert_eq!(
            store.put_grant(&g, &[(doc2, vec![2; 300])]).expect("again"),
            AddOutcome::Conflict
        );
        assert!(store.has_key_package(&doc2, COLE).expect("package"));

        let counts = store.delete_matter_content(&MATTER, 6000).expect("delete");
        assert_eq!(
            counts,
            DeletionCounts {
                items: 3,
                chunks: 9,
                key_packages: 7,
                messages: 1,
                statements: 1,
                grants: 1,
            }
        );
        store.commit().await.expect("commit");
        for id in [msg_item, doc1, doc2] {
            assert_eq!(left(&store, "chunks", &id), 0, "chunks of {id:?}");
            assert_eq!(
                left(&store, "key_packages", &id),
                0,
                "key packages of {id:?}"
            );
            assert_eq!(
                left(&store, "items", &id),
                0,
                "record and manifest of {id:?}"
            );
            assert_eq!(left(&store, "grant_index", &id), 0);
        }
        assert_eq!(left(&store, "messages", &m.id), 0);
        let mut inbox = key_bytes(CAROL.as_bytes());
        inbox.push(0);
        assert_eq!(
            store.count_prefix("inbox", &inbox).expect("scan"),
            Some(1),
            "only the message outside the matter is left in the inbox"
        );
        let mut kinds = MATTER.to_vec();
        kinds.push(MATTER_ITEM);
        assert_eq!(left(&store, "matter_index", &kinds), 0);
        assert_eq!(
            store
                .signature(&signature.id)
                .expect("read")
                .expect("kept")
                .sealed_statement,
            None
        );
        let g = store.grant(&g.id).expect("read").expect("kept");
        assert_eq!(g.cut_off_at, Some(6000));
        assert!(store.grants_due(i64::MAX).expect("due").is_empty());
        // Everything outside the matter is untouched.
        assert_eq!(left(&store, "chunks", &other), 2);
        assert_eq!(left(&store, "key_packages", &other), 2);
        assert!(store.message(&[2; 16]).expect("read").is_some());
        // Running it again (after a crash, say) finds nothing more.
        assert_eq!(
            store.delete_matter_content(&MATTER, 7000).expect("again"),
            DeletionCounts::default()
        );
    }

    #[tokio::test]
    async fn matters_are_scheduled_for_deletion_when_closed_and_unscheduled_when_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let open = matter(MATTER);
        store.put_new_matter(&open).expect("matter");
        assert!(store.matters_due(i64::MAX).expect("due").is_empty());
        let mut closed = open.clone();
        closed.closed_at = Some(200);
        closed.delete_after = Some(300);
        assert_eq!(
            store.update_matter(&open, &closed).expect("close"),
            AddOutcome::Done
        );
        assert_eq!(
            store.update_matter(&open, &closed).expect("stale"),
            AddOutcome::Conflict,
            "an update from a stale read is refused"
        );
        assert!(store.matters_due(299).expect("due").is_empty());
        assert_eq!(store.matters_due(300).expect("due"), vec![MATTER]);
        let mut deleted = closed.clone();
        deleted.deleted_at = Some(301);
        store.update_matter(&closed, &deleted).expect("delete");
        assert!(store.matters_due(i64::MAX).expect("due").is_empty());
        assert_eq!(store.matters_of(ANN).expect("of"), vec![deleted.clone()]);
        assert_eq!(store.all_matters().expect("all"), vec![deleted]);
    }

    #[tokio::test]
    async fn a_grant_names_only_items_of_its_own_matter_when_it_is_stored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let (filed, loose) = ([1; 16], [2; 16]);
        committed_item(&store, filed, 1, &[ANN]);
        committed_item(&store, loose, 1, &[ANN]);
        store
            .put_message(&message(1, filed, &[], Some(MATTER)))
            .expect("filed");
        // As if each item had been read before a concurrent send filed it (or not).
        let outside = GrantRecord {
            matter: None,
            ..grant(8, vec![filed], 500)
        };
        let inside = grant(9, vec![loose], 500);
        for (g, item) in [(&outside, filed), (&inside, loose)] {
            let err = store
                .put_grant(g, &[(item, vec![2; 300])])
                .expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("item {} belongs to another matter", to_hex(&item))
            );
            assert_eq!(store.grant(&g.id).expect("read"), None);
            assert!(!store.has_key_package(&item, COLE).expect("package"));
        }
        let matching = grant(10, vec![filed], 500);
        assert_eq!(
            store
                .put_grant(&matching, &[(filed, vec![2; 300])])
                .expect("grant"),
            AddOutcome::Done
        );
    }

    #[tokio::test]
    async fn cutting_off_a_grant_deletes_the_packages_and_keeps_the_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        committed_item(&store, [1; 16], 1, &[ANN]);
        // The grant is in MATTER, so its item is filed there first.
        store
            .put_message(&message(1, [1; 16], &[], Some(MATTER)))
            .expect("filed");
        let old = grant(8, vec![[1; 16]], 500);
        store
            .put_grant(&old, &[([1; 16], vec![2; 300])])
            .expect("grant");
        assert_eq!(store.grants_due(499).expect("due"), Vec::<[u8; 16]>::new());
        assert_eq!(store.grants_due(500).expect("due"), vec![old.id]);
        let mut new = old.clone();
        new.cut_off_at = Some(500);
        assert_eq!(
            store.update_grant(&old, &new).expect("cut off"),
            (AddOutcome::Done, 1)
        );
        assert!(!store.has_key_package(&[1; 16], COLE).expect("package"));
        assert!(
            store
                .has_key_package(&[1; 16], ANN)
                .expect("grantor's stays")
        );
        assert_eq!(store.grant_for(&[1; 16], COLE).expect("index"), Some(new));
        assert!(store.grants_due(i64::MAX).expect("due").is_empty());
        assert_eq!(store.grants_of(COLE).expect("of").len(), 1);
        assert_eq!(store.grants_of(ANN).expect("of").len(), 1);
    }
}
