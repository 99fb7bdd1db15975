//! Arguments of `iothub device`: act as a device.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

const EXAMPLES: &str = "\
Examples:
  export IOTHUB_DEVICE_CONNECTION_STRING='HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=...'
  iothub device send '{\"temperature\":21.5}' -p alert=true --content-type application/json
  seq 1000 | iothub device send --stdin
  iothub device listen --count 1 --method reboot=200:'{\"ok\":true}'
  iothub device twin
  iothub device report '{\"temperature\":32}'
  iothub device provision --id-scope 0ne00000001 --registration-id dev1 --group-key BASE64 --save
  iothub device upload ./camera.jpg --blob-name images/camera.jpg";

/// `iothub device`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct DeviceArgs {
    /// What to do as the device.
    #[command(subcommand)]
    pub(crate) command: DeviceCommand,
}

/// Connection flags shared by the device subcommands.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// Device or module connection string.
    #[arg(
        long,
        env = "IOTHUB_DEVICE_CONNECTION_STRING",
        value_name = "CS",
        hide_env_values = true
    )]
    pub(crate) connection_string: Option<String>,

    /// Also trust the CA certificates in this PEM file (e.g. the emulator's `ca.pem`).
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Port (default 8883, or 443 with --websockets).
    #[arg(long)]
    pub(crate) port: Option<u16>,

    /// MQTT over WebSockets.
    #[arg(long)]
    pub(crate) websockets: bool,

    /// X.509 client certificate (PEM) for `x509=true` connection strings.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<PathBuf>,

    /// X.509 private key (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,

    /// Dial this host instead (like GatewayHostName), keeping HostName in the credentials.
    #[arg(long, value_name = "HOST", hide = true)]
    pub(crate) dial: Option<String>,

    /// Plain TCP without TLS: only for the emulator's development port.
    #[arg(long, hide = true)]
    pub(crate) plain: bool,
}

/// The device subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Send telemetry; exits 0 only after every message is acknowledged.
    Send(SendArgs),
    /// Print C2D messages, desired-property patches and method calls as JSON lines.
    Listen(ListenArgs),
    /// Print the device twin.
    Twin(TwinArgs),
    /// Patch reported properties and print the new version.
    Report(ReportArgs),
    /// Register with the Device Provisioning Service.
    Provision(ProvisionArgs),
    /// Upload a file to the storage linked to the hub (IoT Hub file upload), with progress.
    Upload(UploadArgs),
}

/// `iothub device send`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").args(["message", "stdin"])))]
#[command(after_help = "Examples:
  iothub device send '{\"temperature\":21.5}' --content-type application/json -p alert=true
  seq 100 | iothub device send --stdin")]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    /// The message body.
    pub(crate) message: Option<String>,

    /// Application property `key=value` (repeatable).
    #[arg(short = 'p', long = "property", value_name = "KEY=VALUE")]
    pub(crate) properties: Vec<String>,

    /// Content type (`$.ct`), e.g. `application/json`.
    #[arg(long, value_name = "T")]
    pub(crate) content_type: Option<String>,

    /// Content encoding (`$.ce`), e.g. `utf-8`.
    #[arg(long, value_name = "E")]
    pub(crate) content_encoding: Option<String>,

    /// Send the message this many times.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) count: u64,

    /// Milliseconds between messages.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub(crate) interval: u64,

    /// Read messages from standard input, one per line.
    #[arg(long)]
    pub(crate) stdin: bool,
}

/// `iothub device listen`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  iothub device listen --count 1 --timeout 60
  iothub device listen --method reboot=200:'{\"ok\":true}'")]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Exit after this many seconds.
    #[arg(long, value_name = "S")]
    pub(crate) timeout: Option<u64>,

    /// Answer method NAME with STATUS and JSON (repeatable); others get 501.
    #[arg(long = "method", value_name = "NAME=STATUS:JSON")]
    pub(crate) methods: Vec<String>,
}

/// `iothub device twin`.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  iothub device twin --ca-file ~/.local/share/iothub/emulator/ca.pem")]
pub(crate) struct TwinArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
}

/// `iothub device report`.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  iothub device report '{\"temperature\":32}'")]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    /// The reported-properties patch, JSON.
    pub(crate) patch: String,
}

/// `iothub device provision`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("attestation").required(true).args(["key", "group_key"])))]
#[command(after_help = "Example:
  iothub device provision --id-scope 0ne00000001 --registration-id dev1 --key BASE64KEY --save")]
pub(crate) struct ProvisionArgs {
    /// DPS ID scope.
    #[arg(long, value_name = "S")]
    pub(crate) id_scope: String,

    /// Registration id (the device id for symmetric keys).
    #[arg(long, value_name = "R")]
    pub(crate) registration_id: String,

    /// Individual enrollment key.
    #[arg(long, value_name = "K")]
    pub(crate) key: Option<String>,

    /// Group enrollment key (the device key is derived from it).
    #[arg(long, value_name = "G")]
    pub(crate) group_key: Option<String>,

    /// Provisioning endpoint.
    #[arg(
        long,
        value_name = "H",
        default_value = "global.azure-devices-provisioning.net"
    )]
    pub(crate) provisioning_host: String,

    /// Provisioning port (default 8883).
    #[arg(long)]
    pub(crate) port: Option<u16>,

    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Announce this Plug and Play model id in the registration.
    #[arg(long, value_name = "DTMI")]
    pub(crate) model_id: Option<String>,

    /// Also print a device connection string for the assigned hub.
    #[arg(long)]
    pub(crate) save: bool,

    /// Plain TCP without TLS: only for the emulator's development port.
    #[arg(long, hide = true)]
    pub(crate) plain: bool,
}

/// `iothub device upload`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  iothub device upload ./logs.tar.gz
  iothub device upload ./camera.jpg --blob-name images/camera.jpg --content-type image/jpeg
  journalctl -b | iothub device upload - --blob-name logs/boot.txt
  iothub device upload big.bin --https-port 8443 --ca-file ~/.local/share/iothub/emulator/ca.pem --json")]
pub(crate) struct UploadArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    /// The file to upload; `-` reads standard input (then --blob-name is required).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The blob's name under the device's folder (default: the file's name).
    #[arg(long, value_name = "N")]
    pub(crate) blob_name: Option<String>,

    /// The hub's HTTPS port (default 443; the emulator uses 8443 when it may not bind 443).
    #[arg(long, value_name = "PORT")]
    pub(crate) https_port: Option<u16>,

    /// Block size in MiB (1 to 4000).
    #[arg(long, value_name = "MIB", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4000))]
    pub(crate) block_size: u32,

    /// The blob's content type, e.g. `image/jpeg`.
    #[arg(long, value_name = "T")]
    pub(crate) content_type: Option<String>,

    /// Tries per request (a failed block is sent again after a backoff).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) tries: u32,

    /// Seconds one request (a block, the commit, a hub call) may take.
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub(crate) request_timeout: u64,

    /// Plain HTTP to the storage: only for Azurite on its default HTTP port.
    #[arg(long)]
    pub(crate) storage_plain_http: bool,
}
