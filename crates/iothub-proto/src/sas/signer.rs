//! The [`Signer`] abstraction and the [`Signature`] it produces.
//!
//! The core implements no crypto itself: a device may keep its key in a
//! secure element, so signing is a trait. The `hmac` feature supplies
//! [`HmacSha256Signer`](super::HmacSha256Signer).

use core::fmt::{self, Display};

/// Length of an HMAC-SHA256 signature in bytes.
pub const SIGNATURE_LEN: usize = 32;

/// Length of a base64-encoded [`Signature`] (with `=` padding).
pub const SIGNATURE_BASE64_LEN: usize = 44;

/// Produces the HMAC-SHA256 signature of a message.
///
/// The message is given as [`Display`] so it can be streamed into the MAC without a buffer;
/// a signer that needs contiguous bytes can write it into its own storage with
/// [`encode_into`](crate::encode_into). The smallest builds instead sign with
/// [`SasToken::sign_in_buffer`](super::SasToken::sign_in_buffer), which hands the message over
/// as bytes through [`Signer::sign_bytes_into`] and so needs no `core::fmt` at all.
///
/// ```
/// use core::fmt::Display;
/// use iothub_proto::sas::{SIGNATURE_LEN, SignError, Signature, Signer};
///
/// /// A stand-in signer (not a MAC!) that fills the signature with the message length.
/// struct LengthSigner;
///
/// impl Signer for LengthSigner {
///     fn sign_into(&self, message: &dyn Display, out: &mut [u8; SIGNATURE_LEN]) -> Result<(), SignError> {
///         *out = [iothub_proto::encoded_len(&message) as u8; SIGNATURE_LEN];
///         Ok(())
///     }
/// }
///
/// assert_eq!(LengthSigner.sign(&"abc").unwrap(), Signature::from_bytes([3; SIGNATURE_LEN]));
/// ```
pub trait Signer {
    /// Writes the signature of `message` (its [`Display`] text, UTF-8) into `out`.
    ///
    /// # Errors
    ///
    /// [`SignError`] when the signer cannot produce a signature (for example a hardware
    /// key store that is unavailable).
    fn sign_into(
        &self,
        message: &dyn Display,
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError>;

    /// Writes the signature of `message`, given as bytes (UTF-8 text), into `out`.
    ///
    /// [`SasToken::sign_in_buffer`](super::SasToken::sign_in_buffer) calls this. Override it
    /// when the signer works on byte buffers anyway (a secure element, a platform HMAC): the
    /// default re-validates the bytes as UTF-8 and calls [`Signer::sign_into`], which brings
    /// `core::fmt` back into the build.
    ///
    /// # Errors
    ///
    /// As [`Signer::sign_into`]; [`SignError::Failed`] when `message` is not UTF-8 (default).
    ///
    /// ```
    /// use core::fmt::Display;
    /// use iothub_proto::sas::{SIGNATURE_LEN, SignError, Signer};
    ///
    /// /// A stand-in signer (not a MAC!) that fills the signature with the message length.
    /// struct LengthSigner;
    ///
    /// impl Signer for LengthSigner {
    ///     fn sign_into(&self, message: &dyn Display, out: &mut [u8; SIGNATURE_LEN]) -> Result<(), SignError> {
    ///         *out = [iothub_proto::encoded_len(&message) as u8; SIGNATURE_LEN];
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut out = [0u8; SIGNATURE_LEN];
    /// LengthSigner.sign_bytes_into(b"abcd", &mut out)?;
    /// assert_eq!(out, [4; SIGNATURE_LEN]);
    /// # Ok::<(), SignError>(())
    /// ```
    fn sign_bytes_into(
        &self,
        message: &[u8],
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        let text = crate::text::utf8(message).ok_or(SignError::Failed)?;
        self.sign_into(&text, out)
    }

    /// Returns the signature of `message` as a [`Signature`].
    ///
    /// # Errors
    ///
    /// As [`Signer::sign_into`].
    fn sign(&self, message: &dyn Display) -> Result<Signature, SignError> {
        let mut out = [0u8; SIGNATURE_LEN];
        self.sign_into(message, &mut out)?;
        Ok(Signature(out))
    }
}

impl<S: Signer + ?Sized> Signer for &S {
    fn sign_into(
        &self,
        message: &dyn Display,
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        (**self).sign_into(message, out)
    }

    fn sign_bytes_into(
        &self,
        message: &[u8],
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        (**self).sign_bytes_into(message, out)
    }
}

/// Why a [`Signer`] could not sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignError {
    /// The signer failed (key unavailable, hardware error, message could not be formatted).
    Failed,
    /// The caller's scratch buffer cannot hold the string-to-sign
    /// ([`SasToken::sign_in_buffer`](super::SasToken::sign_in_buffer)).
    BufferTooSmall(crate::BufferTooSmall),
}

impl Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed => f.write_str("signing failed"),
            Self::BufferTooSmall(e) => {
                f.write_str("signing failed: ")?;
                Display::fmt(e, f)
            }
        }
    }
}

impl core::error::Error for SignError {}

/// A raw 32-byte HMAC-SHA256 signature; [`Display`] writes it as padded standard base64.
///
/// ```
/// use iothub_proto::sas::Signature;
///
/// let signature = Signature::from_bytes([0xfb; 32]);
/// assert_eq!(signature.to_string(), "+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=");
/// let mut buf = [0u8; 44];
/// assert_eq!(signature.to_base64(&mut buf), "+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub(crate) [u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps raw signature bytes.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw signature bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    /// Writes the padded base64 form into `buf` and returns it.
    pub fn to_base64<'b>(&self, buf: &'b mut [u8; SIGNATURE_BASE64_LEN]) -> &'b str {
        base64_into(&self.0, buf)
    }

    /// Compares with `other` in constant time (no early exit on the first differing byte).
    ///
    /// ```
    /// use iothub_proto::sas::Signature;
    ///
    /// assert!(Signature::from_bytes([1; 32]).ct_eq(&Signature::from_bytes([1; 32])));
    /// assert!(!Signature::from_bytes([1; 32]).ct_eq(&Signature::from_bytes([2; 32])));
    /// ```
    pub fn ct_eq(&self, other: &Signature) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // black_box keeps the optimiser from turning the fold into an early-exit compare.
        core::hint::black_box(diff) == 0
    }
}

/// Redacted: signatures are credentials and must not end up in logs.
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(..)")
    }
}

impl Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl crate::encode::WriteTo for Signature {
    fn write_to(&self, out: &mut dyn crate::encode::Sink) {
        self.write_base64(&mut |index| out.put(base64_char(index)));
    }
}

impl Signature {
    /// Hands each character of the padded standard base64 form to `out`, in order, as its
    /// index in the alphabet (`0..64`, and `64` for the `=` padding).
    ///
    /// A small encoder of its own rather than the `base64` crate's engine: the signature is
    /// always 32 bytes, and a SAS token writes it straight into the formatter this way
    /// (percent-encoding `+ / =` on the fly) without an intermediate buffer.
    pub(crate) fn write_base64(&self, out: &mut dyn FnMut(usize)) {
        for chunk in self.0.chunks(3) {
            let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
            let group = byte(0) << 16 | byte(1) << 8 | byte(2);
            for i in 0..4 {
                let index = if i > chunk.len() {
                    64
                } else {
                    (group >> (18 - 6 * i) & 63) as usize
                };
                out(index);
            }
        }
    }
}

/// Character `index` of the standard base64 alphabet, `=` for 64.
pub(crate) fn base64_char(index: usize) -> &'static str {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    // invariant: `index` <= 64 and the alphabet is ASCII, so the range is valid.
    ALPHABET.get(index..index + 1).unwrap_or("=")
}

/// Base64-encodes 32 bytes into exactly 44 bytes of ASCII.
fn base64_into<'b>(
    bytes: &[u8; SIGNATURE_LEN],
    buf: &'b mut [u8; SIGNATURE_BASE64_LEN],
) -> &'b str {
    let mut len = 0;
    // invariant: 32 bytes always encode to exactly 44 base64 characters, so each fits.
    Signature(*bytes).write_base64(&mut |index| {
        let c = base64_char(index);
        if let Some(slot) = buf.get_mut(len..len + c.len()) {
            slot.copy_from_slice(c.as_bytes());
            len += c.len();
        }
    });
    crate::text::utf8(buf.get(..len).unwrap_or_default()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    proptest::proptest! {
        #[test]
        fn base64_matches_the_base64_crate(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let mut expected = [0u8; SIGNATURE_BASE64_LEN];
            let len = STANDARD.encode_slice(bytes, &mut expected).unwrap();
            let expected = core::str::from_utf8(&expected[..len]).unwrap();
            let signature = Signature::from_bytes(bytes);
            proptest::prop_assert_eq!(signature.to_string(), expected);
            let mut buf = [0u8; SIGNATURE_BASE64_LEN];
            proptest::prop_assert_eq!(signature.to_base64(&mut buf), expected);
        }
    }
}
