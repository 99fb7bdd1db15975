//! The device client against the real emulator (`iothub_emulator::testing::TestHub`).

use std::time::Duration;

use iothub_device::{ClientOptions, ConnectRefusal, DeviceClient, Error, Message};
use iothub_emulator::testing::TestHub;

fn tls_options(hub: &TestHub, cs: &str) -> ClientOptions {
    ClientOptions::from_connection_string(cs)
        .unwrap()
        .port(hub.mqtt_addr().port())
        .trust_ca_pem(hub.ca_pem().as_bytes().to_vec())
        .request_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn telemetry_over_tls_reaches_the_event_log_with_properties() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let mut feed = hub.emulator.hub.live_feed();
    let client = DeviceClient::connect(tls_options(&hub, &cs)).await.unwrap();
    client
        .send_telemetry(
            Message::json(&serde_json::json!({"temperature": 21.5}))
                .message_id("mid-1")
                .property("alert", "true"),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.device_id, "dev1");
    assert_eq!(&event.body[..], br#"{"temperature":21.5}"#);
    assert_eq!(
        event.application_properties.get("alert"),
        Some(&Some("true".to_owned()))
    );
    assert_eq!(
        event
            .system_properties
            .get("message-id")
            .map(String::as_str),
        Some("mid-1")
    );
    client.close().await;
    hub.shutdown().await;
}

#[tokio::test]
async fn telemetry_over_websockets() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let mut feed = hub.emulator.hub.live_feed();
    let options = tls_options(&hub, &cs)
        .websockets(true)
        .port(hub.https_addr().port());
    let client = DeviceClient::connect(options).await.unwrap();
    client
        .send_telemetry(Message::new("over websockets"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&event.body[..], b"over websockets");
    client.close().await;
    hub.shutdown().await;
}

#[tokio::test]
async fn wrong_key_is_refused_as_not_authorized() {
    let hub = TestHub::spawn().await.unwrap();
    hub.create_device("dev1").await.unwrap();
    let cs = format!(
        "HostName=localhost;DeviceId=dev1;SharedAccessKey={}",
        crate::fake_hub::KEY
    );
    let err = DeviceClient::connect(tls_options(&hub, &cs))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(ConnectRefusal::NotAuthorized)),
        "{err:?}"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn twin_reported_patch_then_get() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let client = DeviceClient::connect(tls_options(&hub, &cs)).await.unwrap();
    let version = client
        .update_reported(&serde_json::json!({"temperature": 32}))
        .await
        .unwrap();
    assert_eq!(version, 2);
    let twin = client.twin().await.unwrap();
    assert_eq!(twin["reported"]["temperature"], 32);
    assert_eq!(twin["reported"]["$version"], 2);
    assert_eq!(twin["desired"]["$version"], 1);
    client.close().await;
    hub.shutdown().await;
}

#[tokio::test]
async fn telemetry_example_runs_against_the_emulator() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let ca = std::env::temp_dir().join(format!("iothub-device-it-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, hub.ca_pem()).unwrap();
    let mut feed = hub.emulator.hub.live_feed();
    let output = tokio::process::Command::new(crate::examples::example("telemetry"))
        .env("IOTHUB_DEVICE_CONNECTION_STRING", &cs)
        .args([
            "--count",
            "3",
            "--interval-ms",
            "10",
            "--ca-file",
            ca.to_str().unwrap(),
        ])
        .args(["--port", &hub.mqtt_addr().port().to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.device_id, "dev1");
    }
    let _ = std::fs::remove_file(&ca);
    hub.shutdown().await;
}

#[tokio::test]
async fn no_message_lost_when_a_proxy_cuts_emulator_connections() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let mut feed = hub.emulator.hub.live_feed();
    let proxy = crate::proxy::Proxy::start(hub.mqtt_addr()).await;
    let options = tls_options(&hub, &cs)
        .port(proxy.addr.port())
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let client = DeviceClient::connect(options).await.unwrap();
    let mut waits = Vec::new();
    for i in 0..200 {
        waits.push(
            client
                .enqueue_telemetry(Message::new(format!("{i}")).message_id(format!("e{i}")))
                .await
                .unwrap(),
        );
        if i % 50 == 25 {
            proxy.cut();
        }
    }
    for wait in waits {
        wait.await.unwrap();
    }
    let mut ids = std::collections::HashSet::new();
    while ids.len() < 200 {
        let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .unwrap()
            .unwrap();
        ids.insert(event.system_properties["message-id"].clone());
    }
    client.close().await;
    hub.shutdown().await;
}

type Seen = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// Adds the message id of every event on `feed` to `seen`.
fn collect(
    mut feed: tokio::sync::broadcast::Receiver<
        std::sync::Arc<iothub_emulator::store::events::TelemetryEvent>,
    >,
    seen: Seen,
) {
    tokio::spawn(async move {
        while let Ok(event) = feed.recv().await {
            if let Some(id) = event.system_properties.get("message-id") {
                seen.lock().unwrap().insert(id.clone());
            }
        }
    });
}

#[tokio::test]
async fn no_message_lost_across_an_emulator_restart() {
    use iothub_emulator::{Config, RunningEmulator};
    let dir = std::env::temp_dir().join(format!("iothub-device-it-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::ephemeral();
    config.data_dir = Some(dir.clone());
    let first = RunningEmulator::start(config.clone()).await.unwrap();
    let port = first.mqtt_addr.port();
    let hub = TestHub { emulator: first };
    let cs = hub.create_device("dev1").await.unwrap();
    let ca = hub.ca_pem().to_owned();
    let seen = Seen::default();
    collect(hub.emulator.hub.live_feed(), seen.clone());
    let options = ClientOptions::from_connection_string(&cs)
        .unwrap()
        .port(port)
        .trust_ca_pem(ca.into_bytes())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(300));
    let client = DeviceClient::connect(options).await.unwrap();
    let mut waits = Vec::new();
    for i in 0..100 {
        waits.push(
            client
                .enqueue_telemetry(Message::new("x").message_id(format!("a{i}")))
                .await
                .unwrap(),
        );
    }
    hub.shutdown().await;
    // Accepted while the hub is down.
    for i in 100..150 {
        waits.push(
            client
                .enqueue_telemetry(Message::new("x").message_id(format!("a{i}")))
                .await
                .unwrap(),
        );
    }
    config.mqtt_port = port;
    let second = RunningEmulator::start(config).await.unwrap();
    collect(second.hub.live_feed(), seen.clone());
    for wait in waits {
        wait.await.unwrap();
    }
    client.close().await;
    // The feed is published before the PUBACK; give the collector a moment to catch up.
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.shutdown().await;
    let ids = seen.lock().unwrap().clone();
    for i in 0..150 {
        assert!(
            ids.contains(&format!("a{i}")),
            "a{i} was acknowledged but is not in the event log"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn identity(device_id: &str) -> iothub_emulator::hub::auth::Identity {
    iothub_emulator::hub::auth::Identity {
        device_id: device_id.into(),
        module_id: None,
    }
}

#[tokio::test]
async fn c2d_direct_methods_and_desired_properties_from_the_service_side() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let client = DeviceClient::connect(tls_options(&hub, &cs)).await.unwrap();
    let mut c2d = client.c2d_messages().await.unwrap();
    let mut desired = client.desired_properties().await.unwrap();
    client
        .on_method("getMaxMinReport", |call| async move {
            iothub_device::MethodResponse::ok(serde_json::json!({"since": call.payload["since"]}))
        })
        .await
        .unwrap();
    let service = &hub.emulator.hub;
    // Subscriptions go out after CONNACK; give them a moment to be acknowledged.
    tokio::time::sleep(Duration::from_millis(300)).await;

    service
        .send_c2d(
            &identity("dev1"),
            iothub_emulator::hub::c2d::OutgoingMessage {
                body: b"hello world".to_vec(),
                correlation_id: Some("c-9".into()),
                properties: vec![("property1".into(), "value 1".into())],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), c2d.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.body[..], b"hello world");
    assert_eq!(message.correlation_id.as_deref(), Some("c-9"));
    assert_eq!(message.property("property1"), Some("value 1"));

    let call = iothub_emulator::hub::methods::MethodCall::from_json(&serde_json::json!({
        "methodName": "getMaxMinReport", "payload": {"since": "2026-01-01"}, "responseTimeoutInSeconds": 5
    }))
    .unwrap();
    let result = service
        .invoke_method(&identity("dev1"), call)
        .await
        .unwrap();
    assert_eq!(result.status, 200);
    assert_eq!(result.payload, serde_json::json!({"since": "2026-01-01"}));
    let unknown = iothub_emulator::hub::methods::MethodCall::from_json(&serde_json::json!({
        "methodName": "reboot", "responseTimeoutInSeconds": 5
    }))
    .unwrap();
    assert_eq!(
        service
            .invoke_method(&identity("dev1"), unknown)
            .await
            .unwrap()
            .status,
        501
    );

    service
        .patch_twin(
            &identity("dev1"),
            serde_json::json!({"properties": {"desired": {"targetTemperature": 23}}}),
            None,
        )
        .await
        .unwrap();
    let patch = tokio::time::timeout(Duration::from_secs(5), desired.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patch.version, 2);
    assert_eq!(patch.properties["targetTemperature"], 23);
    client.close().await;
    hub.shutdown().await;
}

/// Starts example `name` against the emulator as device `cs`, trusting its CA.
fn spawn_example(hub: &TestHub, cs: &str, name: &str, args: &[&str]) -> tokio::process::Child {
    let ca = std::env::temp_dir().join(format!(
        "iothub-device-it-ca-{}-{name}.pem",
        std::process::id()
    ));
    std::fs::write(&ca, hub.ca_pem()).unwrap();
    tokio::process::Command::new(crate::examples::example(name))
        .env("IOTHUB_DEVICE_CONNECTION_STRING", cs)
        .args(["--ca-file", ca.to_str().unwrap()])
        .args(["--port", &hub.mqtt_addr().port().to_string()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn finish(child: tokio::process::Child) -> String {
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the example finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn twin_example_runs_against_the_emulator() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let stdout = finish(spawn_example(&hub, &cs, "twin", &[])).await;
    // The expected output of Microsoft's twin sample: reported $version 2, then the twin with
    // temperature 32.
    assert!(stdout.contains("$version 2"), "{stdout}");
    assert!(stdout.contains(r#""temperature":32"#), "{stdout}");
    hub.shutdown().await;
}

#[tokio::test]
async fn c2d_example_receives_a_message_sent_by_the_service() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    // Queued before the device connects: delivered once it subscribes.
    hub.emulator
        .hub
        .send_c2d(
            &identity("dev1"),
            iothub_emulator::hub::c2d::OutgoingMessage {
                body: b"hello world".to_vec(),
                properties: vec![("property1".into(), "value 1".into())],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stdout = finish(spawn_example(&hub, &cs, "c2d", &["--count", "1"])).await;
    assert!(stdout.contains(r#""body":"hello world""#), "{stdout}");
    assert!(stdout.contains(r#""property1":"value 1""#), "{stdout}");
    hub.shutdown().await;
}

#[tokio::test]
async fn pnp_thermostat_example_answers_the_service_against_the_emulator() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("thermo").await.unwrap();
    let child = spawn_example(
        &hub,
        &cs,
        "pnp_thermostat",
        &["--count", "6", "--interval-ms", "300"],
    );
    let service = &hub.emulator.hub;
    let call = || {
        iothub_emulator::hub::methods::MethodCall::from_json(&serde_json::json!({
            "methodName": "getMaxMinReport", "payload": {"since": "2026-01-01"},
            "responseTimeoutInSeconds": 5, "connectTimeoutInSeconds": 10
        }))
        .unwrap()
    };
    let result = service
        .invoke_method(&identity("thermo"), call())
        .await
        .unwrap();
    assert_eq!(result.status, 200, "{:?}", result.payload);
    assert!(
        result.payload.get("maxTemp").is_some(),
        "{:?}",
        result.payload
    );
    service
        .patch_twin(
            &identity("thermo"),
            serde_json::json!({"properties": {"desired": {"targetTemperature": 30}}}),
            None,
        )
        .await
        .unwrap();
    let stdout = finish(child).await;
    assert!(stdout.contains("targetTemperature -> 30"), "{stdout}");
    hub.shutdown().await;
}

#[tokio::test]
async fn provisions_through_the_emulators_dps_with_a_group_key_then_sends() {
    use iothub_emulator::hub::provisioning::{self, EnrollmentKind};
    let hub = TestHub::spawn().await.unwrap();
    let (scope, group_key) = hub
        .emulator
        .hub
        .store()
        .call(|tx| {
            let scope = provisioning::id_scope(tx).unwrap();
            let group = provisioning::create_enrollment(
                tx,
                EnrollmentKind::Group,
                "fleet",
                None,
                None,
                std::time::SystemTime::now(),
            )
            .unwrap();
            Ok((scope, group.primary_key))
        })
        .await
        .unwrap();
    let provisioned = iothub_device::provision(
        iothub_device::ProvisioningOptions::new(
            &scope,
            "sensor-7",
            iothub_device::Attestation::GroupKey(group_key),
        )
        .provisioning_host("localhost")
        .port(hub.mqtt_addr().port())
        .trust_ca_pem(hub.ca_pem().as_bytes().to_vec())
        .timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(provisioned.device_id, "sensor-7");
    let mut feed = hub.emulator.hub.live_feed();
    let options = provisioned.client_options().port(hub.mqtt_addr().port());
    let client = DeviceClient::connect(options).await.unwrap();
    client
        .send_telemetry(Message::new("provisioned"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.device_id, "sensor-7");
    client.close().await;
    hub.shutdown().await;
}

#[tokio::test]
async fn provision_example_runs_against_the_emulator() {
    use iothub_emulator::hub::provisioning::{self, EnrollmentKind};
    let hub = TestHub::spawn().await.unwrap();
    let (scope, key) = hub
        .emulator
        .hub
        .store()
        .call(|tx| {
            let scope = provisioning::id_scope(tx).unwrap();
            let e = provisioning::create_enrollment(
                tx,
                EnrollmentKind::Individual,
                "sensor-8",
                None,
                None,
                std::time::SystemTime::now(),
            )
            .unwrap();
            Ok((scope, e.primary_key))
        })
        .await
        .unwrap();
    let port = hub.mqtt_addr().port().to_string();
    let child = spawn_example(
        &hub,
        "",
        "provision",
        &[
            "--id-scope",
            &scope,
            "--registration-id",
            "sensor-8",
            "--key",
            &key,
            "--provisioning-host",
            "localhost",
            "--dps-port",
            &port,
        ],
    );
    let stdout = finish(child).await;
    assert!(stdout.contains(r#""deviceId":"sensor-8""#), "{stdout}");
    assert!(stdout.contains("telemetry acknowledged"), "{stdout}");
    hub.shutdown().await;
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_against_the_emulator_without_losing_messages() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let seen = Seen::default();
    collect(hub.emulator.hub.live_feed(), seen.clone());
    let options = tls_options(&hub, &cs).token_ttl(Duration::from_secs(2));
    let client = DeviceClient::connect(options).await.unwrap();
    let mut states = client.connection_state();
    let reconnects = tokio::spawn(async move {
        let mut connected = 0;
        while states.changed().await.is_ok() {
            if *states.borrow() == iothub_device::ConnectionState::Connected {
                connected += 1;
            }
        }
        connected
    });
    for i in 0..40 {
        client
            .send_telemetry(Message::new("x").message_id(format!("t{i}")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.close().await;
    drop(client);
    let renewals = tokio::time::timeout(Duration::from_secs(5), reconnects)
        .await
        .unwrap()
        .unwrap();
    assert!(
        renewals >= 2,
        "the 2 s token was renewed ({renewals} reconnects)"
    );
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = seen.lock().unwrap().clone();
    for i in 0..40 {
        assert!(
            ids.contains(&format!("t{i}")),
            "t{i} acknowledged but not in the event log"
        );
    }
    hub.shutdown().await;
}
