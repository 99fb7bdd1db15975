//! Nothing acknowledged is lost on `kill -9`: a child process runs the
//! emulator on a data dir, we publish and count PUBACKs, SIGKILL it, and count the log.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::support::*;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Runs only inside the child process started by the test below.
#[tokio::test]
#[ignore = "helper process for acknowledged_telemetry_survives_kill_9"]
async fn child_emulator() {
    let Ok(dir) = std::env::var("IOTHUB_IT_CHILD_DIR") else {
        return;
    };
    let config = iothub_emulator::Config {
        data_dir: Some(dir.into()),
        ..iothub_emulator::Config::ephemeral()
    };
    let emu = iothub_emulator::RunningEmulator::start(config)
        .await
        .unwrap();
    let new = iothub_emulator::hub::registry::NewIdentity {
        device_id: "durable".into(),
        primary_key: Some(KEY.into()),
        ..Default::default()
    };
    let now = 0;
    let _ = emu
        .hub
        .store()
        .call(move |tx| Ok(iothub_emulator::hub::registry::create(tx, new, now).is_ok()))
        .await;
    println!("PORT {}", emu.plain_addr.unwrap().port());
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn acknowledged_telemetry_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::child_emulator",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IOTHUB_IT_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let port: u16 = std::io::BufReader::new(stdout)
        .lines()
        .find_map(|l| {
            // libtest prints "test … ... " before the child's own output on the same line.
            let line = l.ok()?;
            line.split_once("PORT ")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("child printed its port");

    let mut o = MqttOptions::new("durable", "127.0.0.1", port);
    o.set_credentials(
        username("localhost", "durable"),
        device_token("localhost", "durable", KEY, now() + 3600),
    );
    let (client, mut events) = AsyncClient::new(o, 100);
    tokio::spawn(async move {
        for i in 0..10_000 {
            if client
                .publish(
                    "devices/durable/messages/events/",
                    QoS::AtLeastOnce,
                    false,
                    format!("{i}"),
                )
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut acked = 0u32;
    while acked < 300 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.poll()).await;
        match event {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => {
                let _ = child.kill();
                panic!("client failed after {acked} acks: {other:?}");
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Whatever else arrives now is from before the kill; count only what we saw acknowledged.
    drop(events);

    let store = iothub_emulator::store::Store::open(&dir.path().join("hub.db")).unwrap();
    let stored = tokio::task::spawn_blocking(move || {
        store.call_blocking(|tx| iothub_emulator::store::events::count(tx))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        stored >= i64::from(acked),
        "{stored} stored < {acked} acknowledged"
    );
}
