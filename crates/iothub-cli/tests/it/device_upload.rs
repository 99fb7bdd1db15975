//! `iothub device upload` end to end against a running `iothub emulator` (its built-in blob
//! endpoint).

use std::process::{Child, Stdio};

use serde_json::Value;

use crate::emulator_command::{emulator_command, read_banner};
use crate::iothub;

/// A running `iothub emulator` on free ports, stopped on drop.
struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    https_port: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = emulator_command(dir.path(), "0")
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let banner = read_banner(&mut child);
        let https = banner["https"].as_str().expect("https").to_owned();
        let https_port = https.rsplit(':').next().expect("port").to_owned();
        Self {
            child,
            dir,
            https_port,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("utf-8 temp path")
            .to_owned()
    }

    fn create_device(&self, id: &str) -> String {
        let data_dir = self.path("");
        let run = iothub(&["hub", "identity", "create", id, "--data-dir", &data_dir]);
        assert_eq!(run.code, Some(0), "{run:?}");
        run.stdout.trim_end().to_owned()
    }
}

#[test]
fn upload_prints_the_blob_it_committed_as_json() {
    let emulator = Emulator::start();
    let cs = emulator.create_device("dev1");
    let file = emulator.path("report.txt");
    let body = "line\n".repeat(300_000); // 1.5 MB: two 1 MiB blocks
    std::fs::write(&file, &body).expect("write the file");
    let ca = emulator.path("ca.pem");
    let run = iothub(&[
        "--json",
        "device",
        "upload",
        &file,
        "--blob-name",
        "logs/report.txt",
        "--block-size",
        "1",
        "--connection-string",
        &cs,
        "--https-port",
        &emulator.https_port,
        "--ca-file",
        &ca,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let out: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(out["blobName"], "dev1/logs/report.txt");
    assert_eq!(out["size"], body.len());
    assert_eq!(out["blocks"], 2);
    assert!(out["correlationId"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        out["blobUrl"]
            .as_str()
            .expect("blobUrl")
            .ends_with("/fileupload/dev1/logs/report.txt"),
        "{out}"
    );
}

#[test]
fn a_refused_upload_exits_2_and_standard_input_needs_a_blob_name() {
    let emulator = Emulator::start();
    let cs = emulator.create_device("dev1");
    let file = emulator.path("x.bin");
    std::fs::write(&file, b"x").expect("write the file");
    let ca = emulator.path("ca.pem");
    // A name the hub refuses (a `..` segment would leave the device's prefix).
    let run = iothub(&[
        "device",
        "upload",
        &file,
        "--blob-name",
        "a/../b",
        "--connection-string",
        &cs,
        "--https-port",
        &emulator.https_port,
        "--ca-file",
        &ca,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("the hub refused the SAS URI request with status 400"),
        "{run:?}"
    );

    let run = iothub(&["device", "upload", "-", "--connection-string", &cs]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("needs --blob-name"), "{run:?}");
}
