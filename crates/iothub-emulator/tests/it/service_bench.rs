//! Benchmarks of the service side, ignored by default; run by
//! `bench/service-latency/run.sh` (release build, figures into BENCHMARKS.md):
//!
//! - direct-method round trip through the REST API (`POST /twins/{id}/methods` on the plain
//!   HTTP port, one TCP connection per call, as a simple client does) to one of 100 connected
//!   MQTT devices that answer at once;
//! - the delay from a telemetry PUBACK at the device to the same message arriving on the
//!   `GET /events/stream` server-sent-events stream (signed: the live feed is published right
//!   after the durable append, the PUBACK a moment later, so it can be negative).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iothub_emulator::testing::TestHub;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::support::*;

const DEVICES: usize = 100;
const CALLS: usize = 2000;
const MESSAGES: usize = 500;

fn owner(hub: &TestHub) -> String {
    let signer =
        HmacSha256Signer::from_base64(&key_of(&hub.emulator.service_connection_string)).unwrap();
    SasToken::sign(
        ResourceUri::hub("localhost"),
        now() + 3600,
        Some("iothubowner"),
        &signer,
    )
    .unwrap()
    .to_string()
}

async fn connect(hub: &TestHub, id: &str) -> (AsyncClient, EventLoop) {
    let cs = hub.create_device(id).await.unwrap();
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", id),
        device_token("localhost", id, &key_of(&cs), now() + 3600),
    );
    o.set_keep_alive(Duration::from_secs(600));
    let (client, mut events) = AsyncClient::new(o, 100);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    (client, events)
}

/// Answers every method request at once (QoS 1 response), forever.
fn answer_methods(client: AsyncClient, mut events: EventLoop) {
    tokio::spawn(async move {
        client
            .subscribe("$iothub/methods/POST/#", QoS::AtMostOnce)
            .await
            .unwrap();
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let rid = p
                    .topic
                    .rsplit("$rid=")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let topic = format!("$iothub/methods/res/200/?$rid={rid}");
                client
                    .publish(topic, QoS::AtLeastOnce, false, p.payload.to_vec())
                    .await
                    .unwrap();
            }
        }
    });
}

async fn call_method(api: SocketAddr, token: &str, device: &str) {
    let body = r#"{"methodName":"ping","payload":{"n":1},"responseTimeoutInSeconds":10}"#;
    let req = format!(
        "POST /twins/{device}/methods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(api).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "BENCH {name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/service-latency/run.sh"]
async fn bench_method_round_trip_under_100_connected_devices() {
    let hub = TestHub::spawn().await.unwrap();
    let api = hub.emulator.http_addr.unwrap();
    let token = owner(&hub);
    for i in 0..DEVICES {
        let (client, events) = connect(&hub, &format!("bench{i}")).await;
        answer_methods(client, events);
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // every SUBSCRIBE has reached the hub
    for i in 0..50 {
        call_method(api, &token, &format!("bench{}", i % DEVICES)).await; // warm-up
    }
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let start = Instant::now();
        call_method(api, &token, &format!("bench{}", i % DEVICES)).await;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    report(
        "method round trip (REST -> MQTT device -> REST), sequential",
        samples,
    );

    // Ten callers at once.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    for c in 0..10 {
        let (tx, token) = (tx.clone(), token.clone());
        tokio::spawn(async move {
            for i in 0..CALLS / 10 {
                let start = Instant::now();
                call_method(api, &token, &format!("bench{}", (c * 10 + i) % DEVICES)).await;
                tx.send(start.elapsed().as_secs_f64() * 1000.0).unwrap();
            }
        });
    }
    drop(tx);
    let mut concurrent = Vec::new();
    while let Some(s) = rx.recv().await {
        concurrent.push(s);
    }
    let rate = concurrent.len() as f64 / started.elapsed().as_secs_f64();
    report(
        &format!("method round trip, 10 concurrent callers ({rate:.0} calls/s)"),
        concurrent,
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/service-latency/run.sh"]
async fn bench_puback_to_sse_event_delay() {
    let hub = TestHub::spawn().await.unwrap();
    let api = hub.emulator.http_addr.unwrap();
    let (client, mut events) = connect(&hub, "sse").await;

    // The SSE reader stamps each event's arrival.
    let mut sse = TcpStream::connect(api).await.unwrap();
    sse.set_nodelay(true).unwrap();
    let head = format!(
        "GET /events/stream?device=sse HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        owner(&hub)
    );
    sse.write_all(head.as_bytes()).await.unwrap();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut text = String::new();
        loop {
            let n = sse.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            let now = Instant::now();
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(i) = text.find("\ndata:") {
                text.drain(..i + 6);
                let _ = arrived_tx.send(now);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut samples = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES + 20 {
        client
            .publish(
                "devices/sse/messages/events/",
                QoS::AtLeastOnce,
                false,
                format!(r#"{{"i":{i}}}"#),
            )
            .await
            .unwrap();
        let puback = loop {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.unwrap() {
                break Instant::now();
            }
        };
        let seen = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
            .await
            .unwrap()
            .unwrap();
        if i >= 20 {
            // Signed milliseconds: positive = the SSE event came after the PUBACK.
            let delay = if seen >= puback {
                seen.duration_since(puback).as_secs_f64()
            } else {
                -puback.duration_since(seen).as_secs_f64()
            };
            samples.push(delay * 1000.0);
        }
    }
    report(
        "PUBACK at the device -> SSE event at the reader (signed)",
        samples,
    );
    hub.shutdown().await;
}
