//! The Event Hub-compatible endpoint over AMQP (docs/amqp.md): metadata, reading a partition
//! from any position, live events, epochs, the runtime metric and the redirect.

use fe2o3_amqp::types::definitions::{Fields, LinkError};
use fe2o3_amqp::types::messaging::ApplicationProperties;
use fe2o3_amqp::types::primitives::{SimpleValue, Symbol, Value};
use iothub_emulator::testing::TestHub;

use crate::amqp_support::*;
use crate::support::now;

fn long(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Long(n)) => *n,
        other => panic!("expected a long, got {other:?}"),
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

#[tokio::test]
async fn a_partition_read_from_the_start_has_each_event_with_its_annotations() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("eh-dev1").await.unwrap();
    device_sends(&hub, "eh-dev1", &cs, &["a", "b", "c"]).await;
    let mut client = Client::authorized(&hub).await;
    let address = partition_address(&hub, "eh-dev1");
    let mut rx = client
        .receiver(
            &address,
            Some("amqp.annotation.x-opt-offset > '-1'"),
            None,
            &[],
        )
        .await;
    let mut offsets = Vec::new();
    for (i, body) in ["a", "b", "c"].iter().enumerate() {
        let m = next_event(&mut rx).await;
        assert_eq!(body_bytes(&m), body.as_bytes());
        assert_eq!(long(annotation(&m, "x-opt-sequence-number")), i as i64);
        offsets.push(text(annotation(&m, "x-opt-offset")));
        assert!(matches!(
            annotation(&m, "x-opt-enqueued-time"),
            Some(Value::Timestamp(_))
        ));
        assert_eq!(
            text(annotation(&m, "iothub-connection-device-id")),
            "eh-dev1"
        );
        assert_eq!(text(annotation(&m, "iothub-message-source")), "Telemetry");
        let app = m.application_properties.as_ref().unwrap();
        assert_eq!(app.get("n"), Some(&SimpleValue::String(i.to_string())));
        let props = m.properties.as_ref().unwrap();
        assert_eq!(
            props.content_type.as_ref().map(|s| s.as_str()),
            Some("text/plain")
        );
    }
    // Resuming after the first offset starts at the second event; at-or-after, at the first.
    let mut after = client
        .receiver(
            &address,
            Some(&format!("amqp.annotation.x-opt-offset > '{}'", offsets[0])),
            None,
            &[],
        )
        .await;
    assert_eq!(body_bytes(&next_event(&mut after).await), b"b");
    let mut at = client
        .receiver(
            &address,
            Some(&format!("amqp.annotation.x-opt-offset >= '{}'", offsets[0])),
            None,
            &[],
        )
        .await;
    assert_eq!(body_bytes(&next_event(&mut at).await), b"a");
    // By sequence number, exclusive and inclusive.
    let mut seq = client
        .receiver(
            &address,
            Some("amqp.annotation.x-opt-sequence-number > '1'"),
            None,
            &[],
        )
        .await;
    assert_eq!(body_bytes(&next_event(&mut seq).await), b"c");
    let mut seq_at = client
        .receiver(
            &address,
            Some("amqp.annotation.x-opt-sequence-number >= '1'"),
            None,
            &[],
        )
        .await;
    assert_eq!(body_bytes(&next_event(&mut seq_at).await), b"b");
    // No filter: the start of retention.
    let mut none = client.receiver(&address, None, None, &[]).await;
    assert_eq!(body_bytes(&next_event(&mut none).await), b"a");
}

#[tokio::test]
async fn latest_and_enqueued_time_positions_see_only_later_events() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("eh-dev2").await.unwrap();
    device_sends(&hub, "eh-dev2", &cs, &["old"]).await;
    let mut client = Client::authorized(&hub).await;
    let address = partition_address(&hub, "eh-dev2");
    let mut latest = client
        .receiver(
            &address,
            Some("amqp.annotation.x-opt-offset > '@latest'"),
            None,
            &[],
        )
        .await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut az_cli = client
        .receiver(
            &address,
            Some(&format!("amqp.annotation.x-opt-enqueuedtimeutc > {now_ms}")),
            None,
            &[],
        )
        .await;
    device_sends(&hub, "eh-dev2", &cs, &["new"]).await;
    assert_eq!(body_bytes(&next_event(&mut latest).await), b"new");
    assert_eq!(body_bytes(&next_event(&mut az_cli).await), b"new");
}

#[tokio::test]
async fn management_answers_event_hub_and_partition_properties() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("eh-dev3").await.unwrap();
    device_sends(&hub, "eh-dev3", &cs, &["x", "y"]).await;
    let mut client = Client::authorized(&hub).await;
    let name = hub.emulator.event_hub.name.clone();
    let props = ApplicationProperties::builder()
        .insert("operation", "READ")
        .insert("type", "com.microsoft:eventhub")
        .insert("name", name.as_str())
        .build();
    let (status, why, body) = client
        .request_value("$management", props, Value::Null)
        .await;
    assert_eq!(status, 200, "{why}");
    let Value::Map(map) = body else {
        panic!("a map")
    };
    let get = |k: &str| map.get(&Value::String(k.into())).cloned();
    assert_eq!(get("name"), Some(Value::String(name.clone())));
    let p = hub.emulator.hub.partition_of("eh-dev3");
    let props = ApplicationProperties::builder()
        .insert("operation", "READ")
        .insert("type", "com.microsoft:partition")
        .insert("name", name.as_str())
        .insert("partition", p.to_string().as_str())
        .build();
    let (status, why, body) = client
        .request_value("$management", props, Value::Null)
        .await;
    assert_eq!(status, 200, "{why}");
    let Value::Map(map) = body else {
        panic!("a map")
    };
    let get = |k: &str| map.get(&Value::String(k.into())).cloned();
    assert_eq!(get("last_enqueued_sequence_number"), Some(Value::Long(1)));
    assert_eq!(get("is_partition_empty"), Some(Value::Bool(false)));
    // An unknown Event Hub is a 404 with the reason.
    let props = ApplicationProperties::builder()
        .insert("operation", "READ")
        .insert("type", "com.microsoft:eventhub")
        .insert("name", "nosuchhub")
        .build();
    let (status, why) = client.request("$management", props, Value::Null).await;
    assert_eq!(status, 404, "{why}");
    assert!(why.contains("nosuchhub"), "{why}");
}

#[tokio::test]
async fn management_accepts_a_token_scoped_to_the_management_node() {
    // @azure/event-hubs (Node) puts its management token for `sb://{host}/{eventhub}/$management`
    // and Event Hubs accepts it for the metadata requests on that Event Hub; a token for a
    // consumer group still covers only that group.
    let hub = TestHub::spawn().await.unwrap();
    let key = owner_key(&hub);
    let name = hub.emulator.event_hub.name.clone();
    let read = || {
        ApplicationProperties::builder()
            .insert("operation", "READ")
            .insert("type", "com.microsoft:eventhub")
            .insert("name", name.as_str())
            .build()
    };
    let mut client = Client::connect(&hub).await;
    let management = format!("{}/$management", eventhub_uri(&hub));
    let (status, why) = client
        .put_token(
            &management,
            &service_token(&management, "iothubowner", &key, now() + 3600),
        )
        .await;
    assert_eq!(status, 202, "{why}");
    let (status, why) = client.request("$management", read(), Value::Null).await;
    assert_eq!(status, 200, "{why}");

    let mut client = Client::connect(&hub).await;
    let group = format!("{}/ConsumerGroups/$Default", eventhub_uri(&hub));
    let (status, why) = client
        .put_token(
            &group,
            &service_token(&group, "iothubowner", &key, now() + 3600),
        )
        .await;
    assert_eq!(status, 202, "{why}");
    let (status, why) = client.request("$management", read(), Value::Null).await;
    assert_eq!(status, 401, "{why}");
}

#[tokio::test]
async fn a_higher_epoch_steals_the_partition_and_a_lower_one_is_refused() {
    let hub = TestHub::spawn().await.unwrap();
    let mut client = Client::authorized(&hub).await;
    let address = partition_address(&hub, "any");
    let epoch = |e: i64| {
        let mut f = Fields::new();
        f.insert(Symbol::from("com.microsoft:epoch"), Value::Long(e));
        Some(f)
    };
    let mut first = client.receiver(&address, None, epoch(1), &[]).await;
    let _second = client.receiver(&address, None, epoch(2), &[]).await;
    let stolen = refusal(&mut first).await;
    assert_eq!(stolen.condition, LinkError::Stolen.into());
    let mut lower = client.receiver(&address, None, epoch(1), &[]).await;
    let refused = refusal(&mut lower).await;
    assert_eq!(refused.condition, LinkError::Stolen.into());
    assert!(refused.description.unwrap().contains("epoch 2"));
}

#[tokio::test]
async fn the_runtime_metric_annotates_each_event_with_the_partition_head() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("eh-dev4").await.unwrap();
    device_sends(&hub, "eh-dev4", &cs, &["1", "2"]).await;
    let mut client = Client::authorized(&hub).await;
    let address = partition_address(&hub, "eh-dev4");
    let mut rx = client
        .receiver(
            &address,
            None,
            None,
            &["com.microsoft:enable-receiver-runtime-metric"],
        )
        .await;
    let m = next_event(&mut rx).await;
    let annotations = m
        .delivery_annotations
        .as_ref()
        .expect("delivery annotations");
    let last = annotations
        .0
        .iter()
        .find(|(k, _)| format!("{k:?}").contains("last_enqueued_sequence_number"))
        .map(|(_, v)| v.clone());
    assert_eq!(last, Some(Value::Long(1)));
}

#[tokio::test]
async fn messages_events_on_the_hub_is_redirected_to_the_event_hub() {
    let hub = TestHub::spawn().await.unwrap();
    let mut client = Client::authorized(&hub).await;
    let attached = client
        .try_receiver(
            "amqps://localhost/messages/events/ConsumerGroups/$Default/Partitions/0",
            None,
            None,
            &[],
        )
        .await;
    // The answering ATTACH has no source, so the attach itself carries the redirect.
    let redirect = match attached {
        Err(fe2o3_amqp::link::ReceiverAttachError::RemoteClosedWithError(e)) => e,
        Err(other) => panic!("expected a redirect, got {other:?}"),
        Ok(mut rx) => refusal(&mut rx).await,
    };
    assert_eq!(redirect.condition, LinkError::Redirect.into());
    let info = redirect.info.expect("redirect info");
    let get = |k: &str| info.get(&Symbol::from(k)).cloned();
    let eh = &hub.emulator.event_hub;
    assert_eq!(get("hostname"), Some(Value::String(eh.host.clone())));
    assert_eq!(get("port"), Some(Value::Int(i32::from(eh.port))));
    let Some(Value::String(address)) = get("address") else {
        panic!("address")
    };
    assert_eq!(
        address,
        format!(
            "amqps://{}:{}/{}/ConsumerGroups/$Default/Partitions/0",
            eh.host, eh.port, eh.name
        )
    );
}
