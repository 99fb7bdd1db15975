//! Finding: `PUT /devices/%2e%2e` created an identity no client could address again.

use iothub_emulator::testing::TestHub;

use crate::http::{owner_token, send};

#[tokio::test]
async fn dot_and_dot_dot_ids_are_refused_on_rest() {
    let hub = TestHub::spawn().await.unwrap();
    let http = hub.emulator.http_addr.unwrap();
    let token = owner_token(&hub, "localhost");
    for path in [
        "/devices/%2e",
        "/devices/%2E%2E",
        "/devices/d1/modules/%2e%2e",
    ] {
        if path.contains("modules") {
            let r = send(http, "PUT", "/devices/d1", &token, br#"{"deviceId":"d1"}"#).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let body = if path.contains("modules") {
            br#"{"deviceId":"d1","moduleId":".."}"#.as_slice()
        } else {
            br#"{}"#.as_slice()
        };
        let r = send(http, "PUT", path, &token, body).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.hub_error()["errorCode"], 400_004, "{path}");
    }
    let list = send(http, "GET", "/devices", &token, b"").await;
    let devices: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    let ids: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d1"]);
    hub.shutdown().await;
}

#[tokio::test]
async fn dot_dot_is_refused_by_the_registry_itself() {
    let hub = TestHub::spawn().await.unwrap();
    for id in [".", "..", &"x".repeat(129)] {
        assert!(
            matches!(
                hub.create_device(id).await,
                Err(iothub_emulator::hub::registry::RegistryError::InvalidId)
            ),
            "{id}"
        );
    }
    hub.shutdown().await;
}
