//! Connection strings: `HostName=…;DeviceId=…;SharedAccessKey=…` and their variants
//! (docs/protocol.md §3).

use core::fmt::{self, Display};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::sas::{ParsedSasToken, ResourceUri};

/// The longest decoded `SharedAccessKey` accepted, in bytes (matches the `hmac` signer).
const MAX_KEY_LEN: usize = 128;

/// A parsed connection string; every field borrows from the input.
///
/// Segments are `Key=Value` separated by `;`. Each segment is split at its **first** `=`, so
/// base64 padding and pre-made tokens (`sr=…&sig=…`) survive. Whitespace around segments, keys
/// and values and a trailing `;` are tolerated. Key names match case-insensitively
/// (`x509` and `X509` alike).
///
/// ```
/// use iothub_proto::connection_string::{ConnectionString, Credential};
///
/// let cs = ConnectionString::parse(
///     "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
/// )
/// .unwrap();
/// assert_eq!(cs.host_name(), "myhub.azure-devices.net");
/// assert_eq!(cs.device_id(), Some("dev1"));
/// assert_eq!(
///     cs.credential(),
///     Credential::DeviceKey { key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionString<'a> {
    host_name: &'a str,
    device_id: Option<&'a str>,
    module_id: Option<&'a str>,
    gateway_host_name: Option<&'a str>,
    credential: Credential<'a>,
}

/// How a connection string authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credential<'a> {
    /// `DeviceId` + `SharedAccessKey`: the device's own symmetric key (token without `skn`).
    DeviceKey {
        /// The base64 key.
        key: &'a str,
    },
    /// `DeviceId` + `SharedAccessKeyName` + `SharedAccessKey`: a policy key (such as `device`)
    /// used on behalf of a device or module; its tokens carry `skn`.
    DevicePolicyKey {
        /// The policy name (`skn`).
        policy: &'a str,
        /// The base64 policy key.
        key: &'a str,
    },
    /// `DeviceId` + `ModuleId` + `SharedAccessKey`: the module's own symmetric key.
    ModuleKey {
        /// The base64 key.
        key: &'a str,
    },
    /// `SharedAccessKeyName` + `SharedAccessKey` without `DeviceId`: a service policy such as
    /// `iothubowner`, scoped to the whole hub.
    ServicePolicyKey {
        /// The policy name (`skn`).
        policy: &'a str,
        /// The base64 policy key.
        key: &'a str,
    },
    /// `SharedAccessSignature=SharedAccessSignature sr=…`: a pre-made token used verbatim.
    Token {
        /// The whole token, starting with `SharedAccessSignature `.
        token: &'a str,
    },
    /// `x509=true`: the device authenticates with a client certificate.
    X509,
}

impl<'a> ConnectionString<'a> {
    /// Parses and classifies a connection string.
    ///
    /// # Errors
    ///
    /// A [`ConnectionStringError`] naming the first problem found.
    ///
    /// ```
    /// use iothub_proto::connection_string::{ConnectionString, ConnectionStringError, Field};
    ///
    /// assert_eq!(
    ///     ConnectionString::parse("DeviceId=d;SharedAccessKey=AAAA"),
    ///     Err(ConnectionStringError::MissingField(Field::HostName))
    /// );
    /// assert_eq!(
    ///     ConnectionString::parse("HostName=h;DeviceId=d;SharedAccessKey=not base64!"),
    ///     Err(ConnectionStringError::InvalidKey)
    /// );
    /// ```
    pub fn parse(text: &'a str) -> Result<Self, ConnectionStringError> {
        let fields = Fields::parse(text)?;
        let host_name = fields
            .host_name
            .ok_or(ConnectionStringError::MissingField(Field::HostName))?;
        let credential = fields.credential()?;
        if let Credential::DeviceKey { key }
        | Credential::ModuleKey { key }
        | Credential::DevicePolicyKey { key, .. }
        | Credential::ServicePolicyKey { key, .. } = credential
        {
            validate_key(key)?;
        }
        Ok(Self {
            host_name,
            device_id: fields.device_id,
            module_id: fields.module_id,
            gateway_host_name: fields.gateway_host_name,
            credential,
        })
    }

    /// `HostName`: the hub host used in the MQTT username and the SAS resource.
    pub const fn host_name(&self) -> &'a str {
        self.host_name
    }

    /// `DeviceId`, absent in service strings.
    pub const fn device_id(&self) -> Option<&'a str> {
        self.device_id
    }

    /// `ModuleId`, present for module identities.
    pub const fn module_id(&self) -> Option<&'a str> {
        self.module_id
    }

    /// `GatewayHostName` (IoT Edge downstream devices).
    pub const fn gateway_host_name(&self) -> Option<&'a str> {
        self.gateway_host_name
    }

    /// The host to open the network connection to: `GatewayHostName` when present, else
    /// `HostName` (Python SDK behaviour, docs/protocol.md §3).
    ///
    /// ```
    /// use iothub_proto::connection_string::ConnectionString;
    ///
    /// let cs = ConnectionString::parse("HostName=h;DeviceId=d;x509=true;GatewayHostName=edge").unwrap();
    /// assert_eq!(cs.dial_host(), "edge");
    /// assert_eq!(cs.host_name(), "h");
    /// ```
    pub fn dial_host(&self) -> &'a str {
        self.gateway_host_name.unwrap_or(self.host_name)
    }

    /// The SAS resource this string's identity signs for: the module, the device, or the
    /// whole hub for service strings (docs/protocol.md §2.1).
    ///
    /// ```
    /// use iothub_proto::connection_string::ConnectionString;
    ///
    /// let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// let device = format!("HostName=h;DeviceId=d;SharedAccessKey={key}");
    /// let module = format!("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey={key}");
    /// let service = format!("HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey={key}");
    /// assert_eq!(ConnectionString::parse(&device).unwrap().resource_uri().to_string(), "h/devices/d");
    /// assert_eq!(ConnectionString::parse(&module).unwrap().resource_uri().to_string(), "h/devices/d/modules/m");
    /// assert_eq!(ConnectionString::parse(&service).unwrap().resource_uri().to_string(), "h");
    /// ```
    pub const fn resource_uri(&self) -> ResourceUri<'a> {
        match (self.device_id, self.module_id) {
            (Some(device_id), Some(module_id)) => {
                ResourceUri::module(self.host_name, device_id, module_id)
            }
            (Some(device_id), None) => ResourceUri::device(self.host_name, device_id),
            (None, _) => ResourceUri::hub(self.host_name),
        }
    }

    /// How this string authenticates.
    pub const fn credential(&self) -> Credential<'a> {
        self.credential
    }

    /// The base64 `SharedAccessKey`, whichever kind of key it is.
    pub fn shared_access_key(&self) -> Option<&'a str> {
        match self.credential {
            Credential::DeviceKey { key }
            | Credential::ModuleKey { key }
            | Credential::DevicePolicyKey { key, .. }
            | Credential::ServicePolicyKey { key, .. } => Some(key),
            Credential::Token { .. } | Credential::X509 => None,
        }
    }

    /// The policy name (`SharedAccessKeyName`) for policy keys; this becomes the token's `skn`.
    pub fn policy_name(&self) -> Option<&'a str> {
        match self.credential {
            Credential::DevicePolicyKey { policy, .. }
            | Credential::ServicePolicyKey { policy, .. } => Some(policy),
            _ => None,
        }
    }
}

/// A connection-string key, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `DeviceId`.
    DeviceId,
    /// `GatewayHostName`.
    GatewayHostName,
    /// `HostName`.
    HostName,
    /// `ModuleId`.
    ModuleId,
    /// `SharedAccessKey`.
    SharedAccessKey,
    /// `SharedAccessKeyName`.
    SharedAccessKeyName,
    /// `SharedAccessSignature`.
    SharedAccessSignature,
    /// `x509`.
    X509,
}

impl Field {
    const ALL: [Field; 8] = [
        Field::DeviceId,
        Field::GatewayHostName,
        Field::HostName,
        Field::ModuleId,
        Field::SharedAccessKey,
        Field::SharedAccessKeyName,
        Field::SharedAccessSignature,
        Field::X509,
    ];

    /// The key as spelled in connection strings.
    ///
    /// ```
    /// use iothub_proto::connection_string::Field;
    ///
    /// assert_eq!(Field::SharedAccessKeyName.as_str(), "SharedAccessKeyName");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DeviceId => "DeviceId",
            Self::GatewayHostName => "GatewayHostName",
            Self::HostName => "HostName",
            Self::ModuleId => "ModuleId",
            Self::SharedAccessKey => "SharedAccessKey",
            Self::SharedAccessKeyName => "SharedAccessKeyName",
            Self::SharedAccessSignature => "SharedAccessSignature",
            Self::X509 => "x509",
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|field| field.as_str().eq_ignore_ascii_case(key))
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a connection string was rejected; one variant per problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// More than one credential was given (e.g. `SharedAccessKey` and `x509=true`).
    ConflictingCredentials,
    /// A key appears twice.
    DuplicateKey(Field),
    /// A key has an empty value.
    EmptyValue(Field),
    /// `SharedAccessKey` is not standard padded base64 (or decodes to more than 128 bytes).
    InvalidKey,
    /// `SharedAccessSignature` is not a well-formed SAS token.
    InvalidToken,
    /// A key has a value it cannot take (`x509` other than `true`/`false`).
    InvalidValue(Field),
    /// A segment has no `=`; `offset` is its byte position in the input.
    MalformedSegment {
        /// Byte offset of the segment in the input.
        offset: usize,
    },
    /// No credential: none of `SharedAccessKey`, `SharedAccessSignature`, `x509=true`.
    MissingCredential,
    /// A required key is absent (`HostName`; `DeviceId` for module, token and X.509 strings;
    /// `SharedAccessKey` with `SharedAccessKeyName`).
    MissingField(Field),
    /// A key this crate does not know; `offset` is its byte position in the input.
    UnknownKey {
        /// Byte offset of the key in the input.
        offset: usize,
    },
}

impl Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConflictingCredentials => {
                f.write_str("connection string has more than one of SharedAccessKey, SharedAccessSignature, x509")
            }
            Self::DuplicateKey(field) => write!(f, "connection string repeats {field}"),
            Self::EmptyValue(field) => write!(f, "connection string {field} is empty"),
            Self::InvalidKey => f.write_str("connection string SharedAccessKey is not valid base64"),
            Self::InvalidToken => f.write_str("connection string SharedAccessSignature is not a valid sas token"),
            Self::InvalidValue(field) => write!(f, "connection string {field} has an invalid value"),
            Self::MalformedSegment { offset } => {
                write!(f, "connection string segment at byte {offset} has no `=`")
            }
            Self::MissingCredential => f.write_str(
                "connection string has no credential (SharedAccessKey, SharedAccessSignature or x509=true)",
            ),
            Self::MissingField(field) => write!(f, "connection string has no {field}"),
            Self::UnknownKey { offset } => write!(f, "connection string has an unknown key at byte {offset}"),
        }
    }
}

impl core::error::Error for ConnectionStringError {}

/// The raw key/value pairs, before classification.
#[derive(Default)]
struct Fields<'a> {
    host_name: Option<&'a str>,
    device_id: Option<&'a str>,
    module_id: Option<&'a str>,
    key: Option<&'a str>,
    key_name: Option<&'a str>,
    signature: Option<&'a str>,
    x509: Option<&'a str>,
    gateway_host_name: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn parse(text: &'a str) -> Result<Self, ConnectionStringError> {
        let mut fields = Self::default();
        let mut offset = 0;
        for segment in text.split(';') {
            let segment_offset = offset;
            offset += segment.len() + 1;
            if segment.trim().is_empty() {
                continue; // `;;` and a trailing `;` are harmless
            }
            let Some((key, value)) = segment.split_once('=') else {
                let leading = segment.len() - segment.trim_start().len();
                return Err(ConnectionStringError::MalformedSegment {
                    offset: segment_offset + leading,
                });
            };
            let leading = key.len() - key.trim_start().len();
            let field = Field::from_key(key.trim()).ok_or(ConnectionStringError::UnknownKey {
                offset: segment_offset + leading,
            })?;
            let value = value.trim();
            if value.is_empty() {
                return Err(ConnectionStringError::EmptyValue(field));
            }
            let slot = fields.slot(field);
            if slot.is_some() {
                return Err(ConnectionStringError::DuplicateKey(field));
            }
            *slot = Some(value);
        }
        Ok(fields)
    }

    fn slot(&mut self, field: Field) -> &mut Option<&'a str> {
        match field {
            Field::DeviceId => &mut self.device_id,
            Field::GatewayHostName => &mut self.gateway_host_name,
            Field::HostName => &mut self.host_name,
            Field::ModuleId => &mut self.module_id,
            Field::SharedAccessKey => &mut self.key,
            Field::SharedAccessKeyName => &mut self.key_name,
            Field::SharedAccessSignature => &mut self.signature,
            Field::X509 => &mut self.x509,
        }
    }

    /// Classifies the credential (docs/protocol.md §3 lists the accepted shapes).
    fn credential(&self) -> Result<Credential<'a>, ConnectionStringError> {
        use ConnectionStringError::{
            ConflictingCredentials, InvalidToken, InvalidValue, MissingCredential, MissingField,
        };

        let x509 = match self.x509 {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(InvalidValue(Field::X509)),
        };
        let given = usize::from(self.key.is_some())
            + usize::from(self.signature.is_some())
            + usize::from(x509);
        if given > 1 {
            return Err(ConflictingCredentials);
        }
        if self.module_id.is_some() && self.device_id.is_none() {
            return Err(MissingField(Field::DeviceId));
        }
        if let Some(token) = self.signature {
            self.device_id.ok_or(MissingField(Field::DeviceId))?;
            ParsedSasToken::parse(token).map_err(|_| InvalidToken)?;
            return Ok(Credential::Token { token });
        }
        if x509 {
            self.device_id.ok_or(MissingField(Field::DeviceId))?;
            return Ok(Credential::X509);
        }
        let Some(key) = self.key else {
            return Err(match self.key_name {
                Some(_) => MissingField(Field::SharedAccessKey),
                None => MissingCredential,
            });
        };
        Ok(match (self.key_name, self.device_id, self.module_id) {
            (Some(policy), Some(_), _) => Credential::DevicePolicyKey { policy, key },
            (Some(policy), None, _) => Credential::ServicePolicyKey { policy, key },
            (None, Some(_), Some(_)) => Credential::ModuleKey { key },
            (None, Some(_), None) => Credential::DeviceKey { key },
            (None, None, _) => return Err(MissingField(Field::DeviceId)),
        })
    }
}

/// Checks that a key is padded standard base64 of at most [`MAX_KEY_LEN`] bytes.
fn validate_key(key: &str) -> Result<(), ConnectionStringError> {
    let mut scratch = [0u8; MAX_KEY_LEN + 3];
    match STANDARD.decode_slice(key, &mut scratch) {
        Ok(len) if len > 0 && len <= MAX_KEY_LEN => Ok(()),
        _ => Err(ConnectionStringError::InvalidKey),
    }
}
