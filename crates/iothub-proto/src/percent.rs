//! RFC 3986 percent-encoding as used by IoT Hub: property bags, SAS resource URIs and
//! username query parameters.
//!
//! IoT Hub percent-encodes everything except the RFC 3986 *unreserved* characters
//! (`A–Z a–z 0–9 - . _ ~`), exactly like Python's `urllib.parse.quote(s, safe="")` and
//! azure-sdk-for-c's `_az_span_url_encode`. Two details matter for interoperability:
//!
//! - `- . _ ~` stay literal. Escaping them changes a SAS string-to-sign and so its
//!   signature (docs/protocol.md §2.1, §2.2 negative controls).
//! - `+` is never a space when decoding (MQTT doc: "do not URL-encode with `+`"), so
//!   `a+b` decodes to `a+b`.
//!
//! Decoding borrows: [`Decoded`] wraps the raw text and decodes lazily, so parsers never
//! allocate.

use core::fmt::{self, Display, Write};

use percent_encoding::percent_decode_str;

use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;

/// Percent-encodes `text` as one URI component; the result is a [`Display`] adapter.
///
/// ```
/// use iothub_proto::percent::encode;
///
/// let encoded = encode("myhub.azure-devices.net/devices/a b+c").to_string();
/// assert_eq!(encoded, "myhub.azure-devices.net%2Fdevices%2Fa%20b%2Bc");
/// ```
pub fn encode(text: &str) -> Encoded<'_> {
    Encoded(text)
}

/// A percent-encoding [`Display`] adapter returned by [`encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded<'a>(&'a str);

impl Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for Encoded<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_encoded(out, self.0);
    }
}

impl Encoded<'_> {
    /// Writes the encoded text into `buf` without `core::fmt` and returns its length in bytes
    /// (the same text as [`Display`]).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::percent::encode;
    ///
    /// let mut buf = [0u8; 16];
    /// let len = encode("a b/c").encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"a%20b%2Fc");
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

/// Writes `text` percent-encoded into any sink (one copy of the loop for every caller):
/// RFC 3986 unreserved characters as they are, every other byte as `%XX` with upper-case hex
/// (the UTF-8 bytes of a non-ASCII character one by one).
pub(crate) fn write_encoded(out: &mut dyn Sink, text: &str) {
    write_encoded_bytes(out, text.as_bytes());
}

/// [`write_encoded`] over bytes, which need not be UTF-8: every byte that is not an RFC 3986
/// unreserved character becomes `%XX`, so the output is ASCII whatever the input (the
/// byte-level encoders in [`crate::bytes`] rely on this).
///
/// Byte by byte, each as a one-byte `&str`: the smallest code for a microcontroller, and
/// topics and resource names are short.
pub(crate) fn write_encoded_bytes(out: &mut dyn Sink, bytes: &[u8]) {
    use crate::text::upper_hex_digit as digit;
    // Every unreserved character lies in `-` (0x2D) ..= `~` (0x7E): its one-byte text is
    // sliced out of this run of ASCII, so no UTF-8 handling is compiled in.
    const ASCII: &str =
        "-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            let at = usize::from(byte - b'-');
            // invariant: `byte` is unreserved, so `at` indexes the table, which is ASCII.
            out.put(ASCII.get(at..at + 1).unwrap_or_default());
        } else {
            out.put("%");
            out.put(digit(byte >> 4));
            out.put(digit(byte & 0xf));
        }
    }
}

/// A [`Sink`] that percent-encodes every piece before passing it on.
///
/// Percent-encoding is per byte and context-free, so encoding piece by piece equals encoding
/// the whole text.
pub(crate) struct PercentSink<'s>(pub(crate) &'s mut dyn Sink);

impl Sink for PercentSink<'_> {
    fn put(&mut self, piece: &str) {
        write_encoded(self.0, piece);
    }
}

/// Percent-encoded text as received, decoded on demand without allocating.
///
/// ```
/// use iothub_proto::percent::Decoded;
///
/// let value = Decoded::new("value%201+2");
/// assert_eq!(value.raw(), "value%201+2");
/// assert!(value.eq_str("value 1+2"));
/// let mut buf = [0u8; 16];
/// assert_eq!(value.decode_into(&mut buf), Ok("value 1+2"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decoded<'a> {
    raw: &'a str,
}

impl<'a> Decoded<'a> {
    /// Wraps raw, still-encoded text.
    pub const fn new(raw: &'a str) -> Self {
        Self { raw }
    }

    /// The text exactly as received, escapes included.
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the raw text contains no escapes, so [`Self::raw`] already is the value.
    ///
    /// ```
    /// use iothub_proto::percent::Decoded;
    ///
    /// assert!(Decoded::new("plain").is_literal());
    /// assert!(!Decoded::new("a%20b").is_literal());
    /// ```
    pub fn is_literal(&self) -> bool {
        !self.raw.contains('%')
    }

    /// Whether every `%` starts an escape of two hex digits. [`Self::bytes`] keeps a stray
    /// `%` literally; a receiver that must refuse rather than alter malformed input (the
    /// emulator, for a device's property bag) checks this first.
    ///
    /// ```
    /// use iothub_proto::percent::Decoded;
    ///
    /// assert!(Decoded::new("a%20b%2f").is_well_formed());
    /// assert!(!Decoded::new("100%").is_well_formed());
    /// assert!(!Decoded::new("%zz").is_well_formed());
    /// ```
    pub fn is_well_formed(&self) -> bool {
        let raw = self.raw.as_bytes();
        raw.iter().enumerate().all(|(i, &b)| {
            b != b'%'
                || matches!(
                    (raw.get(i + 1), raw.get(i + 2)),
                    (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit()
                )
        })
    }

    /// The decoded bytes. A `%` not followed by two hex digits is kept literally, as
    /// browsers and Python's `unquote` do.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        percent_decode_str(self.raw)
    }

    /// Compares the decoded value with `other` without decoding into storage.
    ///
    /// ```
    /// use iothub_proto::percent::Decoded;
    ///
    /// assert!(Decoded::new("%24.mid").eq_str("$.mid"));
    /// assert!(!Decoded::new("%24.mid").eq_str("$.mi"));
    /// ```
    pub fn eq_str(&self, other: &str) -> bool {
        self.bytes().eq(other.bytes())
    }

    /// Decodes into `buf` and returns the text.
    ///
    /// # Errors
    ///
    /// [`DecodeError::BufferTooSmall`] when `buf` is too short, and
    /// [`DecodeError::InvalidUtf8`] when the decoded bytes are not UTF-8.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, DecodeError> {
        let mut len = 0;
        for byte in self.bytes() {
            let Some(slot) = buf.get_mut(len) else {
                return Err(DecodeError::BufferTooSmall(BufferTooSmall {
                    required: self.bytes().count(),
                }));
            };
            *slot = byte;
            len += 1;
        }
        crate::text::utf8(buf.get(..len).unwrap_or_default()).ok_or(DecodeError::InvalidUtf8)
    }

    /// The decoded value as a `String` (invalid UTF-8 is an error, not replaced).
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidUtf8`] when the decoded bytes are not UTF-8.
    #[cfg(feature = "alloc")]
    pub fn decode(&self) -> Result<alloc::string::String, DecodeError> {
        let bytes: alloc::vec::Vec<u8> = self.bytes().collect();
        alloc::string::String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// Writes the decoded text; invalid UTF-8 sequences are written as U+FFFD.
impl Display for Decoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_literal() {
            return f.write_str(self.raw);
        }
        let mut pending = [0u8; 4];
        let mut pending_len = 0;
        for byte in self.bytes() {
            pending[pending_len] = byte;
            pending_len += 1;
            match core::str::from_utf8(&pending[..pending_len]) {
                Ok(text) => {
                    f.write_str(text)?;
                    pending_len = 0;
                }
                Err(e) if e.error_len().is_some() || pending_len == 4 => {
                    f.write_char(char::REPLACEMENT_CHARACTER)?;
                    pending_len = 0;
                }
                Err(_) => {} // an incomplete sequence: wait for more bytes
            }
        }
        if pending_len > 0 {
            f.write_char(char::REPLACEMENT_CHARACTER)?;
        }
        Ok(())
    }
}

/// Why percent-decoded text could not be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// The destination buffer is too short.
    BufferTooSmall(BufferTooSmall),
    /// The decoded bytes are not valid UTF-8.
    InvalidUtf8,
}

impl Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall(e) => e.fmt(f),
            Self::InvalidUtf8 => f.write_str("percent-decoded text is not valid utf-8"),
        }
    }
}

impl core::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn leaves_unreserved_characters_literal() {
        assert_eq!(encode("AZaz09-._~").to_string(), "AZaz09-._~");
    }

    #[test]
    fn escapes_reserved_characters_upper_case() {
        assert_eq!(encode("/ +=&$%").to_string(), "%2F%20%2B%3D%26%24%25");
    }

    #[test]
    fn plus_is_never_a_space() {
        assert!(Decoded::new("a+b").eq_str("a+b"));
    }

    #[test]
    fn decodes_lower_case_escapes() {
        assert!(Decoded::new("%2fdevices%2f").eq_str("/devices/"));
    }

    #[test]
    fn display_replaces_invalid_utf8() {
        assert_eq!(Decoded::new("a%FFb").to_string(), "a\u{FFFD}b");
        assert_eq!(Decoded::new("%C3%A9").to_string(), "é");
    }

    #[test]
    fn decode_into_reports_required_length() {
        let mut buf = [0u8; 2];
        assert_eq!(
            Decoded::new("a%20b").decode_into(&mut buf),
            Err(DecodeError::BufferTooSmall(BufferTooSmall { required: 3 }))
        );
    }

    proptest::proptest! {
        #[test]
        fn encodes_as_the_percent_encoding_crate(text in "\\PC*|[ -~]*") {
            use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
            const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
            proptest::prop_assert_eq!(encode(&text).to_string(), utf8_percent_encode(&text, UNRESERVED).to_string());
        }

        #[test]
        fn encoded_text_is_well_formed(text in "\\PC*") {
            let encoded = encode(&text).to_string();
            proptest::prop_assert!(Decoded::new(&encoded).is_well_formed());
        }

        #[test]
        fn a_stray_percent_is_not_well_formed(a in "[a-z]*", b in "[g-z]?") {
            let text = std::format!("{a}%{b}");
            proptest::prop_assert!(!Decoded::new(&text).is_well_formed());
        }

        #[test]
        fn encode_then_decode_round_trips(text in "\\PC*") {
            let encoded = encode(&text).to_string();
            proptest::prop_assert!(Decoded::new(&encoded).eq_str(&text));
            proptest::prop_assert_eq!(Decoded::new(&encoded).to_string(), text);
        }
    }
}
