use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn call(name: &str, response: u64, connect: u64) -> MethodCall {
    MethodCall::new(
        name,
        b"{\"since\":\"2026-01-01\"}".to_vec(),
        Duration::from_secs(response),
        Duration::from_secs(connect),
    )
    .unwrap()
}

fn transmits(m: &mut Methods) -> Vec<Outbound> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

fn completions(m: &mut Methods) -> Vec<Completion> {
    std::iter::from_fn(|| m.poll_completion()).collect()
}

#[test]
fn request_goes_out_at_once_to_a_subscribed_device_and_the_response_completes_it() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    m.handle_subscribed("dev1", None, 7, t0);
    let id = m.invoke("dev1", None, call("getMaxMinReport", 30, 0), t0);
    let out = transmits(&mut m);
    assert_eq!(
        out,
        [Outbound {
            connection: 7,
            method: "getMaxMinReport".into(),
            request_id: "1".into(),
            payload: b"{\"since\":\"2026-01-01\"}".to_vec()
        }]
    );
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    assert_eq!(m.handle_response(7, "1", 200, br#"{"max": 30}"#), Some(id));
    let done = completions(&mut m);
    assert_eq!(done.len(), 1);
    let result = done[0].result.clone().unwrap();
    assert_eq!(
        result.to_json(),
        json!({"status": 200, "payload": {"max": 30}})
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn request_ids_are_counted_per_connection() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    m.handle_subscribed("a", None, 1, t0);
    m.handle_subscribed("b", None, 2, t0);
    m.invoke("a", None, call("x", 30, 0), t0);
    m.invoke("a", None, call("y", 30, 0), t0);
    m.invoke("b", None, call("z", 30, 0), t0);
    let topics: Vec<(u64, String)> = transmits(&mut m)
        .into_iter()
        .map(|o| (o.connection, topic_of(&o)))
        .collect();
    assert_eq!(
        topics,
        [
            (1, "$iothub/methods/POST/x/?$rid=1".into()),
            (1, "$iothub/methods/POST/y/?$rid=2".into()),
            (2, "$iothub/methods/POST/z/?$rid=1".into()),
        ]
    );
}

#[test]
fn responses_with_unknown_ids_or_from_other_connections_are_ignored() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    m.handle_subscribed("a", None, 1, t0);
    let id = m.invoke("a", None, call("x", 30, 0), t0);
    assert_eq!(m.handle_response(1, "2", 200, b""), None);
    assert_eq!(m.handle_response(1, "01", 200, b""), None);
    assert_eq!(m.handle_response(9, "1", 200, b""), None);
    assert!(completions(&mut m).is_empty());
    assert_eq!(m.handle_response(1, "1", 65535, b""), Some(id));
    assert_eq!(
        m.handle_response(1, "1", 200, b""),
        None,
        "a second answer is ignored"
    );
    let done = completions(&mut m);
    assert_eq!(
        done[0].result,
        Ok(MethodResult {
            status: 65535,
            payload: serde_json::Value::Null
        })
    );
}

#[test]
fn offline_device_with_zero_connect_timeout_fails_at_once_with_404103() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    let id = m.invoke("dev1", None, call("reboot", 30, 0), t0);
    assert!(transmits(&mut m).is_empty());
    let done = completions(&mut m);
    assert_eq!(
        done,
        [Completion {
            call: id,
            result: Err(MethodError::DeviceNotOnline)
        }]
    );
    assert_eq!(
        MethodError::DeviceNotOnline.status_and_code(),
        (404, 404_103)
    );
}

#[test]
fn connected_but_unsubscribed_device_counts_as_offline() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    m.handle_subscribed("dev1", None, 3, t0);
    m.handle_disconnected(3);
    m.invoke("dev1", None, call("reboot", 30, 0), t0);
    assert_eq!(
        completions(&mut m)[0].result,
        Err(MethodError::DeviceNotOnline)
    );
}

#[test]
fn a_call_waits_for_the_device_to_subscribe_within_the_connect_timeout() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    let id = m.invoke("dev1", None, call("reboot", 10, 20), t0);
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    m.handle_timeout(t0 + Duration::from_secs(19));
    assert!(completions(&mut m).is_empty());
    m.handle_subscribed("dev1", None, 5, t0 + Duration::from_secs(19));
    let out = transmits(&mut m);
    assert_eq!(topic_of(&out[0]), "$iothub/methods/POST/reboot/?$rid=1");
    // the response timeout starts when the request is sent
    assert_eq!(m.deadline(id), Some(t0 + Duration::from_secs(29)));
    m.handle_timeout(t0 + Duration::from_secs(28));
    assert!(completions(&mut m).is_empty());
    m.handle_timeout(t0 + Duration::from_secs(29));
    let done = completions(&mut m);
    assert_eq!(
        done,
        [Completion {
            call: id,
            result: Err(MethodError::Timeout)
        }]
    );
    assert_eq!(MethodError::Timeout.status_and_code(), (504, 504_101));
    assert_eq!(
        m.handle_response(5, "1", 200, b"{}"),
        None,
        "late answers are ignored"
    );
}

#[test]
fn connect_timeout_expiry_gives_404103() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    let id = m.invoke("dev1", Some("mod1"), call("reboot", 10, 5), t0);
    m.handle_subscribed("dev1", None, 1, t0); // the device, not the module
    assert!(transmits(&mut m).is_empty());
    m.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        completions(&mut m),
        [Completion {
            call: id,
            result: Err(MethodError::DeviceNotOnline)
        }]
    );
}

#[test]
fn oversized_responses_fail_the_call_and_non_json_bodies_become_strings() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    m.handle_subscribed("a", None, 1, t0);
    m.invoke("a", None, call("x", 30, 0), t0);
    m.invoke("a", None, call("y", 30, 0), t0);
    m.handle_response(1, "1", 200, &vec![b' '; MAX_PAYLOAD_BYTES + 1]);
    m.handle_response(1, "2", 500, b"oops");
    let done = completions(&mut m);
    assert_eq!(done[0].result, Err(MethodError::ResponseTooLarge));
    assert_eq!(
        done[1].result,
        Ok(MethodResult {
            status: 500,
            payload: json!("oops")
        })
    );
}

#[test]
fn cancelled_calls_produce_nothing() {
    let t0 = Instant::now();
    let mut m = Methods::new();
    m.handle_subscribed("a", None, 1, t0);
    let id = m.invoke("a", None, call("x", 30, 0), t0);
    m.cancel(id);
    assert_eq!(m.handle_response(1, "1", 200, b""), None);
    m.handle_timeout(t0 + Duration::from_secs(60));
    assert!(completions(&mut m).is_empty());
}

#[test]
fn rest_bodies_are_validated() {
    let table = [
        (json!({"methodName": "reboot"}), Ok((30, 0))),
        (
            json!({"methodName": "c*cmd", "responseTimeoutInSeconds": 5, "connectTimeoutInSeconds": 300}),
            Ok((5, 300)),
        ),
        (
            json!({"methodName": "reboot", "responseTimeoutInSeconds": 300}),
            Ok((300, 0)),
        ),
        (
            json!({"methodName": "reboot", "responseTimeoutInSeconds": 4}),
            Err(400),
        ),
        (
            json!({"methodName": "reboot", "responseTimeoutInSeconds": 301}),
            Err(400),
        ),
        (
            json!({"methodName": "reboot", "connectTimeoutInSeconds": 301}),
            Err(400),
        ),
        (
            json!({"methodName": "reboot", "connectTimeoutInSeconds": -1}),
            Err(400),
        ),
        (json!({"methodName": "re boot"}), Err(400)),
        (json!({"methodName": "a/b"}), Err(400)),
        (json!({"methodName": "$x"}), Err(400)),
        (json!({"methodName": ""}), Err(400)),
        (json!({"payload": 1}), Err(400)),
        (json!("reboot"), Err(400)),
        (
            json!({"methodName": "big", "payload": "x".repeat(MAX_PAYLOAD_BYTES)}),
            Err(413),
        ),
    ];
    for (body, expected) in table {
        let got = MethodCall::from_json(&body)
            .map(|c| (c.response_timeout.as_secs(), c.connect_timeout.as_secs()))
            .map_err(|e| e.status_and_code().0);
        assert_eq!(got, expected, "{body}");
    }
    let no_payload = MethodCall::from_json(&json!({"methodName": "reboot"})).unwrap();
    assert_eq!(no_payload.payload, b"null");
}

#[tokio::test(start_paused = true)]
async fn invoker_resolves_with_the_device_answer() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = sent.clone();
    let invoker = MethodInvoker::new(move |o| sink.lock().unwrap().push(o));
    invoker.handle_subscribed("dev1", None, 4);
    let device = {
        let invoker = invoker.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let out = sent.lock().unwrap().pop().unwrap();
            assert_eq!(topic_of(&out), "$iothub/methods/POST/ping/?$rid=1");
            assert!(invoker.handle_response(4, "1", 200, br#"{"pong":true}"#));
        })
    };
    let result = invoker
        .invoke("dev1", None, call("ping", 30, 0))
        .await
        .unwrap();
    assert_eq!(
        result.to_json(),
        json!({"status": 200, "payload": {"pong": true}})
    );
    device.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn invoker_times_out_with_504_after_the_response_timeout() {
    let invoker = MethodInvoker::new(|_| {});
    invoker.handle_subscribed("dev1", None, 4);
    let start = tokio::time::Instant::now();
    let err = invoker
        .invoke("dev1", None, call("ping", 5, 0))
        .await
        .unwrap_err();
    assert_eq!(err, MethodError::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn invoker_waits_for_a_late_subscriber_then_for_its_answer() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = sent.clone();
    let invoker = MethodInvoker::new(move |o| sink.lock().unwrap().push(o));
    let late = {
        let invoker = invoker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            invoker.handle_subscribed("dev1", None, 9);
        })
    };
    let start = tokio::time::Instant::now();
    let err = invoker
        .invoke("dev1", None, call("ping", 10, 5))
        .await
        .unwrap_err();
    late.await.unwrap();
    assert_eq!(err, MethodError::Timeout, "sent at 3 s, no answer by 13 s");
    assert_eq!(start.elapsed(), Duration::from_secs(13));
    assert_eq!(sent.lock().unwrap().len(), 1);
    let err = invoker
        .invoke("other", None, call("ping", 10, 1))
        .await
        .unwrap_err();
    assert_eq!(err, MethodError::DeviceNotOnline);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_invoke_future_cancels_the_call() {
    let invoker = MethodInvoker::new(|_| {});
    invoker.handle_subscribed("dev1", None, 4);
    let fut = invoker.invoke("dev1", None, call("ping", 30, 0));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .is_err()
    );
    assert!(
        !invoker.handle_response(4, "1", 200, b""),
        "the cancelled call no longer matches"
    );
}

/// The MQTT topic a request would go out on (how the tests above were first written).
fn topic_of(o: &Outbound) -> String {
    format!("$iothub/methods/POST/{}/?$rid={}", o.method, o.request_id)
}
