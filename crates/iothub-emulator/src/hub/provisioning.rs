//! Device Provisioning Service emulation (docs/protocol.md §9): symmetric-key enrollments
//! (individual and group), SAS authentication of registrations, and the register → 202
//! `assigning` → poll → 200 `RegistrationOperationStatus` flow that assigns devices to this
//! hub, creating them in the registry.
//!
//! Sans-IO: functions take a SQLite connection or transaction and `now`; replies come back as
//! [`DpsReply`] values that the MQTT glue publishes on
//! `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`.
//!
//! Choices where Microsoft's documentation is silent (docs/protocol.md §14): the device is
//! created at register time and the first poll already answers 200; a registration through a
//! disabled enrollment ends with status `disabled` (HTTP-like 200); a registration body whose
//! `registrationId` differs from the authenticated one answers 401 401002.

use std::time::SystemTime;

use base64::Engine as _;
use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, VerifyRequest};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use crate::hub::ids;
use crate::store::enrollments::{self as sql, StoredRegistration};
use crate::timestamp::{from_unix_millis, iso8601_millis, unix_millis};

mod enrollments;

pub use enrollments::{
    Enrollment, EnrollmentKind, create_enrollment, delete_enrollment, derived_device_key,
    enrollment, enrollments, id_scope, set_enrollment_enabled,
};

/// Seconds of clock skew accepted on registration tokens (as for hub tokens,
/// docs/protocol.md §2.1).
pub const MAX_SKEW_SECS: u64 = 300;

/// The only policy name (`skn`) a DPS registration token may carry (docs/protocol.md §9).
const REGISTRATION_POLICY: &str = "registration";

/// Errors from enrollment management and registration handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpsError {
    /// An enrollment with this id exists already (HTTP 409).
    #[error("enrollment already exists")]
    AlreadyExists,
    /// The id breaks the registration id rules (HTTP 400).
    #[error("invalid registration or group id")]
    InvalidId,
    /// A key is not base64 of 16 to 64 bytes (HTTP 400).
    #[error("invalid symmetric key")]
    InvalidKey,
    /// No such enrollment (HTTP 404).
    #[error("enrollment not found")]
    NotFound,
    /// SQLite failed.
    #[error("dps storage failed")]
    Store(#[from] rusqlite::Error),
}

/// Why a DPS CONNECT is refused (all of them mean CONNACK 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpsAuthError {
    /// The password is not a SAS token.
    #[error("malformed sas token")]
    MalformedToken,
    /// The token is not for `{scope}/registrations/{registration id}` with `skn=registration`,
    /// or the username's scope is not this emulator's.
    #[error("token scope or policy mismatch")]
    OutOfScope,
    /// The token expired (beyond the skew allowance).
    #[error("sas token expired")]
    Expired,
    /// No enrollment key verifies the signature.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// No individual enrollment has this registration id and no group key verifies it.
    #[error("unknown registration")]
    UnknownRegistration,
    /// SQLite failed while looking up enrollments.
    #[error("dps storage failed")]
    Store,
}

/// A registration that passed authentication: what the session keeps for its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The registration id as the device spelled it (also the device id to create).
    pub registration_id: String,
    /// The enrollment group that verified it, `None` for an individual enrollment.
    pub group_id: Option<String>,
}

/// The device to create (or refresh) in the hub registry when a registration is assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionedDevice {
    /// Device id (the registration id).
    pub device_id: String,
    /// Primary key: the enrollment key, or the key derived from the group's primary key.
    pub primary_key: String,
    /// Secondary key, likewise.
    pub secondary_key: String,
}

/// Creates assigned devices in the hub registry. The glue implements it over the registry
/// (on the same transaction); an `Err` makes the registration `failed` with its message.
pub trait DeviceRegistrar {
    /// Ensures the device exists with these keys (create it, or update the keys of an
    /// existing device, as DPS re-provisioning does).
    ///
    /// # Errors
    /// A message for the `failed` registration state.
    fn provision(&mut self, conn: &Connection, device: &ProvisionedDevice) -> Result<(), String>;
}

impl<F> DeviceRegistrar for F
where
    F: FnMut(&Connection, &ProvisionedDevice) -> Result<(), String>,
{
    fn provision(&mut self, conn: &Connection, device: &ProvisionedDevice) -> Result<(), String> {
        self(conn, device)
    }
}

/// Per-emulator DPS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpsConfig {
    /// Host name reported as `assignedHub` (the hub's own host name, e.g. `localhost`).
    pub assigned_hub: String,
    /// `retry-after` seconds sent with 202 replies (real DPS says 3; 1 keeps SDK tests fast).
    pub retry_after_secs: u32,
}

/// A reply to publish on `$dps/registrations/res/{status}/?$rid={rid}` plus
/// `&retry-after={retry_after}` when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpsReply {
    /// 202 while assigning, 200 when done, 4xx on errors.
    pub status: u16,
    /// Seconds the device should wait before polling.
    pub retry_after: Option<u32>,
    /// JSON body.
    pub body: Vec<u8>,
}

impl DpsReply {
    /// An error reply `{"errorCode":…,"trackingId":…,"message":…,"timestampUtc":…}` with the
    /// HTTP-like status `error_code / 1000`, as DPS writes them.
    pub fn error(error_code: u32, message: &str, now: SystemTime) -> Self {
        let body = json!({
            "errorCode": error_code,
            "trackingId": ids::uuid_v4(),
            "message": message,
            "timestampUtc": iso8601_millis(now),
        });
        Self {
            status: u16::try_from(error_code / 1000).unwrap_or(500),
            retry_after: None,
            body: body.to_string().into_bytes(),
        }
    }
}

/// Authenticates a DPS CONNECT: username `{id_scope}/registrations/{registration_id}/…`,
/// password a SAS token over `{id_scope}/registrations/{registration_id}` with
/// `skn=registration` (azure-sdk-for-c, docs/protocol.md §9) or without `skn` (the Python
/// `azure-iot-device` SDK signs its DPS token with no key name), signed with the individual
/// enrollment's key or the key derived from a group's key (primary or secondary). Any other
/// `skn` is refused. Disabled enrollments still authenticate; their registrations end
/// `disabled`.
///
/// # Errors
/// A [`DpsAuthError`]; answer CONNACK 5.
pub fn authenticate_registration(
    conn: &Connection,
    id_scope: &str,
    registration_id: &str,
    password: &str,
    now: SystemTime,
) -> Result<Attestation, DpsAuthError> {
    let our_scope = enrollments::id_scope(conn).map_err(|_| DpsAuthError::Store)?;
    if !id_scope.eq_ignore_ascii_case(&our_scope)
        || !enrollments::is_valid_registration_id(registration_id)
    {
        return Err(DpsAuthError::OutOfScope);
    }
    let token = ParsedSasToken::parse(password).map_err(|_| DpsAuthError::MalformedToken)?;
    let resource = format!("{id_scope}/registrations/{registration_id}");
    // Real DPS accepts the Python SDK's tokens, which carry no `skn`.
    let policy = token.policy().is_some().then_some(REGISTRATION_POLICY);
    let request = VerifyRequest {
        resource: &resource,
        policy,
        now: u64::try_from(unix_millis(now) / 1000).unwrap_or(0),
        max_skew: MAX_SKEW_SECS,
    };
    if !token.has_policy(request.policy) || !token.covers(&resource) {
        return Err(DpsAuthError::OutOfScope);
    }
    if token.is_expired(request.now, request.max_skew) {
        return Err(DpsAuthError::Expired);
    }
    let verifies = |key: &str| {
        HmacSha256Signer::from_base64(key).is_ok_and(|s| token.verify(&request, &s).is_ok())
    };
    // An individual enrollment takes precedence over groups for its registration id.
    if let Some(e) = enrollments::enrollment(conn, EnrollmentKind::Individual, registration_id)
        .map_err(|_| DpsAuthError::Store)?
    {
        return if verifies(&e.primary_key) || verifies(&e.secondary_key) {
            Ok(Attestation {
                registration_id: registration_id.to_owned(),
                group_id: None,
            })
        } else {
            Err(DpsAuthError::SignatureMismatch)
        };
    }
    let groups =
        enrollments::enrollments(conn, EnrollmentKind::Group).map_err(|_| DpsAuthError::Store)?;
    for g in groups {
        let derived =
            [&g.primary_key, &g.secondary_key].map(|k| derived_device_key(k, registration_id));
        if derived.iter().flatten().any(|k| verifies(k)) {
            return Ok(Attestation {
                registration_id: registration_id.to_owned(),
                group_id: Some(g.id),
            });
        }
    }
    Err(DpsAuthError::UnknownRegistration)
}

/// Handles `$dps/registrations/PUT/iotdps-register/?$rid=…` with body
/// `{"registrationId":"…"[,"payload":{…}]}`: assigns the registration (creating the device
/// through `registrar`) and answers 202 `{"operationId":"…","status":"assigning"}` with
/// `retry-after`.
///
/// # Errors
/// [`DpsError::Store`]; request problems are answered in-band (400, 401).
pub fn handle_register(
    conn: &Connection,
    attestation: &Attestation,
    body: &[u8],
    config: &DpsConfig,
    registrar: &mut impl DeviceRegistrar,
    now: SystemTime,
) -> Result<DpsReply, DpsError> {
    let request: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let Some(request) = request else {
        return Ok(DpsReply::error(
            400_004,
            "The request body is not a valid registration request.",
            now,
        ));
    };
    let claimed = request.get("registrationId").and_then(Value::as_str);
    if claimed.is_some_and(|id| !id.eq_ignore_ascii_case(&attestation.registration_id)) {
        return Ok(DpsReply::error(
            401_002,
            "The registration id does not match the authenticated one.",
            now,
        ));
    }
    let enrollment = match &attestation.group_id {
        None => enrollments::enrollment(
            conn,
            EnrollmentKind::Individual,
            &attestation.registration_id,
        )?,
        Some(group) => enrollments::enrollment(conn, EnrollmentKind::Group, group)?,
    };
    let Some(enrollment) = enrollment else {
        // Deleted between CONNECT and this request.
        return Ok(DpsReply::error(401_002, "Unauthorized", now));
    };
    let operation_id = format!(
        "4.{}.{}",
        ids::hex(&ids::random_bytes::<8>()),
        ids::uuid_v4()
    );
    let now_ms = unix_millis(now);
    let mut record = StoredRegistration {
        registration_id: attestation.registration_id.clone(),
        operation_id: operation_id.clone(),
        group_id: attestation.group_id.clone(),
        status: "disabled".into(),
        substatus: None,
        device_id: None,
        assigned_hub: None,
        error_code: None,
        error_message: None,
        created_ms: now_ms,
        updated_ms: now_ms,
    };
    if enrollment.enabled {
        let device = provisioned_device(attestation, &enrollment)?;
        match registrar.provision(conn, &device) {
            Ok(()) => {
                record.status = "assigned".into();
                record.substatus = Some("initialAssignment".into());
                record.device_id = Some(device.device_id);
                record.assigned_hub = Some(config.assigned_hub.clone());
            }
            Err(message) => {
                record.status = "failed".into();
                record.error_code = Some(500_000);
                record.error_message = Some(message);
            }
        }
    }
    sql::put_registration(conn, &record)?;
    let body = json!({ "operationId": operation_id, "status": "assigning" });
    Ok(DpsReply {
        status: 202,
        retry_after: Some(config.retry_after_secs),
        body: body.to_string().into_bytes(),
    })
}

/// Handles `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=…&operationId=…`: 200 with
/// the `RegistrationOperationStatus` of the registration's latest operation, or 404 for an
/// unknown operation id.
///
/// # Errors
/// [`DpsError::Store`].
pub fn handle_operation_status(
    conn: &Connection,
    attestation: &Attestation,
    operation_id: &str,
    now: SystemTime,
) -> Result<DpsReply, DpsError> {
    let record = sql::registration(conn, &attestation.registration_id)?
        .filter(|r| r.operation_id == operation_id);
    let Some(r) = record else {
        return Ok(DpsReply::error(404_006, "Operation not found.", now));
    };
    let body = json!({
        "operationId": r.operation_id,
        "status": r.status,
        "registrationState": registration_state(&r),
    });
    Ok(DpsReply {
        status: 200,
        retry_after: None,
        body: body.to_string().into_bytes(),
    })
}

fn registration_state(r: &StoredRegistration) -> Value {
    let mut state = Map::new();
    state.insert("registrationId".into(), json!(r.registration_id));
    state.insert(
        "createdDateTimeUtc".into(),
        json!(iso8601_millis(from_unix_millis(r.created_ms))),
    );
    if let Some(hub) = &r.assigned_hub {
        state.insert("assignedHub".into(), json!(hub));
    }
    if let Some(device) = &r.device_id {
        state.insert("deviceId".into(), json!(device));
    }
    state.insert("status".into(), json!(r.status));
    if let Some(sub) = &r.substatus {
        state.insert("substatus".into(), json!(sub));
    }
    if let Some(code) = r.error_code {
        state.insert("errorCode".into(), json!(code));
    }
    if let Some(message) = &r.error_message {
        state.insert("errorMessage".into(), json!(message));
    }
    state.insert(
        "lastUpdatedDateTimeUtc".into(),
        json!(iso8601_millis(from_unix_millis(r.updated_ms))),
    );
    let etag = base64::engine::general_purpose::STANDARD.encode(format!("\"{}\"", r.updated_ms));
    state.insert("etag".into(), json!(etag));
    Value::Object(state)
}

fn provisioned_device(
    attestation: &Attestation,
    enrollment: &Enrollment,
) -> Result<ProvisionedDevice, DpsError> {
    let (primary_key, secondary_key) = match attestation.group_id {
        None => (
            enrollment.primary_key.clone(),
            enrollment.secondary_key.clone(),
        ),
        Some(_) => (
            derived_device_key(&enrollment.primary_key, &attestation.registration_id)?,
            derived_device_key(&enrollment.secondary_key, &attestation.registration_id)?,
        ),
    };
    Ok(ProvisionedDevice {
        device_id: attestation.registration_id.clone(),
        primary_key,
        secondary_key,
    })
}

#[cfg(test)]
mod tests;
