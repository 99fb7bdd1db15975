//! Telemetry with a real MQTT client: stamping, durability before PUBACK, live feed, Will.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};

use crate::support::*;

fn options(hub: &iothub_emulator::testing::TestHub, cs: &str, id: &str) -> MqttOptions {
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", id) + "&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1",
        device_token("localhost", id, &key_of(cs), now() + 3600),
    );
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

#[tokio::test]
async fn acknowledged_telemetry_is_in_the_log_stamped_and_on_the_live_feed() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev3").await.unwrap();
    let mut live = hub.emulator.hub.live_feed();
    let (client, mut events) = AsyncClient::new(options(&hub, &cs, "dev3"), 10);
    let topic = "devices/dev3/messages/events/%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.sub=thermostat1&alert=true";
    client
        .publish(topic, QoS::AtLeastOnce, true, r#"{"temperature":21.5}"#)
        .await
        .unwrap();
    while !matches!(
        tokio::time::timeout(Duration::from_secs(10), events.poll())
            .await
            .unwrap()
            .unwrap(),
        Event::Incoming(Packet::PubAck(_))
    ) {}
    // The PUBACK came after the append: the log already holds it.
    let stored = logged(&hub).await;
    assert_eq!(stored.len(), 1);
    let e = &stored[0];
    assert_eq!(e.body.as_ref(), br#"{"temperature":21.5}"#);
    assert_eq!(e.system_properties["message-id"], "mid-1");
    assert_eq!(e.system_properties["correlation-id"], "cid-1");
    assert_eq!(e.system_properties["content-type"], "application/json");
    assert_eq!(e.system_properties["iothub-connection-device-id"], "dev3");
    assert_eq!(
        e.system_properties["dt-dataschema"],
        "dtmi:com:example:Thermostat;1"
    );
    assert_eq!(e.system_properties["dt-subject"], "thermostat1");
    assert!(e.system_properties["iothub-connection-auth-method"].contains(r#""type":"sas""#));
    assert!(e.system_properties["iothub-enqueuedtime"].ends_with('Z'));
    assert_eq!(e.application_properties["alert"].as_deref(), Some("true"));
    assert_eq!(
        e.application_properties["mqtt-retain"].as_deref(),
        Some("true"),
        "retain becomes a property"
    );
    let fed = tokio::time::timeout(Duration::from_secs(5), live.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fed.seq, e.seq);
}

#[tokio::test]
async fn a_will_becomes_telemetry_when_the_connection_drops() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev4").await.unwrap();
    let mut live = hub.emulator.hub.live_feed();
    let mut o = options(&hub, &cs, "dev4");
    o.set_last_will(LastWill::new(
        "devices/dev4/messages/events/",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let (_client, mut events) = AsyncClient::new(o, 10);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    drop(events); // the socket closes without DISCONNECT
    let will = tokio::time::timeout(Duration::from_secs(10), live.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(will.body.as_ref(), b"gone");
    assert_eq!(
        will.application_properties["iothub-MessageType"].as_deref(),
        Some("Will")
    );
}

#[tokio::test]
async fn many_concurrent_publishes_are_all_acknowledged_and_stored() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev5").await.unwrap();
    let (client, mut events) = AsyncClient::new(options(&hub, &cs, "dev5"), 100);
    let n = 200;
    tokio::spawn(async move {
        for i in 0..n {
            client
                .publish(
                    "devices/dev5/messages/events/",
                    QoS::AtLeastOnce,
                    false,
                    format!("{i}"),
                )
                .await
                .unwrap();
        }
    });
    let mut acks = 0;
    while acks < n {
        if let Event::Incoming(Packet::PubAck(_)) =
            tokio::time::timeout(Duration::from_secs(20), events.poll())
                .await
                .unwrap()
                .unwrap()
        {
            acks += 1;
        }
    }
    let count = hub
        .emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::events::count(tx))
        .await
        .unwrap();
    assert_eq!(count, i64::from(n));
}

#[tokio::test]
async fn a_module_sends_on_its_own_topic_and_is_stamped_with_its_module_id() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    hub.create_device("edge1").await.unwrap();
    let new = iothub_emulator::hub::registry::NewIdentity {
        device_id: "edge1".into(),
        module_id: Some("filter".into()),
        ..Default::default()
    };
    let record = hub.create(new).await.unwrap();
    let cs = iothub_emulator::hub::registry::connection_string(&record, "localhost");
    let signer = iothub_proto::sas::HmacSha256Signer::from_base64(&key_of(&cs)).unwrap();
    let token = iothub_proto::sas::SasToken::sign(
        iothub_proto::sas::ResourceUri::module("localhost", "edge1", "filter"),
        now() + 3600,
        None,
        &signer,
    )
    .unwrap()
    .to_string();
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new("edge1/filter", addr.ip().to_string(), addr.port());
    o.set_credentials("localhost/edge1/filter/?api-version=2021-04-12", token);
    let (client, mut events) = AsyncClient::new(o, 10);
    client
        .publish(
            "devices/edge1/modules/filter/messages/events/",
            QoS::AtLeastOnce,
            false,
            "m",
        )
        .await
        .unwrap();
    while !matches!(
        tokio::time::timeout(Duration::from_secs(10), events.poll())
            .await
            .unwrap()
            .unwrap(),
        Event::Incoming(Packet::PubAck(_))
    ) {}
    let stored = logged(&hub).await;
    assert_eq!(stored[0].module_id.as_deref(), Some("filter"));
    assert_eq!(
        stored[0].system_properties["iothub-connection-module-id"],
        "filter"
    );
    assert!(
        stored[0].system_properties["iothub-connection-auth-method"]
            .contains(r#""scope":"module""#)
    );
}

/// Everything in the hub's event log, oldest first.
async fn logged(
    hub: &iothub_emulator::testing::TestHub,
) -> Vec<iothub_emulator::store::events::TelemetryEvent> {
    hub.emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::events::read_after(tx, 0, 10_000))
        .await
        .unwrap()
}

/// QoS 1 telemetry PUBLISHes from dev1 with these packet ids, encoded back to back (one write).
fn telemetry_burst(
    pkids: std::ops::RangeInclusive<u16>,
    body: impl Fn(u16) -> String,
) -> bytes::BytesMut {
    let mut burst = bytes::BytesMut::new();
    for pkid in pkids {
        let mut p = rumqttc::mqttbytes::v4::Publish::new(
            "devices/dev1/messages/events/",
            QoS::AtLeastOnce,
            body(pkid),
        );
        p.pkid = pkid;
        Packet::Publish(p).write(&mut burst, 1 << 20).unwrap();
    }
    burst
}

#[tokio::test]
async fn a_pipelined_burst_is_acknowledged_in_order_and_only_after_each_append() {
    // 300 QoS 1 PUBLISHes in ONE write: several group commits complete while PUBACKs are
    // pending, and the ready ones leave together (one flush). Still in order (MQTT-4.6.0-2),
    // and never before their own append is in the log (docs/protocol.md §4).
    let (hub, mut raw) = logged_in().await;
    let n: u16 = 300;
    raw.send_bytes(&telemetry_burst(1..=n, |pkid| format!("m{pkid}")))
        .await;
    for expected in 1..=n {
        let Some(Packet::PubAck(ack)) = raw.recv().await else {
            panic!("no PUBACK for {expected}");
        };
        assert_eq!(ack.pkid, expected, "PUBACKs out of order");
        let logged = logged(&hub).await;
        let body = format!("m{expected}");
        assert!(
            logged.iter().any(|e| e.body.as_ref() == body.as_bytes()),
            "PUBACK {expected} came before its append"
        );
    }
}

#[tokio::test]
async fn publishes_read_together_with_a_malformed_frame_are_stored_before_the_close() {
    // Frames already in the read buffer are handled together, but as if read one by one: the
    // three PUBLISHes before the bad frame are appended (their PUBACKs may not make it out,
    // so the client resends: at least once), then the connection closes (docs/protocol.md §1.1).
    let (hub, mut raw) = logged_in().await;
    let mut burst = telemetry_burst(1..=3, |pkid| format!("before-{pkid}"));
    // PUBLISH with QoS bits 3: a reserved value (MQTT 3.1.1 §3.3.1.2), malformed.
    burst.extend_from_slice(&[0x36, 0x02, 0x00, 0x00]);
    raw.send_bytes(&burst).await;
    raw.assert_closed().await;
    let logged = logged(&hub).await;
    let bodies: Vec<&[u8]> = logged.iter().map(|e| e.body.as_ref()).collect();
    assert_eq!(bodies, [&b"before-1"[..], b"before-2", b"before-3"]);
}

/// QoS 0 telemetry is supported (docs/protocol.md §4): it is stored without a PUBACK, and the
/// connection stays open. A regression test: a QoS 0 publish used to close the connection.
#[tokio::test]
async fn qos_0_telemetry_is_stored_and_keeps_the_connection_open() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev0").await.unwrap();
    let mut live = hub.emulator.hub.live_feed();
    let (client, mut events) = AsyncClient::new(options(&hub, &cs, "dev0"), 10);
    let driver = tokio::spawn(async move {
        let mut connacks = 0;
        let mut pubacks = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => connacks += 1,
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                    pubacks += 1;
                    // The QoS 1 message is sent after the QoS 0 ones, on the same connection.
                    return (connacks, pubacks);
                }
                Ok(Ok(_)) => {}
                other => panic!("connection failed: {other:?}"),
            }
        }
    });
    for i in 0..5 {
        client
            .publish(
                "devices/dev0/messages/events/",
                QoS::AtMostOnce,
                false,
                format!("q0-{i}"),
            )
            .await
            .unwrap();
    }
    client
        .publish(
            "devices/dev0/messages/events/",
            QoS::AtLeastOnce,
            false,
            "q1",
        )
        .await
        .unwrap();
    let (connacks, pubacks) = driver.await.unwrap();
    assert_eq!(
        (connacks, pubacks),
        (1, 1),
        "one connection, one PUBACK (for the QoS 1 message)"
    );
    let mut bodies = Vec::new();
    while bodies.len() < 6 {
        let event = tokio::time::timeout(Duration::from_secs(5), live.recv())
            .await
            .unwrap()
            .unwrap();
        bodies.push(String::from_utf8(event.body.to_vec()).unwrap());
    }
    assert_eq!(bodies, ["q0-0", "q0-1", "q0-2", "q0-3", "q0-4", "q1"]);
}
