//! End-to-end through the sessions into the hub domains: twins, C2D, direct methods, DPS.

use std::time::Duration;

use iothub_emulator::hub::auth::Identity;
use iothub_emulator::testing::TestHub;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};

use crate::support::*;

async fn device(hub: &TestHub, id: &str) -> (AsyncClient, EventLoop) {
    let cs = hub.create_device(id).await.unwrap();
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", id),
        device_token("localhost", id, &key_of(&cs), now() + 3600),
    );
    o.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(o, 10);
    wait_for(&mut events, |e| matches!(e, Packet::ConnAck(_))).await;
    (client, events)
}

async fn wait_for(events: &mut EventLoop, want: impl Fn(&Packet) -> bool) -> Packet {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.poll())
            .await
            .unwrap()
            .unwrap();
        if let Event::Incoming(p) = e
            && want(&p)
        {
            return p;
        }
    }
}

async fn next_publish(events: &mut EventLoop) -> Publish {
    let Packet::Publish(p) = wait_for(events, |p| matches!(p, Packet::Publish(_))).await else {
        unreachable!()
    };
    p
}

#[tokio::test]
async fn twin_patch_then_get_matches_the_seed_expected_output() {
    let hub = TestHub::spawn().await.unwrap();
    let (client, mut events) = device(&hub, "twin1").await;
    client
        .subscribe("$iothub/twin/res/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    client
        .publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=0",
            QoS::AtLeastOnce,
            false,
            r#"{"temperature":32}"#,
        )
        .await
        .unwrap();
    let r = next_publish(&mut events).await;
    assert_eq!(r.topic, "$iothub/twin/res/204/?$rid=0&$version=2");
    assert!(r.payload.is_empty());
    client
        .publish("$iothub/twin/GET/?$rid=1", QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    let r = next_publish(&mut events).await;
    assert_eq!(r.topic, "$iothub/twin/res/200/?$rid=1");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap(),
        serde_json::json!({"desired":{"$version":1},"reported":{"temperature":32,"$version":2}})
    );
}

#[tokio::test]
async fn c2d_reaches_a_broad_subscription_with_its_property_bag() {
    let hub = TestHub::spawn().await.unwrap();
    let (client, mut events) = device(&hub, "c2d1").await;
    client
        .subscribe("devices/c2d1/messages/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    let message = iothub_emulator::hub::c2d::OutgoingMessage {
        body: b"hello world".to_vec(),
        message_id: Some("m-1".into()),
        properties: vec![("property1".into(), "value 1".into())],
        ..Default::default()
    };
    let who = Identity {
        device_id: "c2d1".into(),
        module_id: None,
    };
    hub.emulator.hub.send_c2d(&who, message).await.unwrap();
    let p = next_publish(&mut events).await;
    assert!(p.topic.starts_with("devices/c2d1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fc2d1%2Fmessages%2Fdevicebound"), "{}", p.topic);
    assert!(p.topic.ends_with("property1=value%201"), "{}", p.topic);
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(p.payload.as_ref(), b"hello world");
}

#[tokio::test]
async fn a_direct_method_is_routed_to_the_device_and_its_answer_back() {
    let hub = TestHub::spawn().await.unwrap();
    let (client, mut events) = device(&hub, "m1").await;
    client
        .subscribe("$iothub/methods/POST/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    let domains = hub.emulator.hub.clone();
    let call = iothub_emulator::hub::methods::MethodCall::from_json(
        &serde_json::json!({"methodName":"reboot","payload":{"delay":1}}),
    )
    .unwrap();
    let who = Identity {
        device_id: "m1".into(),
        module_id: None,
    };
    let invocation = tokio::spawn(async move { domains.invoke_method(&who, call).await });
    let request = next_publish(&mut events).await;
    let rid = request
        .topic
        .strip_prefix("$iothub/methods/POST/reboot/?$rid=")
        .expect(&request.topic)
        .to_string();
    assert_eq!(request.qos, QoS::AtMostOnce);
    client
        .publish(
            format!("$iothub/methods/res/200/?$rid={rid}"),
            QoS::AtLeastOnce,
            false,
            r#"{"ok":true}"#,
        )
        .await
        .unwrap();
    // Keep driving the client's event loop (it sends the response) until the call completes.
    while !invocation.is_finished() {
        let _ = tokio::time::timeout(Duration::from_millis(10), events.poll()).await;
    }
    let result = invocation.await.unwrap().unwrap();
    assert_eq!(result.status, 200);
    assert_eq!(result.payload, serde_json::json!({"ok":true}));
}

#[tokio::test]
async fn dps_registration_assigns_the_device_to_this_hub() {
    let hub = TestHub::spawn().await.unwrap();
    let (scope, key) = hub
        .emulator
        .hub
        .store()
        .call(|tx| {
            let e = iothub_emulator::hub::provisioning::create_enrollment(
                tx,
                iothub_emulator::hub::provisioning::EnrollmentKind::Individual,
                "reg-1",
                None,
                None,
                std::time::SystemTime::now(),
            )
            .map_err(|_| iothub_emulator::store::StoreError::Corrupt("enrollment"))?;
            let scope = iothub_emulator::hub::provisioning::id_scope(tx)
                .map_err(|_| iothub_emulator::store::StoreError::Corrupt("scope"))?;
            Ok((scope, e.primary_key))
        })
        .await
        .unwrap();
    let signer = HmacSha256Signer::from_base64(&key).unwrap();
    let token = SasToken::sign(
        ResourceUri::dps_registration(&scope, "reg-1"),
        now() + 3600,
        Some("registration"),
        &signer,
    )
    .unwrap()
    .to_string();
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new("reg-1", addr.ip().to_string(), addr.port());
    o.set_credentials(
        format!("{scope}/registrations/reg-1/api-version=2019-03-31"),
        token,
    );
    let (client, mut events) = AsyncClient::new(o, 10);
    wait_for(
        &mut events,
        |p| matches!(p, Packet::ConnAck(a) if a.code == rumqttc::ConnectReturnCode::Success),
    )
    .await;
    client
        .subscribe("$dps/registrations/res/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    client
        .publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
            QoS::AtLeastOnce,
            false,
            r#"{"registrationId":"reg-1"}"#,
        )
        .await
        .unwrap();
    let reply = next_publish(&mut events).await;
    assert!(
        reply
            .topic
            .starts_with("$dps/registrations/res/202/?$rid=1"),
        "{}",
        reply.topic
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let op = body["operationId"].as_str().unwrap().to_string();
    client
        .publish(
            format!("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={op}"),
            QoS::AtLeastOnce,
            false,
            "",
        )
        .await
        .unwrap();
    let reply = next_publish(&mut events).await;
    assert!(
        reply
            .topic
            .starts_with("$dps/registrations/res/200/?$rid=2"),
        "{}",
        reply.topic
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["status"], "assigned");
    assert_eq!(body["registrationState"]["deviceId"], "reg-1");

    // The provisioned device can now connect to the hub with the enrollment key.
    let mut raw = Raw::connect(hub.plain_addr()).await;
    let token = device_token("localhost", "reg-1", &key, now() + 3600);
    let ack = raw
        .login("reg-1", &username("localhost", "reg-1"), &token)
        .await;
    assert!(
        matches!(ack, Some(rumqttc::mqttbytes::v4::Packet::ConnAck(a)) if a.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success)
    );
}

#[tokio::test]
async fn a_persistent_session_keeps_its_subscription_and_gets_queued_c2d_on_reconnect() {
    let hub = TestHub::spawn().await.unwrap();
    let (client, mut events) = device(&hub, "p1").await;
    client
        .subscribe("devices/p1/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    client.disconnect().await.unwrap();
    while events.poll().await.is_ok() {}

    // Offline: the message waits in the queue.
    let who = Identity {
        device_id: "p1".into(),
        module_id: None,
    };
    let message = iothub_emulator::hub::c2d::OutgoingMessage {
        body: b"queued".to_vec(),
        ..Default::default()
    };
    hub.emulator.hub.send_c2d(&who, message).await.unwrap();

    // Reconnect with clean session 0 and WITHOUT subscribing again.
    let rec = hub
        .emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::registry::find(tx, "p1", None))
        .await
        .unwrap()
        .unwrap();
    let cs = iothub_emulator::hub::registry::connection_string(&rec, "localhost");
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new("p1", addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", "p1"),
        device_token("localhost", "p1", &key_of(&cs), now() + 3600),
    );
    o.set_clean_session(false);
    let (_client, mut events) = AsyncClient::new(o, 10);
    let Packet::ConnAck(ack) = wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await
    else {
        unreachable!()
    };
    assert!(ack.session_present);
    let p = next_publish(&mut events).await;
    assert_eq!(p.payload.as_ref(), b"queued");
}

#[tokio::test]
async fn an_unacknowledged_c2d_message_is_redelivered_with_dup_after_a_reconnect() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dup1").await.unwrap();
    let addr = hub.plain_addr();
    let options = || {
        let mut o = MqttOptions::new("dup1", addr.ip().to_string(), addr.port());
        o.set_credentials(
            username("localhost", "dup1"),
            device_token("localhost", "dup1", &key_of(&cs), now() + 3600),
        );
        o.set_clean_session(false);
        // Never PUBACK: the message stays locked, not completed.
        o.set_manual_acks(true);
        o
    };
    let (client, mut events) = AsyncClient::new(options(), 10);
    wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await;
    client
        .subscribe("devices/dup1/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    let who = Identity {
        device_id: "dup1".into(),
        module_id: None,
    };
    let message = iothub_emulator::hub::c2d::OutgoingMessage {
        body: b"again".to_vec(),
        ..Default::default()
    };
    hub.emulator.hub.send_c2d(&who, message).await.unwrap();
    let first = next_publish(&mut events).await;
    assert!(!first.dup);
    drop((client, events)); // connection lost without acknowledging

    let (_client, mut events) = AsyncClient::new(options(), 10);
    let again = next_publish(&mut events).await;
    assert_eq!(again.payload.as_ref(), b"again");
    assert!(again.dup, "a redelivery carries DUP");
}

#[tokio::test]
async fn a_reconnect_that_takes_over_a_half_open_connection_keeps_the_persistent_session() {
    let hub = TestHub::spawn().await.unwrap();
    let (client, mut events) = device(&hub, "t1").await;
    client
        .subscribe("devices/t1/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    // The first connection stays open (as after a silent network drop) while the device
    // reconnects with clean session 0: the new one takes over and inherits the subscription.
    let rec = hub
        .emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::registry::find(tx, "t1", None))
        .await
        .unwrap()
        .unwrap();
    let cs = iothub_emulator::hub::registry::connection_string(&rec, "localhost");
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new("t1", addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", "t1"),
        device_token("localhost", "t1", &key_of(&cs), now() + 3600),
    );
    o.set_clean_session(false);
    let (_second, mut second_events) = AsyncClient::new(o, 10);
    let Packet::ConnAck(ack) =
        wait_for(&mut second_events, |p| matches!(p, Packet::ConnAck(_))).await
    else {
        unreachable!()
    };
    assert!(ack.session_present);
    let who = Identity {
        device_id: "t1".into(),
        module_id: None,
    };
    let message = iothub_emulator::hub::c2d::OutgoingMessage {
        body: b"to the new one".to_vec(),
        ..Default::default()
    };
    hub.emulator.hub.send_c2d(&who, message).await.unwrap();
    let p = next_publish(&mut second_events).await;
    assert_eq!(p.payload.as_ref(), b"to the new one");
    drop((client, events));
}

#[tokio::test]
async fn a_persistent_session_survives_an_emulator_restart_and_clean_session_1_discards_it() {
    use iothub_emulator::{Config, RunningEmulator};
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: Some(dir.path().into()),
        ..Config::ephemeral()
    };
    let connect = |emu: &RunningEmulator, clean: bool| {
        let addr = emu.plain_addr.unwrap();
        let mut o = MqttOptions::new("keeper", addr.ip().to_string(), addr.port());
        o.set_credentials(
            username("localhost", "keeper"),
            device_token("localhost", "keeper", KEY, now() + 3600),
        );
        o.set_clean_session(clean);
        AsyncClient::new(o, 10)
    };
    let connack = |p: Packet| match p {
        Packet::ConnAck(a) => a.session_present,
        _ => unreachable!(),
    };

    let first = RunningEmulator::start(config.clone()).await.unwrap();
    let new = iothub_emulator::hub::registry::NewIdentity {
        device_id: "keeper".into(),
        primary_key: Some(KEY.into()),
        ..Default::default()
    };
    first
        .hub
        .store()
        .call(move |tx| Ok(iothub_emulator::hub::registry::create(tx, new, 0).is_ok()))
        .await
        .unwrap();
    let (client, mut events) = connect(&first, false);
    let p = wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await;
    assert!(!connack(p), "no session yet");
    client
        .subscribe("devices/keeper/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    client.disconnect().await.unwrap();
    while events.poll().await.is_ok() {}
    first.shutdown().await;

    // A new emulator process on the same data dir: the device reconnects with clean session 0
    // and does NOT subscribe again, yet its C2D subscription is there.
    let second = RunningEmulator::start(config.clone()).await.unwrap();
    let (_client, mut events) = connect(&second, false);
    let p = wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await;
    assert!(connack(p), "session-present after the restart");
    let who = Identity {
        device_id: "keeper".into(),
        module_id: None,
    };
    let message = iothub_emulator::hub::c2d::OutgoingMessage {
        body: b"after restart".to_vec(),
        ..Default::default()
    };
    second.hub.send_c2d(&who, message).await.unwrap();
    let p = next_publish(&mut events).await;
    assert_eq!(p.payload.as_ref(), b"after restart");
    drop((_client, events));

    // Clean session 1 discards the stored session, also across the next restart.
    let (_clean, mut events) = connect(&second, true);
    let p = wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await;
    assert!(!connack(p));
    drop((_clean, events));
    second.shutdown().await;
    let third = RunningEmulator::start(config).await.unwrap();
    let (_client, mut events) = connect(&third, false);
    let p = wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await;
    assert!(!connack(p), "the clean-session-1 connect discarded it");
    third.shutdown().await;
}
