//! Twin GET, reported patches, desired-property stream.

use std::time::Duration;

use iothub_device::{DeviceClient, Error, Request};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;
use serde_json::json;

use crate::fake_hub::{FakeHub, options};

#[tokio::test]
async fn gets_twin_and_patches_reported_properties() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let twin = client.twin().await.unwrap();
    assert_eq!(twin["desired"]["$version"], 1);
    let version = client
        .update_reported(&json!({"temperature": 32}))
        .await
        .unwrap();
    assert_eq!(version, 2);
    let subscribed = hub.record(|r| r.subscriptions.clone());
    assert_eq!(
        subscribed,
        [["$iothub/twin/res/#"]],
        "subscribed lazily before the first request"
    );
    client.close().await;
}

#[tokio::test]
async fn twin_request_times_out_with_a_typed_error() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.ignore_twin = true);
    let client =
        DeviceClient::connect(options(hub.addr).request_timeout(Duration::from_millis(300)))
            .await
            .unwrap();
    let err = client.twin().await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Request::TwinGet)), "{err:?}");
    assert!(err.is_retriable());
    client.close().await;
}

fn desired(version: u64, body: serde_json::Value) -> Publish {
    Publish::new(
        format!("$iothub/twin/PATCH/properties/desired/?$version={version}"),
        QoS::AtMostOnce,
        body.to_string(),
    )
}

#[tokio::test]
async fn desired_stream_deduplicates_versions_and_resyncs_after_reconnect() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let mut rx = client.desired_properties().await.unwrap();
    // The first resync GET sets the baseline ($version 1).
    hub.wait_for("resync GET", |r| r.subscriptions.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    hub.send(desired(2, json!({"targetTemperature": 23, "$version": 2})));
    hub.send(desired(2, json!({"targetTemperature": 23, "$version": 2})));
    hub.send(desired(1, json!({"old": true, "$version": 1})));
    let patch = rx.recv().await.unwrap();
    assert_eq!((patch.version, patch.full), (2, false));
    assert_eq!(patch.properties["targetTemperature"], 23);

    // Offline change: missed patch, recovered by the GET after reconnect.
    hub.record.lock().unwrap().twin_desired = json!({"targetTemperature": 25, "$version": 4});
    hub.cut();
    let patch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((patch.version, patch.full), (4, true));
    assert_eq!(patch.properties["targetTemperature"], 25);
    hub.send(desired(3, json!({"stale": true, "$version": 3})));
    hub.send(desired(5, json!({"targetTemperature": 26, "$version": 5})));
    let patch = rx.recv().await.unwrap();
    assert_eq!(
        patch.version, 5,
        "version 3 was older than the resync and dropped"
    );
    client.close().await;
}

#[tokio::test]
async fn plug_and_play_helpers_report_component_properties_and_writable_acks() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    client
        .report_property(Some("thermostat1"), "maxTempSinceLastReboot", &json!(30.5))
        .await
        .unwrap();
    client
        .acknowledge_writable(
            Some("thermostat1"),
            "targetTemperature",
            &json!(23),
            &iothub_device::WritableResponse::completed(3),
        )
        .await
        .unwrap();
    let version = client
        .acknowledge_writable(
            None,
            "targetTemperature",
            &json!(20.0),
            &iothub_device::WritableResponse::initial(),
        )
        .await
        .unwrap();
    assert_eq!(version, 4);
    let patches = hub.record(|r| r.reported_patches.clone());
    assert_eq!(
        patches,
        [
            json!({"thermostat1": {"__t": "c", "maxTempSinceLastReboot": 30.5}}),
            json!({"thermostat1": {"__t": "c", "targetTemperature": {"value": 23, "ac": 200, "av": 3, "ad": "completed"}}}),
            json!({"targetTemperature": {"value": 20.0, "ac": 203, "av": 0, "ad": "initialize"}}),
        ]
    );
    client.close().await;
}

#[tokio::test]
async fn quality_one_desired_patch_is_acknowledged_without_waiting_for_other_traffic() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let mut rx = client.desired_properties().await.unwrap();
    hub.wait_for("subscriptions", |r| r.subscriptions.len() >= 2)
        .await;
    let mut patch = desired(9, json!({"x": 1, "$version": 9}));
    patch.qos = QoS::AtLeastOnce;
    patch.pkid = 7;
    hub.send(patch);
    assert_eq!(rx.recv().await.unwrap().version, 9);
    hub.wait_for("the PUBACK", |r| r.device_acks == [7]).await;
    client.close().await;
}
