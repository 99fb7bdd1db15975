//! Arguments of `iothub sas`.

use clap::{ArgGroup, Args};

const EXAMPLES: &str = "\
Examples:
  # device token valid for one hour, from a device connection string
  iothub sas --connection-string \\
    'HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=...'

  # token for any resource with a fixed expiry (Unix seconds)
  iothub sas --resource myhub.azure-devices.net/devices/dev1 \\
    --key BASE64KEY --expiry 1700000000

  # DPS registration token (policy `registration`)
  iothub sas --resource 0ne00000001/registrations/reg-1 \\
    --key BASE64KEY --policy registration --duration 600

  # DPS group enrollment: derive a device's key from the group key
  iothub sas --derive-key --group-key BASE64GROUPKEY --registration-id reg-1

The token (or key) is printed alone on stdout, ready for `$(...)`.";

/// `iothub sas`: one of three modes, chosen by `--connection-string`, `--resource` or
/// `--derive-key`.
#[derive(Debug, Args)]
#[command(
    after_help = EXAMPLES,
    group(ArgGroup::new("mode").required(true).args(["connection_string", "resource", "derive_key"])),
)]
pub(crate) struct SasArgs {
    /// Sign for a device, module or service (policy) connection string.
    #[arg(long, value_name = "CS")]
    pub(crate) connection_string: Option<String>,

    /// Sign for this resource URI, unencoded (e.g. `{host}/devices/{id}`, `{scope}/registrations/{id}`).
    #[arg(long, value_name = "URI", requires = "key")]
    pub(crate) resource: Option<String>,

    /// The base64 shared access key to sign with (with --resource).
    #[arg(long, value_name = "BASE64KEY", requires = "resource")]
    pub(crate) key: Option<String>,

    /// The policy name to put in the token as `skn` (with --resource).
    #[arg(long, value_name = "NAME", requires = "resource")]
    pub(crate) policy: Option<String>,

    /// Token lifetime in seconds from now [default: 3600].
    #[arg(long, value_name = "SECS", conflicts_with_all = ["expiry", "derive_key"])]
    pub(crate) duration: Option<u64>,

    /// Absolute expiry, in Unix seconds.
    #[arg(long, value_name = "UNIX", conflicts_with = "derive_key")]
    pub(crate) expiry: Option<u64>,

    /// Derive a DPS group-enrollment device key instead of minting a token.
    #[arg(long, requires_all = ["group_key", "registration_id"])]
    pub(crate) derive_key: bool,

    /// The enrollment group's base64 key (with --derive-key).
    #[arg(long, value_name = "BASE64KEY", requires = "derive_key")]
    pub(crate) group_key: Option<String>,

    /// The device's registration id (with --derive-key).
    #[arg(long, value_name = "ID", requires = "derive_key")]
    pub(crate) registration_id: Option<String>,
}
