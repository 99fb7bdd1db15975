//! Direct methods.

use iothub_device::{DeviceClient, MethodResponse};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;
use serde_json::json;

use crate::fake_hub::{FakeHub, options};

fn call(name: &str, rid: &str, body: serde_json::Value) -> Publish {
    Publish::new(
        format!("$iothub/methods/POST/{name}/?$rid={rid}"),
        QoS::AtMostOnce,
        body.to_string(),
    )
}

#[tokio::test]
async fn answers_methods_with_handlers_and_unknown_ones_with_501() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    client
        .on_method("getMaxMinReport", |call| async move {
            assert_eq!(call.payload["since"], "2026-01-01");
            MethodResponse::ok(json!({"max": 30}))
        })
        .await
        .unwrap();
    hub.wait_for("methods subscription", |r| !r.subscriptions.is_empty())
        .await;
    hub.send(call(
        "getMaxMinReport",
        "1a",
        json!({"since": "2026-01-01"}),
    ));
    hub.send(call("reboot", "1b", json!(null)));
    hub.wait_for("two responses", |r| r.publishes.len() == 2)
        .await;
    let responses = hub.record(|r| r.publishes.clone());
    let ok = responses
        .iter()
        .find(|p| p.topic.ends_with("$rid=1a"))
        .unwrap();
    assert_eq!(ok.topic, "$iothub/methods/res/200/?$rid=1a");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&ok.payload).unwrap(),
        json!({"max": 30})
    );
    let unknown = responses
        .iter()
        .find(|p| p.topic.ends_with("$rid=1b"))
        .unwrap();
    assert_eq!(unknown.topic, "$iothub/methods/res/501/?$rid=1b");
    client.close().await;
}
