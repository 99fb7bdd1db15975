//! `iothub hub monitor` and `iothub hub c2d` over AMQP (docs/amqp.md) end to end: the emulator
//! on loopback port 0, a real device (iothub-device, MQTT) connected to it, the CLI binary as
//! the back end. The CLI finds the emulator through an `endpoints.json` in `--data-dir`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use iothub_device::{ClientOptions, DeviceClient, Message};
use iothub_emulator::testing::TestHub;
use serde_json::{Value, json};

use crate::Run;

struct Fixture {
    hub: TestHub,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// The emulator as it describes itself; `edit` may change the description (e.g. drop the
    /// plain AMQP listener so the CLI takes AMQPS).
    async fn start(edit: impl FnOnce(&mut Value, &Path)) -> Self {
        let hub = TestHub::spawn().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut endpoints = hub.emulator.endpoints_json();
        edit(&mut endpoints, dir.path());
        std::fs::write(dir.path().join("endpoints.json"), endpoints.to_string()).unwrap();
        Self { hub, dir }
    }

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

fn lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {run:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn c2d_with_full_ack_waits_for_the_success_record_of_a_completed_message() {
    let f = Fixture::start(|_, _| {}).await;
    let device = f.device("dev1").await;
    let mut c2d = device.c2d_messages().await.unwrap();
    // The device completes (acknowledges) each message as it takes it.
    let taker = tokio::spawn(async move {
        let m = tokio::time::timeout(Duration::from_secs(20), c2d.recv()).await;
        (m, c2d)
    });
    let sent = f
        .iothub(&[
            "--json",
            "c2d",
            "dev1",
            "hello",
            "-p",
            "k=v",
            "--message-id",
            "m-wait",
            "--ack",
            "full",
            "--wait",
            "--timeout",
            "30",
        ])
        .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let record: Value = serde_json::from_str(sent.stdout.trim()).unwrap();
    assert_eq!(record["originalMessageId"], "m-wait", "{record}");
    assert_eq!(record["statusCode"], "Success", "{record}");
    assert_eq!(record["deviceId"], "dev1", "{record}");
    let (received, mut c2d) = taker.await.unwrap();
    let received = received.unwrap().unwrap();
    assert_eq!(&received.body[..], b"hello");
    assert_eq!(received.property("k"), Some("v"));

    // Text output, and a generated message id.
    let taker =
        tokio::spawn(
            async move { tokio::time::timeout(Duration::from_secs(20), c2d.recv()).await },
        );
    let sent = f
        .iothub(&["c2d", "dev1", "again", "--ack", "positive", "--wait"])
        .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert!(sent.stdout.starts_with("Success: dev1 ("), "{sent:?}");
    taker.await.unwrap().unwrap().unwrap();
    device.close().await;
    f.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c2d_refusals_are_errors() {
    let f = Fixture::start(|_, _| {}).await;
    let unknown = f.iothub(&["c2d", "nobody", "hi"]).await;
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("rejected"), "{unknown:?}");
    let no_ack = f.iothub(&["c2d", "nobody", "hi", "--wait"]).await;
    assert_eq!(no_ack.code, Some(2), "{no_ack:?}");
    assert!(no_ack.stderr.contains("--wait needs --ack"), "{no_ack:?}");
    f.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_reads_over_amqps_with_the_emulators_ca_from_one_partition_or_all() {
    // No plain AMQP listener recorded: the CLI takes AMQPS and trusts the CA file.
    let f = Fixture::start(|v, dir| {
        v["amqp"]["plainPort"] = Value::Null;
        let ca = dir.join("ca.pem");
        v["caFile"] = json!(ca.display().to_string());
    })
    .await;
    std::fs::write(f.dir.path().join("ca.pem"), f.hub.ca_pem()).unwrap();
    let device = f.device("dev1").await;
    device
        .send_telemetry(Message::json(&json!({"n": 1})).property("a", "b"))
        .await
        .unwrap();
    device.send_telemetry(Message::new("two")).await.unwrap();

    let all = f
        .iothub(&[
            "monitor",
            "--since",
            "0",
            "--count",
            "2",
            "--timeout",
            "20",
            "--properties",
        ])
        .await;
    assert_eq!(all.code, Some(0), "{all:?}");
    let events = lines(&all);
    assert_eq!(events[0]["event"]["payload"], json!({"n": 1}));
    assert_eq!(events[0]["event"]["properties"]["application"]["a"], "b");
    assert_eq!(events[1]["event"]["payload"], "two");
    assert_eq!(
        events[0]["event"]["properties"]["system"]["iothub-connection-device-id"],
        "dev1"
    );

    // Every event of dev1 is in one partition: reading each partition alone finds them once.
    let mut found = 0;
    for p in 0..4 {
        let one = f
            .iothub(&[
                "monitor",
                "--since",
                "0",
                "--partition",
                &p.to_string(),
                "--count",
                "2",
                "--timeout",
                "3",
            ])
            .await;
        found += lines(&one).len();
    }
    assert_eq!(found, 2);

    // Enqueued after now: nothing old.
    let later = f
        .iothub(&[
            "monitor",
            "--enqueued-time",
            "2999-01-01T00:00:00Z",
            "--count",
            "1",
            "--timeout",
            "2",
        ])
        .await;
    assert_eq!(later.code, Some(1), "{later:?}");
    assert!(later.stdout.is_empty(), "{later:?}");

    let no_group = f
        .iothub(&["monitor", "--consumer-group", "nope", "--timeout", "10"])
        .await;
    assert_eq!(no_group.code, Some(2), "{no_group:?}");
    assert!(no_group.stderr.contains("nope"), "{no_group:?}");
    let no_partition = f
        .iothub(&["monitor", "--partition", "99", "--timeout", "10"])
        .await;
    assert_eq!(no_partition.code, Some(2), "{no_partition:?}");
    assert!(
        no_partition.stderr.contains("no partition"),
        "{no_partition:?}"
    );
    device.close().await;
    f.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emulator_without_amqp_is_named_as_such() {
    let f = Fixture::start(|v, _| {
        v.as_object_mut().unwrap().remove("amqp");
    })
    .await;
    let run = f.iothub(&["monitor", "--timeout", "5"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no AMQP endpoint"), "{run:?}");
    let run = f.iothub(&["c2d", "dev1", "x"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no AMQP endpoint"), "{run:?}");
    f.hub.shutdown().await;
}
