//! Arguments of `iothub hub identity`: the emulator's identity registry.

use clap::{Args, Subcommand};

const EXAMPLES: &str = "\
Examples:
  iothub hub identity create dev1
  iothub hub identity create dev1 --module filter --json
  iothub hub identity create cam1 --x509-thumbprint 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
  iothub hub identity list
  iothub hub identity show dev1
  iothub hub identity connection-string dev1 --module filter
  iothub hub identity delete dev1

Without --hub-connection-string these commands open the emulator's database in its data dir
(--data-dir, IOTHUB_EMULATOR_DIR, default ~/.local/share/iothub/emulator); the emulator may be
running or not. With --hub-connection-string (or IOTHUB_CONNECTION_STRING) they use that hub's
registry REST API, e.g. a real IoT Hub:
  iothub hub identity create dev1 --hub-connection-string 'HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=...'";

/// `iothub hub identity`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct IdentityArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: IdentityCommand,
}

/// The identity subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Create a device (or module) identity; prints its connection string (`--json`: the object).
    #[command(after_help = EXAMPLES)]
    Create(CreateArgs),
    /// List every identity.
    #[command(after_help = EXAMPLES)]
    List,
    /// Show one identity as JSON.
    #[command(after_help = EXAMPLES)]
    Show(Target),
    /// Delete an identity (a device's modules go with it); exits 1 when it does not exist.
    #[command(after_help = EXAMPLES)]
    Delete(Target),
    /// Print an identity's connection string.
    #[command(after_help = EXAMPLES)]
    ConnectionString(Target),
}

/// Which identity.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// Device id.
    pub(crate) device_id: String,
    /// Module id, for a module identity.
    #[arg(long, short = 'm')]
    pub(crate) module: Option<String>,
}

/// `iothub hub identity create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Which identity to create.
    #[command(flatten)]
    pub(crate) target: Target,
    /// Authenticate with a self-signed X.509 certificate of this SHA-1 or SHA-256 thumbprint.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["primary_key", "secondary_key"])]
    pub(crate) x509_thumbprint: Option<String>,
    /// Create it disabled (connections get CONNACK 3).
    #[arg(long)]
    pub(crate) disabled: bool,
    /// Primary key (base64); generated when absent.
    #[arg(long, value_name = "BASE64")]
    pub(crate) primary_key: Option<String>,
    /// Secondary key (base64); generated when absent.
    #[arg(long, value_name = "BASE64")]
    pub(crate) secondary_key: Option<String>,
}
