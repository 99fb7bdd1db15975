use iothub_proto::properties::SystemProperty;

use super::*;
use crate::hub::c2d::{AckMode, C2dDelivery};

fn message(device: &str, module: Option<&str>) -> C2dMessage {
    let to = match module {
        Some(m) => format!("/devices/{device}/modules/{m}/messages/devicebound"),
        None => format!("/devices/{device}/messages/devicebound"),
    };
    C2dMessage {
        device_id: device.into(),
        module_id: module.map(Into::into),
        message_id: "m1".into(),
        to,
        content_encoding: None,
        content_type: None,
        correlation_id: None,
        user_id: None,
        ack: AckMode::None,
        properties: Vec::new(),
        body: Bytes::from_static(b"hello world"),
        enqueued_ms: 0,
        expiry_ms: 0,
        delivery_count: 1,
    }
}

#[test]
fn c2d_topic_matches_the_golden_property_order() {
    // The order the official Python device SDK receives from a real hub (docs/protocol.md §5).
    let m = C2dMessage {
        message_id: "84c08717-2be1-404c-9e5d-62f4565ca58b".into(),
        correlation_id: Some("c-9".into()),
        content_type: Some("text/plain".into()),
        content_encoding: Some("utf-8".into()),
        ack: AckMode::Full,
        properties: vec![("property1".into(), "value 1".into())],
        ..message("dev3", None)
    };
    assert_eq!(
        c2d_topic(&m),
        "devices/dev3/messages/devicebound/%24.mid=84c08717-2be1-404c-9e5d-62f4565ca58b\
         &%24.to=%2Fdevices%2Fdev3%2Fmessages%2Fdevicebound&%24.ce=utf-8&%24.ct=text%2Fplain\
         &%24.cid=c-9&iothub-ack=full&property1=value%201"
    );
}

#[test]
fn c2d_topic_parses_back_with_the_proto_parser() {
    let m = C2dMessage {
        user_id: Some("svc".into()),
        properties: vec![("a&b".into(), "x=y".into())],
        ..message("dev 1", Some("mod1"))
    };
    let topic = c2d_topic(&m);
    let parsed = iothub_proto::topic::C2dMessage::parse(&topic).unwrap();
    let bag = parsed.properties();
    assert!(
        bag.system(SystemProperty::To)
            .is_some_and(|v| v.eq_str("/devices/dev 1/modules/mod1/messages/devicebound"))
    );
    assert!(
        bag.system(SystemProperty::UserId)
            .is_some_and(|v| v.eq_str("svc"))
    );
    assert!(
        bag.get("a&b")
            .is_some_and(|v| v.is_some_and(|v| v.eq_str("x=y")))
    );
    assert!(
        bag.get("iothub-ack")
            .is_some_and(|v| v.is_some_and(|v| v.eq_str("none")))
    );
}

#[test]
fn a_c2d_delivery_goes_out_at_qos_1_with_its_lock_token() {
    let out = outgoing(ToDevice::C2d(Box::new(C2dDelivery {
        lock_token: 42,
        redelivery: true,
        message: message("d", None),
    })))
    .unwrap();
    assert_eq!(out.qos, QoS::AtLeastOnce);
    assert_eq!((out.lock_token, out.redelivery), (Some(42), true));
    assert_eq!(&out.payload[..], b"hello world");
    assert!(
        out.topic
            .starts_with("devices/d/messages/devicebound/%24.mid=m1")
    );
}

#[test]
fn twin_method_and_dps_messages_go_out_at_qos_0_on_their_topics() {
    let cases = [
        (
            ToDevice::TwinResponse {
                request_id: "7".into(),
                status: 204,
                version: Some(3),
                body: Bytes::new(),
            },
            "$iothub/twin/res/204/?$rid=7&$version=3",
        ),
        (
            ToDevice::DesiredPatch {
                version: 5,
                body: Bytes::from_static(b"{}"),
            },
            "$iothub/twin/PATCH/properties/desired/?$version=5",
        ),
        (
            ToDevice::MethodRequest {
                method: "reboot".into(),
                request_id: "1".into(),
                payload: Bytes::new(),
            },
            "$iothub/methods/POST/reboot/?$rid=1",
        ),
        (
            ToDevice::DpsResponse {
                request_id: "r".into(),
                status: 202,
                retry_after: Some(3),
                body: Bytes::new(),
            },
            "$dps/registrations/res/202/?$rid=r&retry-after=3",
        ),
    ];
    for (message, topic) in cases {
        let out = outgoing(message).unwrap();
        assert_eq!(
            (out.topic.as_str(), out.qos, out.lock_token),
            (topic, QoS::AtMostOnce, None)
        );
    }
    assert_eq!(
        outgoing(ToDevice::Close(crate::hub::CloseReason::TakenOver)),
        None
    );
}
