//! A checked cursor over one frame, shared by [`super::frame`] and
//! [`super::pgoutput`].
//!
//! Every read either returns the bytes asked for or a [`DecodeError`] naming
//! the byte offset; nothing here indexes, unwraps or does unchecked
//! arithmetic (the `deny` below makes clippy hold us to it).

use super::pgoutput::DecodeError;

/// Cursor over one frame. Invariant: `pos + rest.len()` is the frame length,
/// so `pos` is the offset of `rest[0]` in the frame.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at byte 0 of `frame`.
    pub(super) fn new(frame: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: frame,
            pos: 0,
        }
    }

    /// The offset of the next byte to read.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.advance(tail);
                Ok(head)
            }
            None => Err(self.truncated(n)),
        }
    }

    /// Everything that is left.
    pub(super) fn take_rest(&mut self) -> &'a [u8] {
        let rest = self.rest;
        self.advance(&[]);
        rest
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.advance(tail);
                Ok(*head)
            }
            None => Err(self.truncated(N)),
        }
    }

    /// Moves to `tail`, a suffix of `rest`.
    fn advance(&mut self, tail: &'a [u8]) {
        // Cannot saturate: pos + rest.len() is the frame length, a usize.
        self.pos = self
            .pos
            .saturating_add(self.rest.len().saturating_sub(tail.len()));
        self.rest = tail;
    }

    fn truncated(&self, wanted: usize) -> DecodeError {
        DecodeError::Truncated {
            at: self.pos,
            needed: wanted.saturating_sub(self.rest.len()),
        }
    }

    /// `Byte1`/`Int8`.
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array()?;
        Ok(b)
    }

    /// `Int32`, unsigned (OIDs, xids).
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// `Int32`, signed (type modifiers).
    pub(super) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// `Int64`, unsigned (LSNs).
    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// `Int64`, signed (timestamps).
    pub(super) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A signed `Int16` count. Wire counts are signed: a negative one is
    /// malformed input, never a huge `usize` (`len as usize` on an i16/i32 is
    /// the classic trap).
    pub(super) fn count_i16(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = i16::from_be_bytes(self.array()?);
        usize::try_from(count).map_err(|_| DecodeError::NegativeCount {
            what,
            count: count.into(),
            at,
        })
    }

    /// A signed `Int32` count or length; see [`Reader::count_i16`].
    pub(super) fn count_i32(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = i32::from_be_bytes(self.array()?);
        usize::try_from(count).map_err(|_| DecodeError::NegativeCount { what, count, at })
    }

    /// A `Byte1` that must be 0 or 1.
    pub(super) fn flag(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidFlag { what, value, at }),
        }
    }

    /// A `Byte1` tag that must be `tag`.
    pub(super) fn expect(&mut self, tag: u8, what: &'static str) -> Result<(), DecodeError> {
        let at = self.pos;
        match self.u8()? {
            t if t == tag => Ok(()),
            t => Err(DecodeError::UnknownTag { what, tag: t, at }),
        }
    }

    /// A nul-terminated `String` that must be UTF-8.
    pub(super) fn cstr(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let Some(len) = self.rest.iter().position(|&b| b == 0) else {
            return Err(DecodeError::UnterminatedString { what, at });
        };
        let bytes = self.take(len)?;
        self.expect(0, what)?;
        std::str::from_utf8(bytes).map_err(|err| DecodeError::InvalidUtf8 {
            what,
            at: at.saturating_add(err.valid_up_to()),
        })
    }

    /// Succeeds only when the whole frame was read.
    pub(super) fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                at: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_advance_and_report_offsets() {
        let mut r = Reader::new(b"\x01\x00\x00\x00\x02ab\0rest");
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u32(), Ok(2));
        assert_eq!(r.cstr("name"), Ok("ab"));
        assert_eq!(r.pos(), 8);
        assert_eq!(r.remaining(), 4);
        assert_eq!(r.u64(), Err(DecodeError::Truncated { at: 8, needed: 4 }));
        assert_eq!(r.take_rest(), b"rest");
        assert_eq!(r.pos(), 12);
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn take_past_the_end_names_the_shortfall() {
        let mut r = Reader::new(b"abc");
        assert_eq!(
            r.take(usize::MAX),
            Err(DecodeError::Truncated {
                at: 0,
                needed: usize::MAX - 3
            })
        );
        assert_eq!(r.take(3), Ok(b"abc".as_slice()));
    }

    #[test]
    fn negative_counts_are_errors() {
        let mut r = Reader::new(b"\xff\xfe\x80\x00\x00\x00");
        assert_eq!(
            r.count_i16("column count"),
            Err(DecodeError::NegativeCount {
                what: "column count",
                count: -2,
                at: 0
            })
        );
        assert_eq!(
            r.count_i32("length"),
            Err(DecodeError::NegativeCount {
                what: "length",
                count: i32::MIN,
                at: 2
            })
        );
    }

    #[test]
    fn strings_need_a_terminator_and_utf8() {
        assert_eq!(
            Reader::new(b"abc").cstr("name"),
            Err(DecodeError::UnterminatedString {
                what: "name",
                at: 0
            })
        );
        let mut r = Reader::new(b"\0ab\xffc\0");
        assert_eq!(r.cstr("namespace"), Ok(""));
        assert_eq!(
            r.cstr("name"),
            Err(DecodeError::InvalidUtf8 {
                what: "name",
                at: 3
            })
        );
    }

    #[test]
    fn flags_are_zero_or_one() {
        let mut r = Reader::new(b"\x00\x01\x02");
        assert_eq!(r.flag("f"), Ok(false));
        assert_eq!(r.flag("f"), Ok(true));
        assert_eq!(
            r.flag("f"),
            Err(DecodeError::InvalidFlag {
                what: "f",
                value: 2,
                at: 2
            })
        );
    }

    #[test]
    fn finish_rejects_trailing_bytes() {
        let mut r = Reader::new(b"xyz");
        r.u8().unwrap();
        assert_eq!(
            r.finish(),
            Err(DecodeError::TrailingBytes { at: 1, count: 2 })
        );
    }
}
