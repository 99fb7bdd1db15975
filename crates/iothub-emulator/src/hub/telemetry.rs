//! Stamping device-to-cloud messages (issue 3 point 6; PROTOCOL.md §4).
//!
//! The device's property bag is split into system properties (`$.mid` → `message-id`, …) and
//! application properties; the hub then adds the `iothub-*` properties a real hub writes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use iothub_proto::properties::PropertyBag;

use super::auth::{AuthMethod, Identity};
use super::timestamp::{iso8601_millis, unix_millis};
use crate::store::events::TelemetryEvent;

/// How the message reached the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A normal PUBLISH; `retain` is the MQTT RETAIN flag.
    Publish {
        /// RETAIN was set: not stored, forwarded with `mqtt-retain: true` (PROTOCOL.md §1.5).
        retain: bool,
    },
    /// The connection's Will, published because it dropped without DISCONNECT.
    Will,
}

/// What the connection knows about its sender.
#[derive(Clone, Debug)]
pub struct Sender<'a> {
    /// The authenticated identity.
    pub identity: &'a Identity,
    /// How it authenticated.
    pub method: &'a AuthMethod,
    /// `model-id` from CONNECT.
    pub model_id: Option<&'a str>,
    /// Generation id of the identity.
    pub generation_id: &'a str,
}

/// Builds the stamped event for one D2C message (`seq` is 0 until appended).
///
/// ```
/// use iothub_emulator::hub::auth::{AuthMethod, Identity};
/// use iothub_emulator::hub::telemetry::{stamp, Origin, Sender};
/// let id = Identity { device_id: "d1".into(), module_id: None };
/// let sender = Sender { identity: &id, method: &AuthMethod::IdentityKey, model_id: Some("dtmi:x;1"), generation_id: "1" };
/// let e = stamp(&sender, "%24.mid=m1&%24.sub=thermostat1&alert=true", b"{}".to_vec().into(), Origin::Publish { retain: true }, std::time::SystemTime::UNIX_EPOCH);
/// assert_eq!(e.system_properties["message-id"], "m1");
/// assert_eq!(e.system_properties["dt-subject"], "thermostat1");
/// assert_eq!(e.system_properties["dt-dataschema"], "dtmi:x;1");
/// assert_eq!(e.system_properties["iothub-connection-device-id"], "d1");
/// assert_eq!(e.application_properties["alert"].as_deref(), Some("true"));
/// assert_eq!(e.application_properties["mqtt-retain"].as_deref(), Some("true"));
/// ```
#[must_use]
pub fn stamp(
    sender: &Sender<'_>,
    properties: &str,
    body: Bytes,
    origin: Origin,
    now: SystemTime,
) -> TelemetryEvent {
    let mut system = BTreeMap::new();
    let mut application = BTreeMap::new();
    for (key, value) in PropertyBag::parse(properties).iter() {
        let Ok(key) = key.decode() else { continue };
        let value = value.and_then(|v| v.decode().ok());
        match key.strip_prefix("$.") {
            Some(short) => {
                if let Some(value) = value {
                    system.insert(system_name(short), value);
                }
            }
            None => {
                application.insert(key, value);
            }
        }
    }
    match origin {
        Origin::Publish { retain: true } => {
            application.insert("mqtt-retain".into(), Some("true".into()));
        }
        Origin::Publish { retain: false } => {}
        Origin::Will => {
            application.insert("iothub-MessageType".into(), Some("Will".into()));
        }
    }
    let identity = sender.identity;
    system.insert(
        "iothub-connection-device-id".into(),
        identity.device_id.clone(),
    );
    if let Some(m) = &identity.module_id {
        system.insert("iothub-connection-module-id".into(), m.clone());
    }
    system.insert(
        "iothub-connection-auth-method".into(),
        sender.method.stamp(identity),
    );
    system.insert(
        "iothub-connection-auth-generation-id".into(),
        sender.generation_id.into(),
    );
    system.insert("iothub-enqueuedtime".into(), iso8601_millis(now));
    system.insert("iothub-message-source".into(), "Telemetry".into());
    if let Some(model) = sender.model_id {
        system.insert("dt-dataschema".into(), model.into());
    }
    TelemetryEvent {
        seq: 0,
        device_id: identity.device_id.clone(),
        module_id: identity.module_id.clone(),
        enqueued_ms: unix_millis(now),
        system_properties: system,
        application_properties: application,
        body,
    }
}

/// Event Hubs names of the `$.` system properties (PROTOCOL.md §4 table); unknown ones keep
/// their `$.` spelling.
fn system_name(short: &str) -> String {
    match short {
        "mid" => "message-id",
        "cid" => "correlation-id",
        "uid" => "user-id",
        "ct" => "content-type",
        "ce" => "content-encoding",
        "exp" => "absolute-expiry-time",
        "ctime" => "iothub-creation-time-utc",
        "sub" => "dt-subject",
        "on" => "iothub-outputname",
        other => return format!("$.{other}"),
    }
    .into()
}
