//! Direct-method connect and response timeouts through [`Hub::invoke_method`] and fake
//! connections. They run on tokio's monotonic clock, paused here and advanced by tokio
//! whenever every task waits on a timer: the elapsed times below are exact.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::hub::Interests;
use crate::hub::methods::{MethodCall, MethodError};

fn call(response_secs: u64, connect_secs: u64) -> MethodCall {
    MethodCall::new(
        "reboot",
        br#"{"delay":0}"#.to_vec(),
        Duration::from_secs(response_secs),
        Duration::from_secs(connect_secs),
    )
    .unwrap()
}

/// The method request's id; anything else fails the test.
async fn request_id(rx: &mut Outbox) -> String {
    match rx.recv().await {
        Some(ToDevice::MethodRequest {
            method,
            request_id,
            payload,
        }) => {
            assert_eq!(
                (method.as_str(), payload),
                ("reboot", Bytes::from_static(br#"{"delay":0}"#))
            );
            request_id
        }
        other => panic!("expected a method request, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_device_that_never_subscribes_fails_with_404103_after_the_connect_timeout() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    // Connected, but not subscribed to methods: still offline for a method call.
    let (_, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    let start = Instant::now();
    let err = hub.invoke_method(&dev, call(30, 7)).await.unwrap_err();
    assert_eq!(err, MethodError::DeviceNotOnline);
    assert_eq!(err.status_and_code(), (404, 404_103));
    assert_eq!(start.elapsed(), Duration::from_secs(7));
    assert_nothing_sent(&mut rx);
}

#[tokio::test(start_paused = true)]
async fn a_device_that_subscribes_within_the_connect_timeout_gets_the_call() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    let start = Instant::now();
    let device_side = {
        let (hub, dev) = (hub.clone(), dev.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::METHODS);
            let id = request_id(&mut rx).await;
            assert_eq!(start.elapsed(), Duration::from_secs(3), "sent on subscribe");
            tokio::time::sleep(Duration::from_secs(1)).await;
            hub.device_request(&conn, method_response(&id, 201, br#"{"ok":true}"#));
        })
    };
    let result = hub.invoke_method(&dev, call(30, 5)).await.unwrap();
    assert_eq!(
        result.to_json(),
        json!({"status": 201, "payload": {"ok": true}})
    );
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    device_side.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_call_the_device_does_not_answer_fails_with_504101_after_the_response_timeout() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::METHODS);
    let start = Instant::now();
    let invocation = {
        let (hub, dev) = (hub.clone(), dev.clone());
        tokio::spawn(async move { hub.invoke_method(&dev, call(5, 0)).await })
    };
    let first = request_id(&mut rx).await;
    let err = invocation.await.unwrap().unwrap_err();
    assert_eq!(err, MethodError::Timeout);
    assert_eq!(err.status_and_code(), (504, 504_101));
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // The late answer is dropped; the next call has its own id and its own answer.
    hub.device_request(&conn, method_response(&first, 200, b"\"late\""));
    let invocation = {
        let (hub, dev) = (hub.clone(), dev.clone());
        tokio::spawn(async move { hub.invoke_method(&dev, call(5, 0)).await })
    };
    let second = request_id(&mut rx).await;
    assert_ne!(second, first);
    hub.device_request(&conn, method_response(&second, 200, b"\"fresh\""));
    let result = invocation.await.unwrap().unwrap();
    assert_eq!(result.to_json(), json!({"status": 200, "payload": "fresh"}));
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_connection_drops_after_the_request_ends_at_the_response_timeout() {
    let (hub, _) = hub_on_manual_clock();
    let dev = device("dev1");
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::METHODS);
    let start = Instant::now();
    let invocation = {
        let (hub, dev) = (hub.clone(), dev.clone());
        tokio::spawn(async move { hub.invoke_method(&dev, call(10, 0)).await })
    };
    request_id(&mut rx).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Gone before answering: nothing fails the call early (the request was sent), its
    // response timeout ends it.
    hub.disconnected(&conn, "mqtt", "test", Duration::ZERO);
    let err = invocation.await.unwrap().unwrap_err();
    assert_eq!(err, MethodError::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}
