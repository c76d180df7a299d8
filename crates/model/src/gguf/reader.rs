//! A byte cursor over the file with checked reads.
//!
//! Every read names the field it reads (a closure, called only when building an
//! error) and fails with [`GgufError::Truncated`] rather than reading past the end.
//! Counts are checked against the bytes left before anything is allocated for
//! them ([`Cursor::count`]).

use super::error::GgufError;

/// Describes the field being read, for error messages; called only on error.
pub(crate) type Field<'f> = &'f dyn Fn() -> String;

/// A position in the file's bytes. Invariant: `pos <= buf.len()`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at offset 0.
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// The absolute offset of the next byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes from the cursor to the end of the file.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: u64, field: Field) -> Result<&'a [u8], GgufError> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n));
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += bytes.len();
                Ok(bytes)
            }
            None => {
                Err(GgufError::Truncated { field: field(), offset: self.pos, needed: n, available: self.remaining() })
            }
        }
    }

    /// The next `N` bytes as an array.
    pub(crate) fn bytes<const N: usize>(&mut self, field: Field) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice); // `take` returned exactly N bytes
        Ok(out)
    }

    /// A little-endian u8.
    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, GgufError> {
        Ok(u8::from_le_bytes(self.bytes(field)?))
    }

    /// A little-endian u32.
    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(field)?))
    }

    /// A little-endian u64.
    pub(crate) fn u64(&mut self, field: Field) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(field)?))
    }

    /// A GGUF bool: one byte, 0 or 1.
    pub(crate) fn bool(&mut self, field: Field) -> Result<bool, GgufError> {
        let offset = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(GgufError::InvalidBool { field: field(), offset, byte }),
        }
    }

    /// A GGUF string: u64 length, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, field: Field) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("{} length", field()))?;
        let offset = self.pos;
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => {
                Err(GgufError::InvalidUtf8 { field: field(), offset, bad_at: offset.saturating_add(e.valid_up_to()) })
            }
        }
    }

    /// A u64 count of items that each take at least `min_bytes_each` bytes,
    /// rejected unless the rest of the file could hold that many.
    pub(crate) fn count(&mut self, min_bytes_each: u64, field: Field) -> Result<usize, GgufError> {
        let offset = self.pos;
        let count = self.u64(field)?;
        check_count(count, min_bytes_each, self.remaining(), offset, field)
    }

    /// `n` fixed-size little-endian values, decoded by `decode`.
    pub(crate) fn le_vec<T, const N: usize>(
        &mut self,
        n: usize,
        field: Field,
        decode: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, GgufError> {
        let total = (n as u64).saturating_mul(N as u64);
        let bytes = self.take(total, field)?;
        let mut out = Vec::with_capacity(n);
        for chunk in bytes.chunks_exact(N) {
            let mut one = [0u8; N];
            one.copy_from_slice(chunk); // chunks_exact yields exactly N bytes
            out.push(decode(one));
        }
        Ok(out)
    }
}

/// `count` as a usize if `available` bytes can hold `count` items of at least
/// `min_bytes_each` bytes; `offset` is where the count field starts.
pub(crate) fn check_count(
    count: u64,
    min_bytes_each: u64,
    available: usize,
    offset: usize,
    field: Field,
) -> Result<usize, GgufError> {
    let fits = count.checked_mul(min_bytes_each).is_some_and(|need| need <= available as u64);
    match usize::try_from(count) {
        Ok(n) if fits => Ok(n),
        _ => Err(GgufError::CountTooLarge { field: field(), offset, count, min_bytes_each, available }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests an unwrap is an assertion
mod tests {
    use super::*;

    fn f() -> String {
        "test field".into()
    }

    #[test]
    fn reads_little_endian_and_stops_at_the_end() {
        let mut c = Cursor::new(&[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(c.u32(&f).unwrap(), 1);
        assert_eq!(c.u64(&f).unwrap(), 2);
        let err = c.u32(&f).unwrap_err();
        assert!(matches!(err, GgufError::Truncated { offset: 12, needed: 4, available: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("test field at offset 12"), "{err}");
        assert_eq!(c.u8(&f).unwrap(), 9);
    }

    #[test]
    fn huge_take_is_truncated_not_a_panic() {
        let mut c = Cursor::new(&[0; 4]);
        assert!(matches!(c.take(u64::MAX, &f), Err(GgufError::Truncated { .. })));
        assert_eq!(c.pos(), 0);
    }

    #[test]
    fn string_checks_utf8_and_reports_the_bad_byte() {
        let mut bytes = 3u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[b'a', 0xff, b'b']);
        let err = Cursor::new(&bytes).string(&f).unwrap_err();
        assert!(matches!(err, GgufError::InvalidUtf8 { offset: 8, bad_at: 9, .. }), "{err:?}");
    }

    #[test]
    fn count_is_checked_against_remaining_bytes() {
        let mut bytes = 3u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 12]);
        assert_eq!(Cursor::new(&bytes).count(4, &f).unwrap(), 3);
        assert!(matches!(
            Cursor::new(&bytes).count(5, &f),
            Err(GgufError::CountTooLarge { count: 3, available: 12, .. })
        ));
        let max = u64::MAX.to_le_bytes();
        assert!(matches!(Cursor::new(&max).count(1, &f), Err(GgufError::CountTooLarge { .. })));
    }

    #[test]
    fn bool_rejects_bytes_other_than_0_and_1() {
        let mut c = Cursor::new(&[1, 0, 2]);
        assert!(c.bool(&f).unwrap());
        assert!(!c.bool(&f).unwrap());
        assert!(matches!(c.bool(&f), Err(GgufError::InvalidBool { offset: 2, byte: 2, .. })));
    }
}
