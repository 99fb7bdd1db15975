//! `iothub emulator` and `iothub hub identity …`, run as the real binary.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::emulator_command::{emulator_command, read_banner};
use crate::{Run, iothub};

fn identity(dir: &tempfile::TempDir, args: &[&str]) -> Run {
    let mut all = vec!["hub", "identity"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir.path().to_str().expect("utf-8 temp path")]);
    iothub(&all)
}

#[test]
fn identity_create_list_show_delete_round_trip_on_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let run = identity(&dir, &["create", "dev1"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .starts_with("HostName=localhost;DeviceId=dev1;SharedAccessKey="),
        "{run:?}"
    );

    let run = identity(&dir, &["create", "dev1"]);
    assert_eq!(run.code, Some(2), "a duplicate is an error: {run:?}");

    let run = iothub(&[
        "--json",
        "hub",
        "identity",
        "create",
        "dev1",
        "--module",
        "m1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let module: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(module["moduleId"], "m1");
    assert!(
        module["connectionString"]
            .as_str()
            .unwrap()
            .contains(";ModuleId=m1;")
    );

    let run = identity(
        &dir,
        &["create", "cam", "--x509-thumbprint", "ab12", "--disabled"],
    );
    assert!(run.stdout.trim_end().ends_with(";x509=true"), "{run:?}");

    let run = identity(&dir, &["list"]);
    assert_eq!(
        run.stdout,
        "cam\tdisabled\tselfSigned\ndev1\tenabled\tsas\ndev1/m1\tenabled\tsas\n"
    );

    let show = identity(&dir, &["show", "dev1"]);
    let cs = identity(&dir, &["connection-string", "dev1"]);
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(
        shown["connectionString"].as_str().unwrap(),
        cs.stdout.trim_end()
    );

    assert_eq!(identity(&dir, &["delete", "dev1"]).code, Some(0));
    assert_eq!(
        identity(&dir, &["delete", "dev1"]).code,
        Some(1),
        "a second delete finds nothing"
    );
    assert_eq!(identity(&dir, &["show", "dev1/m1"]).code, Some(1));
    assert_eq!(
        identity(&dir, &["list"]).stdout,
        "cam\tdisabled\tselfSigned\n",
        "modules went with their device"
    );
}

#[test]
fn emulator_prints_its_endpoints_and_cleans_up_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = emulator_command(dir.path(), "0")
        .args(["--json", "--hostname", "myhub.azure-devices.net"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let banner = read_banner(&mut child);
    assert_eq!(banner["hostName"], "myhub.azure-devices.net");
    assert!(banner["idScope"].as_str().unwrap().starts_with("0ne"));
    assert!(
        banner["serviceConnectionString"]
            .as_str()
            .unwrap()
            .contains("SharedAccessKeyName=iothubowner;")
    );
    assert!(dir.path().join("ca.pem").exists());
    assert!(
        dir.path().join("endpoints.json").exists(),
        "other commands find the running emulator"
    );

    // Identities created while it runs use its host name.
    let run = identity(&dir, &["create", "dev9"]);
    assert!(
        run.stdout
            .starts_with("HostName=myhub.azure-devices.net;DeviceId=dev9;"),
        "{run:?}"
    );

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "clean shutdown exits 0: {status:?}");
    assert!(
        !dir.path().join("endpoints.json").exists(),
        "a stopped emulator leaves no endpoints behind"
    );
}
