//! Command-line arguments (clap derive). Parsing only: no I/O here; `cmd` acts on them.
//!
//! Each subcommand keeps its arguments in its own module under `args/`.

mod completions;
mod demo;
mod device;
mod emulator;
mod hub;
mod sas;
mod simulate;

use clap::{Parser, Subcommand};

pub(crate) use self::completions::CompletionsArgs;
pub(crate) use self::demo::DemoArgs;
pub(crate) use self::device::{
    Connection as DeviceConnection, DeviceArgs, DeviceCommand, ListenArgs, ProvisionArgs,
    ReportArgs, SendArgs, UploadArgs,
};
pub(crate) use self::emulator::{EmulatorArgs, LogFormat, RouteArg};
pub(crate) use self::hub::{
    C2dArgs, ConsumerGroupArgs, ConsumerGroupCommand, HubArgs, HubCommand, InvokeArgs, MonitorArgs,
    Service as HubService, TwinArgs, TwinCommand, TwinTarget,
};
pub(crate) use self::hub::{
    ConnectionStringArgs, EnrollmentArgs, EnrollmentCommand, IdentityArgs, IdentityCommand,
    IdentityTarget,
};
pub(crate) use self::sas::SasArgs;
pub(crate) use self::simulate::SimulateArgs;

const EXAMPLES: &str = "\
Examples:
  iothub demo                                   # the whole product locally, in one command
  iothub emulator                               # a local IoT Hub for your own devices
  iothub hub identity create dev1               # a device on it, prints its connection string
  iothub device send 'hello' --connection-string 'HostName=...;DeviceId=dev1;SharedAccessKey=...'
  iothub hub monitor                            # telemetry as it arrives
  iothub simulate --devices 100 --rate 500 --duration 30

Exit codes: 0 success, 1 a negative result (a method answered non-2xx, a wait timed out,
messages not acknowledged), 2 an error. `--json` makes every command print JSON.";

/// Talk to Azure IoT Hub over MQTT, or to a local emulator, without the Azure SDK.
#[derive(Debug, Parser)]
#[command(name = "iothub", version, about, propagate_version = true, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Print machine-readable JSON instead of plain text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Mint a shared access signature (SAS) token offline, or derive a DPS device key.
    Sas(SasArgs),
    /// Act as a device: send telemetry, listen for C2D/methods/desired patches, twin, DPS.
    Device(DeviceArgs),
    /// Act as the service: monitor telemetry, invoke methods, send C2D, show and update twins.
    Hub(HubArgs),
    /// Run the whole product locally: emulator, a Plug and Play thermostat, the service side.
    Demo(DemoArgs),
    /// Run the local IoT Hub emulator in the foreground (MQTT/TLS, WebSocket, plain MQTT, DPS).
    Emulator(EmulatorArgs),
    /// Simulate a fleet of devices sending telemetry; report throughput and PUBACK latency.
    Simulate(SimulateArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
}
