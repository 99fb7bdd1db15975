//! `iothub hub …`: failures that need no hub (end-to-end runs against the emulator are in
//! `hub_emulator`).

use crate::iothub;

const SERVICE_CS: &str = "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[test]
fn without_a_connection_string_or_emulator_it_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = iothub(&[
        "hub",
        "twin",
        "show",
        "dev1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("iothub emulator"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--hub-connection-string"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_device_connection_string_is_refused_for_service_commands() {
    let device =
        "HostName=h;DeviceId=d;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let run = iothub(&[
        "hub",
        "twin",
        "show",
        "dev1",
        "--hub-connection-string",
        device,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("service policy"), "{}", run.stderr);
}

#[test]
fn invoke_rejects_a_payload_that_is_not_json() {
    let run = iothub(&[
        "hub",
        "invoke",
        "dev1",
        "reboot",
        "--payload",
        "{nope",
        "--hub-connection-string",
        SERVICE_CS,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("--payload is not JSON"),
        "{}",
        run.stderr
    );
}

#[test]
fn twin_update_needs_something_to_change() {
    let run = iothub(&[
        "hub",
        "twin",
        "update",
        "dev1",
        "--hub-connection-string",
        SERVICE_CS,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--desired"), "{}", run.stderr);
}

#[test]
fn c2d_rejects_a_property_without_equals() {
    let run = iothub(&[
        "hub",
        "c2d",
        "dev1",
        "hi",
        "-p",
        "novalue",
        "--hub-connection-string",
        SERVICE_CS,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("not key=value"), "{}", run.stderr);
}
