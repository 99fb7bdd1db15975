//! `iothub device …` end to end against a running `iothub emulator`.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::emulator_command::{emulator_command, read_banner};
use crate::{Run, iothub};

/// A running `iothub emulator` on free ports, stopped on drop.
struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    mqtt_port: String,
    id_scope: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), "0")
    }

    /// Starts on `dir` (kept across restarts) with MQTT/TLS on `mqtt_port`.
    fn start_in(dir: tempfile::TempDir, mqtt_port: &str) -> Self {
        let mut child = emulator_command(dir.path(), mqtt_port)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let banner = read_banner(&mut child);
        let mqtt = banner["mqttTls"].as_str().expect("mqttTls").to_owned();
        let mqtt_port = mqtt.rsplit(':').next().expect("port").to_owned();
        let id_scope = banner["idScope"].as_str().expect("idScope").to_owned();
        Self {
            child,
            dir,
            mqtt_port,
            id_scope,
        }
    }

    fn data_dir(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    fn create_device(&self, id: &str) -> String {
        let run = iothub(&[
            "hub",
            "identity",
            "create",
            id,
            "--data-dir",
            self.data_dir(),
        ]);
        assert_eq!(run.code, Some(0), "{run:?}");
        run.stdout.trim_end().to_owned()
    }

    /// Runs `iothub device {args}` as device `cs` against this emulator.
    fn device(&self, cs: &str, args: &[&str]) -> Run {
        let ca = self.dir.path().join("ca.pem");
        let mut all = vec!["device"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--connection-string",
            cs,
            "--port",
            &self.mqtt_port,
            "--ca-file",
            ca.to_str().expect("utf-8 path"),
        ]);
        iothub(&all)
    }
}

#[test]
fn send_reports_every_message_acknowledged() {
    let emulator = Emulator::start();
    let cs = emulator.create_device("dev1");
    let run = emulator.device(&cs, &["send", "hello", "-p", "alert=true", "--count", "5"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "sent 5 message(s), all acknowledged\n");
}

#[test]
fn report_prints_the_new_version_and_twin_shows_it() {
    let emulator = Emulator::start();
    let cs = emulator.create_device("dev1");
    let run = emulator.device(&cs, &["report", r#"{"temperature":32}"#]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "2\n");
    let run = emulator.device(&cs, &["twin"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let twin: Value = serde_json::from_str(&run.stdout).expect("twin JSON");
    assert_eq!(twin["reported"]["temperature"], 32);
}

#[test]
fn listen_without_events_before_the_timeout_is_a_negative_result() {
    let emulator = Emulator::start();
    let cs = emulator.create_device("dev1");
    let run = emulator.device(&cs, &["listen", "--count", "1", "--timeout", "1"]);
    assert_eq!(run.code, Some(1), "{run:?}");
}

#[test]
fn a_wrong_key_fails_with_exit_code_2() {
    let emulator = Emulator::start();
    emulator.create_device("dev1");
    let cs = "HostName=localhost;DeviceId=dev1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let run = emulator.device(cs, &["send", "hello"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}

/// docs/protocol.md §2.2 vector 7: a group key and one member's derived key.
const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
const MEMBER: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
const MEMBER_KEY: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";

#[test]
fn provision_with_a_group_key_saves_a_working_connection_string() {
    let emulator = Emulator::start();
    let run = iothub(&[
        "hub",
        "--data-dir",
        emulator.data_dir(),
        "enrollment-group",
        "create",
        "fleet",
        "--key",
        GROUP_KEY,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let ca = emulator.dir.path().join("ca.pem");
    let run = iothub(&[
        "device",
        "provision",
        "--id-scope",
        &emulator.id_scope,
        "--registration-id",
        MEMBER,
        "--group-key",
        GROUP_KEY,
        "--provisioning-host",
        "localhost",
        "--port",
        &emulator.mqtt_port,
        "--ca-file",
        ca.to_str().expect("utf-8 path"),
        "--save",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(&format!("device id: {MEMBER}")),
        "{run:?}"
    );
    let cs = run
        .stdout
        .lines()
        .last()
        .expect("connection string")
        .to_owned();
    assert!(
        cs.ends_with(&format!(";DeviceId={MEMBER};SharedAccessKey={MEMBER_KEY}")),
        "{cs}"
    );
    let run = emulator.device(&cs, &["send", "provisioned"]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn listen_prints_c2d_and_method_calls_and_answers_as_configured() {
    let emulator = Emulator::start();
    let cs = emulator.create_device("dev1");
    let ca = emulator.dir.path().join("ca.pem");
    let listener = Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args(["device", "listen", "--count", "2", "--timeout", "30"])
        .args(["--method", r#"reboot=200:{"ok":true}"#])
        .args(["--connection-string", &cs, "--port", &emulator.mqtt_port])
        .arg("--ca-file")
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen starts");
    // Wait until the device is connected and subscribed: a C2D sent before would still be
    // queued, but the method call needs the device online.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let dir = emulator.data_dir();
    let run = iothub(&[
        "hub",
        "--data-dir",
        dir,
        "c2d",
        "dev1",
        "hello",
        "-p",
        "k=v",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = iothub(&[
        "--json",
        "hub",
        "--data-dir",
        dir,
        "invoke",
        "dev1",
        "reboot",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(r#""ok":true"#), "{run:?}");
    let output = listener.wait_with_output().expect("listen finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let c2d = events
        .iter()
        .find(|e| e["type"] == "c2d")
        .expect("a c2d line");
    assert_eq!(c2d["body"], "hello");
    assert_eq!(c2d["properties"]["k"], "v");
    let method = events
        .iter()
        .find(|e| e["type"] == "method")
        .expect("a method line");
    assert_eq!(method["name"], "reboot");
    assert_eq!(method["status"], 200);
}

#[test]
fn no_message_lost_when_the_emulator_is_killed_with_sigkill_and_restarted() {
    use std::io::Write;
    const TOTAL: usize = 3000;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let mut emulator = Emulator::start_in(tempfile::tempdir().expect("temp dir"), &port);
    let cs = emulator.create_device("dev1");
    let ca = emulator.dir.path().join("ca.pem");
    let mut send = Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args([
            "device",
            "send",
            "--stdin",
            "--connection-string",
            &cs,
            "--port",
            &port,
        ])
        .arg("--ca-file")
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("send starts");
    let mut input = send.stdin.take().expect("stdin");
    // Lines keep coming while the emulator dies and comes back, so the kill lands mid-stream.
    let writer = std::thread::spawn(move || {
        for i in 0..TOTAL {
            writeln!(input, "m{i}").expect("write a line");
            if i % 10 == 0 {
                input.flush().expect("flush");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    // kill -9: no shutdown path runs in the emulator.
    emulator.child.kill().expect("SIGKILL");
    emulator.child.wait().expect("reaped");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dir = std::mem::replace(&mut emulator.dir, tempfile::tempdir().expect("temp dir"));
    drop(emulator);
    let emulator = Emulator::start_in(dir, &port);
    writer.join().expect("writer");
    let output = send.wait_with_output().expect("send finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        format!("sent {TOTAL} message(s), all acknowledged\n")
    );

    // Every acknowledged message is in the durable event log, duplicates allowed.
    let run = iothub(&[
        "--json",
        "hub",
        "--data-dir",
        emulator.data_dir(),
        "monitor",
        "--since",
        "0",
        "-t",
        "5",
    ]);
    let mut seen = std::collections::HashSet::new();
    for line in run.stdout.lines() {
        let event: Value = serde_json::from_str(line).expect("JSON event");
        if let Some(payload) = event["event"]["payload"].as_str() {
            seen.insert(payload.to_owned());
        }
    }
    for i in 0..TOTAL {
        assert!(
            seen.contains(&format!("m{i}")),
            "m{i} acknowledged but not in the event log ({} seen)",
            seen.len()
        );
    }
}
