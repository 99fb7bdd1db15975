//! Small text writers shared by every encoder, kept free of `core::fmt`'s padding machinery.
//!
//! Formatting a `&str` or an integer with `{}` links `Formatter::pad` / `pad_integral` (about
//! 2 KB together on a microcontroller) even though the encoders never pad. The encoders write
//! with [`fmt::Write::write_str`] and use [`Decimal`] for numbers instead.

use core::fmt::{self, Display};

use crate::encode::{Sink, WriteTo};

/// An unsigned integer written in decimal, digit by digit (no padding, no sign).
#[derive(Clone, Copy)]
pub(crate) struct Decimal(pub(crate) u64);

impl Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for Decimal {
    fn write_to(&self, out: &mut dyn Sink) {
        // Most significant digit first, each as a one-character `&str` (no digit buffer to
        // re-validate as UTF-8); at most 20 levels deep.
        if self.0 >= 10 {
            Decimal(self.0 / 10).write_to(out);
        }
        out.put(upper_hex_digit((self.0 % 10) as u8));
    }
}

/// Splits `text` around the first `byte` (an ASCII delimiter such as `/`, `&` or `=`).
///
/// Same result as `str::split_once` with a `char`, but a plain byte loop: the `char` pattern
/// searcher and `memchr` behind `split_once` cost several hundred bytes of code.
pub(crate) fn split_once_byte(text: &str, byte: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == byte)?;
    // invariant: `byte` is ASCII, so `at` and `at + 1` are character boundaries.
    Some((text.get(..at)?, text.get(at + 1..)?))
}

/// `bytes` as text when they are UTF-8.
///
/// `core::str::from_utf8` carries a word-at-a-time fast path that is large on a
/// microcontroller; the byte-wise validation behind `utf8_chunks` is much smaller and just as
/// strict. Every byte-to-text conversion in the crate goes through here, so only one validator
/// is linked.
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    let mut chunks = bytes.utf8_chunks();
    match chunks.next() {
        None => Some(""),
        Some(chunk) if chunk.valid().len() == bytes.len() => Some(chunk.valid()),
        Some(_) => None,
    }
}

/// The lower-case hexadecimal digit for `value & 0xf`, as text.
pub(crate) fn hex_digit(value: u8) -> &'static str {
    const DIGITS: &str = "0123456789abcdef";
    let at = usize::from(value & 0xf);
    // invariant: `at` is below 16 and the table is ASCII, so the range is always in bounds.
    DIGITS.get(at..at + 1).unwrap_or("0")
}

/// The upper-case hexadecimal digit for `value & 0xf`, as text (percent escapes, and the
/// decimal digits of [`Decimal`], so one table serves both).
#[inline(never)]
pub(crate) fn upper_hex_digit(value: u8) -> &'static str {
    const DIGITS: &str = "0123456789ABCDEF";
    let at = usize::from(value & 0xf);
    // invariant: `at` is below 16 and the table is ASCII, so the range is always in bounds.
    DIGITS.get(at..at + 1).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn writes_zero_and_the_extremes() {
        assert_eq!(Decimal(0).to_string(), "0");
        assert_eq!(Decimal(10).to_string(), "10");
        assert_eq!(Decimal(u64::MAX).to_string(), "18446744073709551615");
    }

    #[test]
    fn hex_digits_are_lower_case() {
        assert_eq!(hex_digit(0), "0");
        assert_eq!(hex_digit(0xa), "a");
        assert_eq!(hex_digit(0x1f), "f");
    }

    proptest::proptest! {
        #[test]
        fn split_once_byte_matches_split_once(text in "[a/&=é]{0,12}", delimiter in proptest::sample::select(b"/&=".to_vec())) {
            proptest::prop_assert_eq!(
                split_once_byte(&text, delimiter),
                text.split_once(char::from(delimiter))
            );
        }
    }

    #[test]
    fn utf8_accepts_exactly_what_core_accepts() {
        for bytes in [
            &b""[..],
            b"abc",
            "é€😀".as_bytes(),
            b"\xff",
            b"a\xc3",
            b"\xed\xa0\x80",
            b"\xc0\x80",
        ] {
            assert_eq!(utf8(bytes), core::str::from_utf8(bytes).ok(), "{bytes:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn utf8_agrees_with_core(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..16)) {
            proptest::prop_assert_eq!(utf8(&bytes), core::str::from_utf8(&bytes).ok());
        }

        #[test]
        fn decimal_matches_core_formatting(n in proptest::num::u64::ANY) {
            proptest::prop_assert_eq!(Decimal(n).to_string(), n.to_string());
        }
    }
}
