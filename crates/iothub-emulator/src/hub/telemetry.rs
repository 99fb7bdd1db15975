//! Stamping device-to-cloud messages (docs/protocol.md §4).
//!
//! The device's property bag is split into system properties (`$.mid` → `message-id`, …) and
//! application properties; the hub then adds the `iothub-*` properties a real hub writes.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use iothub_proto::properties::PropertyBag;

use super::auth::{AuthMethod, Identity};
use crate::store::StoreError;
use crate::store::events::{self, EncodedEvent, TelemetryEvent};
use crate::timestamp::unix_millis;

/// How the message reached the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A normal PUBLISH; `retain` is the MQTT RETAIN flag.
    Publish {
        /// RETAIN was set: not stored, forwarded with `mqtt-retain: true` (docs/protocol.md §1.5).
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
    let connection = ConnectionStamp::new(sender);
    connection.event(connection.message(properties, body, origin, now))
}

/// What the hub stamps on every message of one connection, worked out once when it connects.
///
/// A message is then stamped in two parts: what the device sent ([`ConnectionStamp::message`],
/// per message, cheap) and the connection's part, which the event log stores once
/// ([`ConnectionStamp::stored`], [`ConnectionStamp::encode`]) and the live feed adds only when
/// someone listens ([`ConnectionStamp::event`]).
///
/// # Example
/// ```
/// use iothub_emulator::hub::auth::{AuthMethod, Identity};
/// use iothub_emulator::hub::telemetry::{ConnectionStamp, Origin, Sender};
/// let id = Identity { device_id: "d1".into(), module_id: None };
/// let sender = Sender { identity: &id, method: &AuthMethod::IdentityKey, model_id: Some("dtmi:x;1"), generation_id: "7" };
/// let connection = ConnectionStamp::new(&sender);
/// let m = connection.message("%24.ct=application%2Fjson&k=v", "{}".into(), Origin::Publish { retain: false }, std::time::SystemTime::UNIX_EPOCH);
/// // Per message: only what the device sent.
/// assert_eq!(m.system_properties.len(), 1);
/// assert!(connection.stored().contains("dtmi:x;1"));
/// let event = connection.event(m);
/// assert_eq!(event.system_properties["content-type"], "application/json");
/// assert_eq!(event.system_properties["dt-dataschema"], "dtmi:x;1");
/// assert_eq!(event.system_properties["iothub-enqueuedtime"], "1970-01-01T00:00:00.000Z");
/// assert_eq!(event.application_properties["k"].as_deref(), Some("v"));
/// ```
#[derive(Debug)]
pub struct ConnectionStamp {
    identity: Identity,
    method: AuthMethod,
    generation_id: String,
    model_id: Option<String>,
    /// The connection's part as a JSON object (`event_stamps.properties`), made on the first
    /// telemetry: an idle connection (most of a fleet) never pays for it.
    stored: OnceLock<Arc<str>>,
}

/// One message as a connection received it: the device's own properties, split, and the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMessage {
    /// `$.`-properties by their Event Hubs names (`message-id`, `content-type`, ...).
    pub system_properties: BTreeMap<String, String>,
    /// Application properties, plus `mqtt-retain` / `iothub-MessageType` from the origin.
    pub application_properties: BTreeMap<String, Option<String>>,
    /// The body.
    pub body: Bytes,
    /// When the hub accepted it, milliseconds since the Unix epoch.
    pub enqueued_ms: i64,
}

impl ConnectionStamp {
    /// The stamp of a connection by `sender`.
    #[must_use]
    pub fn new(sender: &Sender<'_>) -> Self {
        Self {
            identity: sender.identity.clone(),
            method: sender.method.clone(),
            generation_id: sender.generation_id.to_owned(),
            model_id: sender.model_id.map(str::to_owned),
            stored: OnceLock::new(),
        }
    }

    /// Who sends.
    #[must_use]
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// `iothub-connection-auth-method`, `iothub-connection-auth-generation-id` and
    /// `dt-dataschema` (from the model id), by their Event Hubs names.
    fn fixed(&self) -> BTreeMap<String, String> {
        let mut fixed = BTreeMap::new();
        fixed.insert(
            "iothub-connection-auth-method".to_owned(),
            self.method.stamp(&self.identity),
        );
        fixed.insert(
            "iothub-connection-auth-generation-id".to_owned(),
            self.generation_id.clone(),
        );
        if let Some(model) = &self.model_id {
            fixed.insert("dt-dataschema".to_owned(), model.clone());
        }
        fixed
    }

    /// The connection's part as the event log stores it (a JSON object).
    pub fn stored(&self) -> &Arc<str> {
        self.stored.get_or_init(|| {
            // invariant: a map of strings always serializes.
            serde_json::to_string(&self.fixed())
                .unwrap_or_default()
                .into()
        })
    }

    /// Splits one message's property bag (docs/protocol.md §4) and notes the time.
    #[must_use]
    pub fn message(
        &self,
        properties: &str,
        body: Bytes,
        origin: Origin,
        now: SystemTime,
    ) -> DeviceMessage {
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
        DeviceMessage {
            system_properties: system,
            application_properties: application,
            body,
            enqueued_ms: unix_millis(now),
        }
    }

    /// The message's row in the event log: the device's part, and this connection's stamp
    /// by reference.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a property map cannot be encoded.
    pub fn encode(&self, message: &DeviceMessage) -> Result<EncodedEvent, StoreError> {
        EncodedEvent::from_parts(
            &self.identity.device_id,
            self.identity.module_id.as_deref(),
            message.enqueued_ms,
            Some(self.stored().clone()),
            &message.system_properties,
            &message.application_properties,
            message.body.clone(),
        )
    }

    /// The whole stamped event, as the live feed and the event log's readers see it.
    #[must_use]
    pub fn event(&self, message: DeviceMessage) -> TelemetryEvent {
        let DeviceMessage {
            mut system_properties,
            application_properties,
            body,
            enqueued_ms,
        } = message;
        let identity = &self.identity;
        system_properties.extend(self.fixed());
        // The same derivation the event log's readers get (a device's `$.` properties never
        // have these names, so nothing of its own is overridden).
        events::add_derived(
            &mut system_properties,
            &identity.device_id,
            identity.module_id.as_deref(),
            enqueued_ms,
        );
        TelemetryEvent {
            seq: 0,
            partition: 0,
            partition_seq: 0,
            device_id: identity.device_id.clone(),
            module_id: identity.module_id.clone(),
            enqueued_ms,
            system_properties,
            application_properties,
            body,
        }
    }
}

/// Event Hubs names of the `$.` system properties (docs/protocol.md §4 table); unknown ones keep
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use rusqlite::Connection;

    use super::*;
    use crate::hub::auth::AuthMethod;
    use crate::store::events;

    #[test]
    fn the_live_event_and_the_logged_row_of_a_message_read_the_same() {
        let log = Connection::open_in_memory().unwrap();
        log.execute_batch(events::SCHEMA).unwrap();
        log.execute_batch(events::SCHEMA_STAMPS).unwrap();
        log.execute_batch(events::SCHEMA_PARTITIONS).unwrap();
        let identity = Identity {
            device_id: "thermostat".into(),
            module_id: Some("sensor".into()),
        };
        let connection = ConnectionStamp::new(&Sender {
            identity: &identity,
            method: &AuthMethod::X509,
            model_id: Some("dtmi:com:example:Thermostat;1"),
            generation_id: "638",
        });
        for (bag, origin) in [
            (
                "%24.mid=m1&%24.ct=application%2Fjson&alert=true&flag",
                Origin::Publish { retain: true },
            ),
            ("", Origin::Will),
        ] {
            let now = UNIX_EPOCH + Duration::from_millis(1_765_000_000_123);
            let message = connection.message(bag, Bytes::from_static(b"{\"t\":21}"), origin, now);
            let row = connection.encode(&message).unwrap();
            let seq = events::insert_all(&log, &[row]).unwrap()[0].seq;
            let mut live = connection.event(message);
            live.seq = seq;
            live.partition_seq = seq - 1;
            let logged = events::read_after(&log, seq - 1, 1).unwrap().remove(0);
            assert_eq!(logged, live);
        }
        let e = events::read_after(&log, 0, 1).unwrap().remove(0);
        assert_eq!(e.system_properties["content-type"], "application/json");
        assert_eq!(e.system_properties["iothub-connection-module-id"], "sensor");
        assert_eq!(
            e.system_properties["iothub-enqueuedtime"],
            "2025-12-06T05:46:40.123Z"
        );
        assert_eq!(e.application_properties["flag"], None);
        assert_eq!(
            e.application_properties["mqtt-retain"].as_deref(),
            Some("true")
        );
    }
}
