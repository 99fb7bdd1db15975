//! The service REST API of a running emulator (plain HTTP and HTTPS listeners) driving a real
//! MQTT device: registry, desired patch pushed, method round trip, telemetry in the log and on
//! the live SSE stream (docs/rest-api.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iothub_emulator::testing::TestHub;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The `iothubowner` token for the running emulator.
fn owner_token(hub: &TestHub) -> String {
    let cs = &hub.emulator.service_connection_string;
    let signer = HmacSha256Signer::from_base64(&key_of(cs)).unwrap();
    SasToken::sign(
        ResourceUri::hub("localhost"),
        now() + 3600,
        Some("iothubowner"),
        &signer,
    )
    .unwrap()
    .to_string()
}

/// One HTTP/1.1 request over `stream`; returns status and body.
async fn request(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("chunked"),
        "expected a sized body: {head}"
    );
    (
        status,
        if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap()
        },
    )
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    request(
        TcpStream::connect(addr).await.unwrap(),
        method,
        path,
        token,
        body,
    )
    .await
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

#[tokio::test]
async fn rest_calls_reach_a_real_mqtt_device_and_its_telemetry_comes_back() {
    let hub = TestHub::spawn().await.unwrap();
    let api = hub
        .emulator
        .http_addr
        .expect("ephemeral config serves plain HTTP");
    let token = owner_token(&hub);

    let (status, created) = http(
        api,
        "PUT",
        "/devices/dev1?api-version=2021-04-12",
        &token,
        Some(json!({"deviceId": "dev1"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();

    let addr = hub.plain_addr();
    let mut o = MqttOptions::new("dev1", addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", "dev1"),
        device_token("localhost", "dev1", &key, now() + 3600),
    );
    let (client, mut events) = AsyncClient::new(o, 10);
    wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_))).await;
    client
        .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    client
        .subscribe("$iothub/methods/POST/#", QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    let (_, device) = http(api, "GET", "/devices/dev1", &token, None).await;
    assert_eq!(device["connectionState"], "Connected");

    // Desired patch through REST arrives on the device's desired topic.
    let patch = json!({"properties": {"desired": {"fanSpeed": 3}}});
    let (status, twin) = http(api, "PATCH", "/twins/dev1", &token, Some(patch)).await;
    assert_eq!(status, 200, "{twin}");
    let Packet::Publish(p) = wait_for(&mut events, |p| matches!(p, Packet::Publish(_))).await
    else {
        unreachable!()
    };
    assert_eq!(p.topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
    assert_eq!(&p.payload[..], br#"{"fanSpeed":3,"$version":2}"#);

    // Method call: the REST caller waits while the device answers over MQTT.
    let caller = token.clone();
    let call = tokio::spawn(async move {
        http(
            api,
            "POST",
            "/twins/dev1/methods",
            &caller,
            Some(json!({"methodName": "blink", "payload": 2})),
        )
        .await
    });
    let Packet::Publish(p) = wait_for(&mut events, |p| matches!(p, Packet::Publish(_))).await
    else {
        unreachable!()
    };
    assert!(
        p.topic.starts_with("$iothub/methods/POST/blink/?$rid="),
        "{}",
        p.topic
    );
    assert_eq!(&p.payload[..], b"2");
    let rid = p.topic.rsplit("$rid=").next().unwrap().to_owned();
    client
        .publish(
            format!("$iothub/methods/res/200/?$rid={rid}"),
            QoS::AtLeastOnce,
            false,
            r#"{"blinked":2}"#,
        )
        .await
        .unwrap();
    let poll = tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                return;
            }
        }
    });
    let (status, answer) = call.await.unwrap();
    assert_eq!(
        (status, answer),
        (200, json!({"status": 200, "payload": {"blinked": 2}}))
    );

    // Telemetry lands in the event log the REST API reads.
    client
        .publish(
            "devices/dev1/messages/events/",
            QoS::AtLeastOnce,
            false,
            r#"{"t":20.5}"#,
        )
        .await
        .unwrap();
    let mut events_seen = Value::Null;
    for _ in 0..50 {
        let (_, page) = http(api, "GET", "/events?device=dev1", &token, None).await;
        if page["events"].as_array().is_some_and(|e| !e.is_empty()) {
            events_seen = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events_seen["events"][0]["payload"], json!({"t": 20.5}));
    assert_eq!(
        events_seen["events"][0]["systemProperties"]["iothub-connection-device-id"],
        "dev1"
    );
    poll.abort();
    hub.shutdown().await;
}

#[tokio::test]
async fn the_api_is_also_served_on_the_https_port_next_to_the_websocket() {
    let hub = TestHub::spawn().await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(hub.ca_pem()) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(hub.https_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (status, devices) = request(
        tls,
        "GET",
        "/devices?api-version=2021-04-12",
        &owner_token(&hub),
        None,
    )
    .await;
    assert_eq!((status, devices), (200, json!([])));
    hub.shutdown().await;
}

/// The DER certificates in a PEM text.
fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn shutdown_completes_while_an_event_stream_is_open() {
    let hub = TestHub::spawn().await.unwrap();
    let api = hub.emulator.http_addr.unwrap();
    let mut sse = TcpStream::connect(api).await.unwrap();
    let head = format!(
        "GET /events/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        owner_token(&hub)
    );
    sse.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = sse.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::timeout(Duration::from_secs(10), hub.shutdown())
        .await
        .expect("shutdown does not wait for the SSE client");
}
