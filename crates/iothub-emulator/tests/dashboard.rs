//! The dashboard (docs/dashboard.md) end to end in headless Chromium.
//!
//! The test starts an emulator on free ports and a device (rumqttc over the plain MQTT port)
//! that sends telemetry carrying a per-run marker, answers the `reboot` method with a per-run
//! token, acknowledges desired patches by reporting the values back and completes C2D
//! messages. `tests/dashboard/e2e.mjs` (playwright-core driving Debian's `/usr/bin/chromium`)
//! opens the dashboard, waits for the marker in the telemetry table, invokes the method and
//! checks the shown answer, edits a desired property and waits for the shown reported ack,
//! sends a C2D message and waits for it to show completed, copies the connection string,
//! adds one device and deletes another, then saves
//! `target/dashboard-screenshot.png`. This side then checks what the device received.
//!
//! Needs `node`, `tests/dashboard/node_modules` and Chromium: `scripts/install-deps.sh`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_emulator::testing::TestHub;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const DEVICE: &str = "dashboard-dev";

/// What the device saw, for the assertions after the browser run.
#[derive(Debug, Default)]
struct Seen {
    method_payloads: Vec<Value>,
    desired_patches: Vec<Value>,
    c2d_bodies: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A value no earlier run could have produced (time and process id).
fn nonce(prefix: &str) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}{:x}", t % 0xffff_ffff, std::process::id())
}

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Connects the device over plain MQTT and runs it until the test ends.
async fn run_device(
    hub: &TestHub,
    cs: &str,
    marker: String,
    method_token: String,
) -> Arc<Mutex<Seen>> {
    let key = cs
        .split(';')
        .find_map(|p| p.strip_prefix("SharedAccessKey="))
        .unwrap();
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    let password = SasToken::sign(
        ResourceUri::device("localhost", DEVICE),
        unix_now() + 3600,
        None,
        &signer,
    )
    .unwrap()
    .to_string();
    let addr = hub.plain_addr();
    let mut options = MqttOptions::new(DEVICE, addr.ip().to_string(), addr.port());
    options.set_credentials(
        format!("localhost/{DEVICE}/?api-version=2021-04-12"),
        password,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 64);
    for filter in [
        "$iothub/methods/POST/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/twin/res/#",
        &format!("devices/{DEVICE}/messages/devicebound/#"),
    ] {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    // Telemetry: a slowly changing temperature and humidity, plus the run's marker.
    let sender = client.clone();
    tokio::spawn(async move {
        for i in 0u64.. {
            let t = i as f64;
            let body = json!({
                "temperature": 21.0 + 2.5 * (t / 4.0).sin(),
                "humidity": 48.0 + 6.0 * (t / 7.0).cos(),
                "marker": marker,
            });
            let topic = format!(
                "devices/{DEVICE}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&site=lab"
            );
            if sender
                .publish(topic, QoS::AtLeastOnce, false, body.to_string())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });

    let record = seen.clone();
    tokio::spawn(async move {
        let mut rid = 100u32;
        loop {
            let event = match events.poll().await {
                Ok(event) => event,
                Err(e) => {
                    eprintln!("device connection error: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if let Event::Incoming(Packet::ConnAck(c)) = &event {
                eprintln!("device connected: {c:?}");
            }
            let Event::Incoming(Packet::Publish(p)) = event else {
                continue;
            };
            let topic = p.topic.clone();
            eprintln!("device got {topic} {:?}", p.qos);
            if let Some(rest) = topic.strip_prefix("$iothub/methods/POST/") {
                // `{name}/?$rid={rid}` (docs/protocol.md §7): answer 200 with the run's token.
                let (name, query) = rest.split_once("/?").unwrap();
                let request_id = query.strip_prefix("$rid=").unwrap().to_owned();
                let payload: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                record.lock().unwrap().method_payloads.push(payload.clone());
                let answer = json!({"method": name, "token": method_token, "echo": payload});
                let _ = client
                    .publish(
                        format!("$iothub/methods/res/200/?$rid={request_id}"),
                        QoS::AtLeastOnce,
                        false,
                        answer.to_string(),
                    )
                    .await;
            } else if topic.starts_with("$iothub/twin/PATCH/properties/desired/") {
                // Record the patch, then report its values back (the dashboard's "ack").
                let mut patch: Value = serde_json::from_slice(&p.payload).unwrap();
                record.lock().unwrap().desired_patches.push(patch.clone());
                if let Some(map) = patch.as_object_mut() {
                    map.remove("$version");
                }
                rid += 1;
                let _ = client
                    .publish(
                        format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}"),
                        QoS::AtLeastOnce,
                        false,
                        patch.to_string(),
                    )
                    .await;
            } else if topic.starts_with(&format!("devices/{DEVICE}/messages/devicebound/")) {
                let body = String::from_utf8_lossy(&p.payload).into_owned();
                record.lock().unwrap().c2d_bodies.push(body);
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_telemetry_round_trips_a_method_and_delivers_a_desired_edit() {
    let root = repo_root();
    let script = root.join("tests/dashboard/e2e.mjs");
    assert!(
        root.join("tests/dashboard/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run scripts/install-deps.sh"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/install-deps.sh"
    );

    let hub = TestHub::spawn().await.unwrap();
    let http = hub.emulator.http_addr.expect("the HTTP listener is on");
    let cs = hub.create_device(DEVICE).await.unwrap();
    hub.create_device("spare-sensor").await.unwrap();
    let marker = nonce("live");
    let method_token = nonce("answer");
    let desired_value = 17 + (unix_now() % 9) as i64; // any value the browser is told
    let c2d_text = nonce("c2d");
    let seen = run_device(&hub, &cs, marker.clone(), method_token.clone()).await;

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    std::fs::create_dir_all(&target).unwrap();
    let screenshot = target.join("dashboard-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);

    // Output goes to a log file (a pipe nobody reads while waiting could fill up).
    let log_path = target.join("dashboard-e2e.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .current_dir(root.join("tests/dashboard"))
        .env(
            "DASHBOARD_URL",
            format!("http://localhost:{}/", http.port()),
        )
        .env("DEVICE_ID", DEVICE)
        .env("MARKER", &marker)
        .env("METHOD_TOKEN", &method_token)
        .env("DESIRED_VALUE", desired_value.to_string())
        .env("C2D_TEXT", &c2d_text)
        .env("ADD_DEVICE", "added-in-browser")
        .env("REMOVE_DEVICE", "spare-sensor")
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &screenshot)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node runs (install Node.js)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the browser run took over 150 s:\n{output}"));
    assert!(status.success(), "browser run failed ({status}):\n{output}");
    assert!(output.contains("dashboard e2e: ok"), "{output}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );

    // What the device itself received, typed into the page by the browser.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.method_payloads
            .iter()
            .any(|p| p["marker"] == json!(marker)),
        "the method reached the device with the browser's payload: {:?}",
        seen.method_payloads
    );
    assert!(
        seen.desired_patches
            .iter()
            .any(|p| p["targetTemperature"] == json!(desired_value) && p["$version"].is_u64()),
        "the desired edit reached the device: {:?}",
        seen.desired_patches
    );
    assert!(
        seen.c2d_bodies.iter().any(|b| b.contains(&c2d_text)),
        "the C2D message reached the device: {:?}",
        seen.c2d_bodies
    );
    // The registry changes made in the page.
    let ids = hub
        .emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::registry::list(tx))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect::<Vec<_>>();
    assert!(ids.iter().any(|d| d == "added-in-browser"), "{ids:?}");
    assert!(!ids.iter().any(|d| d == "spare-sensor"), "{ids:?}");
    hub.shutdown().await;
}
