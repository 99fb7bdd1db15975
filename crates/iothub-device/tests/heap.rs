//! Memory held per connected client (the client library's heap use per connection),
//! measured as the growth of this process's resident set while clients connect.
//! (A counting allocator would need `unsafe`, which the workspace forbids.) It is a test binary
//! of its own, outside `tests/it`, so no other test's memory is counted.
//!
//! `cargo test -p iothub-device --test heap -- --nocapture` prints the figure.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "it/fake_hub.rs"]
#[allow(dead_code)]
mod fake_hub;

use std::time::Duration;

use iothub_device::{ClientOptions, DeviceClient, Message};

/// Resident set size of this process, in bytes (Linux `/proc/self/status`).
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: i64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn options(port: u16, device: &str) -> ClientOptions {
    ClientOptions::from_connection_string(&format!(
        "HostName=hub.test;DeviceId={device};SharedAccessKey={}",
        fake_hub::KEY
    ))
    .unwrap()
    .gateway_host_name("127.0.0.1")
    .port(port)
    .plain_tcp()
}

#[tokio::test]
async fn a_connected_idle_client_holds_little_memory() {
    const CLIENTS: usize = 50;
    let hubs: Vec<_> =
        futures_util::future::join_all((0..CLIENTS).map(|_| fake_hub::FakeHub::start())).await;
    // Warm up lazily initialised statics (TLS-free here; tracing, tokio internals).
    let warm = DeviceClient::connect(options(hubs[0].addr.port(), "warm"))
        .await
        .unwrap();
    warm.send_telemetry(Message::new("x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let before = rss();
    let mut clients = Vec::new();
    for (i, hub) in hubs.iter().enumerate() {
        let client = DeviceClient::connect(options(hub.addr.port(), &format!("d{i}")))
            .await
            .unwrap();
        client.send_telemetry(Message::new("x")).await.unwrap();
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = rss();
    // The fake hubs' per-connection state and allocator slack are counted too: an upper bound.
    let per_client = (after - before) / CLIENTS as i64;
    println!("memory per connected client (upper bound, plain TCP, idle): {per_client} bytes");
    assert!(per_client < 256 * 1024, "{per_client} bytes per client");
    for client in clients {
        client.close().await;
    }
    warm.close().await;
}
