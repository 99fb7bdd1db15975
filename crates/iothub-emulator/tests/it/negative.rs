//! Every rejection the emulator makes at CONNECT and in a session (docs/protocol.md §1.5,
//! §1.7), over a real socket.

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, Publish, Subscribe, SubscribeReasonCode,
};

use crate::support::*;

fn code(p: Option<Packet>) -> ConnectReturnCode {
    match p {
        Some(Packet::ConnAck(a)) => a.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_signature_gets_connack_5() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    hub.create_device("dev1").await.unwrap();
    let wrong_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let token = device_token("localhost", "dev1", wrong_key, now() + 3600);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
    raw.assert_closed().await;
}

#[tokio::test]
async fn expired_token_gets_connack_5_but_skew_is_tolerated() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let key = key_of(&hub.create_device("dev1").await.unwrap());
    let expired = device_token("localhost", "dev1", &key, now() - 301);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &expired)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
    let within_skew = device_token("localhost", "dev1", &key, now() - 200);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &within_skew)
                .await
        ),
        ConnectReturnCode::Success
    );
}

#[tokio::test]
async fn wrong_device_gets_connack_5() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let key1 = key_of(&hub.create_device("dev1").await.unwrap());
    hub.create_device("dev2").await.unwrap();
    // dev1's valid token presented for dev2.
    let token = device_token("localhost", "dev1", &key1, now() + 3600);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev2", &username("localhost", "dev2"), &token)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
    // client id differing from the username's device.
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev2", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
    // unknown device.
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("ghost", &username("localhost", "ghost"), &token)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
}

#[tokio::test]
async fn disabled_device_gets_connack_3() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let new = iothub_emulator::hub::registry::NewIdentity {
        device_id: "off".into(),
        disabled: true,
        ..Default::default()
    };
    let record = hub.create(new).await.unwrap();
    let cs = iothub_emulator::hub::registry::connection_string(&record, "localhost");
    let token = device_token("localhost", "off", &key_of(&cs), now() + 3600);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("off", &username("localhost", "off"), &token)
                .await
        ),
        ConnectReturnCode::ServiceUnavailable
    );
}

#[tokio::test]
async fn cross_device_topic_closes() {
    let (hub, mut raw) = logged_in().await;
    hub.create_device("dev2").await.unwrap();
    let mut p = Publish::new(
        "devices/dev2/messages/events/",
        QoS::AtLeastOnce,
        b"x".to_vec(),
    );
    p.pkid = 1;
    raw.send(Packet::Publish(p)).await;
    raw.assert_closed().await;
    assert_eq!(
        hub.emulator
            .hub
            .store()
            .call(|tx| iothub_emulator::store::events::count(tx))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn qos_2_publish_closes() {
    let (_hub, mut raw) = logged_in().await;
    let mut p = Publish::new(
        "devices/dev1/messages/events/",
        QoS::ExactlyOnce,
        b"x".to_vec(),
    );
    p.pkid = 1;
    raw.send(Packet::Publish(p)).await;
    raw.assert_closed().await;
}

#[tokio::test]
async fn over_size_message_closes() {
    let (_hub, mut raw) = logged_in().await;
    let mut p = Publish::new(
        "devices/dev1/messages/events/",
        QoS::AtLeastOnce,
        vec![b'a'; 256 * 1024 + 1],
    );
    p.pkid = 1;
    raw.send(Packet::Publish(p)).await;
    raw.assert_closed().await;
}

#[tokio::test]
async fn sixth_subscription_is_refused_in_the_suback() {
    let (_hub, mut raw) = logged_in().await;
    let mut sub = Subscribe::new("devices/dev1/messages/devicebound/#", QoS::AtLeastOnce);
    sub.pkid = 1;
    for f in [
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/#",
        "#",
        "devices/dev1/messages/#",
    ] {
        sub.add(f.into(), QoS::ExactlyOnce);
    }
    raw.send(Packet::Subscribe(sub)).await;
    let Some(Packet::SubAck(ack)) = raw.recv().await else {
        panic!("no SUBACK")
    };
    assert_eq!(
        ack.return_codes[0],
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert_eq!(
        ack.return_codes[4],
        SubscribeReasonCode::Success(QoS::AtLeastOnce),
        "QoS 2 granted as 1"
    );
    assert_eq!(ack.return_codes[5], SubscribeReasonCode::Failure);
}

#[tokio::test]
async fn garbage_before_connect_closes() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let mut raw = Raw::connect(hub.plain_addr()).await;
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(raw.recv().await.is_none());
    let mut raw = Raw::connect(hub.plain_addr()).await;
    raw.send(Packet::PingReq).await;
    assert!(
        raw.recv().await.is_none(),
        "a valid packet other than CONNECT first also closes"
    );
}

#[tokio::test]
async fn second_connect_closes() {
    let (_hub, mut raw) = logged_in().await;
    raw.send(Packet::Connect(Connect::new("dev1"))).await;
    raw.assert_closed().await;
}

#[tokio::test]
async fn mqtt_5_connect_is_refused() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let mut raw = Raw::connect(hub.plain_addr()).await;
    raw.send_bytes(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x04dev1")
        .await;
    assert!(raw.recv().await.is_none());
}

#[tokio::test]
async fn a_second_connection_for_the_same_device_closes_the_first() {
    let (hub, mut first) = logged_in().await;
    let cs_key = {
        // recreate a token from the stored key
        let rec = hub
            .emulator
            .hub
            .store()
            .call(|tx| iothub_emulator::store::registry::find(tx, "dev1", None))
            .await
            .unwrap()
            .unwrap();
        iothub_emulator::hub::registry::connection_string(&rec, "localhost")
    };
    let token = device_token("localhost", "dev1", &key_of(&cs_key), now() + 3600);
    let mut second = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            second
                .login("dev1", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::Success
    );
    assert!(
        first.recv().await.is_none(),
        "the first connection was closed"
    );
    second.send(Packet::PingReq).await;
    assert_eq!(second.recv().await, Some(Packet::PingResp));
}

#[tokio::test]
async fn connection_is_closed_when_the_token_expires() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let key = key_of(&hub.create_device("dev1").await.unwrap());
    // Expired 299 s ago: accepted within the 300 s skew, so it lapses about 1 s from now.
    let token = device_token("localhost", "dev1", &key, now() - 299);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::Success
    );
    let started = std::time::Instant::now();
    assert!(raw.recv().await.is_none());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

async fn policy_token(
    hub: &iothub_emulator::testing::TestHub,
    policy: &'static str,
    device: &str,
) -> String {
    let p = hub
        .emulator
        .hub
        .store()
        .call(move |tx| iothub_emulator::store::registry::policy(tx, policy))
        .await
        .unwrap()
        .unwrap();
    let signer = iothub_proto::sas::HmacSha256Signer::from_base64(&p.primary_key).unwrap();
    iothub_proto::sas::SasToken::sign(
        iothub_proto::sas::ResourceUri::device("localhost", device),
        now() + 3600,
        Some(policy),
        &signer,
    )
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn device_policy_tokens_are_accepted_and_service_policy_tokens_are_not() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    hub.create_device("dev1").await.unwrap();
    let token = policy_token(&hub, "device", "dev1").await;
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::Success
    );
    // `service` has no DeviceConnect right.
    let token = policy_token(&hub, "service", "dev1").await;
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
}

#[tokio::test]
async fn a_token_for_another_host_is_refused() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let key = key_of(&hub.create_device("dev1").await.unwrap());
    let token = device_token("otherhub.azure-devices.net", "dev1", &key, now() + 3600);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login("dev1", &username("localhost", "dev1"), &token)
                .await
        ),
        ConnectReturnCode::NotAuthorized
    );
    // ...and a username naming a host the hub does not answer to.
    let token = device_token("localhost", "dev1", &key, now() + 3600);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    assert_eq!(
        code(
            raw.login(
                "dev1",
                &username("otherhub.azure-devices.net", "dev1"),
                &token
            )
            .await
        ),
        ConnectReturnCode::NotAuthorized
    );
}
