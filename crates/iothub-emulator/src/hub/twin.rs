//! Device and module twins: the device-facing MQTT operations (GET, reported PATCH) and the
//! service-facing API (read, patch or replace desired properties and tags with ETag checks).
//!
//! Everything here is sans-IO: functions take a SQLite connection (or transaction), the current
//! time and the request, and return the reply or notification as a value. The MQTT glue turns
//! a [`TwinReply`] into `$iothub/twin/res/{status}/?$rid={rid}[&$version={version}]` and a
//! [`DesiredNotification`] into `$iothub/twin/PATCH/properties/desired/?$version={version}`
//! with the `iothub-proto` topic builders (docs/protocol.md §6).
//!
//! Choices where Microsoft's documentation is silent (docs/protocol.md §14):
//! - the GET body has no `$metadata` (the documentation examples omit it);
//! - a rejected reported patch answers status 400 with body
//!   `{"errorCode":400004,"message":"…"}`;
//! - `$lastUpdatedVersion` is kept on every desired metadata node.

use std::time::SystemTime;

use rusqlite::Connection;
use serde_json::{Map, Value, json};

use crate::store::twins as sql;
use crate::timestamp::iso8601_millis;

mod document;
mod limits;

pub use document::{Section, TwinDocument};

/// Errors from twin operations that are not answered in-band.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwinError {
    /// The stored document could not be parsed.
    #[error("stored twin document is corrupt")]
    Corrupt,
    /// The `If-Match` ETag does not match the twin's (HTTP 412).
    #[error("etag mismatch")]
    PreconditionFailed,
    /// The request was rejected (HTTP/MQTT 400).
    #[error("bad twin request")]
    Rejected(#[source] TwinRejection),
    /// SQLite failed.
    #[error("twin storage failed")]
    Store(#[from] rusqlite::Error),
}

impl TwinError {
    /// The HTTP-like status to answer with: 400, 412 or 500.
    pub fn status(&self) -> u16 {
        match self {
            Self::Rejected(_) => 400,
            Self::PreconditionFailed => 412,
            Self::Corrupt | Self::Store(_) => 500,
        }
    }
}

/// Why a twin request was rejected with 400 (docs/protocol.md §6 "Limits").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwinRejection {
    /// A value is an integer outside −4503599627370496..=4503599627370495.
    #[error("integer out of range")]
    IntegerOutOfRange,
    /// A key is empty, longer than 1 KB, or contains `.`, `$`, a space or a control character.
    #[error("invalid property name")]
    InvalidKey,
    /// The body is not valid JSON.
    #[error("malformed json")]
    MalformedJson,
    /// The body (or a section in it) is not a JSON object.
    #[error("patch is not a json object")]
    NotAnObject,
    /// The request tries to write a section the caller may not write (reported from the
    /// service side).
    #[error("section is read-only for this caller")]
    ReadOnlySection,
    /// A string value is longer than 4 KB.
    #[error("string value too long")]
    StringTooLong,
    /// The resulting section would exceed its size limit.
    #[error("section size {size} exceeds {limit} bytes")]
    TooLarge {
        /// Size of the section after the patch, as the twin documentation counts it.
        size: usize,
        /// The section's limit (32 KB properties, 8 KB tags).
        limit: usize,
    },
    /// The resulting section would nest objects deeper than 10 levels.
    #[error("twin nested too deeply")]
    TooDeep,
}

/// A device-facing answer: publish on `$iothub/twin/res/{status}/?$rid={rid}` plus
/// `&$version={version}` when `version` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinReply {
    /// 200 for GET, 204 for an accepted patch, 400 for a rejected one, 500 on failure.
    pub status: u16,
    /// The new reported `$version` after an accepted patch.
    pub version: Option<u64>,
    /// JSON body (empty for 204).
    pub body: Vec<u8>,
}

/// A desired-properties change to push to the twin's connection, if it is connected and
/// subscribed to `$iothub/twin/PATCH/properties/desired/#` (never queued for later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredNotification {
    /// Device whose twin changed.
    pub device_id: String,
    /// Module whose twin changed, for module twins.
    pub module_id: Option<String>,
    /// The new desired `$version` (topic `…/desired/?$version={version}`).
    pub version: u64,
    /// The patch followed by `"$version":{version}`.
    pub body: Vec<u8>,
}

/// The outcome of a service-side change.
#[derive(Clone, Debug, PartialEq)]
pub struct TwinUpdate {
    /// The twin after the change.
    pub twin: TwinDocument,
    /// What to push to the device, when desired properties changed.
    pub notification: Option<DesiredNotification>,
}

/// Registry facts shown in the service view of a twin (docs/protocol.md §10 `GET /twins/{id}`);
/// the registry owner fills it in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwinIdentity {
    /// Device id.
    pub device_id: String,
    /// Module id for module twins.
    pub module_id: Option<String>,
    /// The registry ETag of the identity.
    pub device_etag: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Optional reason for the status.
    pub status_reason: Option<String>,
    /// ISO-8601 time of the last status change.
    pub status_update_time: String,
    /// `Connected` or `Disconnected`.
    pub connection_state: String,
    /// ISO-8601 time of the last activity.
    pub last_activity_time: String,
    /// Messages waiting in the identity's C2D queue.
    pub cloud_to_device_message_count: u64,
    /// `sas`, `selfSigned`, `certificateAuthority` or `none`.
    pub authentication_type: String,
    /// Primary X.509 thumbprint, for `selfSigned`.
    pub x509_primary_thumbprint: Option<String>,
    /// Secondary X.509 thumbprint, for `selfSigned`.
    pub x509_secondary_thumbprint: Option<String>,
    /// Plug and Play model id from the last CONNECT (`""` when none).
    pub model_id: String,
}

/// Answers a device's `$iothub/twin/GET/?$rid=…` (any body): 200 with
/// `{"desired":{…,"$version":N},"reported":{…,"$version":M}}`.
///
/// # Errors
/// [`TwinError::Store`] or [`TwinError::Corrupt`]; the glue answers those with 500.
///
/// # Example
/// ```
/// # use std::time::SystemTime;
/// # let conn = rusqlite::Connection::open_in_memory().unwrap();
/// # conn.execute_batch(iothub_emulator::store::twins::SCHEMA).unwrap();
/// use iothub_emulator::hub::twin;
/// let reply = twin::handle_get(&conn, "dev1", None, SystemTime::now()).unwrap();
/// assert_eq!(reply.status, 200);
/// assert_eq!(reply.body, br#"{"desired":{"$version":1},"reported":{"$version":1}}"#);
/// ```
pub fn handle_get(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    now: SystemTime,
) -> Result<TwinReply, TwinError> {
    let doc = read(conn, device_id, module_id, now)?;
    let body = format!(
        "{{\"desired\":{},\"reported\":{}}}",
        doc.desired.to_device_json(),
        doc.reported.to_device_json()
    );
    Ok(TwinReply {
        status: 200,
        version: None,
        body: body.into_bytes(),
    })
}

/// Applies a device's `$iothub/twin/PATCH/properties/reported/?$rid=…`: 204 with the new
/// reported `$version` and an empty body, or 400 (nothing applied) when the patch breaks a
/// rule.
///
/// # Errors
/// [`TwinError::Store`] or [`TwinError::Corrupt`]; rule violations are answered in-band.
///
/// # Example
/// ```
/// # use std::time::SystemTime;
/// # let conn = rusqlite::Connection::open_in_memory().unwrap();
/// # conn.execute_batch(iothub_emulator::store::twins::SCHEMA).unwrap();
/// use iothub_emulator::hub::twin;
/// let now = SystemTime::now();
/// let reply = twin::handle_reported_patch(&conn, "dev1", None, br#"{"temperature":32}"#, now).unwrap();
/// assert_eq!((reply.status, reply.version), (204, Some(2)));
/// let get = twin::handle_get(&conn, "dev1", None, now).unwrap();
/// assert_eq!(get.body, br#"{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}"#);
/// ```
pub fn handle_reported_patch(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<TwinReply, TwinError> {
    let mut doc = read(conn, device_id, module_id, now)?;
    let applied = parse_object(body).and_then(|patch| {
        limits::check_patch(&patch)?;
        let mut next = doc.reported.clone();
        next.merge(&patch, &iso8601_millis(now));
        limits::check_section(&next.properties, limits::MAX_PROPERTIES_BYTES)?;
        Ok(next)
    });
    match applied {
        Ok(reported) => {
            doc.reported = reported;
            doc.version += 1;
            sql::save(conn, device_id, module_id, &doc.to_stored())?;
            Ok(TwinReply {
                status: 204,
                version: Some(doc.reported.version),
                body: Vec::new(),
            })
        }
        Err(rejection) => Ok(rejection_reply(rejection)),
    }
}

/// Reads a twin, creating a fresh one (stamped `now`) the first time an identity is seen.
///
/// # Errors
/// [`TwinError::Store`] or [`TwinError::Corrupt`].
pub fn read(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    now: SystemTime,
) -> Result<TwinDocument, TwinError> {
    match sql::load(conn, device_id, module_id)? {
        Some(text) => TwinDocument::from_stored(&text).ok_or(TwinError::Corrupt),
        None => {
            let doc = TwinDocument::new(&iso8601_millis(now));
            sql::save(conn, device_id, module_id, &doc.to_stored())?;
            Ok(doc)
        }
    }
}

/// Deletes a module twin, or a device twin with all its module twins (`module_id` `None`);
/// the registry calls this when it deletes the identity.
///
/// # Errors
/// [`TwinError::Store`].
pub fn delete(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<(), TwinError> {
    sql::delete(conn, device_id, module_id)?;
    Ok(())
}

/// Service `PATCH /twins/{id}` (or `/twins/{id}/modules/{mid}`): merges `tags` and
/// `properties.desired` from `body` (`null` deletes), after checking `if_match`
/// (`None`, `*`, or the ETag with or without quotes). Touching `properties.reported` is
/// rejected; `$metadata` and `$version` inside `properties.desired` are ignored.
/// All-or-nothing.
///
/// # Errors
/// [`TwinError::PreconditionFailed`], [`TwinError::Rejected`], or storage errors.
///
/// # Example
/// ```
/// # use std::time::SystemTime;
/// # let conn = rusqlite::Connection::open_in_memory().unwrap();
/// # conn.execute_batch(iothub_emulator::store::twins::SCHEMA).unwrap();
/// use iothub_emulator::hub::twin;
/// let body = serde_json::json!({"properties": {"desired": {"targetTemperature": 23}}});
/// let update = twin::service_patch(&conn, "dev1", None, &body, None, SystemTime::now()).unwrap();
/// let note = update.notification.unwrap();
/// assert_eq!(note.version, 2);
/// assert_eq!(note.body, br#"{"targetTemperature":23,"$version":2}"#);
/// ```
pub fn service_patch(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    body: &Value,
    if_match: Option<&str>,
    now: SystemTime,
) -> Result<TwinUpdate, TwinError> {
    service_change(conn, device_id, module_id, body, if_match, now, Mode::Merge)
}

/// Service `PUT /twins/{id}`: replaces `tags` and `properties.desired` (each only when
/// present in `body`). A connected device is sent the equivalent patch: the new desired
/// content plus `null` for every removed top-level property. Everything else in the body
/// (identity fields, `properties.reported`, `$metadata`, `$version`) is ignored, so a twin
/// read with [`service_view`] can be edited and sent back.
///
/// # Errors
/// As [`service_patch`].
pub fn service_replace(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    body: &Value,
    if_match: Option<&str>,
    now: SystemTime,
) -> Result<TwinUpdate, TwinError> {
    service_change(
        conn,
        device_id,
        module_id,
        body,
        if_match,
        now,
        Mode::Replace,
    )
}

/// The full twin as the service API returns it (docs/protocol.md §10): identity facts, `etag`,
/// `version`, `tags` and both property sections with `$metadata` and `$version`.
///
/// # Example
/// ```
/// use iothub_emulator::hub::twin::{TwinDocument, TwinIdentity, service_view};
/// let doc = TwinDocument::new("2026-01-01T00:00:00.000Z");
/// let id = TwinIdentity { device_id: "dev1".into(), ..Default::default() };
/// let v = service_view(&doc, &id);
/// assert_eq!(v["deviceId"], "dev1");
/// assert_eq!(v["etag"], "AAAAAAAAAAE=");
/// assert_eq!(v["properties"]["desired"]["$version"], 1);
/// ```
pub fn service_view(doc: &TwinDocument, identity: &TwinIdentity) -> Value {
    let mut out = Map::new();
    out.insert("deviceId".into(), json!(identity.device_id));
    if let Some(m) = &identity.module_id {
        out.insert("moduleId".into(), json!(m));
    }
    let x509 = json!({
        "primaryThumbprint": identity.x509_primary_thumbprint,
        "secondaryThumbprint": identity.x509_secondary_thumbprint,
    });
    let rest = json!({
        "etag": doc.etag(),
        "deviceEtag": identity.device_etag,
        "status": identity.status,
        "statusReason": identity.status_reason,
        "statusUpdateTime": identity.status_update_time,
        "connectionState": identity.connection_state,
        "lastActivityTime": identity.last_activity_time,
        "cloudToDeviceMessageCount": identity.cloud_to_device_message_count,
        "authenticationType": identity.authentication_type,
        "x509Thumbprint": x509,
        "modelId": identity.model_id,
        "version": doc.version,
        "tags": doc.tags,
        "properties": {
            "desired": doc.desired.to_service_value(),
            "reported": doc.reported.to_service_value(),
        },
        "capabilities": { "iotEdge": false },
    });
    if let Value::Object(rest) = rest {
        out.extend(rest);
    }
    Value::Object(out)
}

#[derive(Clone, Copy)]
enum Mode {
    Merge,
    Replace,
}

fn service_change(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    body: &Value,
    if_match: Option<&str>,
    now: SystemTime,
    mode: Mode,
) -> Result<TwinUpdate, TwinError> {
    let mut doc = read(conn, device_id, module_id, now)?;
    if !etag_matches(if_match, &doc.etag()) {
        return Err(TwinError::PreconditionFailed);
    }
    let request = ServiceRequest::parse(body, mode).map_err(TwinError::Rejected)?;
    let now_iso = iso8601_millis(now);
    let mut changed = false;
    if let Some(tags) = request.tags {
        limits::check_patch(tags).map_err(TwinError::Rejected)?;
        let mut next = match mode {
            Mode::Merge => doc.tags.clone(),
            Mode::Replace => Map::new(),
        };
        merge_plain(&mut next, tags);
        limits::check_section(&next, limits::MAX_TAGS_BYTES).map_err(TwinError::Rejected)?;
        doc.tags = next;
        changed = true;
    }
    let mut notification = None;
    if let Some(desired) = &request.desired {
        limits::check_patch(desired).map_err(TwinError::Rejected)?;
        let mut next = doc.desired.clone();
        let patch = match mode {
            Mode::Merge => {
                next.merge(desired, &now_iso);
                desired.clone()
            }
            Mode::Replace => next.replace(desired, &now_iso),
        };
        limits::check_section(&next.properties, limits::MAX_PROPERTIES_BYTES)
            .map_err(TwinError::Rejected)?;
        doc.desired = next;
        changed = true;
        let version = doc.desired.version;
        let body = document::object_with_trailer(&patch, &[("$version", json!(version))]);
        notification = Some(DesiredNotification {
            device_id: device_id.to_owned(),
            module_id: module_id.map(str::to_owned),
            version,
            body: body.into_bytes(),
        });
    }
    if changed {
        doc.version += 1;
        sql::save(conn, device_id, module_id, &doc.to_stored())?;
    }
    Ok(TwinUpdate {
        twin: doc,
        notification,
    })
}

/// The writable parts of a service twin body.
struct ServiceRequest<'a> {
    tags: Option<&'a Map<String, Value>>,
    /// Desired properties without the read-only `$metadata` and `$version` members, which
    /// a client echoing a twin it read sends back.
    desired: Option<Map<String, Value>>,
}

impl<'a> ServiceRequest<'a> {
    fn parse(body: &'a Value, mode: Mode) -> Result<Self, TwinRejection> {
        let body = document::as_object(body)?;
        let tags = match body.get("tags") {
            None | Some(Value::Null) => None,
            Some(v) => Some(document::as_object(v)?),
        };
        let mut desired = None;
        match body.get("properties") {
            None | Some(Value::Null) => {}
            Some(props) => {
                let props = document::as_object(props)?;
                // A PUT carries a whole twin read earlier, reported section included: ignore
                // it. A PATCH that names reported properties tries to write them: refuse.
                if matches!(mode, Mode::Merge)
                    && props.get("reported").is_some_and(|r| !r.is_null())
                {
                    return Err(TwinRejection::ReadOnlySection);
                }
                if let Some(d) = props.get("desired").filter(|d| !d.is_null()) {
                    let mut d = document::as_object(d)?.clone();
                    d.remove("$metadata");
                    d.remove("$version");
                    desired = Some(d);
                }
            }
        }
        Ok(Self { tags, desired })
    }
}

/// Merge-patch without metadata (tags carry none).
fn merge_plain(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                if !matches!(target.get(key), Some(Value::Object(_))) {
                    target.insert(key.clone(), Value::Object(Map::new()));
                }
                if let Some(Value::Object(t)) = target.get_mut(key) {
                    merge_plain(t, inner);
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
            }
        }
    }
}

fn etag_matches(if_match: Option<&str>, etag: &str) -> bool {
    match if_match.map(str::trim) {
        None | Some("*") => true,
        Some(given) => given.trim_start_matches("W/").trim_matches('"') == etag,
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, TwinRejection> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TwinRejection::NotAnObject),
        Err(_) => Err(TwinRejection::MalformedJson),
    }
}

fn rejection_reply(rejection: TwinRejection) -> TwinReply {
    let body = json!({ "errorCode": 400_004, "message": rejection.to_string() }).to_string();
    TwinReply {
        status: 400,
        version: None,
        body: body.into_bytes(),
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
