//! Golden topic vectors from docs/protocol.md §4-§9 (real traces and SDK output), table-driven.

use iothub_proto::properties::{PropertyWriter, SystemProperty};
use iothub_proto::topic::{
    C2dFilter, DpsPollTopic, DpsRegisterTopic, HubIncoming, Incoming, MethodResponseTopic,
    ReportedPatchTopic, TelemetryTopic, TwinGetTopic,
};
use iothub_proto::{RequestId, Status, encode_into};

/// A received C2D topic and the decoded properties a device must see.
struct C2dVector {
    topic: &'static str,
    device: &'static str,
    properties: &'static [(&'static str, Option<&'static str>)],
}

const C2D: &[C2dVector] = &[
    // docs/protocol.md §5: C SDK sample log.
    C2dVector {
        topic: "devices/my-device-1/messages/devicebound/%24.mid=84c08717-2be1-404c-9e5d-62f4565ca58b&%24.to=%2Fdevices%2Fmy-device-1%2Fmessages%2FdeviceBound&iothub-ack=full",
        device: "my-device-1",
        properties: &[
            ("$.mid", Some("84c08717-2be1-404c-9e5d-62f4565ca58b")),
            ("$.to", Some("/devices/my-device-1/messages/deviceBound")),
            ("iothub-ack", Some("full")),
        ],
    },
    // docs/protocol.md §5: mosquitto_sub after `az iot device c2d-message send`.
    C2dVector {
        topic: "devices/pubsub/messages/devicebound/%24.mid=2c2db32a-0000&%24.to=%2Fdevices%2Fpubsub%2Fmessages%2Fdevicebound&%24.ce=utf-8&iothub-ack=none",
        device: "pubsub",
        properties: &[
            ("$.mid", Some("2c2db32a-0000")),
            ("$.to", Some("/devices/pubsub/messages/devicebound")),
            ("$.ce", Some("utf-8")),
            ("iothub-ack", Some("none")),
        ],
    },
    // docs/protocol.md §5: Java SDK test.
    C2dVector {
        topic: "devices/deviceID/messages/devicebound/%24.mid=m&%24.exp=0&%24.to=%2Fdevices%2FdeviceID%2Fmessages%2FdeviceBound&%24.cid=c&iothub-ack=full&property1=value1",
        device: "deviceID",
        properties: &[
            ("$.mid", Some("m")),
            ("$.exp", Some("0")),
            ("$.to", Some("/devices/deviceID/messages/deviceBound")),
            ("$.cid", Some("c")),
            ("iothub-ack", Some("full")),
            ("property1", Some("value1")),
        ],
    },
    // docs/protocol.md §5: documentation example with a leading `?`, a null and an empty value.
    C2dVector {
        topic: "devices/d1/messages/devicebound/?prop1&prop2=&prop3=a%20string",
        device: "d1",
        properties: &[
            ("prop1", None),
            ("prop2", Some("")),
            ("prop3", Some("a string")),
        ],
    },
    // The Python SDK: what it receives (docs/protocol.md §5).
    C2dVector {
        topic: "devices/dev3/messages/devicebound/%24.mid=84c08717-0000&%24.to=%2Fdevices%2Fdev3%2Fmessages%2Fdevicebound&%24.ce=utf-8&%24.ct=text%2Fplain&%24.cid=c-9&iothub-ack=full&property1=value%201",
        device: "dev3",
        properties: &[
            ("$.mid", Some("84c08717-0000")),
            ("$.to", Some("/devices/dev3/messages/devicebound")),
            ("$.ce", Some("utf-8")),
            ("$.ct", Some("text/plain")),
            ("$.cid", Some("c-9")),
            ("iothub-ack", Some("full")),
            ("property1", Some("value 1")),
        ],
    },
    // No property bag at all.
    C2dVector {
        topic: "devices/dev3/messages/devicebound/",
        device: "dev3",
        properties: &[],
    },
];

#[test]
fn parses_the_real_c2d_topics() {
    for vector in C2D {
        let Ok(Incoming::C2d(message)) = Incoming::parse(vector.topic) else {
            panic!("not parsed as C2D: {}", vector.topic);
        };
        assert!(
            message.device_id().eq_str(vector.device),
            "{}",
            vector.topic
        );
        let read: Vec<(String, Option<String>)> = message
            .properties()
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(|v| v.to_string())))
            .collect();
        let expected: Vec<(String, Option<String>)> = vector
            .properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(read, expected, "{}", vector.topic);
    }
}

#[test]
fn reads_python_c2d_properties_as_the_sdk_hands_them_over() {
    let Ok(Incoming::C2d(message)) = Incoming::parse(C2D[4].topic) else {
        panic!()
    };
    let bag = message.properties();
    assert!(
        bag.system(SystemProperty::CorrelationId)
            .is_some_and(|v| v.eq_str("c-9"))
    );
    assert!(
        bag.system(SystemProperty::ContentType)
            .is_some_and(|v| v.eq_str("text/plain"))
    );
    let app: Vec<String> = bag.application().map(|(k, _)| k.to_string()).collect();
    assert_eq!(app, ["iothub-ack", "property1"]);
}

/// Device-received topics: (topic, expected classification as text).
const DEVICE_RECEIVES: &[(&str, &str)] = &[
    // docs/protocol.md §6: real twin trace.
    (
        "$iothub/twin/res/204/?$rid=0&$version=2",
        "twin 204 rid=0 version=Some(2)",
    ),
    (
        "$iothub/twin/res/200/?$rid=1",
        "twin 200 rid=1 version=None",
    ),
    // docs/protocol.md §6: azure-sdk-for-c error statuses.
    (
        "$iothub/twin/res/400/?$rid=id_one",
        "twin 400 rid=id_one version=None",
    ),
    (
        "$iothub/twin/res/504/?$rid=id_one",
        "twin 504 rid=id_one version=None",
    ),
    // The Python SDK uses UUID rids (docs/protocol.md §6).
    (
        "$iothub/twin/res/204/?$rid=9f1c2c1e-3b1a-4c9e-8f5e-1d2a3b4c5d6e&$version=2",
        "twin 204 rid=9f1c2c1e-3b1a-4c9e-8f5e-1d2a3b4c5d6e version=Some(2)",
    ),
    (
        "$iothub/twin/PATCH/properties/desired/?$version=3",
        "desired version=3",
    ),
    // docs/protocol.md §7 (as the Python SDK receives it).
    (
        "$iothub/methods/POST/component_one*TestMethod/?$rid=1",
        "method component_one*TestMethod rid=1",
    ),
    (
        "$iothub/methods/POST/getMaxMinReport/?$rid=1a",
        "method getMaxMinReport rid=1a",
    ),
    // docs/protocol.md §9.
    (
        "$dps/registrations/res/202/?$rid=1&retry-after=3",
        "dps 202 rid=1 retry=Some(3)",
    ),
    (
        "$dps/registrations/res/200/?$rid=2",
        "dps 200 rid=2 retry=None",
    ),
    (
        "$dps/registrations/res/401/?$rid=1",
        "dps 401 rid=1 retry=None",
    ),
    // Not for a device.
    ("$iothub/twin/GET/?$rid=1", "unrecognized"),
    ("devices/dev3/messages/events/", "unrecognized"),
    ("$iothub/methods/POST/reboot", "malformed: missing query"),
    (
        "$dps/registrations/res/202/?$rid=1&retry-after=soon",
        "malformed: invalid retry-after",
    ),
];

fn describe_device(topic: &str) -> String {
    match Incoming::parse(topic) {
        Ok(Incoming::TwinResponse(r)) => {
            format!(
                "twin {} rid={} version={:?}",
                r.status(),
                r.request_id(),
                r.version()
            )
        }
        Ok(Incoming::DesiredPatch(p)) => format!("desired version={}", p.version()),
        Ok(Incoming::MethodRequest(m)) => format!("method {} rid={}", m.name(), m.request_id()),
        Ok(Incoming::DpsResponse(r)) => format!(
            "dps {} rid={} retry={:?}",
            r.status(),
            r.request_id(),
            r.retry_after()
        ),
        Ok(Incoming::C2d(m)) => format!("c2d {}", m.device_id()),
        Ok(_) => "other".into(),
        Err(iothub_proto::topic::TopicError::Unrecognized) => "unrecognized".into(),
        Err(iothub_proto::topic::TopicError::Malformed(reason)) => format!("malformed: {reason}"),
        Err(_) => "error".into(),
    }
}

#[test]
fn classifies_device_received_topics() {
    for (topic, expected) in DEVICE_RECEIVES {
        assert_eq!(describe_device(topic), *expected, "{topic}");
    }
}

/// Hub-received topics: (topic, expected classification as text).
const HUB_RECEIVES: &[(&str, &str)] = &[
    // The Python SDK's telemetry (docs/protocol.md §4).
    (
        "devices/dev3/messages/events/%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true",
        "telemetry dev3 module=None props=5",
    ),
    // docs/protocol.md §4: the docs' literal `$.` spelling.
    (
        "devices/d1/messages/events/$.ct=application%2Fjson&$.ce=utf-8",
        "telemetry d1 module=None props=2",
    ),
    (
        "devices/d1/modules/filter/messages/events/",
        "telemetry d1 module=Some(\"filter\") props=0",
    ),
    (
        "$iothub/twin/GET/?$rid=0f8fad5b-d9cb-469f-a165-70867728950e",
        "twin-get rid=0f8fad5b-d9cb-469f-a165-70867728950e",
    ),
    (
        "$iothub/twin/PATCH/properties/reported/?$rid=4",
        "reported rid=4",
    ),
    ("$iothub/methods/res/200/?$rid=1a", "method-res 200 rid=1a"),
    (
        "$iothub/methods/res/65535/?$rid=1",
        "method-res 65535 rid=1",
    ),
    (
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        "dps-register rid=1",
    ),
    (
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.d0a671905ea5b2c8.e7173b7b-0000",
        "dps-poll rid=2 op=4.d0a671905ea5b2c8.e7173b7b-0000",
    ),
    ("$iothub/twin/res/200/?$rid=1", "unrecognized"),
    ("devices/d1/messages/devicebound/", "unrecognized"),
    (
        "$iothub/methods/res/ok/?$rid=1",
        "malformed: invalid status",
    ),
];

fn describe_hub(topic: &str) -> String {
    match HubIncoming::parse(topic) {
        Ok(HubIncoming::Telemetry(t)) => format!(
            "telemetry {} module={:?} props={}",
            t.device_id(),
            t.module_id().map(|m| m.to_string()),
            t.properties().iter().count()
        ),
        Ok(HubIncoming::TwinGet(r)) => format!("twin-get rid={}", r.request_id()),
        Ok(HubIncoming::ReportedPatch(r)) => format!("reported rid={}", r.request_id()),
        Ok(HubIncoming::MethodResponse(r)) => {
            format!("method-res {} rid={}", r.status(), r.request_id())
        }
        Ok(HubIncoming::DpsRegister(r)) => format!("dps-register rid={}", r.request_id()),
        Ok(HubIncoming::DpsPoll(p)) => {
            format!("dps-poll rid={} op={}", p.request_id(), p.operation_id())
        }
        Ok(_) => "other".into(),
        Err(iothub_proto::topic::TopicError::Unrecognized) => "unrecognized".into(),
        Err(iothub_proto::topic::TopicError::Malformed(reason)) => format!("malformed: {reason}"),
        Err(_) => "error".into(),
    }
}

#[test]
fn classifies_hub_received_topics() {
    for (topic, expected) in HUB_RECEIVES {
        assert_eq!(describe_hub(topic), *expected, "{topic}");
    }
}

#[test]
fn builds_the_sdk_wire_topics_byte_for_byte() {
    let app = [("alert", "true")];
    let bag = PropertyWriter::new()
        .message_id("mid-1")
        .correlation_id("cid-1")
        .content_type("application/json")
        .content_encoding("utf-8")
        .application(&app);
    let built = [
        (
            TelemetryTopic::new("dev3").properties(bag).to_string(),
            "devices/dev3/messages/events/%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true",
        ),
        (
            TelemetryTopic::new("dev3").to_string(),
            "devices/dev3/messages/events/",
        ),
        (
            C2dFilter::new("dev3").to_string(),
            "devices/dev3/messages/devicebound/#",
        ),
        (
            TwinGetTopic::new(RequestId::new("42")).to_string(),
            "$iothub/twin/GET/?$rid=42",
        ),
        (
            ReportedPatchTopic::new(RequestId::Number(5)).to_string(),
            "$iothub/twin/PATCH/properties/reported/?$rid=5",
        ),
        (
            MethodResponseTopic::new(RequestId::new("1a"), 200).to_string(),
            "$iothub/methods/res/200/?$rid=1a",
        ),
        (
            DpsRegisterTopic::new(RequestId::Number(1)).to_string(),
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
        ),
        (
            DpsPollTopic::new(RequestId::Number(2), "4.d0a671905ea5b2c8.e7173b7b-0000").to_string(),
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.d0a671905ea5b2c8.e7173b7b-0000",
        ),
    ];
    for (got, expected) in built {
        assert_eq!(got, expected);
    }
}

#[test]
fn builders_write_into_exactly_sized_buffers_without_allocating() {
    let topic = MethodResponseTopic::new(RequestId::new("1a"), Status::OK);
    let mut buf = [0u8; 32];
    assert_eq!(
        encode_into(&topic, &mut buf),
        Ok("$iothub/methods/res/200/?$rid=1a")
    );
    let mut small = [0u8; 31];
    assert_eq!(
        encode_into(&topic, &mut small).map_err(|e| e.required),
        Err(32)
    );
}
