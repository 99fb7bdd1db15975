//! Arguments of `iothub hub enrollment` and `iothub hub enrollment-group`: the local
//! emulator's DPS enrollments (docs/protocol.md §9).

use clap::{Args, Subcommand};

const EXAMPLES: &str = "\
Examples:
  iothub hub enrollment create sensor-1
  iothub hub enrollment create sensor-2 --key \"$(head -c 32 /dev/urandom | base64)\"
  iothub hub enrollment-group create fleet
  iothub sas --derive-key --group-key <GROUP KEY> --registration-id sensor-3
  iothub hub enrollment list";

const CREATE_EXAMPLES: &str = "\
Examples:
  iothub hub enrollment create sensor-1
  iothub hub enrollment-group create fleet --key <BASE64 KEY>
  iothub --json hub enrollment create sensor-1 --disabled";

const TARGET_EXAMPLES: &str = "\
Examples:
  iothub hub enrollment show sensor-1
  iothub hub enrollment-group disable fleet
  iothub hub enrollment delete sensor-1";

const LIST_EXAMPLES: &str = "\
Examples:
  iothub hub enrollment list
  iothub --json hub enrollment-group list";

/// `iothub hub enrollment` / `iothub hub enrollment-group`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct EnrollmentArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: EnrollmentCommand,
}

/// The enrollment subcommands (the same for individual enrollments and groups).
#[derive(Debug, Subcommand)]
pub(crate) enum EnrollmentCommand {
    /// Create a symmetric-key enrollment; prints the DPS id scope and the keys.
    #[command(after_help = CREATE_EXAMPLES)]
    Create(EnrollmentCreateArgs),
    /// List enrollments (id and status; `--json`: the objects with keys).
    #[command(after_help = LIST_EXAMPLES)]
    List,
    /// Show one enrollment with the id scope and keys; exits 1 when it does not exist.
    #[command(after_help = TARGET_EXAMPLES)]
    Show(EnrollmentTarget),
    /// Delete an enrollment; exits 1 when it does not exist.
    #[command(after_help = TARGET_EXAMPLES)]
    Delete(EnrollmentTarget),
    /// Allow registrations through the enrollment again.
    #[command(after_help = TARGET_EXAMPLES)]
    Enable(EnrollmentTarget),
    /// Refuse registrations: they end with status `disabled`.
    #[command(after_help = TARGET_EXAMPLES)]
    Disable(EnrollmentTarget),
}

/// Which enrollment.
#[derive(Debug, Args)]
pub(crate) struct EnrollmentTarget {
    /// Registration id (individual enrollment) or group id (enrollment group).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
}

/// `… create`.
#[derive(Debug, Args)]
pub(crate) struct EnrollmentCreateArgs {
    /// Registration id (individual enrollment) or group id (enrollment group).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Primary symmetric key (base64 of 16 to 64 bytes); generated when absent.
    #[arg(long, alias = "primary-key", value_name = "BASE64")]
    pub(crate) key: Option<String>,
    /// Secondary symmetric key; generated when absent.
    #[arg(long, value_name = "BASE64")]
    pub(crate) secondary_key: Option<String>,
    /// Create it disabled (registrations end with status `disabled`).
    #[arg(long)]
    pub(crate) disabled: bool,
}
