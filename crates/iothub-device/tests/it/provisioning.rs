//! DPS provisioning, then connecting to the assigned hub.

use iothub_device::{
    Attestation, DeviceClient, Error, Message, ProvisioningOptions, Request, provision,
};

use crate::fake_hub::{FakeHub, KEY};

const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";

#[tokio::test]
async fn provisions_with_a_group_key_and_connects_to_the_assigned_hub() {
    let dps = FakeHub::start().await;
    let registration_id = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
    let provisioned = provision(
        ProvisioningOptions::new(
            "0ne0000TEST",
            registration_id,
            Attestation::GroupKey(GROUP_KEY.into()),
        )
        .provisioning_host("127.0.0.1")
        .port(dps.addr.port())
        .plain_tcp()
        .model_id("dtmi:com:example:Thermostat;1"),
    )
    .await
    .unwrap();
    assert_eq!(provisioned.assigned_hub, "hub.test");
    assert_eq!(provisioned.device_id, registration_id);
    // docs/protocol.md §2.2 vector 7: the derived key.
    assert_eq!(
        provisioned.device_key.as_deref(),
        Some("Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=")
    );
    assert_eq!(
        provisioned.connection_string().unwrap(),
        format!(
            "HostName=hub.test;DeviceId={registration_id};SharedAccessKey=Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
        )
    );

    let (connect, registration) =
        dps.record(|r| (r.connects[0].clone(), r.dps_registrations[0].clone()));
    assert_eq!(connect.client_id, registration_id);
    assert!(connect.clean_session, "DPS keeps no sessions");
    let login = connect.login.unwrap();
    assert!(login.username.starts_with(&format!(
        "0ne0000TEST/registrations/{registration_id}/api-version=2019-03-31"
    )));
    assert!(
        login
            .password
            .starts_with("SharedAccessSignature sr=0ne0000TEST%2Fregistrations%2F")
    );
    assert!(login.password.ends_with("&skn=registration"));
    assert_eq!(
        registration,
        serde_json::json!({"registrationId": registration_id, "payload": {"modelId": "dtmi:com:example:Thermostat;1"}})
    );

    let hub = FakeHub::start().await;
    let options = provisioned
        .client_options()
        .gateway_host_name("127.0.0.1")
        .port(hub.addr.port())
        .plain_tcp();
    let client = DeviceClient::connect(options).await.unwrap();
    client
        .send_telemetry(Message::new("provisioned"))
        .await
        .unwrap();
    let login = hub.record(|r| r.connects[0].login.clone().unwrap());
    assert!(
        login
            .username
            .contains("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1")
    );
    assert!(
        login
            .password
            .contains(&format!("sr=hub.test%2Fdevices%2F{registration_id}&"))
    );
    client.close().await;
}

#[tokio::test]
async fn provisioning_times_out_with_a_typed_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts TCP but never answers CONNECT.
    let _hold = tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let err = provision(
        ProvisioningOptions::new("scope", "reg", Attestation::SymmetricKey(KEY.into()))
            .provisioning_host("127.0.0.1")
            .port(addr.port())
            .plain_tcp()
            .timeout(std::time::Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(Request::Provisioning)),
        "{err:?}"
    );
}

#[tokio::test]
async fn provisions_with_an_x509_certificate_over_mutual_tls() {
    use crate::fake_hub::{Wrap, client_identity, local_tls_with};
    let (ca_pem, config) = local_tls_with(true);
    let (cert_pem, key_pem) = client_identity("cam-1");
    let dps = FakeHub::start_with(Wrap::Tls(config)).await;
    let provisioned = provision(
        ProvisioningOptions::new(
            "0ne0000TEST",
            "cam-1",
            Attestation::X509 {
                cert_pem: cert_pem.clone().into_bytes(),
                key_pem: key_pem.into_bytes(),
            },
        )
        .provisioning_host("localhost")
        .port(dps.addr.port())
        .trust_ca_pem(ca_pem),
    )
    .await
    .unwrap();
    assert_eq!(provisioned.device_id, "cam-1");
    assert_eq!(provisioned.device_key, None);
    assert_eq!(
        provisioned.connection_string(),
        None,
        "no key to save for X.509"
    );
    let (certs, login) =
        dps.record(|r| (r.client_certificates.clone(), r.connects[0].login.clone()));
    assert!(certs[0].is_some(), "the device certificate was presented");
    assert_eq!(login.unwrap().password, "", "X.509 sends no SAS token");
}
