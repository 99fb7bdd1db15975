//! Registry facts the REST views add to a stored identity (docs/protocol.md §10 "Device fields"):
//! ETag, connection state, last activity time, C2D queue depth; parsing of the registry
//! `PUT` body into the hub's [`IdentityChange`].

use serde_json::{Map, Value, json};

use super::ApiError;
use super::body::opt_str;
use crate::hub::registry_ops::{Credentials, IdentityChange, RegisteredIdentity, etag};
use crate::hub::twin::TwinIdentity;
use crate::store::registry::{Authentication, Status};
use crate::timestamp::{from_unix_millis, iso8601_millis};

/// What real hubs report for a time that never happened.
pub(crate) const NEVER: &str = "0001-01-01T00:00:00Z";

/// Live facts about an identity at the time of a request.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    pub(crate) connected: bool,
    pub(crate) last_activity: String,
    pub(crate) c2d_count: usize,
}

impl Facts {
    /// The facts the hub gathered with the identity.
    pub(crate) fn of(identity: &RegisteredIdentity) -> Self {
        Self {
            connected: identity.connected,
            // The emulator's notion of `lastActivityTime`: the last telemetry (connects alone
            // do not count).
            last_activity: identity.last_activity_ms.map_or_else(
                || NEVER.to_owned(),
                |ms| iso8601_millis(from_unix_millis(ms)),
            ),
            c2d_count: identity.c2d_depth,
        }
    }
}

/// The device or module as `GET /devices/{id}` returns it.
pub(crate) fn view(identity: &RegisteredIdentity) -> Value {
    let (record, facts) = (&identity.record, Facts::of(identity));
    let mut v = crate::hub::registry::to_json(record);
    let connection_state = if facts.connected {
        "Connected"
    } else {
        "Disconnected"
    };
    let extra = json!({
        "etag": etag(record),
        "connectionState": connection_state,
        "connectionStateUpdatedTime": NEVER,
        "statusReason": null,
        "statusUpdatedTime": NEVER,
        "lastActivityTime": facts.last_activity,
        "cloudToDeviceMessageCount": facts.c2d_count,
        "capabilities": { "iotEdge": false },
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
        if record.module_id.is_some() {
            obj.remove("capabilities");
            obj.insert("managedBy".into(), Value::Null);
        }
    }
    v
}

/// The registry part of a twin's service view.
pub(crate) fn twin_identity(identity: &RegisteredIdentity) -> TwinIdentity {
    let (record, facts) = (&identity.record, Facts::of(identity));
    let (x509_primary_thumbprint, x509_secondary_thumbprint) = match &record.authentication {
        Authentication::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => (
            Some(primary_thumbprint.clone()),
            (!secondary_thumbprint.is_empty()).then(|| secondary_thumbprint.clone()),
        ),
        Authentication::Sas { .. } => (None, None),
    };
    TwinIdentity {
        device_id: record.device_id.clone(),
        module_id: record.module_id.clone(),
        device_etag: etag(record),
        status: record.status.as_str().into(),
        status_reason: None,
        status_update_time: NEVER.into(),
        connection_state: if facts.connected {
            "Connected"
        } else {
            "Disconnected"
        }
        .into(),
        last_activity_time: facts.last_activity.clone(),
        cloud_to_device_message_count: facts.c2d_count as u64,
        authentication_type: record.authentication.type_name().into(),
        x509_primary_thumbprint,
        x509_secondary_thumbprint,
        model_id: String::new(),
    }
}

/// Parses the registry `PUT` body (docs/protocol.md §10: status and credentials, all optional)
/// and checks it against the path ids; every problem is a 400.
pub(crate) fn parse_body(
    map: &Map<String, Value>,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<IdentityChange, ApiError> {
    if opt_str(map, "deviceId")?.is_some_and(|d| d != device_id) {
        return Err(ApiError::bad_request(
            "deviceId in the body does not match the path",
        ));
    }
    if let Some(m) = module_id
        && opt_str(map, "moduleId")?.is_some_and(|b| b != m)
    {
        return Err(ApiError::bad_request(
            "moduleId in the body does not match the path",
        ));
    }
    let status = match opt_str(map, "status")? {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("enabled") => Some(Status::Enabled),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Some(Status::Disabled),
        Some(s) => return Err(ApiError::bad_request(format!("Invalid status {s}"))),
    };
    let credentials = match map.get("authentication") {
        None | Some(Value::Null) => None,
        Some(Value::Object(auth)) => Some(credentials(auth)?),
        Some(_) => return Err(ApiError::bad_request("authentication must be an object")),
    };
    Ok(IdentityChange {
        status,
        credentials,
    })
}

fn credentials(auth: &Map<String, Value>) -> Result<Credentials, ApiError> {
    let section = |name: &str| match auth.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be an object"))),
    };
    let non_empty = |m: &Map<String, Value>, key: &str| -> Result<Option<String>, ApiError> {
        Ok(opt_str(m, key)?
            .filter(|s| !s.is_empty())
            .map(str::to_owned))
    };
    match opt_str(auth, "type")?.unwrap_or("sas") {
        t if t.eq_ignore_ascii_case("sas") => {
            let keys = section("symmetricKey")?;
            Ok(Credentials::Sas {
                primary_key: non_empty(&keys, "primaryKey")?,
                secondary_key: non_empty(&keys, "secondaryKey")?,
            })
        }
        t if t.eq_ignore_ascii_case("selfSigned") => {
            let prints = section("x509Thumbprint")?;
            let primary = non_empty(&prints, "primaryThumbprint")?.ok_or_else(|| {
                ApiError::bad_request("selfSigned needs x509Thumbprint.primaryThumbprint")
            })?;
            Ok(Credentials::SelfSigned {
                primary_thumbprint: primary,
                secondary_thumbprint: non_empty(&prints, "secondaryThumbprint")?,
            })
        }
        other => Err(ApiError::bad_request(format!(
            "Unsupported authentication type {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_create_body() {
        let body = json!({"deviceId": "d1", "status": "disabled",
            "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "a2V5", "secondaryKey": ""}}});
        let parsed = parse_body(body.as_object().unwrap(), "d1", None).unwrap();
        assert_eq!(parsed.status, Some(Status::Disabled));
        assert_eq!(
            parsed.credentials,
            Some(Credentials::Sas {
                primary_key: Some("a2V5".into()),
                secondary_key: None
            })
        );
    }

    #[test]
    fn rejects_mismatched_ids_and_unknown_status() {
        let wrong = json!({"deviceId": "other"});
        assert!(parse_body(wrong.as_object().unwrap(), "d1", None).is_err());
        let status = json!({"status": "sleeping"});
        assert!(parse_body(status.as_object().unwrap(), "d1", None).is_err());
        let ca = json!({"authentication": {"type": "certificateAuthority"}});
        assert!(parse_body(ca.as_object().unwrap(), "d1", None).is_err());
    }
}
