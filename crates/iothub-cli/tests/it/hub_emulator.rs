//! `iothub hub monitor|invoke|c2d|twin` end to end: the emulator on loopback port 0, a real
//! device (iothub-device) connected to it, the CLI binary as the service.
//!
//! The CLI finds the emulator through `--data-dir` (an `endpoints.json` written from the
//! running test emulator: plain HTTP), or through `--hub-connection-string` + `--ca-file`
//! (HTTPS, `HostName=localhost:{port}`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use iothub_device::{ClientOptions, DeviceClient, Message, MethodResponse};
use iothub_emulator::testing::TestHub;
use serde_json::{Value, json};

use crate::Run;

/// A test emulator plus a data dir that points the CLI at it.
struct Fixture {
    hub: TestHub,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let hub = TestHub::spawn().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let endpoints = hub.emulator.endpoints_json();
        std::fs::write(dir.path().join("endpoints.json"), endpoints.to_string()).unwrap();
        Self { hub, dir }
    }

    /// Runs `iothub hub …` against this emulator (off the async runtime's threads).
    async fn iothub(&self, args: &[&str]) -> Run {
        let mut all = vec![
            "hub".to_owned(),
            "--data-dir".to_owned(),
            self.dir.path().display().to_string(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        tokio::task::spawn_blocking(move || run(&all))
            .await
            .unwrap()
    }

    async fn device(&self, id: &str) -> DeviceClient {
        let cs = self.hub.create_device(id).await.unwrap();
        let options = ClientOptions::from_connection_string(&cs)
            .unwrap()
            .plain_tcp()
            .port(self.hub.plain_addr().port());
        DeviceClient::connect(options).await.unwrap()
    }
}

fn run(args: &[String]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args(args)
        .env_remove("IOTHUB_CONNECTION_STRING")
        .env_remove("IOTHUB_EMULATOR_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_prints_the_device_answer_and_exits_1_on_a_non_2xx_status() {
    let f = Fixture::start().await;
    let device = f.device("dev1").await;
    device
        .on_method("reboot", |call| async move {
            MethodResponse::ok(json!({"delay": call.payload["delay"]}))
        })
        .await
        .unwrap();
    device
        .on_method("fail", |_| async {
            MethodResponse::new(500, json!("broken"))
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the methods SUBSCRIBE reaches the hub

    let ok = f
        .iothub(&[
            "invoke",
            "dev1",
            "reboot",
            "--payload",
            r#"{"delay":5}"#,
            "--timeout",
            "10",
        ])
        .await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert_eq!(
        json_of(&ok),
        json!({"status": 200, "payload": {"delay": 5}})
    );

    let failed = f.iothub(&["invoke", "dev1", "fail"]).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert_eq!(
        json_of(&failed),
        json!({"status": 500, "payload": "broken"})
    );

    let offline = f.iothub(&["invoke", "nobody", "reboot"]).await;
    assert_eq!(offline.code, Some(2), "{offline:?}");
    assert!(offline.stderr.contains("404001"), "{}", offline.stderr);
    device.close().await;
    f.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twin_update_reaches_the_device_and_twin_show_prints_it() {
    let f = Fixture::start().await;
    let device = f.device("dev1").await;
    let mut desired = device.desired_properties().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let update = f
        .iothub(&[
            "twin",
            "update",
            "dev1",
            "--desired",
            r#"{"fan":3}"#,
            "--tags",
            r#"{"site":"lab"}"#,
        ])
        .await;
    assert_eq!(update.code, Some(0), "{update:?}");
    let twin = json_of(&update);
    assert_eq!(twin["properties"]["desired"]["fan"], 3);
    assert_eq!(twin["tags"]["site"], "lab");
    let patch = tokio::time::timeout(Duration::from_secs(10), desired.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patch.properties["fan"], 3);

    let show = f.iothub(&["--json", "twin", "show", "dev1"]).await;
    assert_eq!(show.code, Some(0), "{show:?}");
    let shown = json_of(&show);
    assert_eq!(shown["deviceId"], "dev1");
    assert_eq!(shown["connectionState"], "Connected");
    assert_eq!(shown["properties"]["desired"]["$version"], 2);

    let stale = f
        .iothub(&[
            "twin",
            "update",
            "dev1",
            "--desired",
            "{}",
            "--etag",
            "AAAAAAAAAAA=",
        ])
        .await;
    assert_eq!(stale.code, Some(2), "{stale:?}");
    assert!(stale.stderr.contains("412"), "{}", stale.stderr);
    device.close().await;
    f.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c2d_sends_a_message_with_properties_that_the_device_receives() {
    let f = Fixture::start().await;
    let device = f.device("dev1").await;
    let mut c2d = device.c2d_messages().await.unwrap();
    let sent = f
        .iothub(&[
            "c2d",
            "dev1",
            "hello",
            "-p",
            "color=red",
            "--message-id",
            "m1",
            "--ack",
            "full",
        ])
        .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(json_of(&sent)["messageId"], "m1");
    let message = tokio::time::timeout(Duration::from_secs(10), c2d.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.body[..], b"hello");
    assert_eq!(message.property("color"), Some("red"));
    assert_eq!(message.message_id.as_deref(), Some("m1"));
    assert_eq!(message.ack.as_deref(), Some("full"));
    device.close().await;
    f.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_prints_events_in_the_az_shape_and_stops_at_count() {
    let f = Fixture::start().await;
    let device = f.device("dev1").await;
    device
        .send_telemetry(Message::json(&json!({"temperature": 21.5})).property("alert", "true"))
        .await
        .unwrap();
    device
        .send_telemetry(Message::new("plain text"))
        .await
        .unwrap();

    let run = f
        .iothub(&[
            "monitor",
            "--device",
            "dev1",
            "--since",
            "0",
            "--count",
            "2",
            "--timeout",
            "20",
            "--properties",
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    let first = &lines[0]["event"];
    assert_eq!(first["origin"], "dev1");
    assert_eq!(first["module"], "");
    assert_eq!(first["payload"], json!({"temperature": 21.5}));
    assert_eq!(first["properties"]["application"]["alert"], "true");
    assert_eq!(
        first["properties"]["system"]["iothub-connection-device-id"],
        "dev1"
    );
    assert_eq!(lines[1]["event"]["payload"], "plain text");
    assert!(lines[1]["event"].get("properties").is_some());

    // Live: the monitor is waiting when the message is sent; no --properties, no properties.
    let dir = f.dir.path().to_owned();
    let live = tokio::task::spawn_blocking(move || monitor_live(&dir));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    device
        .send_telemetry(Message::json(&json!({"live": true})))
        .await
        .unwrap();
    let run = live.await.unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    let event: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        event,
        json!({"event": {"origin": "dev1", "module": "", "interface": "", "component": "", "payload": {"live": true}}})
    );

    let nothing = f
        .iothub(&[
            "monitor",
            "--device",
            "ghost",
            "--count",
            "1",
            "--timeout",
            "1",
        ])
        .await;
    assert_eq!(nothing.code, Some(1), "{nothing:?}");
    assert!(nothing.stdout.is_empty());
    device.close().await;
    f.hub.shutdown().await;
}

fn monitor_live(dir: &Path) -> Run {
    let args = [
        "hub",
        "--data-dir",
        &dir.display().to_string(),
        "monitor",
        "--count",
        "1",
        "--timeout",
        "20",
    ]
    .map(String::from);
    run(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_string_reaches_the_emulator_over_https_with_its_ca() {
    let f = Fixture::start().await;
    f.hub.create_device("dev1").await.unwrap();
    let ca = f.dir.path().join("ca.pem");
    std::fs::write(&ca, f.hub.ca_pem()).unwrap();
    let cs = f.hub.emulator.service_connection_string.replace(
        "HostName=localhost",
        &format!("HostName=localhost:{}", f.hub.https_addr().port()),
    );
    let args = [
        "hub",
        "--hub-connection-string",
        &cs,
        "--ca-file",
        &ca.display().to_string(),
        "twin",
        "show",
        "dev1",
    ]
    .map(String::from);
    let show = tokio::task::spawn_blocking(move || run(&args))
        .await
        .unwrap();
    assert_eq!(show.code, Some(0), "{show:?}");
    assert_eq!(json_of(&show)["deviceId"], "dev1");
    f.hub.shutdown().await;
}

/// `hub identity` with a connection string uses the hub's registry REST API:
/// create, list, show, connection-string and delete, and the connection string it prints
/// connects a device.
#[tokio::test(flavor = "multi_thread")]
async fn identity_commands_work_against_any_hub_through_a_connection_string() {
    let f = Fixture::start().await;
    let ca = f.dir.path().join("ca.pem");
    std::fs::write(&ca, f.hub.ca_pem()).unwrap();
    let cs = f.hub.emulator.service_connection_string.replace(
        "HostName=localhost",
        &format!("HostName=localhost:{}", f.hub.https_addr().port()),
    );
    let ca = ca.display().to_string();
    let remote = move |args: &[&str]| {
        let mut all: Vec<String> = ["hub", "--hub-connection-string", &cs, "--ca-file", &ca]
            .map(String::from)
            .to_vec();
        all.extend(args.iter().map(|s| (*s).to_owned()));
        async move {
            tokio::task::spawn_blocking(move || run(&all))
                .await
                .unwrap()
        }
    };

    let created = remote(&["identity", "create", "remote1"]).await;
    assert_eq!(created.code, Some(0), "{created:?}");
    let device_cs = created.stdout.trim().to_owned();
    assert!(
        device_cs.contains("DeviceId=remote1;SharedAccessKey="),
        "{device_cs}"
    );

    // The printed connection string is the device's real credential.
    let key = device_cs.split("SharedAccessKey=").nth(1).unwrap();
    let options = ClientOptions::from_connection_string(&format!(
        "HostName=localhost;DeviceId=remote1;SharedAccessKey={key}"
    ))
    .unwrap()
    .plain_tcp()
    .port(f.hub.plain_addr().port());
    let device = DeviceClient::connect(options).await.unwrap();
    device.send_telemetry(Message::new("hi")).await.unwrap();
    device.close().await;

    let list = remote(&["identity", "list"]).await;
    assert_eq!(list.code, Some(0), "{list:?}");
    assert!(list.stdout.contains("remote1\tenabled\tsas"), "{list:?}");

    let show = remote(&["identity", "show", "remote1"]).await;
    assert_eq!(show.code, Some(0), "{show:?}");
    assert_eq!(json_of(&show)["connectionString"], device_cs);

    let again = remote(&["identity", "connection-string", "remote1"]).await;
    assert_eq!(again.stdout.trim(), device_cs);

    let deleted = remote(&["identity", "delete", "remote1"]).await;
    assert_eq!(deleted.code, Some(0), "{deleted:?}");
    let gone = remote(&["identity", "show", "remote1"]).await;
    assert_eq!(gone.code, Some(1), "{gone:?}");
    assert!(gone.stderr.contains("not found"), "{gone:?}");
    f.hub.shutdown().await;
}
