//! Twins, methods, C2D and events over HTTP.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::hub::DeviceRequest;
// ---- twins ------------------------------------------------------------------------------

#[tokio::test]
async fn twin_patch_pushes_desired_to_the_connected_device_and_honours_etags() {
    let api = setup().await;
    api.create("dev1").await;
    assert_eq!(api.call("GET", "/twins/ghost", None).await.status, 404);
    let twin = api
        .call("GET", "/twins/dev1?api-version=2021-04-12", None)
        .await
        .json();
    assert_eq!(twin["properties"]["desired"]["$version"], 1);
    let etag = twin["etag"].as_str().unwrap().to_owned();
    let (_, mut rx) = api.connect(&dev("dev1"), Interests::DESIRED);

    let patch =
        json!({"tags": {"site": "lab"}, "properties": {"desired": {"target": 21}}}).to_string();
    let r = api
        .call_with(
            "PATCH",
            "/twins/dev1",
            Some(&api.owner),
            &[("If-Match", &etag)],
            Some(patch.clone().into_bytes()),
        )
        .await;
    assert_eq!(r.status, 200);
    let updated = r.json();
    assert_eq!(updated["tags"]["site"], "lab");
    assert_eq!(updated["properties"]["desired"]["target"], 21);
    assert_eq!(updated["connectionState"], "Connected");
    let (topic, body) = next_publish(&mut rx).await;
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
    assert_eq!(body, br#"{"target":21,"$version":2}"#);

    let stale = api
        .call_with(
            "PATCH",
            "/twins/dev1",
            Some(&api.owner),
            &[("If-Match", &etag)],
            Some(patch.into_bytes()),
        )
        .await;
    assert_eq!(
        (stale.status, stale.error()["errorCode"].as_u64()),
        (412, Some(412_002))
    );
    let bad = api
        .call(
            "PATCH",
            "/twins/dev1",
            Some(json!({"properties": {"reported": {"x": 1}}})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let replaced = api
        .call(
            "PUT",
            "/twins/dev1",
            Some(json!({"tags": {}, "properties": {"desired": {"mode": "eco"}}})),
        )
        .await;
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.json()["properties"]["desired"]["mode"], "eco");
    assert!(
        replaced.json()["properties"]["desired"]
            .get("target")
            .is_none()
    );
}

// ---- methods ----------------------------------------------------------------------------

#[tokio::test]
async fn method_call_round_trips_through_a_subscribed_device() {
    let api = setup().await;
    api.create("dev1").await;
    let who = dev("dev1");
    let (conn, mut rx) = api.connect(&who, Interests::METHODS);
    let hub = api.hub.clone();
    let device = tokio::spawn(async move {
        let (topic, payload) = next_publish(&mut rx).await;
        assert_eq!(payload, br#"{"delay":1}"#);
        let rid = topic.rsplit("$rid=").next().unwrap().to_owned();
        assert!(topic.starts_with("$iothub/methods/POST/reboot/"));
        hub.device_request(
            &conn,
            DeviceRequest::MethodResponse {
                request_id: rid,
                status: 201,
                body: Bytes::from_static(br#"{"ok":true}"#),
            },
        );
    });
    let r = api
        .call(
            "POST",
            "/twins/dev1/methods?api-version=2021-04-12",
            Some(json!({"methodName": "reboot", "payload": {"delay": 1}})),
        )
        .await;
    device.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": 201, "payload": {"ok": true}}));
}

#[tokio::test]
async fn method_on_an_offline_device_is_404103_and_unknown_device_404001() {
    let api = setup().await;
    api.create("dev1").await;
    let r = api
        .call(
            "POST",
            "/twins/dev1/methods",
            Some(json!({"methodName": "reboot"})),
        )
        .await;
    assert_eq!(r.status, 404);
    let inner = r.error();
    assert_eq!(inner["errorCode"], 404_103);
    assert_eq!(inner["message"], "Timed out waiting for device to connect.");
    let unknown = api
        .call(
            "POST",
            "/twins/ghost/methods",
            Some(json!({"methodName": "reboot"})),
        )
        .await;
    assert_eq!(unknown.error()["errorCode"], 404_001);
    let bad = api
        .call("POST", "/twins/dev1/methods", Some(json!({"payload": 1})))
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn method_that_the_device_never_answers_is_504101() {
    let api = setup().await;
    api.create("dev1").await;
    let (_conn, _rx) = api.connect(&dev("dev1"), Interests::METHODS);
    let r = api
        .call(
            "POST",
            "/twins/dev1/methods",
            Some(json!({"methodName": "slow", "responseTimeoutInSeconds": 5})),
        )
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.error()["errorCode"], 504_101);
}

// ---- C2D --------------------------------------------------------------------------------

#[tokio::test]
async fn c2d_send_delivers_with_properties_counts_and_purges() {
    let api = setup().await;
    api.create("dev1").await;
    let msg = json!({"deviceId": "dev1", "payload": "hello", "messageId": "m1", "correlationId": "c1",
        "properties": {"color": "red"}, "ack": "full"});
    let r = api.call("POST", "/messages/devicebound", Some(msg)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"messageId": "m1", "cloudToDeviceMessageCount": 1})
    );
    let raw = api
        .call_with(
            "POST",
            "/devices/dev1/messages/deviceBound",
            Some(&api.owner),
            &[("iothub-app-k", "v"), ("iothub-messageid", "m2")],
            Some(b"raw".to_vec()),
        )
        .await;
    assert_eq!(raw.status, 204);
    assert_eq!(
        api.call("GET", "/devices/dev1", None).await.json()["cloudToDeviceMessageCount"],
        2
    );

    let purged = api
        .call("DELETE", "/devices/dev1/commands", None)
        .await
        .json();
    assert_eq!(purged["totalMessagesPurged"], 2);
    let feedback = api
        .call("GET", "/messages/serviceBound/feedback", None)
        .await
        .json();
    assert_eq!(feedback[0]["originalMessageId"], "m1");
    assert_eq!(feedback[0]["statusCode"], "Purged");
    assert_eq!(
        feedback.as_array().unwrap().len(),
        1,
        "m2 asked for no feedback"
    );

    let (_, mut rx) = api.connect(&dev("dev1"), Interests::C2D);
    api.call(
        "POST",
        "/messages/devicebound",
        Some(json!({"deviceId": "dev1", "payload": {"on": true}, "messageId": "m3"})),
    )
    .await;
    let (topic, body) = next_publish(&mut rx).await;
    assert!(
        topic.starts_with("devices/dev1/messages/devicebound/%24.mid=m3"),
        "{topic}"
    );
    assert_eq!(body, br#"{"on":true}"#);
}

#[tokio::test]
async fn c2d_to_an_unknown_device_or_with_bad_fields_is_rejected() {
    let api = setup().await;
    let r = api
        .call(
            "POST",
            "/messages/devicebound",
            Some(json!({"deviceId": "ghost", "payload": "x"})),
        )
        .await;
    assert_eq!(r.status, 404);
    api.create("dev1").await;
    let r = api
        .call(
            "POST",
            "/messages/devicebound",
            Some(json!({"deviceId": "dev1", "ack": "maybe"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        api.call("GET", "/devices/dev1", None).await.json()["cloudToDeviceMessageCount"],
        0
    );
}

// ---- events -----------------------------------------------------------------------------

#[tokio::test]
async fn event_range_read_filters_by_device_and_pages() {
    let api = setup().await;
    for (d, b) in [("d1", r#"{"t":1}"#), ("d2", "plain"), ("d1", r#"{"t":2}"#)] {
        api.hub.append_telemetry(telemetry(d, b)).await.unwrap();
    }
    let all = api.call("GET", "/events", None).await.json();
    assert_eq!(all["events"].as_array().unwrap().len(), 3);
    assert_eq!(all["events"][1]["payload"], "plain");
    let d1 = api
        .call("GET", "/events?device=d1&limit=1", None)
        .await
        .json();
    assert_eq!(d1["events"][0]["payload"], json!({"t": 1}));
    assert_eq!(d1["events"][0]["applicationProperties"]["k"], "v");
    let next = d1["next"].as_i64().unwrap();
    let rest = api
        .call("GET", &format!("/events?device=d1&since={next}"), None)
        .await
        .json();
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["events"][0]["payload"], json!({"t": 2}));
}

#[tokio::test]
async fn last_activity_time_is_the_last_telemetry_of_that_identity() {
    let api = setup().await;
    api.create("d1").await;
    api.create("d2").await;
    let never = api.call("GET", "/devices/d1", None).await.json();
    assert_eq!(never["lastActivityTime"], "0001-01-01T00:00:00Z");
    let mut first = telemetry("d1", "{}");
    first.enqueued_ms = 1_700_000_000_000;
    let mut second = telemetry("d1", "{}");
    second.enqueued_ms = 1_700_000_000_250;
    api.hub
        .append_telemetry_batch(vec![first, second])
        .await
        .unwrap();
    let d1 = api.call("GET", "/devices/d1", None).await.json();
    assert_eq!(d1["lastActivityTime"], "2023-11-14T22:13:20.250Z");
    let d2 = api.call("GET", "/devices/d2", None).await.json();
    assert_eq!(d2["lastActivityTime"], "0001-01-01T00:00:00Z");
}

#[tokio::test]
async fn event_stream_replays_since_and_then_follows_live_for_one_device() {
    let api = setup().await;
    let first = api
        .hub
        .append_telemetry(telemetry("d1", r#"{"n":0}"#))
        .await
        .unwrap();
    api.hub
        .append_telemetry(telemetry("d1", r#"{"n":1}"#))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "GET /events/stream?device=d1&since={first} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        api.owner
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let hub = api.hub.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        hub.append_telemetry(telemetry("d2", r#"{"n":"other"}"#))
            .await
            .unwrap();
        hub.append_telemetry(telemetry("d1", r#"{"n":2}"#))
            .await
            .unwrap();
    });
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(r#""n":2"#) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"));
    assert!(seen.contains("text/event-stream"));
    assert!(!seen.contains(r#""n":0"#), "since is exclusive");
    assert!(seen.contains(r#""n":1"#));
    assert!(!seen.contains("other"));
    assert!(seen.find(r#""n":1"#) < seen.find(r#""n":2"#));
    assert!(seen.contains(&format!("id: {}", first + 1)));
}

#[tokio::test]
async fn event_stream_ends_when_the_emulator_stops() {
    let api = setup().await;
    let mut stream = TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "GET /events/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        api.owner
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    api.stop.send(true).unwrap();
    // The response body ends (chunked terminator); the connection itself may stay open.
    let mut rest = String::from_utf8_lossy(&buf[..n]).to_string();
    let ended = async {
        while !rest.ends_with("0\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without ending the body");
            rest.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the stream ends once the emulator stops");
}

// ---- consumer groups --------------------------------------------------------------------

#[tokio::test]
async fn consumer_groups_are_created_listed_and_deleted_over_rest() {
    let api = setup().await;
    let list = api.call("GET", "/eventHub/consumerGroups", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json(), json!([{"name": "$Default"}]));
    let created = api
        .call("PUT", "/eventHub/consumerGroups/analytics", None)
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.json(), json!({"name": "analytics"}));
    assert_eq!(
        api.call("PUT", "/eventHub/consumerGroups/Analytics", None)
            .await
            .status,
        409
    );
    assert_eq!(
        api.call("PUT", "/eventHub/consumerGroups/-bad", None)
            .await
            .status,
        400
    );
    let list = api
        .call("GET", "/eventHub/consumerGroups", None)
        .await
        .json();
    assert_eq!(list, json!([{"name": "$Default"}, {"name": "analytics"}]));
    assert_eq!(
        api.call("DELETE", "/eventHub/consumerGroups/%24Default", None)
            .await
            .status,
        400
    );
    assert_eq!(
        api.call("DELETE", "/eventHub/consumerGroups/analytics", None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.call("DELETE", "/eventHub/consumerGroups/analytics", None)
            .await
            .status,
        404
    );
}
