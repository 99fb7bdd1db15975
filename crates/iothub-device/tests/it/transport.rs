//! TLS and WebSocket transports against a local CA.

use iothub_device::{ClientOptions, DeviceClient, Error, Message};

use crate::fake_hub::{FakeHub, KEY, Wrap, local_tls};

fn tls_options(hub: &FakeHub) -> ClientOptions {
    ClientOptions::from_connection_string(&format!(
        "HostName=hub.test;DeviceId=dev1;SharedAccessKey={KEY};GatewayHostName=localhost"
    ))
    .unwrap()
    .port(hub.addr.port())
    .request_timeout(std::time::Duration::from_secs(5))
}

#[tokio::test]
async fn connects_over_tls_trusting_an_extra_ca() {
    let (ca_pem, config) = local_tls();
    let hub = FakeHub::start_with(Wrap::Tls(config)).await;
    let client = DeviceClient::connect(tls_options(&hub).trust_ca_pem(ca_pem))
        .await
        .unwrap();
    client
        .send_telemetry(Message::new("over tls"))
        .await
        .unwrap();
    let login = hub.record(|r| r.connects[0].login.clone().unwrap());
    assert!(
        login.username.starts_with("hub.test/dev1/"),
        "HostName stays in the username"
    );
    client.close().await;
}

#[tokio::test]
async fn refuses_a_server_outside_the_trusted_roots() {
    let (_, config) = local_tls();
    let hub = FakeHub::start_with(Wrap::Tls(config)).await;
    let err = DeviceClient::connect(
        tls_options(&hub).request_timeout(std::time::Duration::from_millis(800)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        hub.record(|r| r.connects.is_empty()),
        "no MQTT without a trusted certificate"
    );
}

#[tokio::test]
async fn connects_over_websockets_with_the_iothub_path_and_mqtt_subprotocol() {
    let (ca_pem, config) = local_tls();
    let hub = FakeHub::start_with(Wrap::TlsWebSocket(config)).await;
    let client = DeviceClient::connect(tls_options(&hub).websockets(true).trust_ca_pem(ca_pem))
        .await
        .unwrap();
    client
        .send_telemetry(Message::new("over websockets"))
        .await
        .unwrap();
    let requests = hub.record(|r| r.websocket_requests.clone());
    assert_eq!(
        requests,
        [("/$iothub/websocket".to_owned(), "mqtt".to_owned())]
    );
    client.close().await;
}
