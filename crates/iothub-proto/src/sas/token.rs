//! Formatting a SAS token (the MQTT CONNECT password, docs/protocol.md §2.1).

use core::fmt::{self, Display};

use super::{ResourceUri, SignError, Signature, Signer, StringToSign};
use crate::encode::{Sink, ViaDisplay, WriteTo};
use crate::error::BufferTooSmall;
use crate::percent::PercentSink;

/// The token prefix every SAS token starts with.
pub(crate) const PREFIX: &str = "SharedAccessSignature ";

/// A signed SAS token; [`Display`] writes
/// `SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={policy}]`.
///
/// `sr`, `sig` and `skn` are percent-encoded with upper-case escapes (Python `quote(safe="")`,
/// docs/protocol.md §2.1), `sr` first and `skn` last as azure-sdk-for-c does (§2.2).
///
/// ```
/// use iothub_proto::sas::{ResourceUri, SasToken, Signature};
///
/// // docs/protocol.md §2.2 vector 4 (azure-iot-sdk-node): the signature is supplied directly here.
/// let sig = [
///     0x91, 0xc5, 0xb1, 0x5c, 0x02, 0xb6, 0x38, 0x06, 0x80, 0xa2, 0xad, 0xa8, 0x0a, 0x46, 0x86, 0xcd,
///     0x7d, 0x8d, 0x32, 0xa0, 0xc1, 0xf2, 0x70, 0xb2, 0x36, 0xea, 0xb6, 0x7c, 0xf6, 0x02, 0x0e, 0x19,
/// ];
/// let token = SasToken::new(ResourceUri::raw("uri"), Signature::from_bytes(sig), 12345, Some("encode('Me')"));
/// assert_eq!(
///     token.to_string(),
///     "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345&skn=encode%28%27Me%27%29"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SasToken<'a, R> {
    resource: R,
    signature: Signature,
    expiry: u64,
    policy: Option<&'a str>,
}

impl<'a, R: Display> SasToken<'a, R> {
    /// Assembles a token from an already computed signature.
    pub const fn new(
        resource: R,
        signature: Signature,
        expiry: u64,
        policy: Option<&'a str>,
    ) -> Self {
        Self {
            resource,
            signature,
            expiry,
            policy,
        }
    }

    /// Signs `{encoded resource}\n{expiry}` with `signer` and assembles the token.
    ///
    /// `policy` is the `skn` field: `None` for device and module keys, the policy name for
    /// policy keys (`iothubowner`, `device`, DPS `registration`).
    ///
    /// # Errors
    ///
    /// [`SignError`] from the signer.
    pub fn sign(
        resource: R,
        expiry: u64,
        policy: Option<&'a str>,
        signer: &impl Signer,
    ) -> Result<Self, SignError> {
        let signature = signer.sign(&StringToSign::new(&resource, expiry))?;
        Ok(Self::new(resource, signature, expiry, policy))
    }

    /// The unencoded resource.
    pub const fn resource(&self) -> &R {
        &self.resource
    }

    /// The signature.
    pub const fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The expiry in Unix seconds.
    pub const fn expiry(&self) -> u64 {
        self.expiry
    }

    /// The policy name (`skn`), if any.
    pub const fn policy(&self) -> Option<&'a str> {
        self.policy
    }
}

impl<R: Display> Display for SasToken<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = SasToken {
            resource: ViaDisplay(&self.resource),
            signature: self.signature,
            expiry: self.expiry,
            policy: self.policy,
        };
        crate::encode::display(&token, f)
    }
}

impl<R: WriteTo> WriteTo for SasToken<'_, R> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_token(
            out,
            &self.resource,
            &self.signature,
            self.expiry,
            self.policy,
        );
    }
}

impl<'a, 'r> SasToken<'a, ResourceUri<'r>> {
    /// Like [`SasToken::sign`], but without `core::fmt`: the string-to-sign is written into
    /// `scratch` and handed to [`Signer::sign_bytes_into`] as bytes.
    ///
    /// This is the path for the smallest builds (a microcontroller whose platform signs a
    /// byte buffer); the token is the same as [`SasToken::sign`]'s.
    ///
    /// # Errors
    ///
    /// [`SignError::BufferTooSmall`] when `scratch` cannot hold the string-to-sign, otherwise
    /// [`SignError`] from the signer.
    ///
    /// ```
    /// # #[cfg(feature = "hmac")] {
    /// use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
    ///
    /// // docs/protocol.md §2.2 vector 1
    /// let signer = HmacSha256Signer::from_base64("+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=").unwrap();
    /// let resource = ResourceUri::device("iot-hub-for-test.azure-devices.net", "iot-device-for-test");
    /// let mut scratch = [0u8; 128];
    /// let token = SasToken::sign_in_buffer(resource, 1471940363, None, &signer, &mut scratch).unwrap();
    /// assert_eq!(token, SasToken::sign(resource, 1471940363, None, &signer).unwrap());
    /// # }
    /// ```
    pub fn sign_in_buffer(
        resource: ResourceUri<'r>,
        expiry: u64,
        policy: Option<&'a str>,
        signer: &impl Signer,
        scratch: &mut [u8],
    ) -> Result<Self, SignError> {
        let len = StringToSign::new(resource, expiry)
            .encode_to(scratch)
            .map_err(SignError::BufferTooSmall)?;
        let mut signature = [0u8; super::SIGNATURE_LEN];
        // invariant: `encode_to` succeeded, so `len <= scratch.len()` and the range exists.
        signer.sign_bytes_into(scratch.get(..len).unwrap_or_default(), &mut signature)?;
        Ok(Self::new(resource, Signature(signature), expiry, policy))
    }

    /// Writes the token into `buf` without `core::fmt` and returns its length in bytes (the
    /// same text as [`Display`]).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::sas::{ResourceUri, SasToken, Signature};
    ///
    /// let token = SasToken::new(ResourceUri::hub("h.net"), Signature::from_bytes([0xfb; 32]), 7, Some("p"));
    /// let mut buf = [0u8; 160];
    /// let len = token.encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], token.to_string().as_bytes());
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

/// `SharedAccessSignature sr=..&sig=..&se=..[&skn=..]`: the one implementation behind both
/// paths.
fn write_token(
    out: &mut dyn Sink,
    resource: &dyn WriteTo,
    signature: &Signature,
    expiry: u64,
    policy: Option<&str>,
) {
    out.put(PREFIX);
    out.put("sr=");
    resource.write_to(&mut PercentSink(out));
    out.put("&sig=");
    // base64 letters and digits are unreserved; `+ / =` become `%2B %2F %3D` (§2.1)
    signature.write_to(&mut PercentSink(out));
    out.put("&se=");
    crate::text::Decimal(expiry).write_to(out);
    if let Some(policy) = policy {
        out.put("&skn=");
        crate::percent::write_encoded(out, policy);
    }
}

/// [`write_token`] for a resource given as segments of bytes (`crate::bytes::sas_token`):
/// the segments are percent-encoded and joined by `%2F`, the rest is the same text.
pub(crate) fn write_token_bytes(
    out: &mut dyn Sink,
    resource: &[&[u8]],
    signature: &Signature,
    expiry: u64,
    policy: Option<&[u8]>,
) {
    out.put(PREFIX);
    out.put("sr=");
    write_resource_bytes(out, resource);
    out.put("&sig=");
    signature.write_to(&mut PercentSink(out));
    out.put("&se=");
    crate::text::Decimal(expiry).write_to(out);
    if let Some(policy) = policy {
        out.put("&skn=");
        crate::percent::write_encoded_bytes(out, policy);
    }
}

/// A resource given as segments, percent-encoded: each segment encoded, joined by `%2F`
/// (what [`PercentSink`] makes of the `/` between the parts of a [`ResourceUri`]).
pub(crate) fn write_resource_bytes(out: &mut dyn Sink, resource: &[&[u8]]) {
    for (index, segment) in resource.iter().enumerate() {
        if index > 0 {
            out.put("%2F");
        }
        crate::percent::write_encoded_bytes(out, segment);
    }
}
