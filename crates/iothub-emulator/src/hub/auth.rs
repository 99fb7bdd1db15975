//! Authentication at CONNECT (docs/protocol.md §1.2-1.8, §2).
//!
//! Pure functions over a database connection: the hub runs [`authenticate`] inside
//! [`crate::store::Store::call`]. A refusal says which rule failed and with which values
//! ([`AuthFailure`]), so the emulator can log why; a transport maps a disabled identity to
//! "server unavailable" (CONNACK 3, docs/protocol.md §1.7 "What the emulator answers") and
//! everything else to "not authorized" (CONNACK 5).

use iothub_proto::credentials::ParsedUsername;
use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, VerifyRequest};
use rusqlite::Connection;

use crate::store::StoreError;
use crate::store::registry::{self, Authentication, Status};

/// Clock skew accepted on SAS expiry (docs/protocol.md §2.1: about 5 minutes).
pub const MAX_SKEW_SECS: u64 = 300;

/// Policies whose keys may sign tokens on behalf of a device (they carry DeviceConnect).
const DEVICE_CONNECT_POLICIES: &[&str] = &["iothubowner", "device"];

/// A hub identity: a device or one of its modules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// Device id (case-sensitive).
    pub device_id: String,
    /// Module id for a module identity.
    pub module_id: Option<String>,
}

impl Identity {
    /// The MQTT client id this identity must use: `{device}` or `{device}/{module}`.
    ///
    /// ```
    /// use iothub_emulator::hub::auth::Identity;
    /// let id = Identity { device_id: "d1".into(), module_id: Some("m1".into()) };
    /// assert_eq!(id.client_id(), "d1/m1");
    /// ```
    #[must_use]
    pub fn client_id(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }
}

/// Names the identity as the emulator's log does: device `d1`, module `d1/m1`.
impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.module_id {
            Some(m) => write!(f, "module `{}/{m}`", self.device_id),
            None => write!(f, "device `{}`", self.device_id),
        }
    }
}

/// How a connection proved its identity (stamped as `iothub-connection-auth-method`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A SAS token signed with the identity's own key.
    IdentityKey,
    /// A SAS token signed with a shared access policy key (`skn`).
    Policy(String),
    /// A client certificate matching a registered thumbprint.
    X509,
}

impl AuthMethod {
    /// The JSON IoT Hub stamps on telemetry, e.g.
    /// `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`.
    #[must_use]
    pub fn stamp(&self, identity: &Identity) -> String {
        let (scope, kind) = match self {
            Self::IdentityKey if identity.module_id.is_some() => ("module", "sas"),
            Self::IdentityKey => ("device", "sas"),
            Self::Policy(_) => ("hub", "sas"),
            Self::X509 => ("device", "x509Certificate"),
        };
        format!(
            r#"{{"scope":"{scope}","type":"{kind}","issuer":"iothub","acceptingIpFilterRule":null}}"#
        )
    }
}

/// A successful CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// Who connected.
    pub identity: Identity,
    /// How.
    pub method: AuthMethod,
    /// SAS expiry (Unix seconds); the connection is closed then (docs/protocol.md §2.3).
    pub expires_at: Option<u64>,
    /// `model-id` from the username query (stamped as `dt-dataschema`).
    pub model_id: Option<String>,
}

/// Why a CONNECT was refused: the rule and the values that failed, for the emulator's log
/// (docs/protocol.md §1.7). Never holds a key, a signature or a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The identity is disabled (CONNACK 3).
    #[error("identity {0} is disabled")]
    Disabled(String),
    /// No username, or one that is not `{host}/{device}[/{module}]/?api-version=…`.
    #[error("username is missing or not `{{host}}/{{device}}/?api-version=…`")]
    MalformedUsername,
    /// The username names a host this hub does not answer to.
    #[error("username names host `{host}`, which this hub does not answer to")]
    UnknownHost {
        /// The host in the username.
        host: String,
    },
    /// The client id is not the username's identity (compared ordinally).
    #[error("client id `{client_id}` is not the username's identity `{expected}`")]
    ClientIdMismatch {
        /// The CONNECT's client id.
        client_id: String,
        /// The identity named by the username.
        expected: String,
    },
    /// No such device or module in the registry.
    #[error("no identity `{0}` in the registry")]
    UnknownIdentity(String),
    /// Neither a password nor a client certificate was offered.
    #[error("no SAS token and no client certificate for `{0}`")]
    NoCredentials(String),
    /// The password is not a SAS token.
    #[error("the password is not a SAS token (`SharedAccessSignature sr=…&sig=…&se=…`)")]
    MalformedToken,
    /// The token expired more than the allowed skew ago.
    #[error(
        "SAS token expired at {expired_at} (Unix seconds; {skew_secs} s skew allowed), now {now}"
    )]
    TokenExpired {
        /// The token's `se`.
        expired_at: u64,
        /// The allowed clock skew.
        skew_secs: u64,
        /// The hub's time.
        now: u64,
    },
    /// The token's `sr` does not cover the identity.
    #[error("SAS token audience does not cover `{resource}`")]
    OutOfScope {
        /// The resource the identity needs.
        resource: String,
    },
    /// The token is signed for a policy that cannot connect devices, or an unknown one.
    #[error("SAS token policy `{0}` cannot connect devices")]
    PolicyNotAllowed(String),
    /// The signature matches neither key.
    #[error("signature does not match the primary or secondary key of {0}")]
    SignatureMismatch(String),
    /// The identity authenticates with certificates, and the token or certificate does not fit.
    #[error("{identity} authenticates with an X.509 certificate: {problem}")]
    CertificateRequired {
        /// The identity.
        identity: String,
        /// What was wrong.
        problem: &'static str,
    },
    /// A DPS registration was refused.
    #[error("DPS registration `{registration_id}` refused: {reason}")]
    Registration {
        /// The registration id.
        registration_id: String,
        /// Why.
        reason: String,
    },
}

impl AuthFailure {
    /// Whether the identity exists but is disabled (CONNACK 3 rather than 5).
    #[must_use]
    pub fn is_disabled(&self) -> bool {
        matches!(self, Self::Disabled(_))
    }
}

/// What the connection offers at CONNECT.
#[derive(Clone, Copy, Debug)]
pub struct ConnectCredentials<'a> {
    /// MQTT client id.
    pub client_id: &'a str,
    /// MQTT username (`None` when absent).
    pub username: Option<&'a str>,
    /// MQTT password (`None` or empty for X.509).
    pub password: Option<&'a str>,
    /// `(sha1, sha256)` thumbprints of the TLS client certificate, if one was presented.
    pub thumbprints: Option<(&'a str, &'a str)>,
}

/// Authenticates a hub CONNECT against the registry.
///
/// `hub_names` are the host names the hub answers to; `now` is Unix seconds.
///
/// # Errors
/// `Ok(Err(failure))` for a refused CONNECT, `Err` for a database problem.
pub fn authenticate(
    conn: &Connection,
    hub_names: &[String],
    creds: ConnectCredentials<'_>,
    now: u64,
) -> Result<Result<Authenticated, AuthFailure>, StoreError> {
    // Lenient parse (docs/protocol.md §1.4): unknown parameters ignored, api-version optional.
    let Some(user) = creds.username.and_then(|u| ParsedUsername::parse(u).ok()) else {
        return Ok(Err(AuthFailure::MalformedUsername));
    };
    if !hub_names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(user.host()))
    {
        return Ok(Err(AuthFailure::UnknownHost {
            host: user.host().to_owned(),
        }));
    }
    let identity = Identity {
        device_id: user.device_id().to_string(),
        module_id: user.module_id().map(str::to_string),
    };
    // The protocol gateway compares client id and username identity ordinally (§1.7).
    if creds.client_id != identity.client_id() {
        return Ok(Err(AuthFailure::ClientIdMismatch {
            client_id: creds.client_id.to_owned(),
            expected: identity.client_id(),
        }));
    }
    let Some(record) = registry::find(conn, user.device_id(), user.module_id())? else {
        return Ok(Err(AuthFailure::UnknownIdentity(identity.client_id())));
    };
    let password = creds.password.filter(|p| !p.is_empty());
    let outcome = match (password, &record.authentication) {
        (Some(password), auth) => {
            verify_sas(conn, hub_names, &user, &identity, auth, password, now)?
        }
        (
            None,
            Authentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            },
        ) => match creds.thumbprints {
            Some((sha1, sha256))
                if [primary_thumbprint, secondary_thumbprint].iter().any(|t| {
                    !t.is_empty()
                        && (t.eq_ignore_ascii_case(sha1) || t.eq_ignore_ascii_case(sha256))
                }) =>
            {
                Ok((AuthMethod::X509, None))
            }
            Some(_) => Err(AuthFailure::CertificateRequired {
                identity: identity.to_string(),
                problem: "the client certificate's thumbprint is not registered",
            }),
            None => Err(AuthFailure::NoCredentials(identity.to_string())),
        },
        (None, Authentication::Sas { .. }) => Err(AuthFailure::NoCredentials(identity.to_string())),
    };
    let (method, expires_at) = match outcome {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    // Credentials first, then status: a stranger learns nothing about a disabled device.
    if record.status == Status::Disabled {
        return Ok(Err(AuthFailure::Disabled(identity.to_string())));
    }
    let model_id = user.model_id().and_then(|m| m.decode().ok());
    Ok(Ok(Authenticated {
        identity,
        method,
        expires_at,
        model_id,
    }))
}

/// Verifies a SAS password over the raw `sr` (docs/protocol.md §2.1) with the identity's keys or,
/// for `skn=...` tokens, the named policy's keys.
fn verify_sas(
    conn: &Connection,
    hub_names: &[String],
    user: &ParsedUsername<'_>,
    identity: &Identity,
    auth: &Authentication,
    password: &str,
    now: u64,
) -> Result<Result<(AuthMethod, Option<u64>), AuthFailure>, StoreError> {
    let Ok(token) = ParsedSasToken::parse(password) else {
        return Ok(Err(AuthFailure::MalformedToken));
    };
    // The token may name the hub by any of its names, as on REST (`hub::audience`).
    let sr = token.resource().decode().unwrap_or_default();
    let host = crate::hub::audience::hub_alias(hub_names, &sr).unwrap_or(user.host());
    let resource = match user.module_id() {
        Some(m) => format!("{host}/devices/{}/modules/{m}", user.device_id()),
        None => format!("{host}/devices/{}", user.device_id()),
    };
    let (keys, policy, method, whose) = match token.policy() {
        None => match auth {
            Authentication::Sas {
                primary_key,
                secondary_key,
            } => (
                vec![primary_key.clone(), secondary_key.clone()],
                None,
                AuthMethod::IdentityKey,
                identity.to_string(),
            ),
            Authentication::SelfSigned { .. } => {
                return Ok(Err(AuthFailure::CertificateRequired {
                    identity: identity.to_string(),
                    problem: "a SAS token signed with a device key was offered",
                }));
            }
        },
        Some(name) => {
            let name = name.decode().unwrap_or_else(|_| name.raw().to_owned());
            if !DEVICE_CONNECT_POLICIES.contains(&name.as_str()) {
                return Ok(Err(AuthFailure::PolicyNotAllowed(name)));
            }
            let Some(p) = registry::policy(conn, &name)? else {
                return Ok(Err(AuthFailure::PolicyNotAllowed(name)));
            };
            (
                vec![p.primary_key, p.secondary_key],
                Some(name.clone()),
                AuthMethod::Policy(p.name),
                format!("policy `{name}`"),
            )
        }
    };
    if !token.covers(&resource) {
        return Ok(Err(AuthFailure::OutOfScope { resource }));
    }
    if token.is_expired(now, MAX_SKEW_SECS) {
        return Ok(Err(AuthFailure::TokenExpired {
            expired_at: token.expiry(),
            skew_secs: MAX_SKEW_SECS,
            now,
        }));
    }
    let request = VerifyRequest {
        resource: &resource,
        policy: policy.as_deref(),
        now,
        max_skew: MAX_SKEW_SECS,
    };
    for key in keys.iter().filter(|k| !k.is_empty()) {
        let Ok(signer) = HmacSha256Signer::from_base64(key) else {
            continue;
        };
        if token.verify(&request, &signer).is_ok() {
            return Ok(Ok((method, Some(token.expiry()))));
        }
    }
    Ok(Err(AuthFailure::SignatureMismatch(whose)))
}
