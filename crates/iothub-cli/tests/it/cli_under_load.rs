//! `iothub hub identity|enrollment` while a loaded emulator runs on the same data dir: the
//! commands go through the emulator's REST API (it owns the dir's lock), so devices sending
//! telemetry see no disconnect and no stall, and no command fails with "database is locked".
//! Before, the commands wrote `hub.db` directly: 30 creates among 200 sending devices caused
//! disconnects, PUBACK stalls of about a second and failed commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iothub_emulator::hub::registry::{self as reg, NewIdentity};
use iothub_emulator::{Config, RunningEmulator};
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::iothub;

const DEVICES: usize = 40;
const CREATES: usize = 30;

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = u8::try_from(n % 128).expect("7 bits");
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&u16::try_from(s.len()).expect("short").to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A device on plain MQTT sending QoS 1 telemetry one message at a time until `stop`;
/// returns (messages acknowledged, worst PUBACK latency, whether the server closed on it).
async fn send_until(
    addr: SocketAddr,
    id: String,
    key: String,
    stop: Arc<AtomicBool>,
) -> (u64, Duration, bool) {
    let signer = HmacSha256Signer::from_base64(&key).expect("base64 key");
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 3600;
    let token = SasToken::sign(ResourceUri::device("localhost", &id), expiry, None, &signer)
        .expect("token")
        .to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut body = Vec::new();
    string("MQTT", &mut body);
    body.extend_from_slice(&[4, 0xC2, 0, 60]);
    string(&id, &mut body);
    string(
        &format!("localhost/{id}/?api-version=2021-04-12"),
        &mut body,
    );
    string(&token, &mut body);
    stream
        .write_all(&packet(0x10, &body))
        .await
        .expect("CONNECT");
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0], "{id} refused");
    let (mut acked, mut worst, mut pkid) = (0u64, Duration::ZERO, 0u16);
    while !stop.load(Ordering::Relaxed) {
        pkid = pkid % 60_000 + 1;
        let mut body = Vec::new();
        string(&format!("devices/{id}/messages/events/"), &mut body);
        body.extend_from_slice(&pkid.to_be_bytes());
        body.extend_from_slice(br#"{"t":21}"#);
        let started = Instant::now();
        if stream.write_all(&packet(0x32, &body)).await.is_err() {
            return (acked, worst, true);
        }
        let mut puback = [0u8; 4];
        match stream.read_exact(&mut puback).await {
            Ok(_) => assert_eq!(puback[..2], [0x40, 2], "{id}: not a PUBACK"),
            Err(_) => return (acked, worst, true),
        }
        worst = worst.max(started.elapsed());
        acked += 1;
    }
    (acked, worst, false)
}

#[test]
fn identity_commands_during_load_go_through_the_emulator_without_disturbing_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let emulator = runtime.block_on(async {
        let config = Config {
            data_dir: Some(dir.path().to_path_buf()),
            ..Config::ephemeral()
        };
        RunningEmulator::start(config)
            .await
            .expect("emulator starts")
    });
    let addr = emulator.plain_addr.expect("plain listener");
    let stop = Arc::new(AtomicBool::new(false));
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let id = format!("load{i}");
        let (hub, new_id) = (emulator.hub.clone(), id.clone());
        let record = runtime
            .block_on(hub.store().call(move |tx| {
                Ok(reg::create(
                    tx,
                    NewIdentity {
                        device_id: new_id,
                        ..Default::default()
                    },
                    0,
                ))
            }))
            .expect("store")
            .expect("device created");
        let key = match &record.authentication {
            iothub_emulator::store::registry::Authentication::Sas { primary_key, .. } => {
                primary_key.clone()
            }
            other => panic!("{other:?}"),
        };
        devices.push(runtime.spawn(send_until(addr, id, key, stop.clone())));
    }
    std::thread::sleep(Duration::from_millis(300));

    let data_dir = dir.path().display().to_string();
    let failures = AtomicU64::new(0);
    for i in 0..CREATES {
        let id = format!("cli{i}");
        let run = iothub(&["hub", "--data-dir", &data_dir, "identity", "create", &id]);
        if run.code != Some(0)
            || !run
                .stdout
                .starts_with(&format!("HostName=localhost;DeviceId={id};"))
        {
            eprintln!("{run:?}");
            failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    let run = iothub(&[
        "--json",
        "hub",
        "--data-dir",
        &data_dir,
        "enrollment",
        "create",
        "cli-enrolled",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = iothub(&[
        "hub",
        "--data-dir",
        &data_dir,
        "enrollment",
        "disable",
        "cli-enrolled",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");

    stop.store(true, Ordering::Relaxed);
    let mut disconnects = 0;
    let mut worst = Duration::ZERO;
    let mut total = 0;
    for d in devices {
        let (acked, w, closed) = runtime.block_on(d).expect("device task");
        disconnects += usize::from(closed);
        worst = worst.max(w);
        total += acked;
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "CLI commands failed");
    assert_eq!(disconnects, 0, "devices were disconnected");
    assert!(total > 0, "no telemetry was acknowledged");
    // Generous: a robustness check on a shared CI box, not a benchmark.
    assert!(worst < Duration::from_secs(1), "worst PUBACK {worst:?}");
    // The creates went into the emulator's registry.
    let hub = emulator.hub.clone();
    let all = runtime
        .block_on(
            hub.store()
                .call(|tx| iothub_emulator::store::registry::list(tx)),
        )
        .expect("registry");
    assert_eq!(
        all.iter()
            .filter(|r| r.device_id.starts_with("cli"))
            .count(),
        CREATES
    );
    runtime.block_on(emulator.shutdown());
}
