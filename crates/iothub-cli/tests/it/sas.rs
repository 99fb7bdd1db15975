//! `iothub sas`: docs/protocol.md §2.2 vectors reproduced byte for byte, and errors exit 2.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::iothub;

const KEY: &str = "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=";
const VECTOR_1: &str = "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test\
                        &sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363\n";

#[test]
fn resource_and_key_reproduce_vector_1_byte_for_byte() {
    let run = iothub(&[
        "sas",
        "--resource",
        "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test",
        "--key",
        KEY,
        "--expiry",
        "1471940363",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, VECTOR_1);
    assert_eq!(run.stderr, "");
}

#[test]
fn device_connection_string_reproduces_vector_1() {
    let cs = format!(
        "HostName=iot-hub-for-test.azure-devices.net;DeviceId=iot-device-for-test;SharedAccessKey={KEY}"
    );
    let run = iothub(&["sas", "--connection-string", &cs, "--expiry", "1471940363"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, VECTOR_1);
}

#[test]
fn service_connection_string_signs_the_hub_with_skn() {
    // docs/protocol.md §2.2 vector 2
    let cs = format!(
        "HostName=iot-hub-for-test.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"
    );
    let run = iothub(&["sas", "--connection-string", &cs, "--expiry", "1471940363"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net\
         &sig=770sPjjYxRYpNz8%2FhEN7XR5XU5KDGYGTinSP8YyeTXw%3D&se=1471940363&skn=iothubowner\n"
    );
}

#[test]
fn module_connection_string_signs_the_module_resource() {
    // docs/protocol.md §2.2 vector 3
    let cs = format!(
        "HostName=iot-hub-for-test.azure-devices.net;DeviceId=iot-device-for-test;ModuleId=module-for-test;SharedAccessKey={KEY}"
    );
    let run = iothub(&["sas", "--connection-string", &cs, "--expiry", "1471940363"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("%2Fmodules%2Fmodule-for-test&sig=JwAxBBBPYA0E%2FTHdnrXzUfBfuZ7deH6pppCniJ23Uu0%3D&se=1471940363\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn dps_resource_with_registration_policy() {
    let run = iothub(&[
        "sas",
        "--resource",
        "0ne00000001/registrations/reg-1",
        "--key",
        KEY,
        "--policy",
        "registration",
        "--expiry",
        "1700000000",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .starts_with("SharedAccessSignature sr=0ne00000001%2Fregistrations%2Freg-1&sig=")
    );
    assert!(run.stdout.ends_with("&se=1700000000&skn=registration\n"));
}

#[test]
fn derive_key_reproduces_vector_7() {
    let run = iothub(&[
        "sas",
        "--derive-key",
        "--group-key",
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
        "--registration-id",
        "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=\n");
}

#[test]
fn duration_defaults_to_one_hour_from_now() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let run = iothub(&["sas", "--resource", "h/devices/d", "--key", KEY]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let se: u64 = run
        .stdout
        .trim_end()
        .rsplit("&se=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((now + 3600..=now + 3610).contains(&se), "se={se} now={now}");

    let run = iothub(&[
        "sas",
        "--resource",
        "h/devices/d",
        "--key",
        KEY,
        "--duration",
        "60",
    ]);
    let se: u64 = run
        .stdout
        .trim_end()
        .rsplit("&se=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((now + 60..=now + 70).contains(&se), "se={se} now={now}");
}

#[test]
fn json_output_carries_token_resource_and_expiry() {
    let run = iothub(&[
        "--json",
        "sas",
        "--resource",
        "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test",
        "--key",
        KEY,
        "--expiry",
        "1471940363",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["token"], VECTOR_1.trim_end());
    assert_eq!(
        value["resource"],
        "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test"
    );
    assert_eq!(value["expiry"], 1471940363);
}

#[test]
fn bad_connection_string_exits_2_naming_the_field() {
    let run = iothub(&[
        "sas",
        "--connection-string",
        &format!("DeviceId=d;SharedAccessKey={KEY}"),
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("HostName"), "{}", run.stderr);

    let run = iothub(&[
        "sas",
        "--connection-string",
        "HostName=h;DeviceId=d;SharedAccessKey=%%%",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("SharedAccessKey"), "{}", run.stderr);

    let run = iothub(&[
        "sas",
        "--connection-string",
        &format!("HostName=h;DevId=d;SharedAccessKey={KEY}"),
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("`DevId`"), "{}", run.stderr);
}

#[test]
fn connection_strings_without_a_key_exit_2() {
    for cs in [
        "HostName=h;DeviceId=d;x509=true",
        "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=x&se=1",
    ] {
        let run = iothub(&["sas", "--connection-string", cs]);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("no key to sign with"), "{}", run.stderr);
    }
}

#[test]
fn invalid_key_exits_2() {
    let run = iothub(&[
        "sas",
        "--resource",
        "h",
        "--key",
        "not base64",
        "--expiry",
        "1",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("not valid base64"), "{}", run.stderr);
}

#[test]
fn conflicting_or_missing_modes_exit_2() {
    assert_eq!(iothub(&["sas"]).code, Some(2));
    assert_eq!(iothub(&["sas", "--resource", "h"]).code, Some(2));
    assert_eq!(
        iothub(&[
            "sas",
            "--resource",
            "h",
            "--key",
            KEY,
            "--expiry",
            "1",
            "--duration",
            "5"
        ])
        .code,
        Some(2)
    );
    assert_eq!(
        iothub(&["sas", "--derive-key", "--group-key", KEY]).code,
        Some(2)
    );
}

#[test]
fn help_shows_examples() {
    let run = iothub(&["sas", "--help"]);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("Examples:"));
    assert!(run.stdout.contains("--derive-key --group-key"));
}
