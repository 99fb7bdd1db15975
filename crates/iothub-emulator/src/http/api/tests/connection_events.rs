//! `GET /devices/{id}/connectionEvents`: refusals with their reason, connects and disconnects.

use std::time::Duration;

use super::*;
use crate::hub::auth::ConnectCredentials;
use crate::hub::{ConnectError, DeviceLogin};

async fn connect(api: &Api, password: &str) -> Result<crate::hub::DeviceConnection, ConnectError> {
    connect_as(api, "dev1", password).await
}

async fn connect_as(
    api: &Api,
    client_id: &str,
    password: &str,
) -> Result<crate::hub::DeviceConnection, ConnectError> {
    let login = DeviceLogin {
        transport: "mqtt+tls",
        credentials: ConnectCredentials {
            client_id,
            username: Some("localhost/dev1/?api-version=2021-04-12"),
            password: Some(password),
            thumbprints: None,
        },
        clean_session: true,
    };
    api.hub.connect_device(login).await
}

#[tokio::test]
async fn the_history_shows_the_refusal_reason_the_connect_and_why_it_closed() {
    let api = setup().await;
    let device = api.create("dev1").await;
    let key = device["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=AAAA&se=9999999999";
    assert!(matches!(
        connect(&api, wrong).await,
        Err(ConnectError::Refused(_))
    ));

    let signer = HmacSha256Signer::from_base64(&key).unwrap();
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let good = SasToken::sign(
        ResourceUri::raw("localhost/devices/dev1"),
        expiry,
        None,
        &signer,
    )
    .unwrap()
    .to_string();
    let accepted = connect(&api, &good).await.unwrap();
    api.hub.disconnected(
        &accepted.connection,
        "mqtt+tls",
        "keep-alive timeout",
        Duration::from_millis(2500),
    );

    let r = api
        .call(
            "GET",
            "/devices/dev1/connectionEvents?api-version=2021-04-12",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let events = r.json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["refused", "connected", "disconnected"]);
    assert_eq!(
        events[0]["reason"],
        "signature does not match the primary or secondary key of device `dev1`"
    );
    assert_eq!(events[1]["transport"], "mqtt+tls");
    assert_eq!(events[2]["reason"], "keep-alive timeout");
    assert_eq!(events[2]["durationMs"], 2500);
    // Neither the key nor the token is ever part of the history.
    assert!(!r.body.windows(key.len()).any(|w| w == key.as_bytes()));
    assert!(!String::from_utf8_lossy(&r.body).contains("sig="));
}

#[tokio::test]
async fn the_history_needs_a_service_token() {
    let api = setup().await;
    let r = api
        .call_with("GET", "/devices/dev1/connectionEvents", None, &[], None)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_refusal_is_filed_under_the_identity_the_username_claims() {
    let api = setup().await;
    api.create("dev1").await;
    assert!(connect_as(&api, "dev2", "x").await.is_err());
    let r = api
        .call("GET", "/devices/dev1/connectionEvents", None)
        .await;
    assert_eq!(
        r.json()[0]["reason"],
        "client id `dev2` is not the username's identity `dev1`"
    );
    let r = api
        .call("GET", "/devices/dev2/connectionEvents", None)
        .await;
    assert_eq!(r.json(), json!([]));
}
