//! Route sources (`hub/routes.rs`): each appends its events when on, and nothing when off.

use serde_json::{Value, json};

use super::*;
use crate::hub::event_log::EventFilter;
use crate::hub::registry_ops::IdentityChange;
use crate::hub::routes::RouteSources;
use crate::hub::twin_ops::TwinWrite;
use crate::store::events::TelemetryEvent;

fn routed(routes: RouteSources) -> (Hub, Arc<ManualClock>) {
    hub_with(HubOptions {
        routes,
        ..HubOptions::default()
    })
}

/// Everything in the log, after background appends settled.
async fn log(hub: &Hub) -> Vec<TelemetryEvent> {
    settle(hub).await;
    hub.read_events(0, &EventFilter::default(), 100)
        .await
        .unwrap()
        .events
}

fn app<'a>(e: &'a TelemetryEvent, key: &str) -> &'a str {
    e.application_properties[key].as_deref().unwrap()
}

fn body(e: &TelemetryEvent) -> Value {
    serde_json::from_slice(&e.body).unwrap()
}

/// The common shape of every route event (docs/amqp.md "Route sources").
fn assert_common(e: &TelemetryEvent, source: &str, schema: &str, op: &str, hub: &Hub) {
    assert_eq!(e.system_properties["iothub-message-source"], source);
    assert_eq!(e.system_properties["content-type"], "application/json");
    assert_eq!(e.system_properties["content-encoding"], "utf-8");
    assert_eq!(e.system_properties["user-id"], "localhost");
    assert_eq!(
        e.system_properties["iothub-connection-device-id"],
        e.device_id
    );
    assert!(!e.system_properties["correlation-id"].is_empty());
    assert_eq!(app(e, "hubName"), "localhost");
    assert_eq!(app(e, "deviceId"), e.device_id);
    assert_eq!(app(e, "iothub-message-schema"), schema);
    assert_eq!(app(e, "opType"), op);
    assert_eq!(app(e, "operationTimestamp"), "2027-01-15T08:00:00.000Z");
    assert_eq!(e.partition, hub.partition_of(&e.device_id));
}

async fn put(hub: &Hub, id: &Identity) {
    hub.put_identity(id, IdentityChange::default(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn lifecycle_events_for_created_and_deleted_devices_and_modules() {
    let (hub, _) = routed(RouteSources {
        lifecycle: true,
        ..RouteSources::default()
    });
    let module = Identity {
        device_id: "dev1".into(),
        module_id: Some("m1".into()),
    };
    put(&hub, &device("dev1")).await;
    put(&hub, &module).await;
    hub.delete_identity(&device("dev1"), None).await.unwrap();
    let events = log(&hub).await;
    let ops: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (app(e, "opType"), e.module_id.as_deref()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("createDeviceIdentity", None),
            ("createDeviceIdentity", Some("m1")),
            ("deleteDeviceIdentity", None),
            ("deleteDeviceIdentity", Some("m1")),
        ]
    );
    for e in &events {
        assert_common(
            e,
            "deviceLifecycleEvents",
            "deviceLifecycleNotification",
            app(e, "opType"),
            &hub,
        );
    }
    let created = body(&events[1]);
    assert_eq!(created["deviceId"], "dev1");
    assert_eq!(created["moduleId"], "m1");
    assert_eq!(app(&events[1], "moduleId"), "m1");
    assert_eq!(
        events[1].system_properties["iothub-connection-module-id"],
        "m1"
    );
    assert_eq!(created["properties"]["desired"]["$version"], 1);
    assert!(created["etag"].is_string());
    // The deleted device's twin as it was.
    assert_eq!(body(&events[2])["version"], 1);
}

#[tokio::test]
async fn twin_change_events_for_service_updates_replacements_and_reported_patches() {
    let (hub, _) = routed(RouteSources {
        twin_changes: true,
        ..RouteSources::default()
    });
    let (key, _) = create_device(&hub, "dev1").await;
    let dev = device("dev1");
    hub.write_twin(
        &dev,
        json!({"tags": {"site": "A"}, "properties": {"desired": {"t": 21}}}),
        None,
        TwinWrite::Merge,
    )
    .await
    .unwrap();
    hub.write_twin(
        &dev,
        json!({"properties": {"desired": {"mode": "eco"}}}),
        None,
        TwinWrite::Replace,
    )
    .await
    .unwrap();
    let token = device_token("dev1", &key, START_SECS + 3600);
    let accepted = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    let (conn, mut rx) = (accepted.connection, accepted.outbound);
    hub.device_request(
        &conn,
        DeviceRequest::ReportedPatch {
            request_id: "1".into(),
            body: bytes::Bytes::from_static(br#"{"fw":"1.2"}"#),
        },
    );
    next(&mut rx).await;
    let events = log(&hub).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    for e in &events {
        assert_common(
            e,
            "twinChangeEvents",
            "twinChangeNotification",
            app(e, "opType"),
            &hub,
        );
    }
    let ops: Vec<&str> = events.iter().map(|e| app(e, "opType")).collect();
    assert_eq!(ops, vec!["updateTwin", "replaceTwin", "updateTwin"]);
    let update = body(&events[0]);
    assert_eq!(update["tags"], json!({"site": "A"}));
    assert_eq!(update["properties"]["desired"]["t"], 21);
    assert_eq!(update["properties"]["desired"]["$version"], 2);
    let replaced = body(&events[1]);
    assert_eq!(replaced["deviceId"], "dev1");
    assert_eq!(replaced["properties"]["desired"]["mode"], "eco");
    assert!(replaced["properties"]["desired"].get("t").is_none());
    let reported = body(&events[2]);
    assert_eq!(reported["properties"]["reported"]["fw"], "1.2");
    assert_eq!(reported["properties"]["reported"]["$version"], 2);
    assert!(reported["version"].as_u64().unwrap() >= 4);
}

#[tokio::test]
async fn connection_state_events_with_growing_sequence_numbers() {
    let (hub, _) = routed(RouteSources {
        connection_state: true,
        ..RouteSources::default()
    });
    let (key, _) = create_device(&hub, "dev1").await;
    let token = device_token("dev1", &key, START_SECS + 3600);
    let first = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    hub.disconnected(&first.connection, "mqtt", "test", Duration::ZERO);
    let second = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    // A refused connect is no connection-state change.
    assert!(connect_with_sas(&hub, "dev1", "bad").await.is_err());
    hub.disconnected(&second.connection, "mqtt", "test", Duration::ZERO);
    let events = log(&hub).await;
    let ops: Vec<&str> = events.iter().map(|e| app(e, "opType")).collect();
    assert_eq!(
        ops,
        vec![
            "deviceConnected",
            "deviceDisconnected",
            "deviceConnected",
            "deviceDisconnected"
        ]
    );
    let mut last = String::new();
    for e in &events {
        assert_common(
            e,
            "deviceConnectionStateEvents",
            "deviceConnectionStateNotification",
            app(e, "opType"),
            &hub,
        );
        let n = body(e)["sequenceNumber"].as_str().unwrap().to_owned();
        assert_eq!(n.len(), 64);
        assert!(n > last, "{n} after {last}");
        last = n;
    }
}

#[tokio::test]
async fn with_every_route_off_the_log_has_only_telemetry() {
    let (hub, _) = routed(RouteSources::default());
    put(&hub, &device("dev0")).await;
    let (key, _) = create_device(&hub, "dev1").await;
    let dev = device("dev1");
    hub.write_twin(
        &dev,
        json!({"properties": {"desired": {"t": 1}}}),
        None,
        TwinWrite::Merge,
    )
    .await
    .unwrap();
    let token = device_token("dev1", &key, START_SECS + 3600);
    let accepted = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    let (conn, mut rx) = (accepted.connection, accepted.outbound);
    hub.device_request(
        &conn,
        DeviceRequest::ReportedPatch {
            request_id: "1".into(),
            body: bytes::Bytes::from_static(br#"{"fw":"1"}"#),
        },
    );
    next(&mut rx).await;
    hub.disconnected(&conn, "mqtt", "test", Duration::ZERO);
    hub.delete_identity(&device("dev0"), None).await.unwrap();
    assert!(log(&hub).await.is_empty());
}

#[tokio::test]
async fn each_source_alone_adds_only_its_own_events() {
    for source in crate::hub::routes::RouteSource::ALL {
        let (hub, _) = routed(RouteSources::default().with(source));
        let (key, _) = create_device(&hub, "dev1").await;
        put(&hub, &device("dev2")).await;
        hub.write_twin(
            &device("dev1"),
            json!({"tags": {"a": 1}}),
            None,
            TwinWrite::Merge,
        )
        .await
        .unwrap();
        let token = device_token("dev1", &key, START_SECS + 3600);
        let accepted = connect_with_sas(&hub, "dev1", &token).await.unwrap();
        hub.disconnected(&accepted.connection, "mqtt", "test", Duration::ZERO);
        let events = log(&hub).await;
        assert!(!events.is_empty(), "{source:?}");
        for e in &events {
            assert_eq!(
                e.system_properties["iothub-message-source"],
                source.message_source()
            );
        }
    }
}
