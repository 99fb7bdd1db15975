//! `iothub simulate`: a small fleet in-process and against a running `iothub emulator`.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator_command::emulator_command;
use crate::iothub;

fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn in_process_fleet_sends_and_every_message_is_acknowledged() {
    let run = iothub(&[
        "--json",
        "simulate",
        "--in-process",
        "--devices",
        "5",
        "--rate",
        "50",
        "--duration",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let s = summary(&run.stdout);
    assert_eq!(s["devices"], 5);
    assert_eq!(s["connected"], 5);
    assert_eq!(s["errors"], 0);
    assert_eq!(s["reconnects"], 0);
    let sent = s["sent"].as_u64().unwrap();
    // 50 msg/s for 2 s, give or take the tick at either end.
    assert!((95..=105).contains(&sent), "{s}");
    assert_eq!(s["acknowledged"], sent);
    let p50 = s["latencyMs"]["p50"].as_f64().unwrap();
    let p99 = s["latencyMs"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{s}");
    assert!(s["throughput"].as_f64().unwrap() > 40.0, "{s}");
}

#[test]
fn text_summary_names_every_figure() {
    let run = iothub(&[
        "simulate",
        "--in-process",
        "--plain",
        "--devices",
        "2",
        "--rate",
        "10",
        "--duration",
        "1",
        "--payload",
        "{\"n\":{seq},\"d\":\"{device}\"}",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for word in [
        "sent",
        "acknowledged",
        "throughput",
        "p50",
        "p95",
        "p99",
        "reconnects",
        "errors",
    ] {
        assert!(run.stdout.contains(word), "{word} missing: {}", run.stdout);
    }
}

#[test]
fn rejects_a_zero_rate() {
    let run = iothub(&["simulate", "--in-process", "--rate", "0"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--rate"), "{}", run.stderr);
}

#[test]
fn without_a_running_emulator_it_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = iothub(&["simulate", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("iothub emulator"), "{}", run.stderr);
}

/// A background `iothub emulator` on free ports, killed on drop.
pub(crate) struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `iothub emulator` on free ports with `dir` as its data dir; waits for endpoints.json.
pub(crate) fn start_emulator(dir: &Path) -> Emulator {
    let child = emulator_command(dir, "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the emulator starts");
    let emulator = Emulator(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("endpoints.json").exists() {
        assert!(Instant::now() < deadline, "no endpoints.json");
        std::thread::sleep(Duration::from_millis(50));
    }
    emulator
}

#[test]
fn creates_devices_through_the_rest_api_of_a_running_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let _emulator = start_emulator(dir.path());
    let data = dir.path().to_str().unwrap();
    let args = [
        "--json",
        "simulate",
        "--data-dir",
        data,
        "--devices",
        "3",
        "--rate",
        "30",
        "--duration",
        "1",
        "--device-prefix",
        "fleet-",
    ];
    let run = iothub(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    let s = summary(&run.stdout);
    assert_eq!(s["connected"], 3, "{s}");
    assert_eq!(s["acknowledged"], s["sent"], "{s}");
    // The devices exist in the registry now, and a second run reuses them.
    let again = iothub(&args);
    assert_eq!(again.code, Some(0), "{again:?}");
}
