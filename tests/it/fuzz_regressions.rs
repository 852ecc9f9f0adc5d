//! Inputs found by the fuzz targets of `fuzz/`, each a test named after what it found.

use attache::wire::DecodeError;
use attache::wire::audit::{AuditEntry, MAX_ENTRY_LEN};

/// Stored audit-entry bytes (version 1) for `json`.
fn stored(json: &str) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(json.as_bytes());
    out
}

/// `fuzz/run.sh`, target `audit_entry`: an entry that leaves out the fields that default
/// (`addr`, `matter`, `matter_prev`) fitted the 4,096-byte limit, but written back in full it
/// did not, so what was read could not be stored again. Such an entry is now refused when
/// read, with the length it would have.
#[test]
fn audit_entry_within_the_limit_only_without_its_default_fields() {
    let zeros = "0".repeat(64);
    let frame = |actor: &str| {
        format!(
            r#"{{"seq":0,"at":-800000000,"actor":"{actor}","action":"a","object":"o","prev":"{zeros}"}}"#
        )
    };
    let pad = MAX_ENTRY_LEN - stored(&frame("")).len();
    let input = stored(&frame(&"T".repeat(pad)));
    assert_eq!(input.len(), MAX_ENTRY_LEN);
    let full_len = MAX_ENTRY_LEN + r#","addr":"","matter":null,"matter_prev":null"#.len();
    assert_eq!(
        AuditEntry::from_stored(&input),
        Err(DecodeError::TooLong {
            field: "audit entry",
            len: full_len as u64,
            max: MAX_ENTRY_LEN as u64,
        })
    );
    // The same entry, short enough to be written back in full, reads and round-trips.
    let input = stored(&frame(&"T".repeat(pad - 100)));
    let entry = AuditEntry::from_stored(&input).expect("an entry within the limit");
    assert_eq!(AuditEntry::from_stored(&entry.to_stored()), Ok(entry));
}
