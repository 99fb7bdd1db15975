//! The `iothub` command line: mint SAS tokens today; act as a device or the service and run
//! the local emulator as later commands land.
//!
//! Exit codes: 0 success, 1 a negative result (reserved for commands such as
//! method invocation), 2 an error. Errors are printed to stderr with their whole context chain.
//! A closed stdout (`iothub sas … | head -c0`) is not an error.

mod amqp;
mod args;
mod cmd;
mod connection_events;
mod errors;
mod logging;

use std::io;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let json = cli.json;
    match cmd::run(cli) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let hint = errors::hint(&error);
            if json {
                let v = serde_json::json!({"error": format!("{error:#}"), "hint": hint});
                eprintln!("{v}");
            } else {
                eprintln!("error: {error:#}");
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(2)
        }
    }
}

/// Whether the error is stdout having been closed by the reader (ripgrep's convention).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}
