//! MQTT over TLS (server cert chains to the CA; client certs optional) and over WebSocket.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet};
use rumqttc::{AsyncClient, Event, MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test]
async fn mqtt_over_tls_with_the_local_ca() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("tls1").await.unwrap();
    let mut o = MqttOptions::new("tls1", "localhost", hub.mqtt_addr().port());
    o.set_credentials(
        username("localhost", "tls1"),
        device_token("localhost", "tls1", &key_of(&cs), now() + 3600),
    );
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        client_config(hub.ca_pem()),
    )));
    let (_client, mut events) = AsyncClient::new(o, 10);
    let ev = tokio::time::timeout(Duration::from_secs(10), events.poll())
        .await
        .unwrap()
        .unwrap();
    let Event::Incoming(rumqttc::Packet::ConnAck(ack)) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
}

#[tokio::test]
async fn mqtt_over_websocket_echoes_the_subprotocol_and_reassembles_split_frames() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("ws1").await.unwrap();
    let tcp = tokio::net::TcpStream::connect(hub.https_addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(hub.ca_pem()))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut request = format!(
        "wss://localhost:{}/$iothub/websocket",
        hub.https_addr().port()
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "mqtt");

    let mut c = Connect::new("ws1");
    c.keep_alive = 60;
    c.login = Some(Login::new(
        username("localhost", "ws1"),
        device_token("localhost", "ws1", &key_of(&cs), now() + 3600),
    ));
    let mut bytes = BytesMut::new();
    Packet::Connect(c).write(&mut bytes, 1 << 16).unwrap();
    let (a, b) = bytes.split_at(7);
    ws.send(Message::binary(a.to_vec())).await.unwrap();
    ws.send(Message::binary(b.to_vec())).await.unwrap();
    let mut buf = BytesMut::new();
    let packet = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.extend_from_slice(&frame.into_data());
        if let Ok(p) = Packet::read(&mut buf, 1 << 16) {
            break p;
        }
    };
    let Packet::ConnAck(ack) = packet else {
        panic!("{packet:?}")
    };
    assert_eq!(ack.code, ConnectReturnCode::Success);
}

fn x509_client_config(
    ca_pem: &str,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

async fn x509_connack(
    hub: &iothub_emulator::testing::TestHub,
    id: &str,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> rumqttc::ConnectReturnCode {
    let mut o = MqttOptions::new(id, "localhost", hub.mqtt_addr().port());
    // X.509: username only, no password (docs/protocol.md §1.8).
    o.set_credentials(username("localhost", id), "");
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        x509_client_config(hub.ca_pem(), cert),
    )));
    let (_client, mut events) = AsyncClient::new(o, 10);
    match tokio::time::timeout(Duration::from_secs(10), events.poll())
        .await
        .unwrap()
    {
        Ok(Event::Incoming(rumqttc::Packet::ConnAck(ack))) => ack.code,
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn x509_self_signed_device_authenticates_by_thumbprint() {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["cam1".to_string()]).unwrap();
    let (_sha1, sha256) = iothub_emulator::tls::thumbprints(cert.cert.der());
    let new = iothub_emulator::hub::registry::NewIdentity {
        device_id: "cam1".into(),
        x509_thumbprint: Some(sha256.to_lowercase()),
        ..Default::default()
    };
    hub.create(new).await.unwrap();
    assert_eq!(
        x509_connack(&hub, "cam1", &cert).await,
        rumqttc::ConnectReturnCode::Success
    );
    let other = rcgen::generate_simple_self_signed(vec!["cam1".to_string()]).unwrap();
    assert_eq!(
        x509_connack(&hub, "cam1", &other).await,
        rumqttc::ConnectReturnCode::NotAuthorized
    );
}
