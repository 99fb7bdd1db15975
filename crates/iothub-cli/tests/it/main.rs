//! Integration tests: run the built `iothub` binary and check its output and exit code.

mod cli_under_load;
mod completions;
mod demo;
mod device;
mod device_hub;
mod device_upload;
mod emulator_cli;
mod emulator_command;
mod emulator_log;
mod errors;
mod help;
mod hub;
mod hub_amqp;
mod hub_emulator;
mod hub_enrollment;
mod sas;
mod simulate;

use std::process::Command;

/// What one run of the binary produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `iothub` with `args` and captures everything.
pub(crate) fn iothub(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args(args)
        .env_remove("IOTHUB_DEVICE_CONNECTION_STRING")
        .env_remove("IOTHUB_CONNECTION_STRING")
        .output()
        .expect("the iothub binary runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}
