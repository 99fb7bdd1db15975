//! Arguments of `iothub emulator`: run the local IoT Hub emulator.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

const EXAMPLES: &str = "\
Examples:
  iothub emulator
  iothub emulator --hostname myhub.azure-devices.net --https-port 8443
  iothub emulator --in-memory --mqtt-port 0 --https-port 0 --plain-port 0 --http-port 0 \\
      --amqp-port 0 --amqp-plain-port 0
  iothub emulator --log-level debug --log-format json

Logs go to stderr: each connection accepted and closed (identity, transport, duration,
reason) and every refusal with the rule that failed, never a key, signature or token.
`--log-level` takes a level or tracing directives (`info,iothub_emulator=debug`); without it
RUST_LOG is used, else `info`.

Clients trust <data dir>/ca.pem. Other commands (iothub hub …) find the running emulator
through <data dir>/endpoints.json.";

/// `iothub emulator`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct EmulatorArgs {
    /// Data directory (database, CA, endpoints.json); default `$IOTHUB_EMULATOR_DIR`, else
    /// `~/.local/share/iothub/emulator`.
    #[arg(long, env = "IOTHUB_EMULATOR_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// A host name the hub answers to and puts in its certificate (repeatable), e.g.
    /// `myhub.azure-devices.net` pointed at 127.0.0.1 in /etc/hosts. The first is the primary.
    #[arg(long = "hostname", value_name = "HOST")]
    pub(crate) hostnames: Vec<String>,

    /// MQTT over TLS port (0 = any free port).
    #[arg(long, default_value_t = 8883, value_name = "PORT")]
    pub(crate) mqtt_port: u16,

    /// HTTPS + MQTT-over-WebSocket port; 443 falls back to 8443 when not permitted.
    #[arg(long, default_value_t = 443, value_name = "PORT")]
    pub(crate) https_port: u16,

    /// Plain (unencrypted) MQTT port for development.
    #[arg(
        long,
        default_value_t = 1883,
        value_name = "PORT",
        conflicts_with = "no_plain"
    )]
    pub(crate) plain_port: u16,

    /// Switch plain MQTT off.
    #[arg(long)]
    pub(crate) no_plain: bool,

    /// Plain HTTP port for the REST API and dashboard.
    #[arg(
        long,
        default_value_t = 8080,
        value_name = "PORT",
        conflicts_with = "no_http"
    )]
    pub(crate) http_port: u16,

    /// Switch plain HTTP off.
    #[arg(long)]
    pub(crate) no_http: bool,

    /// AMQPS port (TLS from the first byte) for back ends: the Event Hub-compatible endpoint,
    /// C2D, feedback (0 = any free port).
    #[arg(
        long,
        default_value_t = 5671,
        value_name = "PORT",
        conflicts_with = "no_amqp"
    )]
    pub(crate) amqp_port: u16,

    /// Switch AMQPS off.
    #[arg(long)]
    pub(crate) no_amqp: bool,

    /// Plain AMQP port for connection strings with `UseDevelopmentEmulator=true`.
    #[arg(
        long,
        default_value_t = 5672,
        value_name = "PORT",
        conflicts_with = "no_amqp_plain"
    )]
    pub(crate) amqp_plain_port: u16,

    /// Switch plain AMQP off.
    #[arg(long)]
    pub(crate) no_amqp_plain: bool,

    /// Name of the Event Hub-compatible endpoint (default: the hub's name, the first label of
    /// its primary host name).
    #[arg(long, value_name = "NAME")]
    pub(crate) eventhub_name: Option<String>,

    /// Host name of the Event Hub-compatible endpoint that clients are redirected to
    /// (default 127.0.0.1); it is added to the certificate.
    #[arg(long, value_name = "HOST")]
    pub(crate) eventhub_hostname: Option<String>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub(crate) bind: IpAddr,

    /// Keep everything in memory (nothing is written to the data dir but endpoints.json and the CA).
    #[arg(long)]
    pub(crate) in_memory: bool,

    /// Telemetry retention in hours.
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub(crate) retention_hours: u64,

    /// Event Hub partitions of the event log (1-128), fixed when the data dir is created.
    #[arg(
        long,
        default_value_t = 4,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=128)
    )]
    pub(crate) partitions: u32,

    /// Also append these non-telemetry events to the event log, comma-separated:
    /// twin-changes, lifecycle, connection-state (off by default, as on a hub without routes).
    #[arg(
        long = "route",
        value_enum,
        value_delimiter = ',',
        value_name = "SOURCE"
    )]
    pub(crate) routes: Vec<RouteArg>,

    /// Serve this certificate chain (PEM) instead of one from the local CA (needs --key).
    #[arg(long, requires = "key", value_name = "PEM")]
    pub(crate) cert: Option<PathBuf>,

    /// Private key (PEM) for --cert.
    #[arg(long, requires = "cert", value_name = "PEM")]
    pub(crate) key: Option<PathBuf>,

    /// CA file clients should trust with --cert (default: the --cert file).
    #[arg(long, requires = "cert", value_name = "PEM")]
    pub(crate) ca: Option<PathBuf>,

    /// Log level or tracing directives (e.g. `debug`, `info,iothub_emulator=trace`); default
    /// `$RUST_LOG`, else `info`.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,

    /// Azure Storage connection string of the account file uploads go to (a real account or
    /// Azurite, e.g. `UseDevelopmentStorage=true`); default: the emulator's built-in blob
    /// endpoint on its HTTPS and HTTP ports, files under <data dir>/blobs.
    #[arg(
        long,
        env = "IOTHUB_STORAGE_CONNECTION_STRING",
        value_name = "CONNECTION_STRING",
        hide_env_values = true
    )]
    pub(crate) storage_connection_string: Option<String>,

    /// Blob container of file uploads.
    #[arg(long, default_value = "fileupload", value_name = "NAME")]
    pub(crate) file_upload_container: String,

    /// Lifetime of each file upload's SAS token and correlation, in seconds (IoT Hub's
    /// `fileUpload.sasTtlAsIso8601`, one hour by default; any length here, to test expiry).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) file_upload_sas_ttl: u64,

    /// A CA certificate (PEM) to trust, besides the public roots, when the hub reads an
    /// uploaded blob's size from the storage account (Azurite with its own certificate).
    #[arg(long, value_name = "FILE", requires = "storage_connection_string")]
    pub(crate) storage_ca: Option<PathBuf>,

    /// Log format: `text` (human-readable) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub(crate) log_format: LogFormat,
}

/// A route source of `--route`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RouteArg {
    /// `twinChangeEvents`: twin updates and replacements.
    TwinChanges,
    /// `deviceLifecycleEvents`: identities created and deleted.
    Lifecycle,
    /// `deviceConnectionStateEvents`: connects and disconnects.
    ConnectionState,
}

/// How the emulator writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
