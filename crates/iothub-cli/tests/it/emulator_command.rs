//! The one way the tests start `iothub emulator`: every listener on a port the OS picks.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command};

use serde_json::Value;

/// `iothub emulator --data-dir dir` with MQTT/TLS on `mqtt_port` ("0" for a free one) and every
/// other listener on a free port, so tests never clash with each other or with the interop
/// suite, which needs the real ports. Add `--json` before calling to get the JSON banner.
pub(crate) fn emulator_command(dir: &Path, mqtt_port: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iothub"));
    command
        .args(["emulator", "--data-dir"])
        .arg(dir)
        .args(["--mqtt-port", mqtt_port])
        .args(["--https-port", "0", "--plain-port", "0", "--http-port", "0"])
        .args(["--amqp-port", "0", "--amqp-plain-port", "0"]);
    command
}

/// The JSON banner a `--json` emulator prints first on its standard output (piped).
pub(crate) fn read_banner(child: &mut Child) -> Value {
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("a banner line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("JSON banner ({e}): {line:?}"))
}
