//! Uploads in progress and what they cost: the BLAKE3 digest of every chunk taken as it
//! arrives (so that the commit checks the signed manifest without reading the ciphertext
//! back), and each account's stored ciphertext bytes against its quota.
//!
//! Trees: `chunk_digests` (`version || item id || index u32 BE` → `version || digest (32) ×
//! n`: the digests of the n chunks a request recorded from that index, one entry per request
//! rather than per chunk, which keeps a 4 GiB upload to 512 entries instead of 65,536), kept from
//! a chunk's upload until its item is committed or deleted; `usage` (`version ||
//! email` → `version || bytes u64 BE`), the ciphertext bytes of every item the account
//! uploaded, committed or not, counted when chunks arrive and uncounted when the item is
//! deleted.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{
    Batch, FORMAT_VERSION, ItemRecord, OverQuota, SealedItem, StorageError, Store, decode, encode,
    key_bytes, key_str, tx_error, versioned_raw,
};

/// A transaction's failure: a storage error, or the item changed under the request.
type TxResult<T> = Result<T, ConflictableTransactionError<StorageError>>;

fn digest_key(item: &[u8; 16], index: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = FORMAT_VERSION;
    k[1..17].copy_from_slice(item);
    k[17..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(super) fn read_usage(v: Option<&[u8]>) -> Result<u64, StorageError> {
    match v {
        None => Ok(0),
        Some([FORMAT_VERSION, rest @ ..]) => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| StorageError::Corrupt { tree: "usage" }),
        Some(_) => Err(StorageError::Corrupt { tree: "usage" }),
    }
}

/// Adds `delta` (which may be negative) to `email`'s usage inside a transaction; with a
/// `limit`, refuses (returning the figures) when an increase would pass it.
fn add_usage(
    usage: &TransactionalTree,
    email: &str,
    delta: i64,
    limit: Option<u64>,
) -> TxResult<Result<u64, OverQuota>> {
    let key = key_str(email);
    let used =
        read_usage(usage.get(&key)?.as_deref()).map_err(ConflictableTransactionError::Abort)?;
    let after = match grown(used, delta, limit) {
        Ok(after) => after,
        Err(over) => return Ok(Err(over)),
    };
    usage.insert(key, versioned_raw(&after.to_be_bytes()))?;
    Ok(Ok(after))
}

/// Usage `used` changed by `delta`, unless an increase would pass `limit`.
pub(super) fn grown(used: u64, delta: i64, limit: Option<u64>) -> Result<u64, OverQuota> {
    let after = used.saturating_add_signed(delta);
    match limit {
        Some(limit) if delta > 0 && after > limit => Err(OverQuota { used, limit }),
        _ => Ok(after),
    }
}

impl Store {
    /// The ciphertext bytes `email` holds (uploads in progress included).
    pub fn usage(&self, email: &str) -> Result<u64, StorageError> {
        read_usage(self.usage.get(key_str(email))?.as_deref())
    }

    /// Records that the chunks from `old.received` on, whose digests are `digests` (in order),
    /// are stored: the item becomes `new`, the digests are kept for the commit and the
    /// uploader's usage grows by the bytes `new` adds, all in one transaction. Refuses, writing
    /// nothing, if the usage would pass `limit` (`Ok(Err(..))`), or if the item record is no
    /// longer `old` (`Err(Conflict)`: a sweep deleted it, say). Not yet durable.
    pub fn record_chunks(
        &self,
        old: &ItemRecord,
        new: &ItemRecord,
        digests: &[[u8; 32]],
        limit: Option<u64>,
    ) -> Result<Result<u64, OverQuota>, StorageError> {
        let key = key_bytes(&old.id);
        let new_bytes = encode(new);
        let added = i64::try_from(new.received_bytes.saturating_sub(old.received_bytes))
            .map_err(|_| StorageError::TooLong { tree: "usage" })?;
        let all = digests.concat();
        let r =
            (&self.items, &self.chunk_digests, &self.usage).transaction(|(items, sums, usage)| {
                let stored = items.get(&key)?;
                if !super::decodes_to(stored.as_deref(), "items", old)
                    .map_err(ConflictableTransactionError::Abort)?
                {
                    return Err(ConflictableTransactionError::Abort(StorageError::Conflict));
                }
                let used = match add_usage(usage, &old.uploader, added, limit)? {
                    Ok(used) => used,
                    Err(over) => return Ok(Err(over)),
                };
                if !digests.is_empty() {
                    sums.insert(&digest_key(&old.id, old.received), versioned_raw(&all))?;
                }
                items.insert(key.as_slice(), new_bytes.as_slice())?;
                Ok(Ok(used))
            });
        r.map_err(tx_error)
    }

    /// Adds to `b` the writes that store `item`, committed, with its key packages, and count its
    /// bytes against `limit` in the uploader's usage (counted when `b` is applied, which it is
    /// not if the usage then would pass `limit`). Refuses, adding nothing, if the usage read
    /// now would pass `limit`.
    pub(super) fn add_sealed_item<'s>(
        &'s self,
        b: &mut Batch<'s>,
        item: &SealedItem<'_>,
    ) -> Result<Result<u64, OverQuota>, StorageError> {
        // Only a short chunk is complete alone, and only it is kept in sled by either store.
        if item.chunk.is_empty() || item.chunk.len() >= super::SEALED_CHUNK {
            return Err(StorageError::TooLong { tree: "chunks" });
        }
        let key = key_str(&item.record.uploader);
        let current = self.usage.get(&key)?;
        let added = i64::try_from(item.record.received_bytes)
            .map_err(|_| StorageError::TooLong { tree: "usage" })?;
        let after = match grown(read_usage(current.as_deref())?, added, item.limit) {
            Ok(after) => after,
            Err(over) => return Ok(Err(over)),
        };
        b.grow(&self.usage, key, added, item.limit);
        for (email, p) in item.packages {
            b.put(
                &self.key_packages,
                super::package_key(&item.record.id, email),
                versioned_raw(p),
            );
        }
        b.put(&self.items, key_bytes(&item.record.id), encode(item.record));
        b.put(
            self.sled_chunks(),
            super::blobs::chunk_key(&item.record.id, 0).to_vec(),
            item.chunk.to_vec(),
        );
        Ok(Ok(after))
    }

    /// The digests taken as chunks `0..count` of `item` arrived; `None` for a chunk without
    /// one (uploaded by an older version: the caller hashes the stored chunk instead).
    pub fn chunk_digests(
        &self,
        item: &[u8; 16],
        count: u32,
    ) -> Result<Vec<Option<[u8; 32]>>, StorageError> {
        let mut out = vec![None; count as usize];
        for r in self
            .chunk_digests
            .range(digest_key(item, 0)..digest_key(item, count))
        {
            let (k, v) = r?;
            let corrupt = || StorageError::Corrupt {
                tree: "chunk_digests",
            };
            let first = k
                .get(17..21)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or_else(corrupt)?;
            let digests = match &v[..] {
                [FORMAT_VERSION, d @ ..] if !d.is_empty() && d.len() % 32 == 0 => d,
                _ => return Err(corrupt()),
            };
            for (index, d) in (first as usize..).zip(digests.chunks_exact(32)) {
                if let (Some(slot), Ok(d)) = (out.get_mut(index), <[u8; 32]>::try_from(d)) {
                    *slot = Some(d);
                }
            }
        }
        Ok(out)
    }

    /// Drops the digests kept for `item`'s upload (after its commit, or with the item).
    pub fn forget_chunk_digests(&self, item: &[u8; 16]) -> Result<(), StorageError> {
        for k in self.chunk_digests.scan_prefix(key_bytes(item)).keys() {
            self.chunk_digests.remove(k?)?;
        }
        Ok(())
    }

    /// Deletes an uncommitted upload at once: its chunks, digests and record, giving its bytes
    /// back to the uploader's quota. Returns whether there was one. Not yet durable.
    pub fn discard_upload(&self, item: &[u8; 16]) -> Result<bool, StorageError> {
        match self.item(item)? {
            Some(rec) if !rec.committed => {
                self.remove_item(&rec)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes an item's chunks and digests, then its record together with its bytes in the
    /// uploader's usage (the record last, so an interrupted deletion is found again). Returns
    /// how many chunks there were. Key packages and index entries are the caller's.
    pub(super) fn remove_item(&self, item: &ItemRecord) -> Result<usize, StorageError> {
        let chunks = self.blobs().delete_item(&item.id)?;
        self.forget_chunk_digests(&item.id)?;
        let key = key_bytes(&item.id);
        (&self.items, &self.usage)
            .transaction(|(items, usage)| {
                // The bytes of the record removed, which a request may have grown since
                // `item` was read.
                if let Some(removed) = items.remove(key.as_slice())? {
                    let removed: ItemRecord =
                        decode(&removed, "items").map_err(ConflictableTransactionError::Abort)?;
                    let delta = -i64::try_from(removed.received_bytes).unwrap_or(i64::MAX);
                    add_usage(usage, &removed.uploader, delta, None)?.ok();
                }
                Ok(())
            })
            .map_err(tx_error)?;
        // Digests a request recorded while the record was being read go too.
        self.forget_chunk_digests(&item.id)?;
        Ok(chunks)
    }

    /// Counts every stored item into `usage` (once, for a folder from before usage was kept).
    pub(super) fn count_usage(&self) -> Result<(), StorageError> {
        let mut totals = std::collections::BTreeMap::<String, u64>::new();
        for r in self.items.iter() {
            let (_, v) = r?;
            let item: ItemRecord = decode(&v, "items")?;
            *totals.entry(item.uploader).or_default() += item.received_bytes;
        }
        for (email, bytes) in totals {
            self.usage
                .insert(key_str(&email), versioned_raw(&bytes.to_be_bytes()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(received: u32, bytes: u64) -> ItemRecord {
        ItemRecord {
            id: [3; 16],
            uploader: "ann@firm.example".into(),
            preamble: vec![0; 88],
            received,
            received_bytes: bytes,
            committed: false,
            manifest: None,
            created_at: 1,
            updated_at: 1,
            matter: None,
        }
    }

    #[tokio::test]
    async fn an_upload_recorded_by_an_earlier_version_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let empty = item(0, 0);
        let legacy = super::super::tests::legacy_form(&empty, &["preamble"]);
        store
            .items
            .insert(key_bytes(&empty.id), legacy)
            .expect("insert");
        let one = item(2, 1000);
        let used = store
            .record_chunks(&empty, &one, &[[1; 32], [2; 32]], None)
            .expect("record");
        assert_eq!(used, Ok(1000));
        assert_eq!(store.item(&empty.id).expect("read"), Some(one.clone()));
        // Recorded from a record that is no longer the stored one: refused.
        let e = store
            .record_chunks(&empty, &item(3, 1500), &[[3; 32]], None)
            .expect_err("stale");
        assert!(matches!(e, StorageError::Conflict), "{e:?}");
    }

    #[tokio::test]
    async fn chunks_count_against_the_quota_and_come_back_when_the_upload_goes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let empty = item(0, 0);
        store.put_item(&empty).expect("put");
        let one = item(2, 1000);
        let used = store
            .record_chunks(&empty, &one, &[[1; 32], [2; 32]], Some(1500))
            .expect("record");
        assert_eq!(used, Ok(1000));
        // Over the limit: nothing changes.
        let two = item(3, 1600);
        assert_eq!(
            store
                .record_chunks(&one, &two, &[[3; 32]], Some(1500))
                .expect("record"),
            Err(OverQuota {
                used: 1000,
                limit: 1500
            })
        );
        assert_eq!(store.item(&[3; 16]).expect("item"), Some(one.clone()));
        assert_eq!(
            store.chunk_digests(&[3; 16], 3).expect("digests"),
            [Some([1; 32]), Some([2; 32]), None]
        );
        // One entry per request, read back chunk by chunk.
        let three = item(3, 1200);
        store
            .record_chunks(&one, &three, &[[3; 32]], None)
            .expect("record")
            .expect("no limit");
        assert_eq!(
            store.chunk_digests(&[3; 16], 3).expect("digests"),
            [Some([1; 32]), Some([2; 32]), Some([3; 32])]
        );
        assert_eq!(
            store
                .count_prefix("chunk_digests", &key_bytes(&[3; 16]))
                .expect("count"),
            Some(2)
        );
        let one = three;
        // A stale record is refused.
        assert!(matches!(
            store.record_chunks(&empty, &one, &[], None),
            Err(StorageError::Conflict)
        ));
        assert!(store.discard_upload(&[3; 16]).expect("discard"));
        assert_eq!(store.usage("ann@firm.example").expect("usage"), 0);
        assert_eq!(
            store.chunk_digests(&[3; 16], 2).expect("digests"),
            [None, None]
        );
        assert_eq!(store.item(&[3; 16]).expect("item"), None);
    }
}
