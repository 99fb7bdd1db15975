//! Formatting a SAS token (the MQTT CONNECT password, PROTOCOL.md §2.1).

use core::fmt::{self, Display};

use super::{PercentEncoded, SignError, Signature, Signer, StringToSign};

/// The token prefix every SAS token starts with.
pub(crate) const PREFIX: &str = "SharedAccessSignature ";

/// A signed SAS token; [`Display`] writes
/// `SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={policy}]`.
///
/// `sr`, `sig` and `skn` are percent-encoded with upper-case escapes (Python `quote(safe="")`,
/// PROTOCOL.md §2.1), `sr` first and `skn` last as azure-sdk-for-c does (§2.2).
///
/// ```
/// use iothub_proto::sas::{ResourceUri, SasToken, Signature};
///
/// // PROTOCOL.md §2.2 vector 4 (azure-iot-sdk-node): the signature is supplied directly here.
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
        f.write_str(PREFIX)?;
        f.write_str("sr=")?;
        Display::fmt(&PercentEncoded(&self.resource), f)?;
        f.write_str("&sig=")?;
        // base64 letters and digits are unreserved; `+ / =` are percent-encoded (§2.1)
        self.signature.write_base64(&mut |index| {
            f.write_str(match index {
                62 => "%2B",
                63 => "%2F",
                64 => "%3D",
                _ => super::signer::base64_char(index),
            })
        })?;
        f.write_str("&se=")?;
        Display::fmt(&crate::text::Decimal(self.expiry), f)?;
        if let Some(policy) = self.policy {
            f.write_str("&skn=")?;
            crate::percent::write_encoded(f, policy)?;
        }
        Ok(())
    }
}
