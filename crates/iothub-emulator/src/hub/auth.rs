//! Authentication at CONNECT (issue 3 point 4; PROTOCOL.md §1.2-1.8, §2).
//!
//! Pure functions over a database connection: the caller runs [`authenticate`] inside
//! [`crate::store::Store::call`]. Every identity or credential problem is
//! [`AuthFailure::NotAuthorized`] (CONNACK 5); a disabled identity is [`AuthFailure::Disabled`]
//! (CONNACK 3, PROTOCOL.md §1.7 "emulator suggestion").

use iothub_proto::credentials::ParsedUsername;
use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, VerifyRequest};
use rusqlite::Connection;

use crate::store::StoreError;
use crate::store::registry::{self, Authentication, Status};

/// Clock skew accepted on SAS expiry (PROTOCOL.md §2.1: about 5 minutes).
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
    /// SAS expiry (Unix seconds); the connection is closed then (PROTOCOL.md §2.3).
    pub expires_at: Option<u64>,
    /// `model-id` from the username query (stamped as `dt-dataschema`).
    pub model_id: Option<String>,
}

/// Why a CONNECT was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The identity is disabled: CONNACK 3.
    #[error("identity disabled")]
    Disabled,
    /// Any identity or credential problem: CONNACK 5.
    #[error("not authorized")]
    NotAuthorized,
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
    use AuthFailure::NotAuthorized;
    // Lenient parse (PROTOCOL.md §1.4): unknown parameters ignored, api-version optional.
    let Some(user) = creds.username.and_then(|u| ParsedUsername::parse(u).ok()) else {
        return Ok(Err(NotAuthorized));
    };
    if !hub_names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(user.host()))
    {
        return Ok(Err(NotAuthorized));
    }
    let identity = Identity {
        device_id: user.device_id().to_string(),
        module_id: user.module_id().map(str::to_string),
    };
    // The protocol gateway compares client id and username identity ordinally (§1.7).
    if creds.client_id != identity.client_id() {
        return Ok(Err(NotAuthorized));
    }
    let Some(record) = registry::find(conn, user.device_id(), user.module_id())? else {
        return Ok(Err(NotAuthorized));
    };
    let password = creds.password.filter(|p| !p.is_empty());
    let outcome = match (password, &record.authentication) {
        (Some(password), auth) => verify_sas(conn, hub_names, &user, auth, password, now)?,
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
            _ => Err(NotAuthorized),
        },
        (None, Authentication::Sas { .. }) => Err(NotAuthorized),
    };
    let (method, expires_at) = match outcome {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    // Credentials first, then status: a stranger learns nothing about a disabled device.
    if record.status == Status::Disabled {
        return Ok(Err(AuthFailure::Disabled));
    }
    let model_id = user.model_id().and_then(|m| m.decode().ok());
    Ok(Ok(Authenticated {
        identity,
        method,
        expires_at,
        model_id,
    }))
}

/// Verifies a SAS password over the raw `sr` (PROTOCOL.md §2.1) with the identity's keys or,
/// for `skn=...` tokens, the named policy's keys.
fn verify_sas(
    conn: &Connection,
    hub_names: &[String],
    user: &ParsedUsername<'_>,
    auth: &Authentication,
    password: &str,
    now: u64,
) -> Result<Result<(AuthMethod, Option<u64>), AuthFailure>, StoreError> {
    let Ok(token) = ParsedSasToken::parse(password) else {
        return Ok(Err(AuthFailure::NotAuthorized));
    };
    // The token may name the hub by any of its names, as on REST (`hub::audience`).
    let sr = token.resource().decode().unwrap_or_default();
    let host = crate::hub::audience::hub_alias(hub_names, &sr).unwrap_or(user.host());
    let resource = match user.module_id() {
        Some(m) => format!("{host}/devices/{}/modules/{m}", user.device_id()),
        None => format!("{host}/devices/{}", user.device_id()),
    };
    let (keys, policy, method) = match token.policy() {
        None => match auth {
            Authentication::Sas {
                primary_key,
                secondary_key,
            } => (
                vec![primary_key.clone(), secondary_key.clone()],
                None,
                AuthMethod::IdentityKey,
            ),
            Authentication::SelfSigned { .. } => return Ok(Err(AuthFailure::NotAuthorized)),
        },
        Some(name) => {
            let Ok(name) = name.decode() else {
                return Ok(Err(AuthFailure::NotAuthorized));
            };
            if !DEVICE_CONNECT_POLICIES.contains(&name.as_str()) {
                return Ok(Err(AuthFailure::NotAuthorized));
            }
            let Some(p) = registry::policy(conn, &name)? else {
                return Ok(Err(AuthFailure::NotAuthorized));
            };
            (
                vec![p.primary_key, p.secondary_key],
                Some(name),
                AuthMethod::Policy(p.name),
            )
        }
    };
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
    Ok(Err(AuthFailure::NotAuthorized))
}
