//! `iothub device …`: argument handling and failures (end-to-end runs are in `device_hub`).

use crate::iothub;

#[test]
fn send_without_a_connection_string_is_an_error() {
    let run = iothub(&["device", "send", "hello"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("IOTHUB_DEVICE_CONNECTION_STRING"),
        "{}",
        run.stderr
    );
}

#[test]
fn send_rejects_a_property_without_equals() {
    let run = iothub(&[
        "device",
        "send",
        "hello",
        "-p",
        "novalue",
        "--connection-string",
        "HostName=h;DeviceId=d;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("not key=value"), "{}", run.stderr);
}

#[test]
fn listen_rejects_a_malformed_method_answer() {
    let run = iothub(&[
        "device",
        "listen",
        "--method",
        "reboot=ok:{}",
        "--connection-string",
        "HostName=h;DeviceId=d;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("status is not a number"),
        "{}",
        run.stderr
    );
}

#[test]
fn report_requires_a_json_object() {
    let run = iothub(&[
        "device",
        "report",
        "[1]",
        "--connection-string",
        "HostName=h;DeviceId=d;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("JSON object"), "{}", run.stderr);
}

#[test]
fn provision_needs_exactly_one_key() {
    let run = iothub(&[
        "device",
        "provision",
        "--id-scope",
        "s",
        "--registration-id",
        "r",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
}
