//! HMAC-SHA256 signing with a base64 shared access key, and DPS group-key derivation
//! (feature `hmac`, RustCrypto, no_std).

use core::fmt::{self, Display, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{SIGNATURE_BASE64_LEN, SIGNATURE_LEN, SignError, Signature, Signer};

/// The longest decoded key accepted, in bytes. IoT Hub keys are 32 bytes and DPS enrollment
/// keys 16–64 bytes (docs/protocol.md §9); 128 leaves room.
pub const MAX_KEY_LEN: usize = 128;

/// Length of a derived device key in base64 (`base64` of 32 bytes).
pub const DERIVED_KEY_LEN: usize = SIGNATURE_BASE64_LEN;

/// Signs with HMAC-SHA256 under a shared access key.
///
/// The key is decoded once into a fixed array; nothing is allocated. [`fmt::Debug`] never
/// prints the key.
///
/// ```
/// use iothub_proto::sas::{HmacSha256Signer, Signer};
///
/// // docs/protocol.md §2.2 vector 5 (azure-iot-sdk-python, raw HMAC)
/// let signer = HmacSha256Signer::from_base64("NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=").unwrap();
/// let signature = signer.sign(&"sign this message").unwrap();
/// assert_eq!(signature.to_string(), "8NJRMT83CcplGrAGaUVIUM/md5914KpWVNngSVoF9/M=");
/// ```
#[derive(Clone)]
pub struct HmacSha256Signer {
    key: [u8; MAX_KEY_LEN],
    len: usize,
}

impl HmacSha256Signer {
    /// Decodes a standard, padded base64 key (as in connection strings).
    ///
    /// # Errors
    ///
    /// [`KeyError::Empty`], [`KeyError::InvalidBase64`] or [`KeyError::TooLong`].
    pub fn from_base64(key: &str) -> Result<Self, KeyError> {
        let mut signer = Self {
            key: [0; MAX_KEY_LEN],
            len: 0,
        };
        signer.len = decode_key(key, &mut signer.key)?;
        Ok(signer)
    }

    /// Uses raw key bytes.
    ///
    /// # Errors
    ///
    /// [`KeyError::Empty`] or [`KeyError::TooLong`].
    ///
    /// ```
    /// use iothub_proto::sas::{HmacSha256Signer, KeyError};
    ///
    /// assert!(HmacSha256Signer::from_bytes(b"password").is_ok());
    /// assert_eq!(HmacSha256Signer::from_bytes(&[]).err(), Some(KeyError::Empty));
    /// ```
    pub fn from_bytes(key: &[u8]) -> Result<Self, KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut signer = Self {
            key: [0; MAX_KEY_LEN],
            len: key.len(),
        };
        signer
            .key
            .get_mut(..key.len())
            .ok_or(KeyError::TooLong)?
            .copy_from_slice(key);
        Ok(signer)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // invariant: HMAC accepts keys of any length (longer ones are hashed), so this
        // cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key[..self.len])
            .expect("hmac accepts any key length")
    }
}

impl Signer for HmacSha256Signer {
    fn sign_into(
        &self,
        message: &dyn Display,
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        let mut writer = MacWriter(self.mac());
        write!(writer, "{message}").map_err(|_| SignError::Failed)?;
        out.copy_from_slice(&writer.0.finalize().into_bytes());
        Ok(())
    }

    fn sign_bytes_into(
        &self,
        message: &[u8],
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        let mut mac = self.mac();
        mac.update(message);
        out.copy_from_slice(&mac.finalize().into_bytes());
        Ok(())
    }
}

impl fmt::Debug for HmacSha256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSha256Signer")
            .field("key_len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Derives a DPS group-enrollment device key:
/// `base64(HMAC-SHA256(base64decode(group_key), utf8(registration_id)))` (docs/protocol.md §9).
///
/// # Errors
///
/// [`KeyError`] when `group_key` is not a usable base64 key.
///
/// ```
/// use iothub_proto::sas::{DERIVED_KEY_LEN, derive_device_key};
///
/// // docs/protocol.md §2.2 vector 7
/// let mut out = [0u8; DERIVED_KEY_LEN];
/// let key = derive_device_key(
///     "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
///     "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
///     &mut out,
/// )
/// .unwrap();
/// assert_eq!(key, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=");
/// ```
pub fn derive_device_key<'o>(
    group_key: &str,
    registration_id: &str,
    out: &'o mut [u8; DERIVED_KEY_LEN],
) -> Result<&'o str, KeyError> {
    let signer = HmacSha256Signer::from_base64(group_key)?;
    let mut signature = [0u8; SIGNATURE_LEN];
    // invariant: formatting a `&str` into the MAC never fails, so neither does signing.
    let _ = signer.sign_into(&registration_id, &mut signature);
    Ok(Signature(signature).to_base64(out))
}

/// Why a shared access key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    Empty,
    /// The key is not standard padded base64.
    InvalidBase64,
    /// The decoded key is longer than [`MAX_KEY_LEN`] bytes.
    TooLong,
}

impl Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("shared access key is empty"),
            Self::InvalidBase64 => f.write_str("shared access key is not valid base64"),
            Self::TooLong => write!(f, "shared access key is longer than {MAX_KEY_LEN} bytes"),
        }
    }
}

impl core::error::Error for KeyError {}

/// Decodes a base64 key into `out`, returning its length.
pub(crate) fn decode_key(key: &str, out: &mut [u8; MAX_KEY_LEN]) -> Result<usize, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    // base64 needs a little slack past the exact length, so decode via a larger scratch buffer
    // and then check the real size.
    let mut scratch = [0u8; MAX_KEY_LEN + 3];
    let len = match STANDARD.decode_slice(key, &mut scratch) {
        Ok(len) => len,
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => return Err(KeyError::TooLong),
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(KeyError::InvalidBase64),
    };
    if len == 0 {
        return Err(KeyError::Empty);
    }
    out.get_mut(..len)
        .ok_or(KeyError::TooLong)?
        .copy_from_slice(&scratch[..len]);
    Ok(len)
}

/// Streams formatted text into a MAC.
struct MacWriter(Hmac<Sha256>);

impl Write for MacWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}
