//! The MQTT wire shapes of the hub's messages, built and parsed with `iothub-proto`: which
//! topic each [`ToDevice`] is published on (docs/protocol.md §5-§7, §9), and what a device's
//! PUBLISH asks for.

use bytes::Bytes;
use iothub_proto::properties::{PropertyWriter, SystemProperty};
use iothub_proto::topic::{
    C2dTopic, DesiredPatchTopic, DpsResponseTopic, HubIncoming, MethodRequestTopic,
    TwinResponseTopic,
};
use iothub_proto::{RequestId, Status};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;

use crate::hub::DeviceRequest;
use crate::hub::ToDevice;
use crate::hub::c2d::C2dMessage;

/// Maximum D2C message size: body plus properties (docs/protocol.md §4, §11).
pub(crate) const MAX_D2C: usize = 256 * 1024;

/// A hub message as an MQTT publish: topic, payload, the QoS the hub wants (capped by the
/// subscription's), and the C2D lock token to report once it is delivered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OutgoingPublish {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) lock_token: Option<i64>,
    /// A redelivery: sent with DUP (MQTT 3.1.1 §3.3.1.1) when at QoS 1.
    pub(crate) redelivery: bool,
}

/// The publish for `message`; `None` for [`ToDevice::Close`].
pub(crate) fn outgoing(message: ToDevice) -> Option<OutgoingPublish> {
    let at_most_once = |topic: String, payload: Bytes| OutgoingPublish {
        topic,
        payload,
        qos: QoS::AtMostOnce,
        lock_token: None,
        redelivery: false,
    };
    Some(match message {
        ToDevice::C2d(delivery) => OutgoingPublish {
            topic: c2d_topic(&delivery.message),
            payload: delivery.message.body,
            qos: QoS::AtLeastOnce,
            lock_token: Some(delivery.lock_token),
            redelivery: delivery.redelivery,
        },
        // Real hubs answer twin requests at QoS 0 (docs/protocol.md §6 "Observed QoS").
        ToDevice::TwinResponse {
            request_id,
            status,
            version,
            body,
        } => {
            let mut topic =
                TwinResponseTopic::new(Status::from(status), RequestId::new(&request_id));
            if let Some(v) = version {
                topic = topic.version(v);
            }
            at_most_once(topic.to_string(), body)
        }
        ToDevice::DesiredPatch { version, body } => {
            at_most_once(DesiredPatchTopic::new(version).to_string(), body)
        }
        // docs/protocol.md §7: method requests are QoS 0.
        ToDevice::MethodRequest {
            method,
            request_id,
            payload,
        } => at_most_once(
            MethodRequestTopic::new(&method, RequestId::new(&request_id)).to_string(),
            payload,
        ),
        ToDevice::DpsResponse {
            request_id,
            status,
            retry_after,
            body,
        } => {
            let mut topic =
                DpsResponseTopic::new(Status::from(status), RequestId::new(&request_id));
            if let Some(s) = retry_after {
                topic = topic.retry_after(s);
            }
            at_most_once(topic.to_string(), body)
        }
        ToDevice::Close(_) => return None,
    })
}

/// `devices/{id}[/modules/{m}]/messages/devicebound/{bag}` with the properties in the order
/// real hubs write them (docs/protocol.md §5): `$.mid`, `$.to`, `$.ce`, `$.ct`, `$.cid`,
/// `$.uid`, `iothub-ack`, then application properties.
pub(crate) fn c2d_topic(m: &C2dMessage) -> String {
    let app: Vec<(&str, &str)> = m
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // PropertyWriter has one fixed order for system properties; the hub's order differs
    // (`$.ce` and `$.ct` before `$.cid`), so the bag is written as consecutive segments.
    let mut segments = vec![
        PropertyWriter::new()
            .message_id(&m.message_id)
            .system(SystemProperty::To, &m.to),
    ];
    if let Some(ce) = &m.content_encoding {
        segments.push(PropertyWriter::new().content_encoding(ce));
    }
    if let Some(ct) = &m.content_type {
        segments.push(PropertyWriter::new().content_type(ct));
    }
    let mut ids = PropertyWriter::new();
    if let Some(cid) = &m.correlation_id {
        ids = ids.correlation_id(cid);
    }
    if let Some(uid) = &m.user_id {
        ids = ids.user_id(uid);
    }
    segments.push(ids);
    segments.push(PropertyWriter::new().ack(m.ack.as_str()).application(&app));
    let bag: Vec<String> = segments
        .iter()
        .filter(|s| !s.is_empty())
        .map(ToString::to_string)
        .collect();
    let mut topic = C2dTopic::new(&m.device_id);
    if let Some(module) = &m.module_id {
        topic = topic.module(module);
    }
    format!("{topic}{}", bag.join("&"))
}

/// Who published: a device or module identity, or a DPS registration.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Publisher<'a> {
    /// A device or module.
    Device {
        device_id: &'a str,
        module_id: Option<&'a str>,
    },
    /// A DPS registration.
    Dps,
}

/// A device's PUBLISH, classified and authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// D2C telemetry: raw property bag and body.
    Telemetry {
        properties: String,
        body: Bytes,
        retain: bool,
    },
    /// Any other request to the hub.
    Request(DeviceRequest),
}

/// Classifies and authorises a publish; `Err` is the reason the connection closes
/// (docs/protocol.md §1.5: a device may only use its own topics).
pub(crate) fn incoming(
    publisher: Publisher<'_>,
    publish: &Publish,
) -> Result<Incoming, &'static str> {
    if let Some(reason) = super::publish_checks::topic_problem(&publish.topic) {
        return Err(reason);
    }
    let parsed = HubIncoming::parse(&publish.topic).map_err(|_| "publish to an unknown topic")?;
    let body = publish.payload.clone();
    let rid = |r: RequestId<'_>| r.to_string();
    let request = match (publisher, parsed) {
        (Publisher::Device { .. }, HubIncoming::Telemetry(t)) => {
            if !own_telemetry_topic(publisher, &publish.topic) {
                return Err("telemetry on another identity's topic");
            }
            let properties = t.properties().raw().to_string();
            if let Some(reason) = super::publish_checks::property_bag_problem(&properties) {
                return Err(reason);
            }
            if body.len() + properties.len() > MAX_D2C {
                return Err("D2C message over 256 KB");
            }
            return Ok(Incoming::Telemetry {
                properties,
                body,
                retain: publish.retain,
            });
        }
        (Publisher::Device { .. }, HubIncoming::TwinGet(r)) => DeviceRequest::TwinGet {
            request_id: rid(r.request_id()),
        },
        (Publisher::Device { .. }, HubIncoming::ReportedPatch(r)) => DeviceRequest::ReportedPatch {
            request_id: rid(r.request_id()),
            body,
        },
        (Publisher::Device { .. }, HubIncoming::MethodResponse(r)) => {
            DeviceRequest::MethodResponse {
                request_id: rid(r.request_id()),
                status: i32::from(r.status().code()),
                body,
            }
        }
        (Publisher::Dps, HubIncoming::DpsRegister(r)) => DeviceRequest::DpsRegister {
            request_id: rid(r.request_id()),
            body,
        },
        (Publisher::Dps, HubIncoming::DpsPoll(p)) => DeviceRequest::DpsPoll {
            request_id: rid(p.request_id()),
            operation_id: p.operation_id().to_string(),
        },
        _ => return Err("publish to a topic the identity may not use"),
    };
    Ok(Incoming::Request(request))
}

/// Whether `topic` is the publisher's own telemetry topic (a Will must be one).
pub(crate) fn own_telemetry_topic(publisher: Publisher<'_>, topic: &str) -> bool {
    let Publisher::Device {
        device_id,
        module_id,
    } = publisher
    else {
        return false;
    };
    let Ok(HubIncoming::Telemetry(t)) = HubIncoming::parse(topic) else {
        return false;
    };
    t.device_id().eq_str(device_id)
        && match (module_id, t.module_id()) {
            (None, None) => true,
            (Some(m), Some(tm)) => tm.eq_str(m),
            _ => false,
        }
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
