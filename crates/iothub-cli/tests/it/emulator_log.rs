//! `iothub emulator` run as a process: every refused CONNECT is in its log with the rule that
//! failed, and no key, signature or token ever is.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator_command::emulator_command;
use crate::iothub;

/// The emulator as a child process, its stderr going to a file; killed on drop.
struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("a log file");
        let child = emulator_command(dir.path(), "0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the iothub binary starts");
        let emulator = Self { child, dir };
        let endpoints = emulator.dir.path().join("endpoints.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !endpoints.exists() {
            assert!(
                Instant::now() < deadline,
                "no endpoints.json: {}",
                emulator.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        emulator
    }

    fn data_dir(&self) -> &str {
        self.dir.path().to_str().expect("a UTF-8 temp path")
    }

    fn plain_mqtt(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("endpoints.json"))
            .expect("endpoints.json");
        let endpoints: Value = serde_json::from_str(&text).expect("endpoints.json is JSON");
        endpoints["mqttPlain"]
            .as_str()
            .expect("a plain MQTT address")
            .to_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits until the log holds `needle` (the emulator writes it asynchronously).
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends an MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s) and returns the CONNACK
/// return code.
fn connect(addr: &str, client_id: &str, username: &str, password: &str) -> u8 {
    fn field(out: &mut Vec<u8>, text: &str) {
        out.extend_from_slice(
            &u16::try_from(text.len())
                .expect("a short field")
                .to_be_bytes(),
        );
        out.extend_from_slice(text.as_bytes());
    }
    let mut body = Vec::new();
    field(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0b1100_0010, 0, 60]);
    field(&mut body, client_id);
    field(&mut body, username);
    field(&mut body, password);
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let byte = u8::try_from(len % 128).expect("below 128");
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    let mut stream = TcpStream::connect(addr).expect("the emulator accepts TCP");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream.write_all(&packet).expect("CONNECT written");
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).expect("a CONNACK");
    assert_eq!(connack[0], 0x20, "a CONNACK");
    connack[3]
}

fn sas(connection_string: &str, extra: &[&str]) -> String {
    let mut args = vec!["sas", "--connection-string", connection_string];
    args.extend_from_slice(extra);
    let run = iothub(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.stdout.trim().to_owned()
}

#[test]
fn refusals_are_logged_with_their_reason_and_without_secrets() {
    let emulator = Emulator::start();
    let run = iothub(&[
        "hub",
        "identity",
        "create",
        "dev1",
        "--data-dir",
        emulator.data_dir(),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let cs = run.stdout.trim().to_owned();
    let key = cs.split("SharedAccessKey=").nth(1).unwrap().to_owned();
    let addr = emulator.plain_mqtt();
    let username = "localhost/dev1/?api-version=2021-04-12";

    let other_key = "HostName=localhost;DeviceId=dev1;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let wrong_key = sas(other_key, &[]);
    assert_eq!(connect(&addr, "dev1", username, &wrong_key), 5);
    let expired = sas(&cs, &["--expiry", "1000"]);
    assert_eq!(connect(&addr, "dev1", username, &expired), 5);
    let valid = sas(&cs, &[]);
    assert_eq!(connect(&addr, "dev2", username, &valid), 5);
    assert_eq!(connect(&addr, "dev1", username, &valid), 0);

    let log = emulator.wait_for_log("device `dev1` connected");
    for reason in [
        "signature does not match the primary or secondary key of device `dev1`",
        "SAS token expired at 1000",
        "client id `dev2` is not the username's identity `dev1`",
        "device `dev1` connected",
    ] {
        assert!(
            log.contains(reason),
            "`{reason}` missing from the log:\n{log}"
        );
    }
    for secret in [key.as_str(), &wrong_key, &expired, &valid, "sig="] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
}
