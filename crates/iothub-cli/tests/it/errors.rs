//! Errors a person can act on: each names the cause and the fix, exit 2.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::iothub;
use crate::simulate::start_emulator;

fn endpoint(dir: &std::path::Path, key: &str) -> String {
    let text = std::fs::read_to_string(dir.join("endpoints.json")).expect("endpoints.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("endpoints.json is JSON");
    v[key].as_str().expect("the endpoint is listed").to_owned()
}

fn port(addr: &str) -> String {
    addr.rsplit(':').next().expect("host:port").to_owned()
}

fn create(dir: &str, args: &[&str]) -> String {
    let mut all = vec!["hub", "identity", "create"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir]);
    let run = iothub(&all);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.stdout
        .lines()
        .find(|l| l.starts_with("HostName="))
        .unwrap_or_else(|| panic!("no connection string: {run:?}"))
        .to_owned()
}

fn send(cs: &str, extra: &[&str]) -> crate::Run {
    let mut args = vec!["device", "send", "hi", "--connection-string", cs];
    args.extend_from_slice(extra);
    iothub(&args)
}

#[test]
fn malformed_connection_string_names_the_field() {
    let run = send("HostNme=h;DeviceId=d;SharedAccessKey=AAAA", &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("unknown field `HostNme`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `HostName`"),
        "{}",
        run.stderr
    );
    let run = send("HostName=h;DeviceId=d;SharedAccessKey=not base64!", &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("SharedAccessKey"), "{}", run.stderr);
}

#[test]
fn device_side_failures_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let _emulator = start_emulator(dir.path());
    let data = dir.path().to_str().unwrap();
    let tls = port(&endpoint(dir.path(), "mqttTls"));
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let cs = create(data, &["e1"]);

    // Nothing listens on port 1.
    let run = send(&cs, &["--port", "1"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("cannot reach localhost:1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("iothub emulator"), "{}", run.stderr);

    // The emulator's CA is not trusted without --ca-file.
    let run = send(&cs, &["--port", &tls]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("TLS with localhost"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--ca-file") && run.stderr.contains("ca.pem"),
        "{}",
        run.stderr
    );

    // A wrong key: not an expired token, the key.
    let wrong = "HostName=localhost;DeviceId=e1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let run = send(wrong, &["--port", &tls, "--ca-file", ca]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("CONNACK 5"), "{}", run.stderr);
    assert!(
        run.stderr.contains("SharedAccessKey is wrong"),
        "{}",
        run.stderr
    );

    // An expired pre-made token: said so, before the hub is even asked.
    let key = cs.split("SharedAccessKey=").nth(1).unwrap();
    let token = iothub(&[
        "sas",
        "--resource",
        "localhost/devices/e1",
        "--key",
        key,
        "--expiry",
        "1000",
    ]);
    assert_eq!(token.code, Some(0), "{token:?}");
    let expired = format!(
        "HostName=localhost;DeviceId=e1;SharedAccessSignature={}",
        token.stdout.trim()
    );
    let run = send(&expired, &["--port", &tls, "--ca-file", ca]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert!(run.stderr.contains("iothub sas"), "{}", run.stderr);

    // A disabled device.
    let disabled = create(data, &["off1", "--disabled"]);
    let run = send(&disabled, &["--port", &tls, "--ca-file", ca]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("off1 is disabled"), "{}", run.stderr);

    // And the same device string works with the CA.
    let run = send(&cs, &["--port", &tls, "--ca-file", ca]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// A one-shot HTTP server answering every request with 429 in IoT Hub's error shape.
fn throttling_hub() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    (listener, port)
}

#[test]
fn throttling_is_explained() {
    let (listener, port) = throttling_hub();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let body = r#"{"Message":"{\"errorCode\":429001,\"message\":\"Throttling: too many requests\"}","ExceptionMessage":""}"#;
        let response = format!(
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 10\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("endpoints.json"),
        serde_json::json!({
            "http": format!("127.0.0.1:{port}"),
            "serviceConnectionString": "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        })
        .to_string(),
    )
    .unwrap();
    let run = iothub(&[
        "hub",
        "twin",
        "show",
        "dev1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    server.join().unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("429"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: the hub is throttling"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("retry"), "{}", run.stderr);
}

#[test]
fn json_errors_are_json_on_stderr() {
    let run = iothub(&[
        "--json",
        "device",
        "send",
        "hi",
        "--connection-string",
        "HostName=h;Foo=1",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("unknown field `Foo`"),
        "{v}"
    );
}

#[test]
fn service_side_failures_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let _emulator = start_emulator(dir.path());
    let https = port(&endpoint(dir.path(), "https"));
    let service = endpoint(dir.path(), "serviceConnectionString");
    let hub = |cs: &str, extra: &[&str]| {
        let mut args = vec!["hub", "twin", "show", "e1", "--hub-connection-string", cs];
        args.extend_from_slice(extra);
        iothub(&args)
    };

    // Unreachable.
    let run = hub(
        "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=AAAA",
        &[],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("hint: the hub cannot be reached"),
        "{}",
        run.stderr
    );

    // The emulator's HTTPS port without its CA.
    let direct = service.replace("HostName=localhost", &format!("HostName=localhost:{https}"));
    let run = hub(&direct, &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("UnknownIssuer"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hint: the hub's TLS certificate is not trusted"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--ca-file"), "{}", run.stderr);

    // A wrong policy key.
    let ca = dir.path().join("ca.pem");
    let wrong = format!(
        "HostName=localhost:{https};SharedAccessKeyName=iothubowner;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    let run = hub(&wrong, &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hint: the service credentials were rejected"),
        "{}",
        run.stderr
    );

    // A malformed one names the field.
    let run = hub("HostNam=x;SharedAccessKeyName=a;SharedAccessKey=AAAA", &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("unknown field `HostNam`"),
        "{}",
        run.stderr
    );

    // And the right one with the CA works.
    let run = iothub(&[
        "hub",
        "identity",
        "create",
        "e1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = hub(&direct, &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// Whether the emulator reports `device` as connected (its twin's `connectionState`).
fn is_connected(data: &str, device: &str) -> bool {
    let run = iothub(&["hub", "twin", "show", device, "--data-dir", data]);
    serde_json::from_str::<serde_json::Value>(run.stdout.trim())
        .is_ok_and(|twin| twin["connectionState"] == "Connected")
}

#[test]
fn a_lost_connection_is_printed_with_its_reason_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(dir.path());
    let data = dir.path().to_str().unwrap();
    let tls = port(&endpoint(dir.path(), "mqttTls"));
    let ca = dir.path().join("ca.pem");
    let cs = create(data, &["r1"]);
    let key = cs.split("SharedAccessKey=").nth(1).unwrap().to_owned();
    let listen = std::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args([
            "device",
            "listen",
            "--timeout",
            "8",
            "--connection-string",
            &cs,
        ])
        .args(["--port", &tls, "--ca-file", ca.to_str().unwrap()])
        .env_remove("IOTHUB_DEVICE_CONNECTION_STRING")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !is_connected(data, "r1") {
        assert!(std::time::Instant::now() < deadline, "r1 never connected");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The hub goes away under the connected device.
    drop(emulator);
    let out = listen.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("connection lost: "), "{stderr}");
    assert!(stderr.contains("retrying in "), "{stderr}");
    assert!(!stderr.contains(&key), "the key leaked: {stderr}");
    assert!(!stderr.contains("sig="), "a token leaked: {stderr}");
}
