//! Arguments of `iothub hub`: act as the service (docs/rest-api.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};

mod connection_string;
mod enrollment;
mod identity;
pub(crate) use self::connection_string::ConnectionStringArgs;
pub(crate) use self::enrollment::{EnrollmentArgs, EnrollmentCommand};
pub(crate) use self::identity::{IdentityArgs, IdentityCommand, Target as IdentityTarget};

const EXAMPLES: &str = "\
Examples:
  iothub hub monitor --device dev1 --properties
  iothub hub invoke dev1 reboot --payload '{\"delay\":5}' --timeout 30
  iothub hub c2d dev1 'hello' -p color=red --ack full
  iothub hub twin show dev1
  iothub hub twin update dev1 --desired '{\"targetTemperature\":21}' --tags '{\"site\":\"lab\"}'

Without --hub-connection-string (or IOTHUB_CONNECTION_STRING) the commands talk to the local
emulator whose data dir (--data-dir, IOTHUB_EMULATOR_DIR, default ~/.local/share/iothub/emulator)
holds the endpoints.json it writes at start-up.";

/// `iothub hub`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct HubArgs {
    /// How to reach the hub.
    #[command(flatten)]
    pub(crate) service: Service,

    /// What to do as the service.
    #[command(subcommand)]
    pub(crate) command: HubCommand,
}

/// Where the service commands send their requests.
#[derive(Debug, Args)]
pub(crate) struct Service {
    /// Service connection string (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`);
    /// default: the local emulator.
    #[arg(
        long,
        global = true,
        env = "IOTHUB_CONNECTION_STRING",
        value_name = "CS",
        hide_env_values = true
    )]
    pub(crate) hub_connection_string: Option<String>,

    /// Emulator data dir to find the local emulator in (its `endpoints.json`).
    #[arg(long, global = true, env = "IOTHUB_EMULATOR_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Also trust the CA certificates in this PEM file (e.g. the emulator's `ca.pem`).
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// The service subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum HubCommand {
    /// Print device-to-cloud messages as they arrive, one JSON object per line
    /// (the shape of `az iot hub monitor-events`; read over AMQP).
    Monitor(MonitorArgs),
    /// Invoke a direct method; prints `{"status":…,"payload":…}`, exits 1 when the status is not 2xx.
    Invoke(InvokeArgs),
    /// Send a cloud-to-device message (over AMQP), optionally waiting for its feedback.
    C2d(C2dArgs),
    /// Show or update a device twin.
    Twin(TwinArgs),
    /// Create, list, show, delete identities of the local emulator; print connection strings.
    Identity(IdentityArgs),
    /// Create, list, show, delete, enable or disable DPS individual enrollments (symmetric key).
    Enrollment(EnrollmentArgs),
    /// Create, list, show, delete, enable or disable DPS enrollment groups (devices use derived keys).
    EnrollmentGroup(EnrollmentArgs),
    /// Print the local emulator's service connection string, or its Event Hub-compatible one.
    ConnectionString(ConnectionStringArgs),
    /// Create, list or delete consumer groups of the emulator's Event Hub-compatible endpoint.
    ConsumerGroup(ConsumerGroupArgs),
}

/// `iothub hub consumer-group`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  iothub hub consumer-group create analytics
  iothub hub consumer-group list
  iothub hub consumer-group delete analytics")]
pub(crate) struct ConsumerGroupArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: ConsumerGroupCommand,
}

/// The consumer-group subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConsumerGroupCommand {
    /// Create a consumer group (1-50 letters, digits, `.`, `_`, `-`; begins and ends with a
    /// letter or digit).
    #[command(after_help = "Example:\n  iothub hub consumer-group create analytics")]
    Create {
        /// Its name.
        name: String,
    },
    /// List the consumer groups (`$Default` always).
    #[command(after_help = "Example:\n  iothub hub consumer-group list --json")]
    List,
    /// Delete a consumer group (`$Default` cannot be deleted).
    #[command(after_help = "Example:\n  iothub hub consumer-group delete analytics")]
    Delete {
        /// Its name.
        name: String,
    },
}

/// `iothub hub monitor`.
#[derive(Debug, Args)]
#[command(
    after_help = "Reads the hub's Event Hub-compatible endpoint over AMQP (AMQPS 5671), as back ends
and `az iot hub monitor-events` do: the hub redirects to it, one receiver per partition.

Examples:
  iothub hub monitor
  iothub hub monitor --device dev1 --properties --count 10 --timeout 60
  iothub hub monitor --since 0 --count 5
  iothub hub monitor --enqueued-time 2026-12-07T09:00:00Z --partition 1
  iothub hub monitor --hub-connection-string \"$CS\" --consumer-group tooling"
)]
pub(crate) struct MonitorArgs {
    /// Only this device's messages.
    #[arg(long, short = 'd')]
    pub(crate) device: Option<String>,

    /// Only this module's messages.
    #[arg(long, short = 'm')]
    pub(crate) module: Option<String>,

    /// Stop after this many messages (exit 1 if --timeout passes first).
    #[arg(long, short = 'n')]
    pub(crate) count: Option<u64>,

    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, short = 't', value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,

    /// Include system and application properties.
    #[arg(long)]
    pub(crate) properties: bool,

    /// Start after this event-log position (the Event Hub offset) instead of now (0: everything
    /// retained; positions are the emulator's).
    #[arg(long, value_name = "SEQ", conflicts_with = "enqueued_time")]
    pub(crate) since: Option<i64>,

    /// Start with events enqueued after this time: Unix milliseconds or ISO 8601 UTC
    /// (default: only new events).
    #[arg(long, value_name = "TIME")]
    pub(crate) enqueued_time: Option<String>,

    /// Consumer group to read with.
    #[arg(long, short = 'c', value_name = "NAME", default_value = "$Default")]
    pub(crate) consumer_group: String,

    /// Read only this partition (default: all).
    #[arg(long, short = 'P', value_name = "ID")]
    pub(crate) partition: Option<String>,
}

/// `iothub hub invoke`.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  iothub hub invoke dev1 getMaxMinReport --payload '{\"since\":\"2026-01-01T00:00:00Z\"}' --timeout 30")]
pub(crate) struct InvokeArgs {
    /// Device id.
    pub(crate) device: String,

    /// Method name (`component*command` for a Plug and Play component).
    pub(crate) method: String,

    /// JSON payload sent to the device.
    #[arg(long, value_name = "JSON", default_value = "null")]
    pub(crate) payload: String,

    /// Seconds to wait for the device's answer (5-300).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub(crate) timeout: u32,

    /// Seconds to wait for the device to come online (0-300).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub(crate) connect_timeout: u32,

    /// Invoke on this module of the device.
    #[arg(long, short = 'm')]
    pub(crate) module: Option<String>,
}

/// `iothub hub c2d`.
#[derive(Debug, Args)]
#[command(
    after_help = "Sends over AMQP (AMQPS 5671) to `/messages/devicebound`, as the service SDKs do; prints
{\"messageId\":…}, or with --wait the feedback record (exit 1 unless its status is Success).

Examples:
  iothub hub c2d dev1 'hello' -p color=red --ack full
  iothub hub c2d dev1 '{\"fan\":3}' --content-type application/json --ack full --wait --timeout 60"
)]
pub(crate) struct C2dArgs {
    /// Device id.
    pub(crate) device: String,

    /// Message body (sent as text).
    pub(crate) message: String,

    /// Application property `key=value` (repeatable).
    #[arg(short = 'p', long = "property", value_name = "KEY=VALUE")]
    pub(crate) properties: Vec<String>,

    /// Feedback wanted: none, positive, negative or full.
    #[arg(long, value_name = "MODE", value_parser = ["none", "positive", "negative", "full"])]
    pub(crate) ack: Option<String>,

    /// Message id (default: generated).
    #[arg(long)]
    pub(crate) message_id: Option<String>,

    /// Correlation id.
    #[arg(long)]
    pub(crate) correlation_id: Option<String>,

    /// Content type, e.g. application/json.
    #[arg(long)]
    pub(crate) content_type: Option<String>,

    /// Content encoding, e.g. utf-8.
    #[arg(long)]
    pub(crate) content_encoding: Option<String>,

    /// Time to live in seconds (default: the hub's, 1 hour).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) ttl: Option<u64>,

    /// Wait for the message's feedback record (needs --ack positive, negative or full) and
    /// print it (JSON with --json).
    #[arg(long)]
    pub(crate) wait: bool,

    /// Seconds --wait waits for the feedback.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60.0,
        requires = "wait"
    )]
    pub(crate) timeout: f64,
}

/// `iothub hub twin`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  iothub hub twin show dev1
  iothub hub twin update dev1 --desired '{\"targetTemperature\":21}'")]
pub(crate) struct TwinArgs {
    /// Show or update.
    #[command(subcommand)]
    pub(crate) command: TwinCommand,
}

/// `iothub hub twin show|update`.
#[derive(Debug, Subcommand)]
pub(crate) enum TwinCommand {
    /// Print the twin.
    Show(TwinTarget),
    /// Merge desired properties and/or tags into the twin (`null` deletes) and print it.
    Update(TwinUpdateArgs),
}

/// A twin to act on.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  iothub hub twin show dev1")]
pub(crate) struct TwinTarget {
    /// Device id.
    pub(crate) device: String,

    /// The module's twin instead of the device's.
    #[arg(long, short = 'm')]
    pub(crate) module: Option<String>,
}

/// `iothub hub twin update`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  iothub hub twin update dev1 --desired '{\"targetTemperature\":21}'
  iothub hub twin update dev1 --tags '{\"site\":\"lab\"}'")]
pub(crate) struct TwinUpdateArgs {
    /// Which twin.
    #[command(flatten)]
    pub(crate) target: TwinTarget,

    /// Desired properties to merge (JSON object).
    #[arg(long, value_name = "JSON")]
    pub(crate) desired: Option<String>,

    /// Tags to merge (JSON object).
    #[arg(long, value_name = "JSON")]
    pub(crate) tags: Option<String>,

    /// Only update if the twin's etag still is this one.
    #[arg(long)]
    pub(crate) etag: Option<String>,
}
