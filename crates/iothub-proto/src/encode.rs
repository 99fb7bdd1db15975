//! Writing [`Display`] encoders into caller-owned storage.
//!
//! Every builder in this crate (topics, usernames, SAS tokens) is a small type implementing
//! [`Display`]. The caller chooses where the text goes: a stack buffer through
//! [`encode_into`], a `heapless::String`, or (with `alloc`) a `String` via `to_string()`.

use core::fmt::{self, Display, Write};

use crate::error::BufferTooSmall;

/// Writes `value` into `buf` and returns the written text.
///
/// # Errors
///
/// [`BufferTooSmall`] with the full length needed when `buf` is too short; `buf` content is
/// then unspecified.
///
/// ```
/// use iothub_proto::encode_into;
///
/// let mut buf = [0u8; 16];
/// assert_eq!(encode_into(&format_args!("a{}c", 'b'), &mut buf), Ok("abc"));
/// ```
pub fn encode_into<'b>(value: &impl Display, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
    encode_dyn(value, buf)
}

/// The body of [`encode_into`], compiled once rather than once per encoder type.
#[inline(never)]
fn encode_dyn<'b>(value: &dyn Display, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
    let mut writer = SliceWriter {
        buf,
        len: 0,
        overflow: false,
    };
    // A `Display` impl may only fail because the writer failed, i.e. on overflow.
    let failed = write!(writer, "{value}").is_err();
    if failed || writer.overflow {
        return Err(BufferTooSmall {
            required: len_dyn(value),
        });
    }
    let SliceWriter { buf, len, .. } = writer;
    // invariant: only whole `&str` fragments are copied in, so the prefix is valid UTF-8.
    let written = buf.get(..len).unwrap_or_default();
    crate::text::utf8(written).ok_or(BufferTooSmall { required: len })
}

/// Returns how many bytes `value` encodes to, without storing it.
///
/// ```
/// use iothub_proto::encoded_len;
///
/// assert_eq!(encoded_len(&"héllo"), 6);
/// ```
pub fn encoded_len(value: &impl Display) -> usize {
    len_dyn(value)
}

/// The body of [`encoded_len`], compiled once.
#[inline(never)]
fn len_dyn(value: &dyn Display) -> usize {
    let mut counter = EncodedLen(0);
    // invariant: `EncodedLen` never fails, so neither does formatting into it.
    let _ = write!(counter, "{value}");
    counter.0
}

/// A [`fmt::Write`] sink that only counts bytes; useful to size a buffer up front.
///
/// ```
/// use core::fmt::Write;
/// use iothub_proto::EncodedLen;
///
/// let mut n = EncodedLen(0);
/// write!(n, "{}-{}", 12, "ab").unwrap();
/// assert_eq!(n.0, 5);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodedLen(pub usize);

impl Write for EncodedLen {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
            None => {
                self.overflow = true;
                Err(fmt::Error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exactly_fitting_text() {
        let mut buf = [0u8; 5];
        assert_eq!(encode_into(&"hello", &mut buf), Ok("hello"));
    }

    #[test]
    fn reports_required_length_on_overflow() {
        let mut buf = [0u8; 4];
        assert_eq!(
            encode_into(&"hello", &mut buf),
            Err(BufferTooSmall { required: 5 })
        );
    }

    #[test]
    fn empty_value_fits_empty_buffer() {
        let mut buf = [0u8; 0];
        assert_eq!(encode_into(&"", &mut buf), Ok(""));
    }
}
