//! Connecting and sending telemetry.

use std::time::Duration;

use iothub_device::{DeviceClient, Error, MAX_TELEMETRY_SIZE, Message};

use crate::fake_hub::{FakeHub, mid, options};

#[tokio::test]
async fn connects_with_iot_hub_credentials_and_persistent_session() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr).model_id("dtmi:com:example:Thermostat;1"))
        .await
        .unwrap();
    let connect = hub.record(|r| r.connects[0].clone());
    assert_eq!(connect.client_id, "dev1");
    assert!(
        !connect.clean_session,
        "IoT Hub sessions are persistent (clean session 0)"
    );
    assert_eq!(connect.keep_alive, 240);
    let login = connect.login.unwrap();
    assert!(
        login.username.starts_with("hub.test/dev1/?api-version="),
        "{}",
        login.username
    );
    assert!(
        login
            .username
            .contains("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1")
    );
    assert!(
        login
            .password
            .starts_with("SharedAccessSignature sr=hub.test%2Fdevices%2Fdev1&sig="),
        "{}",
        login.password
    );
    client.close().await;
    hub.wait_for("DISCONNECT", |r| r.disconnects == 1).await;
}

#[tokio::test]
async fn send_resolves_after_puback_with_properties_on_the_topic() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.puback_delay = Some(Duration::from_millis(200)));
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let started = tokio::time::Instant::now();
    client
        .send_telemetry(
            Message::new(r#"{"temperature":21.5}"#)
                .message_id("mid-1")
                .correlation_id("cid-1")
                .content_type("application/json")
                .content_encoding("utf-8")
                .property("alert", "true"),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "resolved before the PUBACK"
    );
    let publish = hub.record(|r| r.acked[0].clone());
    // docs/protocol.md §4 (Python SDK byte for byte)
    assert_eq!(
        publish.topic,
        "devices/dev1/messages/events/%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true"
    );
    assert_eq!(&publish.payload[..], br#"{"temperature":21.5}"#);
    assert_eq!(mid(&publish).as_deref(), Some("mid-1"));
    client.close().await;
}

#[tokio::test]
async fn module_identity_publishes_on_module_topic() {
    let hub = FakeHub::start().await;
    let options = iothub_device::ClientOptions::from_connection_string(&format!(
        "HostName=hub.test;DeviceId=dev1;ModuleId=mod1;SharedAccessKey={}",
        crate::fake_hub::KEY
    ))
    .unwrap()
    .gateway_host_name("127.0.0.1")
    .port(hub.addr.port())
    .plain_tcp();
    let client = DeviceClient::connect(options).await.unwrap();
    client
        .send_telemetry(Message::new("x").component("thermostat1"))
        .await
        .unwrap();
    let (connect, publish) = hub.record(|r| (r.connects[0].clone(), r.acked[0].clone()));
    assert_eq!(connect.client_id, "dev1/mod1");
    assert_eq!(
        publish.topic,
        "devices/dev1/modules/mod1/messages/events/%24.sub=thermostat1"
    );
    client.close().await;
}

#[tokio::test]
async fn refuses_oversized_telemetry_without_sending() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let err = client
        .send_telemetry(Message::new(vec![0u8; MAX_TELEMETRY_SIZE + 1]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }), "{err:?}");
    client
        .send_telemetry(Message::new(vec![7u8; MAX_TELEMETRY_SIZE]))
        .await
        .unwrap();
    assert_eq!(hub.record(|r| r.publishes.len()), 1);
    client.close().await;
}

#[tokio::test]
async fn at_most_once_telemetry_is_published_at_qos_zero_and_resolves_once_written() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    client
        .send_telemetry(Message::new("fast").message_id("q0").at_most_once())
        .await
        .unwrap();
    hub.wait_for("the QoS 0 publish", |r| r.publishes.len() == 1)
        .await;
    let publish = hub.record(|r| r.publishes[0].clone());
    assert_eq!(publish.qos, rumqttc::mqttbytes::QoS::AtMostOnce);
    assert_eq!(mid(&publish).as_deref(), Some("q0"));
    assert!(hub.record(|r| r.acked.is_empty()), "QoS 0 has no PUBACK");
    client.close().await;
}
