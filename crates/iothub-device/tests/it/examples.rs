//! Every example runs as a process against a local peer and does what the sample it ports
//! (Microsoft's IoT MQTT Samples) does.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;
use tokio::process::{Child, Command};

use crate::fake_hub::{FakeHub, KEY};

pub(crate) fn example(name: &str) -> PathBuf {
    // target/{profile}/deps/it-… -> target/{profile}/examples/{name}
    let mut profile_dir = std::env::current_exe().unwrap();
    profile_dir.pop();
    profile_dir.pop();
    build_examples(&profile_dir);
    profile_dir.join("examples").join(name)
}

/// Builds the example binaries once per test run. `cargo test --all-targets` compiles
/// examples as test harnesses, not as the programs these tests run, so on a clean target
/// directory the programs would not exist.
fn build_examples(profile_dir: &std::path::Path) {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let target_dir = profile_dir.parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut build = std::process::Command::new(cargo);
        build.args([
            "build",
            "--quiet",
            "-p",
            "iothub-device",
            "--examples",
            "--target-dir",
        ]);
        build.arg(target_dir);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo to build the examples");
        assert!(status.success(), "building the examples failed");
    });
}

fn spawn(name: &str, hub: &FakeHub, args: &[&str]) -> Child {
    Command::new(example(name))
        .env(
            "IOTHUB_DEVICE_CONNECTION_STRING",
            format!("HostName=hub.test;DeviceId=dev1;SharedAccessKey={KEY}"),
        )
        .args([
            "--plain",
            "--dial",
            "127.0.0.1",
            "--port",
            &hub.addr.port().to_string(),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn finish(child: Child) -> String {
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("example did not finish")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn telemetry_example_sends_and_reports_each_acknowledgement() {
    let hub = FakeHub::start().await;
    let stdout = finish(spawn(
        "telemetry",
        &hub,
        &["--count", "3", "--interval-ms", "10"],
    ))
    .await;
    assert_eq!(stdout.matches("acknowledged").count(), 3, "{stdout}");
    let acked = hub.record(|r| r.acked.len());
    assert_eq!(acked, 3);
}

#[tokio::test]
async fn c2d_example_prints_and_completes_messages() {
    let hub = FakeHub::start().await;
    let child = spawn("c2d", &hub, &["--count", "1"]);
    hub.wait_for("C2D subscription", |r| !r.subscriptions.is_empty())
        .await;
    let mut publish = Publish::new(
        "devices/dev1/messages/devicebound/%24.mid=m1&property1=value%201",
        QoS::AtLeastOnce,
        "hello world",
    );
    publish.pkid = 9;
    hub.send(publish);
    let stdout = finish(child).await;
    assert!(stdout.contains(r#""body":"hello world""#), "{stdout}");
    assert!(stdout.contains(r#""property1":"value 1""#), "{stdout}");
    assert_eq!(hub.record(|r| r.device_acks.clone()), [9]);
}

#[tokio::test]
async fn twin_example_reports_then_prints_the_twin() {
    let hub = FakeHub::start().await;
    let stdout = finish(spawn("twin", &hub, &[])).await;
    assert!(stdout.contains("$version 2"), "{stdout}");
    assert!(stdout.contains(r#""reported":{"$version":2}"#), "{stdout}");
    let patches = hub.record(|r| r.reported_patches.clone());
    assert_eq!(patches, [serde_json::json!({"temperature": 32})]);
}

#[tokio::test]
async fn pnp_thermostat_example_follows_the_conventions() {
    let hub = FakeHub::start().await;
    hub.record.lock().unwrap().twin_desired =
        serde_json::json!({"targetTemperature": 25.0, "$version": 3});
    let child = spawn(
        "pnp_thermostat",
        &hub,
        &["--count", "4", "--interval-ms", "300"],
    );
    hub.wait_for("the methods subscription", |r| {
        r.subscriptions
            .iter()
            .flatten()
            .any(|f| f == "$iothub/methods/POST/#")
    })
    .await;
    hub.send(Publish::new(
        "$iothub/methods/POST/getMaxMinReport/?$rid=1a",
        QoS::AtMostOnce,
        r#"{"since":"2026-01-01"}"#,
    ));
    let stdout = finish(child).await;
    assert_eq!(stdout.matches("telemetry").count(), 4, "{stdout}");
    let (connect, patches, publishes) = hub.record(|r| {
        (
            r.connects[0].clone(),
            r.reported_patches.clone(),
            r.publishes.clone(),
        )
    });
    assert!(
        connect
            .login
            .unwrap()
            .username
            .contains("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1")
    );
    assert_eq!(
        patches[0],
        serde_json::json!({"targetTemperature": {"value": 25.0, "ac": 200, "av": 3, "ad": "completed"}})
    );
    assert!(
        patches
            .iter()
            .any(|p| p.get("maxTempSinceLastReboot").is_some()),
        "{patches:?}"
    );
    let response = publishes
        .iter()
        .find(|p| p.topic == "$iothub/methods/res/200/?$rid=1a")
        .expect("command answered");
    let body: serde_json::Value = serde_json::from_slice(&response.payload).unwrap();
    assert!(
        body["maxTemp"].as_f64().unwrap() >= body["minTemp"].as_f64().unwrap(),
        "{body}"
    );
    assert!(body["startTime"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn provision_example_registers_then_sends() {
    let dps = FakeHub::start().await;
    let hub = FakeHub::start().await;
    let dps_port = dps.addr.port().to_string();
    let stdout = finish(spawn(
        "provision",
        &hub,
        &[
            "--id-scope",
            "0ne0000TEST",
            "--registration-id",
            "sensor-1",
            "--group-key",
            KEY,
            "--provisioning-host",
            "127.0.0.1",
            "--dps-port",
            &dps_port,
        ],
    ))
    .await;
    assert!(stdout.contains(r#""assignedHub":"hub.test""#), "{stdout}");
    assert!(
        stdout.contains("HostName=hub.test;DeviceId=sensor-1;SharedAccessKey="),
        "{stdout}"
    );
    assert_eq!(hub.record(|r| r.acked.len()), 1);
    assert_eq!(hub.record(|r| r.connects[0].client_id.clone()), "sensor-1");
}
