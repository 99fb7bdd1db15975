//! Hub-side verification of a parsed SAS token: signature, expiry, scope and policy.

use core::fmt::{self, Display};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{ParsedSasToken, SIGNATURE_BASE64_LEN, SIGNATURE_LEN, SignError, Signature, Signer};

/// What a token must satisfy to be accepted.
///
/// ```
/// use iothub_proto::sas::{DEFAULT_MAX_SKEW_SECS, VerifyRequest};
///
/// let request = VerifyRequest {
///     resource: "myhub.azure-devices.net/devices/dev1",
///     policy: None,
///     now: 1_700_000_000,
///     max_skew: DEFAULT_MAX_SKEW_SECS,
/// };
/// assert_eq!(request.max_skew, 300);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyRequest<'r> {
    /// The unencoded resource being accessed, e.g. `{host}/devices/{id}`. The token's
    /// decoded `sr` must equal it or be a whole-segment prefix of it.
    pub resource: &'r str,
    /// The policy name (`skn`) the token must carry; `None` means the token must carry none
    /// (device and module keys).
    pub policy: Option<&'r str>,
    /// The current time in Unix seconds.
    pub now: u64,
    /// How many seconds past `se` a token is still accepted (clock skew allowance).
    pub max_skew: u64,
}

impl ParsedSasToken<'_> {
    /// Checks policy, scope, expiry and signature, in that order.
    ///
    /// `signer` holds the key the hub chose for this token: the device's own key, or the key
    /// of the policy named by [`ParsedSasToken::policy`].
    ///
    /// # Errors
    ///
    /// The first failed check as a [`VerifyError`].
    ///
    /// ```
    /// # #[cfg(feature = "hmac")] {
    /// use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, VerifyError, VerifyRequest};
    ///
    /// let signer = HmacSha256Signer::from_base64("+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=").unwrap();
    /// let token = ParsedSasToken::parse(
    ///     "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test\
    ///      &sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363",
    /// )
    /// .unwrap();
    /// let mut request = VerifyRequest {
    ///     resource: "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test",
    ///     policy: None,
    ///     now: 1471940000,
    ///     max_skew: 300,
    /// };
    /// assert_eq!(token.verify(&request, &signer), Ok(()));
    /// request.now = 1471940363 + 301;
    /// assert_eq!(token.verify(&request, &signer), Err(VerifyError::Expired));
    /// # }
    /// ```
    pub fn verify(
        &self,
        request: &VerifyRequest<'_>,
        signer: &impl Signer,
    ) -> Result<(), VerifyError> {
        if !self.has_policy(request.policy) {
            return Err(VerifyError::PolicyMismatch);
        }
        if !self.covers(request.resource) {
            return Err(VerifyError::OutOfScope);
        }
        if self.is_expired(request.now, request.max_skew) {
            return Err(VerifyError::Expired);
        }
        self.verify_signature(signer)
    }

    /// Checks only the signature: HMAC over `{raw sr}\n{raw se}` compared in constant time
    /// with the percent- and base64-decoded `sig` (docs/protocol.md §2.1).
    ///
    /// # Errors
    ///
    /// [`VerifyError::SignatureMismatch`] (also for a `sig` that is not a base64 32-byte value)
    /// or [`VerifyError::Signer`].
    pub fn verify_signature(&self, signer: &impl Signer) -> Result<(), VerifyError> {
        let received =
            decode_signature(self.signature().bytes()).ok_or(VerifyError::SignatureMismatch)?;
        let (sr, se) = (self.resource_raw(), self.expiry_raw());
        let expected = signer
            .sign(&format_args!("{sr}\n{se}"))
            .map_err(VerifyError::Signer)?;
        if expected.ct_eq(&received) {
            Ok(())
        } else {
            Err(VerifyError::SignatureMismatch)
        }
    }

    /// Whether the token expired more than `max_skew` seconds before `now`.
    ///
    /// ```
    /// use iothub_proto::sas::ParsedSasToken;
    ///
    /// let token = ParsedSasToken::parse("SharedAccessSignature sr=a&sig=b&se=1000").unwrap();
    /// assert!(!token.is_expired(1000, 0));
    /// assert!(token.is_expired(1001, 0));
    /// assert!(!token.is_expired(1300, 300));
    /// assert!(token.is_expired(1301, 300));
    /// ```
    pub fn is_expired(&self, now: u64, max_skew: u64) -> bool {
        self.expiry().saturating_add(max_skew) < now
    }

    /// Whether the token's decoded `sr` grants access to `resource` (unencoded): equal, or a
    /// prefix ending at a whole path segment (`/a/b` covers `/a/b/c`, not `/a/bc`). The host
    /// (first segment) is compared case-insensitively, the path case-sensitively
    /// (docs/protocol.md §2.1; device ids are case-sensitive).
    ///
    /// ```
    /// use iothub_proto::sas::ParsedSasToken;
    ///
    /// let token = ParsedSasToken::parse("SharedAccessSignature sr=Hub.Azure-Devices.net%2Fdevices&sig=b&se=1").unwrap();
    /// assert!(token.covers("hub.azure-devices.net/devices"));
    /// assert!(token.covers("hub.azure-devices.net/devices/d1"));
    /// assert!(!token.covers("hub.azure-devices.net/devicesX"));
    /// assert!(!token.covers("hub.azure-devices.net/Devices/d1"));
    /// assert!(!token.covers("hub.azure-devices.net"));
    /// ```
    pub fn covers(&self, resource: &str) -> bool {
        self.covers_with(resource, true)
    }

    /// [`ParsedSasToken::covers`] with the path compared case-insensitively too: service
    /// tokens name Event Hubs entities (`{hub}/ConsumerGroups/{group}`), whose names are
    /// case-insensitive, and clients spell them in either case (docs/amqp.md
    /// "Authentication").
    ///
    /// ```
    /// use iothub_proto::sas::ParsedSasToken;
    ///
    /// let token = ParsedSasToken::parse("SharedAccessSignature sr=sb%3A%2F%2Fh%2Fhub%2Fconsumergroups%2F%24Default&sig=b&se=1").unwrap();
    /// assert!(token.covers_ignoring_case("sb://h/hub/ConsumerGroups/$Default/Partitions/0"));
    /// assert!(!token.covers_ignoring_case("sb://h/hub/ConsumerGroups/$DefaultX"));
    /// assert!(!token.covers_ignoring_case("sb://h/hub"));
    /// ```
    pub fn covers_ignoring_case(&self, resource: &str) -> bool {
        self.covers_with(resource, false)
    }

    fn covers_with(&self, resource: &str, path_case_sensitive: bool) -> bool {
        let required = resource.as_bytes();
        let mut in_host = true;
        let mut matched = 0;
        for byte in self.resource().bytes() {
            let Some(&want) = required.get(matched) else {
                return false; // the token names something more specific than the request
            };
            let same = if in_host || !path_case_sensitive {
                byte.eq_ignore_ascii_case(&want)
            } else {
                byte == want
            };
            if !same {
                return false;
            }
            in_host &= byte != b'/';
            matched += 1;
        }
        // A prefix must end at a segment boundary: either it consumed the whole request, the
        // request continues with `/`, or the token's `sr` itself ended with `/`.
        matched == required.len()
            || required.get(matched) == Some(&b'/')
            || (matched > 0 && required.get(matched - 1) == Some(&b'/'))
    }

    /// Whether the token's `skn` matches `policy` (`None`: the token must have no `skn`).
    ///
    /// ```
    /// use iothub_proto::sas::ParsedSasToken;
    ///
    /// let token = ParsedSasToken::parse("SharedAccessSignature sr=a&sig=b&se=1&skn=iot%68ubowner").unwrap();
    /// assert!(token.has_policy(Some("iothubowner")));
    /// assert!(!token.has_policy(Some("device")));
    /// assert!(!token.has_policy(None));
    /// ```
    pub fn has_policy(&self, policy: Option<&str>) -> bool {
        match (self.policy(), policy) {
            (None, None) => true,
            (Some(have), Some(want)) => have.eq_str(want),
            _ => false,
        }
    }
}

/// Why a SAS token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyError {
    /// `se` plus the skew allowance lies before `now`.
    Expired,
    /// The token's `sr` does not cover the requested resource.
    OutOfScope,
    /// The token's `skn` is not the policy whose key verifies it.
    PolicyMismatch,
    /// The signature does not match (wrong key, tampered token, re-encoded `sr`).
    SignatureMismatch,
    /// The signer failed to compute the expected signature.
    Signer(SignError),
}

impl Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired => f.write_str("sas token expired"),
            Self::OutOfScope => {
                f.write_str("sas token resource does not cover the requested identity")
            }
            Self::PolicyMismatch => f.write_str("sas token policy name does not match"),
            Self::SignatureMismatch => f.write_str("sas token signature does not match"),
            Self::Signer(_) => f.write_str("could not compute the expected signature"),
        }
    }
}

impl core::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Signer(e) => Some(e),
            _ => None,
        }
    }
}

/// Decodes percent-decoded base64 bytes into a 32-byte signature; `None` if anything is off.
fn decode_signature(bytes: impl Iterator<Item = u8>) -> Option<Signature> {
    // Room for one extra byte so an over-long value is detected instead of truncated.
    let mut text = [0u8; SIGNATURE_BASE64_LEN + 1];
    let mut len = 0;
    for byte in bytes {
        *text.get_mut(len)? = byte;
        len += 1;
    }
    let mut raw = [0u8; SIGNATURE_LEN + 3];
    let decoded = STANDARD.decode_slice(&text[..len], &mut raw).ok()?;
    let bytes: [u8; SIGNATURE_LEN] = raw.get(..decoded)?.try_into().ok()?;
    Some(Signature(bytes))
}
