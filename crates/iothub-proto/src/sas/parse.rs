//! Parsing a SAS token as the hub receives it (the MQTT CONNECT password).

use core::fmt::{self, Display};

use super::token::PREFIX;
use crate::percent::Decoded;

/// A SAS token as received, borrowed from the password text.
///
/// `sr` is kept **exactly as transmitted**: the signature covers the raw text, escape casing
/// included (docs/protocol.md §2.1, "How verification works"), so re-encoding would break valid
/// tokens. Fields may come in any order; unknown fields are rejected, as Python's parser does.
///
/// ```
/// use iothub_proto::sas::ParsedSasToken;
///
/// let token = ParsedSasToken::parse(
///     "SharedAccessSignature se=1471940363&skn=iothubowner&sr=h.azure-devices.net%2fdevices%2fd1&sig=abc%3D",
/// )
/// .unwrap();
/// assert_eq!(token.resource_raw(), "h.azure-devices.net%2fdevices%2fd1");
/// assert!(token.resource().eq_str("h.azure-devices.net/devices/d1"));
/// assert!(token.signature().eq_str("abc="));
/// assert_eq!(token.expiry(), 1471940363);
/// assert_eq!(token.expiry_raw(), "1471940363");
/// assert!(token.policy().unwrap().eq_str("iothubowner"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParsedSasToken<'a> {
    resource: &'a str,
    signature: &'a str,
    expiry_raw: &'a str,
    expiry: u64,
    policy: Option<&'a str>,
}

impl<'a> ParsedSasToken<'a> {
    /// Parses `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`.
    ///
    /// # Errors
    ///
    /// A [`TokenError`] naming the first problem found.
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        let fields = token
            .strip_prefix(PREFIX)
            .ok_or(TokenError::MissingPrefix)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for field in fields.split('&') {
            let (name, value) = field.split_once('=').ok_or(TokenError::MalformedField)?;
            // Field names are matched case-insensitively, as the C# service-side parser does.
            let slot = match name {
                n if n.eq_ignore_ascii_case("sr") => (&mut sr, TokenField::Resource),
                n if n.eq_ignore_ascii_case("sig") => (&mut sig, TokenField::Signature),
                n if n.eq_ignore_ascii_case("se") => (&mut se, TokenField::Expiry),
                n if n.eq_ignore_ascii_case("skn") => (&mut skn, TokenField::Policy),
                _ => return Err(TokenError::UnknownField),
            };
            if slot.0.is_some() {
                return Err(TokenError::DuplicateField(slot.1));
            }
            if value.is_empty() {
                return Err(TokenError::EmptyField(slot.1));
            }
            *slot.0 = Some(value);
        }
        let resource = sr.ok_or(TokenError::MissingField(TokenField::Resource))?;
        let signature = sig.ok_or(TokenError::MissingField(TokenField::Signature))?;
        let expiry_raw = se.ok_or(TokenError::MissingField(TokenField::Expiry))?;
        let expiry = parse_unix_seconds(expiry_raw).ok_or(TokenError::InvalidExpiry)?;
        Ok(Self {
            resource,
            signature,
            expiry_raw,
            expiry,
            policy: skn,
        })
    }

    /// The `sr` field exactly as received (still percent-encoded); this is what was signed.
    pub const fn resource_raw(&self) -> &'a str {
        self.resource
    }

    /// The `sr` field, percent-decoded on demand; this is what scope checks compare.
    pub const fn resource(&self) -> Decoded<'a> {
        Decoded::new(self.resource)
    }

    /// The `sig` field (base64, percent-decoded on demand).
    pub const fn signature(&self) -> Decoded<'a> {
        Decoded::new(self.signature)
    }

    /// The `se` field in Unix seconds.
    pub const fn expiry(&self) -> u64 {
        self.expiry
    }

    /// The `se` field exactly as received; this is what was signed.
    pub const fn expiry_raw(&self) -> &'a str {
        self.expiry_raw
    }

    /// The `skn` policy name (percent-decoded on demand), absent for device and module keys.
    pub const fn policy(&self) -> Option<Decoded<'a>> {
        match self.policy {
            Some(policy) => Some(Decoded::new(policy)),
            None => None,
        }
    }
}

/// A SAS token field, named in [`TokenError`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenField {
    /// `se`, the expiry.
    Expiry,
    /// `skn`, the policy name.
    Policy,
    /// `sr`, the resource URI.
    Resource,
    /// `sig`, the signature.
    Signature,
}

impl Display for TokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expiry => "se",
            Self::Policy => "skn",
            Self::Resource => "sr",
            Self::Signature => "sig",
        })
    }
}

/// Why a SAS token could not be parsed.
///
/// ```
/// use iothub_proto::sas::{ParsedSasToken, TokenError, TokenField};
///
/// assert_eq!(ParsedSasToken::parse("sr=a&sig=b&se=1"), Err(TokenError::MissingPrefix));
/// assert_eq!(
///     ParsedSasToken::parse("SharedAccessSignature sr=a&se=1"),
///     Err(TokenError::MissingField(TokenField::Signature))
/// );
/// assert_eq!(ParsedSasToken::parse("SharedAccessSignature sr=a&sig=b&se=1&x=2"), Err(TokenError::UnknownField));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenError {
    /// A field appears twice.
    DuplicateField(TokenField),
    /// A field has an empty value.
    EmptyField(TokenField),
    /// `se` is not a decimal number of seconds.
    InvalidExpiry,
    /// A field has no `=`.
    MalformedField,
    /// A required field (`sr`, `sig` or `se`) is absent.
    MissingField(TokenField),
    /// The text does not start with `SharedAccessSignature `.
    MissingPrefix,
    /// A field other than `sr`, `sig`, `se` and `skn`.
    UnknownField,
}

impl Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateField(field) => write!(f, "sas token field `{field}` appears twice"),
            Self::EmptyField(field) => write!(f, "sas token field `{field}` is empty"),
            Self::InvalidExpiry => f.write_str("sas token expiry `se` is not a number of seconds"),
            Self::MalformedField => f.write_str("sas token field without `=`"),
            Self::MissingField(field) => write!(f, "sas token has no `{field}` field"),
            Self::MissingPrefix => {
                f.write_str("sas token does not start with `SharedAccessSignature `")
            }
            Self::UnknownField => f.write_str("sas token has an unknown field"),
        }
    }
}

impl core::error::Error for TokenError {}

/// Parses plain ASCII decimal digits (no sign, no spaces) into seconds.
fn parse_unix_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lower_case_escapes_in_raw_resource() {
        let token = ParsedSasToken::parse(
            "SharedAccessSignature sr=s%2fregistrations%2fr&sig=x&se=1&skn=registration",
        );
        assert_eq!(token.map(|t| t.resource_raw()), Ok("s%2fregistrations%2fr"));
    }

    #[test]
    fn rejects_duplicate_fields() {
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sr=a&sig=b&se=1&se=2"),
            Err(TokenError::DuplicateField(TokenField::Expiry))
        );
    }

    #[test]
    fn rejects_empty_and_malformed_fields() {
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sr=&sig=b&se=1"),
            Err(TokenError::EmptyField(TokenField::Resource))
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sr=a&sig&se=1"),
            Err(TokenError::MalformedField)
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature "),
            Err(TokenError::MalformedField)
        );
    }

    #[test]
    fn rejects_non_numeric_expiry() {
        for se in ["-1", "+1", "1.5", " 1", "99999999999999999999999"] {
            let token = ["SharedAccessSignature sr=a&sig=b&se=", se].concat();
            assert_eq!(
                ParsedSasToken::parse(&token),
                Err(TokenError::InvalidExpiry),
                "{se}"
            );
        }
    }

    #[test]
    fn requires_exact_prefix() {
        assert_eq!(
            ParsedSasToken::parse("sharedaccesssignature sr=a&sig=b&se=1"),
            Err(TokenError::MissingPrefix)
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignaturesr=a&sig=b&se=1"),
            Err(TokenError::MissingPrefix)
        );
    }

    #[test]
    fn signature_may_contain_equals_signs() {
        let token = ParsedSasToken::parse("SharedAccessSignature sig=ab==&sr=a&se=7");
        assert_eq!(token.map(|t| t.signature().raw()), Ok("ab=="));
    }
}
