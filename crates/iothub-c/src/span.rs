//! Borrowed text across the C boundary: `iothub_span` in both directions, and the
//! "size-checked, then write, NUL-terminate" output convention (docs/c-api.md, "Buffers").

use core::ffi::c_char;

use iothub_proto::BufferTooSmall;

use crate::result::*;

/// A borrowed run of bytes (UTF-8 text unless stated otherwise): `ptr` need not be
/// NUL-terminated. `{NULL, 0}` is the empty span; a NULL `ptr` with a non-zero `len` is an
/// error wherever a span is read.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct iothub_span {
    /// First byte; may be NULL only when `len` is 0.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

impl iothub_span {
    /// The empty span.
    pub const EMPTY: Self = Self {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// A span over Rust text (for outputs: the C side borrows it).
    pub const fn from_str(text: &str) -> Self {
        Self {
            ptr: text.as_ptr().cast(),
            len: text.len(),
        }
    }

    /// A span over bytes.
    pub const fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
        }
    }
}

impl Default for iothub_span {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A span over a NUL-terminated C string (its length counted with `strlen`); `{NULL, 0}`
/// for NULL. A convenience for `getenv()` results and literals.
///
/// # Safety
///
/// `text` is NULL or points to a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_span_from_str(text: *const c_char) -> iothub_span {
    if text.is_null() {
        return iothub_span::EMPTY;
    }
    // SAFETY: the caller guarantees `text` is a NUL-terminated string.
    let len = unsafe { core::ffi::CStr::from_ptr(text) }.count_bytes();
    iothub_span { ptr: text, len }
}

/// The bytes of a span, checked for NULL.
///
/// # Safety
///
/// A non-NULL `span.ptr` points to `span.len` readable bytes that stay valid and unchanged
/// for `'a`.
pub(crate) unsafe fn bytes<'a>(span: iothub_span) -> Result<&'a [u8], Failure> {
    if span.len == 0 {
        return Ok(&[]);
    }
    if span.ptr.is_null() {
        return Err(Failure::NullArgument);
    }
    // SAFETY: non-NULL and `len` readable bytes, as the caller guarantees.
    Ok(unsafe { core::slice::from_raw_parts(span.ptr.cast::<u8>(), span.len) })
}

/// Checks a span as text: `IOTHUB_ERROR_NULL_ARGUMENT` for a NULL pointer with a length,
/// `IOTHUB_ERROR_INVALID_ARGUMENT` when it is not UTF-8 (or empty but `required`). One
/// out-of-line copy returning a plain code (a `Result<(), Failure>` is one `int`) keeps
/// every call site small.
///
/// # Safety
///
/// As [`bytes`].
#[inline(never)]
pub(crate) unsafe fn check_text(span: iothub_span, required: bool) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes(span) }?;
    if (required && bytes.is_empty()) || !is_utf8(bytes) {
        return Err(Failure::InvalidArgument);
    }
    Ok(())
}

/// The text of a span that [`check_text`] accepted.
///
/// # Safety
///
/// As [`bytes`]; `span.ptr` is non-NULL unless `span.len` is 0, and the bytes are UTF-8.
#[inline(always)]
unsafe fn checked<'a>(span: iothub_span) -> &'a str {
    if span.len == 0 {
        return "";
    }
    // SAFETY: non-NULL, `len` readable bytes of UTF-8, as the caller guarantees.
    unsafe {
        core::str::from_utf8_unchecked(core::slice::from_raw_parts(span.ptr.cast::<u8>(), span.len))
    }
}

/// The text of a span: checked for NULL and UTF-8.
///
/// # Safety
///
/// As [`bytes`].
#[inline(never)]
pub(crate) unsafe fn text<'a>(span: iothub_span) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract; `check_text` accepted the span.
    unsafe {
        match check_text(span, false) {
            Ok(()) => Ok(checked(span)),
            Err(failure) => Err(failure),
        }
    }
}

/// `bytes` as text when they are UTF-8.
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    iothub_proto::bytes::utf8(bytes)
}

/// A span that is NULL-checked but not UTF-8-checked: the empty span means "absent". For
/// text the core percent-encodes byte by byte (docs/c-api.md, "Buffers, spans and errors").
///
/// # Safety
///
/// As [`bytes`].
pub(crate) unsafe fn optional_bytes<'a>(span: iothub_span) -> Result<Option<&'a [u8]>, Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes(span) }?;
    Ok(Some(bytes).filter(|b| !b.is_empty()))
}

/// A span that is NULL-checked and must not be empty, but is not UTF-8-checked (text the
/// core percent-encodes byte by byte).
///
/// # Safety
///
/// As [`bytes`].
pub(crate) unsafe fn required_bytes<'a>(span: iothub_span) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded contract.
    match unsafe { bytes(span) }? {
        [] => Err(Failure::InvalidArgument),
        bytes => Ok(bytes),
    }
}

/// Like [`text`], but the text must not be empty.
///
/// # Safety
///
/// As [`bytes`].
#[inline(never)]
pub(crate) unsafe fn required_text<'a>(span: iothub_span) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract; `check_text` accepted the span.
    unsafe {
        match check_text(span, true) {
            Ok(()) => Ok(checked(span)),
            Err(failure) => Err(failure),
        }
    }
}

/// Like [`text`], with the empty span meaning "absent".
///
/// # Safety
///
/// As [`bytes`].
#[inline(always)]
pub(crate) unsafe fn optional_text<'a>(span: iothub_span) -> Result<Option<&'a str>, Failure> {
    // SAFETY: forwarded contract; `check_text` accepted the span.
    unsafe {
        match check_text(span, false) {
            Ok(()) if span.len == 0 => Ok(None),
            Ok(()) => Ok(Some(checked(span))),
            Err(failure) => Err(failure),
        }
    }
}

/// Whether `bytes` is UTF-8, decided exactly as `core::str::from_utf8` decides (no overlong
/// forms, no surrogates, nothing above U+10FFFF, no truncated sequence; tested below).
///
/// The core's validator (`iothub_proto::bytes::utf8`, a byte-wise one, smaller than
/// `core::str::from_utf8`'s word-at-a-time fast path): the parsers underneath link it anyway,
/// so a second one here would only add code.
fn is_utf8(bytes: &[u8]) -> bool {
    iothub_proto::bytes::utf8(bytes).is_some()
}

/// A caller's output buffer (`char *buf, size_t size, size_t *out_len`).
pub(crate) struct Output<'a> {
    buf: &'a mut [u8],
    out_len: Option<&'a mut usize>,
}

impl<'a> Output<'a> {
    /// Checks the pointers: `buf` may be NULL only with `size` 0 (a size query).
    ///
    /// # Safety
    ///
    /// A non-NULL `buf` points to `size` writable bytes; a non-NULL `out_len` to a writable
    /// `size_t`; both stay valid and unaliased for `'a`.
    pub(crate) unsafe fn new(
        buf: *mut c_char,
        size: usize,
        out_len: *mut usize,
    ) -> Result<Self, Failure> {
        let buf: &'a mut [u8] = if size == 0 {
            &mut []
        } else if buf.is_null() {
            return Err(Failure::NullArgument);
        } else {
            // SAFETY: non-NULL with `size` writable bytes, as the caller guarantees.
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) }
        };
        // SAFETY: NULL or a valid, exclusive `size_t`, as the caller guarantees.
        let out_len = unsafe { out_len.as_mut() };
        Ok(Self { buf, out_len })
    }

    /// Runs `encode` on the buffer minus room for the NUL, then terminates the text and
    /// reports its length (without the NUL), or the size needed (with it).
    pub(crate) fn write(
        mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, BufferTooSmall>,
    ) -> Result<(), Failure> {
        let result = encode(self.body());
        self.finish(result)
    }

    /// The buffer minus room for the NUL, for writers that need it more than once before
    /// [`Output::finish`].
    #[inline(always)]
    pub(crate) fn body(&mut self) -> &mut [u8] {
        let room = self.buf.len().saturating_sub(1);
        let (body, _) = self.buf.split_at_mut(room);
        body
    }

    /// Ends a write into [`Output::body`]: terminates the `len` bytes written and reports
    /// their length, or reports the size needed.
    #[inline(never)]
    pub(crate) fn finish(self, written: Result<usize, BufferTooSmall>) -> Result<(), Failure> {
        match written {
            Ok(len) => {
                if let Some(terminator) = self.buf.get_mut(len) {
                    *terminator = 0;
                }
                if let Some(out) = self.out_len {
                    *out = len;
                }
                Ok(())
            }
            Err(too_small) => {
                self.too_small(too_small.required);
                Err(Failure::BufferTooSmall)
            }
        }
    }

    /// Reports that `required` text bytes (NUL not counted) do not fit.
    pub(crate) fn too_small(self, required: usize) {
        if let Some(out) = self.out_len {
            *out = required.saturating_add(1);
        }
    }

    /// The whole buffer, for writers that manage the terminator themselves.
    pub(crate) fn into_parts(self) -> (&'a mut [u8], Option<&'a mut usize>) {
        (self.buf, self.out_len)
    }
}

/// Writes `value` through `core::fmt` (for the encoders that only implement `Display`).
pub(crate) fn display_into(
    value: &impl core::fmt::Display,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    iothub_proto::encode_into(value, buf).map(str::len)
}

/// Writes a value through an out-pointer, checked for NULL.
///
/// # Safety
///
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::NullArgument);
    }
    // SAFETY: non-NULL and writable, as the caller guarantees; `T` here is always plain data
    // without drop glue, so nothing is leaked by not reading the old value.
    unsafe { out.write(value) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_utf8;

    fn agrees(bytes: &[u8]) {
        assert_eq!(
            is_utf8(bytes),
            core::str::from_utf8(bytes).is_ok(),
            "{bytes:02x?}"
        );
    }

    /// Every input of up to three bytes, so every lead byte with every continuation.
    #[test]
    fn utf8_agrees_with_core_on_every_short_input() {
        agrees(&[]);
        for a in 0..=255u8 {
            agrees(&[a]);
            for b in 0..=255u8 {
                agrees(&[a, b]);
                for c in 0..=255u8 {
                    agrees(&[a, b, c]);
                }
            }
        }
    }

    /// Four-byte inputs: every lead and second byte (where the range checks bite), with the
    /// boundary values of a continuation byte and their neighbours after them.
    #[test]
    fn utf8_agrees_with_core_on_four_byte_inputs() {
        const EDGES: [u8; 9] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in EDGES {
                    for d in EDGES {
                        agrees(&[a, b, c, d]);
                    }
                }
            }
        }
    }

    /// Longer mixtures: valid characters of every width with stray bytes between them
    /// (a fixed pseudo-random sequence, so the test is repeatable).
    #[test]
    fn utf8_agrees_with_core_on_mixed_text() {
        let pieces: [&[u8]; 12] = [
            b"a",
            "\u{7f}".as_bytes(),
            "\u{80}".as_bytes(),
            "\u{7ff}".as_bytes(),
            "\u{800}".as_bytes(),
            "\u{d7ff}".as_bytes(),
            "\u{e000}".as_bytes(),
            "\u{ffff}".as_bytes(),
            "\u{10000}".as_bytes(),
            "\u{10ffff}".as_bytes(),
            b"\x80",
            b"\xf4\x90\x80\x80",
        ];
        let mut state = 0x2545_f491_u32;
        for _ in 0..100_000 {
            let mut text = [0u8; 32];
            let mut len = 0;
            for _ in 0..6 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let piece = pieces[state as usize % pieces.len()];
                text[len..len + piece.len()].copy_from_slice(piece);
                len += piece.len();
            }
            agrees(&text[..len]);
        }
    }
}
