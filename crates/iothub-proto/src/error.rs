//! Errors shared by every encoder in the crate.

use core::fmt::{self, Display};

/// The caller-supplied buffer cannot hold the encoded text.
///
/// Running out of space is a value, never a panic: retry with a buffer of at least
/// `required` bytes.
///
/// ```
/// use iothub_proto::{BufferTooSmall, encode_into};
///
/// let mut buf = [0u8; 3];
/// assert_eq!(encode_into(&"hello", &mut buf), Err(BufferTooSmall { required: 5 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferTooSmall {
    /// How many bytes the encoded text needs.
    pub required: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too small: ")?;
        Display::fmt(&crate::text::Decimal(self.required as u64), f)?;
        f.write_str(" bytes required")
    }
}

impl core::error::Error for BufferTooSmall {}
