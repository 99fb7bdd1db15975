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
