//! A minimal big-endian codec: fixed-width integers, fixed arrays and length-prefixed byte
//! strings, every length checked against a caller-given bound before anything is allocated.

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the named field was complete.
    #[error("input ends inside {0}")]
    Truncated(&'static str),
    /// A length prefix exceeds the field's limit.
    #[error("{field} is {len} bytes, over its limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// A text field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// A version or kind field names something this implementation does not support.
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// Bytes remain after the last field.
    #[error("{0} unexpected bytes after the last field")]
    TrailingBytes(usize),
}

/// Reads fields front to back from a borrowed byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// A `u8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `i64`.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// A byte string with a `u32` length prefix of at most `max` bytes.
    pub fn bytes32(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)?;
        if u64::from(len) > max as u64 {
            return Err(DecodeError::TooLong {
                field,
                len: len.into(),
                max: max as u64,
            });
        }
        self.take(len as usize, field)
    }

    /// A UTF-8 string with a `u32` length prefix of at most `max` bytes.
    pub fn str32(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes32(field, max)?).map_err(|_| DecodeError::NotUtf8(field))
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Succeeds only if every byte has been read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.rest.len()))
        }
    }
}

/// Appends fields to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Raw bytes, no prefix.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A big-endian `i64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A byte string with a `u32` length prefix. Callers bound the length before writing;
    /// a longer string is a programming error.
    pub fn bytes32(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).expect("callers bound field lengths far below 4 GiB");
        self.u32(len).bytes(b)
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The finished byte vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strict_end() {
        let mut w = Writer::default();
        w.u8(1).u16(2).u32(3).u64(4).i64(-5).bytes32(b"abc");
        let bytes = w.into_vec();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.u32("c").unwrap(), 3);
        assert_eq!(r.u64("d").unwrap(), 4);
        assert_eq!(r.i64("e").unwrap(), -5);
        assert_eq!(r.bytes32("f", 3).unwrap(), b"abc");
        r.finish().unwrap();

        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        r.take(23, "x").unwrap();
        assert_eq!(r.bytes32("f", 3), Err(DecodeError::Truncated("f")));
        let mut r = Reader::new(&bytes[23..]);
        assert_eq!(
            r.bytes32("f", 2),
            Err(DecodeError::TooLong {
                field: "f",
                len: 3,
                max: 2
            })
        );
    }
}
