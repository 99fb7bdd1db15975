//! Arguments of `iothub simulate`.

use clap::Args;

use super::HubService;

const EXAMPLES: &str = "\
Examples:
  # 100 devices, 500 messages per second in total, for 30 s, against the local emulator
  iothub simulate --devices 100 --rate 500 --duration 30

  # 10,000 devices with an emulator inside this process, JSON summary for scripts
  iothub simulate --in-process --devices 10000 --rate 2000 --duration 60 --json

  # a real hub: devices sim-00001... are created with the service policy if missing
  iothub simulate --hub-connection-string 'HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=...' \\
    --devices 10 --rate 10 --duration 60 --payload '{\"t\":{temperature},\"n\":{seq}}'

Payload placeholders: {device}, {seq} (per device, from 1), {time} (Unix ms), {temperature}.
Exit code 0 when every message sent was acknowledged without errors, 1 otherwise.";

/// `iothub simulate`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct SimulateArgs {
    /// Which hub: the local emulator (data dir) or `--hub-connection-string`.
    #[command(flatten)]
    pub(crate) service: HubService,

    /// Number of simulated devices.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) devices: u64,

    /// Messages per second across the whole fleet.
    #[arg(long, default_value_t = 10.0, value_name = "MSGS_PER_SEC")]
    pub(crate) rate: f64,

    /// Seconds of sending.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub(crate) duration: u64,

    /// Message body template (placeholders below).
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) payload: Option<String>,

    /// MQTT QoS of the telemetry publishes (1 = wait for PUBACK).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub(crate) qos: u8,

    /// Device ids are PREFIX00001, PREFIX00002, ...
    #[arg(long, default_value = "sim-", value_name = "PREFIX")]
    pub(crate) device_prefix: String,

    /// Start an in-memory emulator inside this process instead of using a running one.
    #[arg(long, conflicts_with = "hub_connection_string")]
    pub(crate) in_process: bool,

    /// Connect to the emulator's plain MQTT port (no TLS) instead of MQTT/TLS.
    #[arg(long, conflicts_with = "hub_connection_string")]
    pub(crate) plain: bool,

    /// How many devices connect at the same time while the fleet comes up.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub(crate) connect_concurrency: usize,
}
