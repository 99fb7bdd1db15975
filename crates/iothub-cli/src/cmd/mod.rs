//! Turns parsed arguments into actions. One module per subcommand.

mod completions;
mod demo;
mod device;
mod device_upload;
mod emulator;
mod hub;
mod sas;
mod simulate;

use std::process::ExitCode;

use crate::args::{Cli, Command};

pub(crate) use self::emulator::default_data_dir as emulator_data_dir;

/// Options every command sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Global {
    /// Print JSON instead of plain text.
    pub(crate) json: bool,
}

/// Runs the chosen command and returns the process exit code.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = Global { json: cli.json };
    match cli.command {
        Command::Sas(args) => sas::run(&args, global),
        Command::Device(args) => device::run(&args, global),
        Command::Hub(args) => hub::run(&args, global),
        Command::Demo(args) => demo::run(&args, global),
        Command::Simulate(args) => simulate::run(&args, global),
        Command::Completions(args) => completions::run(&args, global),
        Command::Emulator(args) => emulator::run(&args, global),
    }
}

/// The running emulator's `endpoints.json` in `dir`, parsed, or an error saying none runs.
pub(crate) fn read_endpoints(dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let path = dir.join("endpoints.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no running emulator found ({} is missing): start `iothub emulator` or pass --hub-connection-string",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}
