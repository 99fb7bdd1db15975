//! `iothub completions SHELL`: prints a completion script generated from the argument
//! definitions (clap_complete), so it never drifts from the real flags.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use super::Global;
use crate::args::{Cli, CompletionsArgs};

/// Writes the script for `args.shell` to stdout. `--json` does not apply: the output is a
/// shell script by nature.
pub(crate) fn run(args: &CompletionsArgs, _global: Global) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "iothub", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}
