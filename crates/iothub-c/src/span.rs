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
pub(crate) unsafe fn bytes<'a>(span: iothub_span) -> Result<&'a [u8], iothub_result> {
    if span.len == 0 {
        return Ok(&[]);
    }
    if span.ptr.is_null() {
        return Err(IOTHUB_ERROR_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL and `len` readable bytes, as the caller guarantees.
    Ok(unsafe { core::slice::from_raw_parts(span.ptr.cast::<u8>(), span.len) })
}

/// The text of a span: checked for NULL and UTF-8.
///
/// # Safety
///
/// As [`bytes`].
pub(crate) unsafe fn text<'a>(span: iothub_span) -> Result<&'a str, iothub_result> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes(span) }?;
    core::str::from_utf8(bytes).map_err(|_| IOTHUB_ERROR_INVALID_ARGUMENT)
}

/// Like [`text`], but the text must not be empty.
///
/// # Safety
///
/// As [`bytes`].
pub(crate) unsafe fn required_text<'a>(span: iothub_span) -> Result<&'a str, iothub_result> {
    // SAFETY: forwarded contract.
    let text = unsafe { text(span) }?;
    if text.is_empty() {
        return Err(IOTHUB_ERROR_INVALID_ARGUMENT);
    }
    Ok(text)
}

/// Like [`text`], with the empty span meaning "absent".
///
/// # Safety
///
/// As [`bytes`].
pub(crate) unsafe fn optional_text<'a>(
    span: iothub_span,
) -> Result<Option<&'a str>, iothub_result> {
    // SAFETY: forwarded contract.
    let text = unsafe { text(span) }?;
    Ok(Some(text).filter(|t| !t.is_empty()))
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
    ) -> Result<Self, iothub_result> {
        let buf: &'a mut [u8] = if size == 0 {
            &mut []
        } else if buf.is_null() {
            return Err(IOTHUB_ERROR_NULL_ARGUMENT);
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
        self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, BufferTooSmall>,
    ) -> Result<(), iothub_result> {
        let room = self.buf.len().saturating_sub(1);
        let (body, _) = self.buf.split_at_mut(room);
        match encode(body) {
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
                Err(IOTHUB_ERROR_BUFFER_TOO_SMALL)
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
pub(crate) unsafe fn put<T>(out: *mut T, value: T) -> Result<(), iothub_result> {
    if out.is_null() {
        return Err(IOTHUB_ERROR_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL and writable, as the caller guarantees; `T` here is always plain data
    // without drop glue, so nothing is leaked by not reading the old value.
    unsafe { out.write(value) };
    Ok(())
}
