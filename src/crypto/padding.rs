//! Length hiding: PADMÉ for item contents and fixed buckets for metadata blocks.
//!
//! PADMÉ (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication with
//! PURBs", PETS 2019) rounds a length up so that only O(log log L) bits of it remain, at most
//! 12% overhead. Metadata blocks are small and mostly text, so they use a short fixed ladder.

/// Metadata block sizes (ciphertext bytes, tag included), smallest first.
const METADATA_BUCKETS: [usize; 7] = [
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
];

/// The PADMÉ length of `len`: with `E = floor(log2(len))` and `S = floor(log2(E)) + 1`, `len`
/// rounded up to a multiple of `2^(E - S)`, so that only its top `S + 1` bits may be set.
///
/// ```
/// assert_eq!(attache::crypto::padme(0), 0);
/// assert_eq!(attache::crypto::padme(9), 10);
/// assert_eq!(attache::crypto::padme(1_000_000), 1_015_808);
/// ```
pub fn padme(len: u64) -> u64 {
    if len <= 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // floor(log2 len)
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    // Cannot overflow for the lengths an item may have (at most 2^34 bytes).
    len.saturating_add(mask) & !mask
}

/// The size of the sealed metadata block whose encoded plaintext is `plaintext_len` bytes long
/// (the 16-byte tag included), or `None` when it fits no bucket.
pub fn metadata_bucket(plaintext_len: usize) -> Option<usize> {
    METADATA_BUCKETS
        .iter()
        .copied()
        .find(|&b| plaintext_len.checked_add(16).is_some_and(|n| n <= b))
}

/// Whether `n` is one of the metadata bucket sizes.
pub(crate) fn is_metadata_bucket(n: usize) -> bool {
    METADATA_BUCKETS.contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_matches_the_paper_and_bounds_overhead() {
        // Values from the PURBs paper's definition, worked by hand.
        assert_eq!(padme(3), 3);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(65_536), 65_536);
        assert_eq!(padme(65_537), 67_584);
        for len in (1u64..2_000_000).step_by(997) {
            let p = padme(len);
            assert!(
                p >= len && (p - len) * 100 <= len * 12 + 100,
                "{len} -> {p}"
            );
            assert_eq!(padme(p), p, "padded lengths are fixed points");
        }
    }

    #[test]
    fn metadata_buckets() {
        assert_eq!(metadata_bucket(0), Some(256));
        assert_eq!(metadata_bucket(240), Some(256));
        assert_eq!(metadata_bucket(241), Some(1024));
        assert_eq!(metadata_bucket((1 << 20) - 16), Some(1 << 20));
        assert_eq!(metadata_bucket((1 << 20) - 15), None);
    }
}
