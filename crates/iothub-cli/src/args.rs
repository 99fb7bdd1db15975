//! Command-line arguments (clap derive). Parsing only: no I/O here; `cmd` acts on them.
//!
//! Each subcommand keeps its arguments in its own module under `args/`.

mod device;
mod emulator;
mod hub;
mod sas;

use clap::{Parser, Subcommand};

pub(crate) use self::device::{
    Connection as DeviceConnection, DeviceArgs, DeviceCommand, ListenArgs, ProvisionArgs,
    ReportArgs, SendArgs,
};
pub(crate) use self::emulator::EmulatorArgs;
pub(crate) use self::hub::{
    C2dArgs, HubArgs, HubCommand, InvokeArgs, MonitorArgs, Service as HubService, TwinArgs,
    TwinCommand, TwinTarget,
};
pub(crate) use self::hub::{EnrollmentArgs, EnrollmentCommand, IdentityArgs, IdentityCommand};
pub(crate) use self::sas::SasArgs;

/// Talk to Azure IoT Hub over MQTT, or to a local emulator, without the Azure SDK.
#[derive(Debug, Parser)]
#[command(name = "iothub", version, about, propagate_version = true)]
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
    /// Run the local IoT Hub emulator in the foreground (MQTT/TLS, WebSocket, plain MQTT, DPS).
    Emulator(EmulatorArgs),
}
