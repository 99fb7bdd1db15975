//! Findings: a service token with `sr=localhost/devices/devB` read devA's twin and created
//! devices; `127.0.0.1` audiences were accepted on REST but refused on MQTT.

use iothub_emulator::testing::TestHub;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};

use crate::http::{owner_token, send};
use crate::support::{Raw, key_of, now, username};

#[tokio::test]
async fn a_path_scoped_service_token_reaches_only_its_subtree() {
    let hub = TestHub::spawn().await.unwrap();
    hub.create_device("devA").await.unwrap();
    hub.create_device("devB").await.unwrap();
    let http = hub.emulator.http_addr.unwrap();
    let scoped = owner_token(&hub, "localhost/devices/devB");

    let allowed = send(http, "GET", "/devices/devB", &scoped, b"").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    for (method, path, body) in [
        ("GET", "/twins/devA", b"".as_slice()),
        ("GET", "/devices/devA", b""),
        ("GET", "/devices/devBB", b""),
        ("GET", "/twins/devB", b""),
        ("PUT", "/devices/devC", br#"{"deviceId":"devC"}"#),
        ("GET", "/devices", b""),
    ] {
        let r = send(http, method, path, &scoped, body).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.hub_error()["errorCode"], 401_002);
    }
    // The hub-wide token still reaches everything, under every host name of the hub.
    for sr in ["localhost", "127.0.0.1"] {
        let r = send(http, "GET", "/twins/devA", &owner_token(&hub, sr), b"").await;
        assert_eq!(r.status, 200, "{sr}: {}", r.body);
    }
    hub.shutdown().await;
}

fn device_token(sr: &str, key: &str) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    SasToken::sign(ResourceUri::raw(sr), now() + 3600, None, &signer)
        .unwrap()
        .to_string()
}

async fn connack(hub: &TestHub, user_host: &str, sr: &str, key: &str) -> ConnectReturnCode {
    let mut raw = Raw::connect(hub.plain_addr()).await;
    match raw
        .login("dev1", &username(user_host, "dev1"), &device_token(sr, key))
        .await
    {
        Some(Packet::ConnAck(a)) => a.code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mqtt_accepts_the_same_audiences_as_rest_and_scopes_them() {
    let hub = TestHub::spawn().await.unwrap();
    let key = key_of(&hub.create_device("dev1").await.unwrap());
    hub.create_device("dev2").await.unwrap();
    use ConnectReturnCode::{NotAuthorized, Success};
    for (user_host, sr, want) in [
        ("localhost", "localhost/devices/dev1", Success),
        ("localhost", "127.0.0.1/devices/dev1", Success),
        ("127.0.0.1", "localhost/devices/dev1", Success),
        ("localhost", "127.0.0.1:8883/devices/dev1", Success),
        ("localhost", "localhost/devices/dev2", NotAuthorized),
        ("localhost", "other.example/devices/dev1", NotAuthorized),
    ] {
        assert_eq!(
            connack(&hub, user_host, sr, &key).await,
            want,
            "{user_host} {sr}"
        );
    }
    hub.shutdown().await;
}
