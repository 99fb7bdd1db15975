//! Arguments of `iothub demo`.

use std::path::PathBuf;

use clap::Args;

const EXAMPLES: &str = "\
Examples:
  # the whole product in one command: emulator, a Plug and Play thermostat, the service side
  iothub demo

  # print the transcript and exit (0 when every step worked, 1 when one failed)
  iothub demo --once

  # keep the hub's database, CA and endpoints.json afterwards
  iothub demo --data-dir ./demo-hub

While it runs, the dashboard URL it prints shows the device live, and the other commands
(`iothub hub monitor --data-dir DIR`, ...) reach the same emulator through DIR.";

/// `iothub demo`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct DemoArgs {
    /// Keep the emulator's data (database, CA, endpoints.json) here instead of a temporary dir.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Exit after the transcript instead of running until Ctrl-C.
    #[arg(long)]
    pub(crate) once: bool,

    /// Seconds each step may take before it counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub(crate) step_timeout: u64,
}
