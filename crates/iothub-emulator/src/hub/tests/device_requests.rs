//! A device's requests and what the hub sends it back, through fake connections: twin
//! requests, desired patches, C2D delivery and completion, direct methods.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use serde_json::json;

use super::*;
use crate::hub::c2d::{AckMode, OutgoingMessage};
use crate::hub::methods::{MethodCall, MethodError};
use crate::hub::twin::TwinError;
use crate::hub::{HubError, Interests};
use crate::mqtt::outgoing;

/// The MQTT topic and QoS the adapter publishes `message` with.
fn wire(message: &ToDevice) -> (String, QoS) {
    let publish = outgoing(message.clone()).expect("not a close");
    (publish.topic, publish.qos)
}

#[tokio::test]
async fn twin_requests_are_answered_on_the_connection_as_in_the_seed_trace() {
    let (hub, _) = hub_on_manual_clock();
    create_device(&hub, "dev1").await;
    let (conn, mut rx) = hub.attach_test_connection(&device("dev1"), Interests::TWIN_RESPONSES);
    hub.device_request(
        &conn,
        DeviceRequest::ReportedPatch {
            request_id: "0".into(),
            body: Bytes::from_static(br#"{"temperature":32}"#),
        },
    );
    let answer = next(&mut rx).await;
    assert_eq!(
        answer,
        ToDevice::TwinResponse {
            request_id: "0".into(),
            status: 204,
            version: Some(2),
            body: Bytes::new(),
        }
    );
    assert_eq!(
        wire(&answer),
        (
            "$iothub/twin/res/204/?$rid=0&$version=2".into(),
            QoS::AtMostOnce
        )
    );

    hub.device_request(
        &conn,
        DeviceRequest::TwinGet {
            request_id: "1".into(),
        },
    );
    let answer = next(&mut rx).await;
    assert_eq!(
        answer,
        ToDevice::TwinResponse {
            request_id: "1".into(),
            status: 200,
            version: None,
            body: Bytes::from_static(
                br#"{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}"#
            ),
        }
    );
    assert_eq!(wire(&answer).0, "$iothub/twin/res/200/?$rid=1");
}

#[tokio::test]
async fn desired_changes_reach_only_subscribed_devices() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    let (_, mut rx) = hub.attach_test_connection(&dev, Interests::DESIRED);
    let body = json!({"properties": {"desired": {"targetTemperature": 23}}});
    let update = hub.patch_twin(&dev, body.clone(), None).await.unwrap();
    assert_eq!(update.twin.desired.version, 2);
    let patch = next(&mut rx).await;
    assert_eq!(
        patch,
        ToDevice::DesiredPatch {
            version: 2,
            body: Bytes::from_static(br#"{"targetTemperature":23,"$version":2}"#),
        }
    );
    assert_eq!(
        wire(&patch).0,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );

    let quiet = device("dev2");
    let (_, mut quiet_rx) = hub.attach_test_connection(&quiet, Interests::TWIN_RESPONSES);
    let update = hub.patch_twin(&quiet, body, None).await.unwrap();
    assert!(update.notification.is_some(), "desired properties changed");
    assert_nothing_sent(&mut quiet_rx);

    let err = hub
        .patch_twin(&dev, json!({"tags": {}}), Some("\"AAAAAAAAAAA=\"".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HubError::Twin(TwinError::PreconditionFailed)),
        "{err:?}"
    );
    assert_nothing_sent(&mut rx);
}

#[tokio::test]
async fn c2d_is_delivered_completed_by_ack_and_redelivered_after_a_reconnect() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev3");
    let message = |mid: &str| OutgoingMessage {
        body: b"hello".to_vec(),
        message_id: Some(mid.into()),
        ack: AckMode::Full,
        ..OutgoingMessage::default()
    };
    // queued while offline
    hub.send_c2d(&dev, message("m1")).await.unwrap();
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    let first = next_c2d(&mut rx).await;
    assert_eq!(first.message.message_id, "m1");
    assert_eq!(first.message.body, Bytes::from_static(b"hello"));
    assert!(!first.redelivery);
    let out = outgoing(ToDevice::C2d(Box::new(first.clone()))).unwrap();
    assert!(
        out.topic
            .starts_with("devices/dev3/messages/devicebound/%24.mid=m1&"),
        "{}",
        out.topic
    );
    assert_eq!(
        (out.qos, out.lock_token, out.redelivery),
        (QoS::AtLeastOnce, Some(first.lock_token), false)
    );

    // not acknowledged: the connection drops, the next one gets it again
    hub.disconnected(&conn, "mqtt", "test", Duration::ZERO);
    settle(&hub).await;
    assert!(!hub.is_connected(&dev));
    assert!(feedback(&hub).await.is_empty(), "nothing completed yet");
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    let again = next_c2d(&mut rx).await;
    assert!(again.redelivery);
    assert_eq!(again.lock_token, first.lock_token);
    assert_eq!(again.message.message_id, "m1");
    assert_eq!(again.message.delivery_count, 2);
    let out_again = outgoing(ToDevice::C2d(Box::new(again.clone()))).unwrap();
    assert_eq!(out_again.topic, out.topic);
    assert!(out_again.redelivery, "sent with DUP");

    hub.c2d_delivered(&conn, again.lock_token);
    // a message sent while connected goes out at once
    hub.send_c2d(&dev, message("m2")).await.unwrap();
    let second = next_c2d(&mut rx).await;
    assert_eq!(second.message.message_id, "m2");
    assert!(!second.redelivery);
    settle(&hub).await;
    assert_eq!(
        feedback(&hub).await,
        [("m1".to_owned(), "Success".to_owned())]
    );
    assert_nothing_sent(&mut rx);
}

#[tokio::test]
async fn method_calls_round_trip_through_the_connection() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    let offline = MethodCall::new(
        "reboot",
        b"null".to_vec(),
        Duration::from_secs(5),
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(
        hub.invoke_method(&dev, offline).await,
        Err(MethodError::DeviceNotOnline)
    );

    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::METHODS);
    let call = MethodCall::new(
        "getMaxMinReport",
        br#"{"since":"2026-01-01"}"#.to_vec(),
        Duration::from_secs(30),
        Duration::ZERO,
    )
    .unwrap();
    let invocation = {
        let (hub, dev) = (hub.clone(), dev.clone());
        tokio::spawn(async move { hub.invoke_method(&dev, call).await })
    };
    let request = next(&mut rx).await;
    assert_eq!(
        request,
        ToDevice::MethodRequest {
            method: "getMaxMinReport".into(),
            request_id: "1".into(),
            payload: Bytes::from_static(br#"{"since":"2026-01-01"}"#),
        }
    );
    assert_eq!(
        wire(&request),
        (
            "$iothub/methods/POST/getMaxMinReport/?$rid=1".into(),
            QoS::AtMostOnce
        )
    );
    hub.device_request(&conn, method_response("1", 200, br#"{"max":30}"#));
    let result = invocation.await.unwrap().unwrap();
    assert_eq!(
        result.to_json(),
        json!({"status": 200, "payload": {"max": 30}})
    );
}

#[tokio::test]
async fn a_method_response_from_another_connection_does_not_complete_the_call() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::METHODS);
    let (stranger, _stranger_rx) = hub.attach_test_connection(&device("dev2"), Interests::METHODS);
    let call = MethodCall::new(
        "ping",
        b"null".to_vec(),
        Duration::from_secs(30),
        Duration::ZERO,
    )
    .unwrap();
    let invocation = {
        let (hub, dev) = (hub.clone(), dev.clone());
        tokio::spawn(async move { hub.invoke_method(&dev, call).await })
    };
    let ToDevice::MethodRequest { request_id, .. } = next(&mut rx).await else {
        panic!("expected the method request");
    };
    // dev2 answers with dev1's request id: ignored.
    hub.device_request(&stranger, method_response(&request_id, 500, b"{}"));
    tokio::task::yield_now().await;
    assert!(!invocation.is_finished());
    hub.device_request(&conn, method_response(&request_id, 200, b"\"pong\""));
    let result = invocation.await.unwrap().unwrap();
    assert_eq!(result.to_json(), json!({"status": 200, "payload": "pong"}));
}
