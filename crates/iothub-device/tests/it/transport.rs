//! TLS and WebSocket transports against a local CA.

use iothub_device::{
    ClientOptions, ConnectionState, DeviceClient, DisconnectReason, Error, Message, NetworkError,
    Request,
};
use rustls::pki_types::pem::PemObject;

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
    assert!(matches!(err, Error::Timeout(Request::Connect)), "{err:?}");
    assert!(
        hub.record(|r| r.connects.is_empty()),
        "no MQTT without a trusted certificate"
    );
}

#[tokio::test]
async fn reports_an_untrusted_certificate_as_a_typed_tls_failure() {
    let (_, config) = local_tls();
    let hub = FakeHub::start_with(Wrap::Tls(config)).await;
    let client = DeviceClient::start(tls_options(&hub)).unwrap();
    let mut states = client.connection_state();
    let reason = loop {
        if let ConnectionState::Disconnected { reason, .. } = &*states.borrow_and_update() {
            break reason.clone();
        }
        states.changed().await.unwrap();
    };
    let DisconnectReason::Network(network) = &reason else {
        panic!("{reason:?}");
    };
    assert!(
        matches!(network, NetworkError::Tls { host, .. } if host == "localhost"),
        "{network:?}"
    );
    assert!(
        matches!(
            network.tls_error(),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{network:?}"
    );
    assert!(!network.is_retriable());
    client.close().await;
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

#[tokio::test]
async fn x509_device_presents_its_certificate_and_sends_no_password() {
    let (ca_pem, config) = crate::fake_hub::local_tls_with(true);
    let (cert_pem, key_pem) = crate::fake_hub::client_identity("dev1");
    let hub = FakeHub::start_with(Wrap::Tls(config)).await;
    let options = ClientOptions::from_connection_string(
        "HostName=hub.test;DeviceId=dev1;x509=true;GatewayHostName=localhost",
    )
    .unwrap()
    .x509_identity(cert_pem.clone(), key_pem)
    .port(hub.addr.port())
    .trust_ca_pem(ca_pem);
    let client = DeviceClient::connect(options).await.unwrap();
    client.send_telemetry(Message::new("x509")).await.unwrap();
    let (certs, login) =
        hub.record(|r| (r.client_certificates.clone(), r.connects[0].login.clone()));
    let presented = certs[0]
        .clone()
        .expect("a client certificate was presented");
    let expected = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(presented, expected.as_ref());
    let login = login.unwrap();
    assert!(login.username.starts_with("hub.test/dev1/?api-version="));
    assert_eq!(login.password, "", "X.509 sends no SAS token");
    client.close().await;
}
