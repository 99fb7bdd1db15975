//! Arguments of `iothub hub connection-string`: the local emulator's service connection
//! strings.

use clap::Args;

/// `iothub hub connection-string`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  iothub hub connection-string
  iothub hub connection-string --policy service --json
  iothub hub connection-string --default-eventhub
  iothub hub connection-string --default-eventhub --plain   # UseDevelopmentEmulator=true

Reads the running emulator's endpoints.json in its data dir (--data-dir, IOTHUB_EMULATOR_DIR);
policy keys other than the recorded one come from its hub.db. --hub-connection-string does not
apply: this prints the local emulator's strings.")]
pub(crate) struct ConnectionStringArgs {
    /// Shared access policy whose key the string carries.
    #[arg(long, value_name = "POLICY", default_value = "iothubowner")]
    pub(crate) policy: String,

    /// The Event Hub-compatible endpoint's string (`Endpoint=sb://…;EntityPath=…`) instead of
    /// the IoT Hub one.
    #[arg(long)]
    pub(crate) default_eventhub: bool,

    /// With --default-eventhub: the plain AMQP port with `UseDevelopmentEmulator=true` (no TLS).
    #[arg(long, requires = "default_eventhub")]
    pub(crate) plain: bool,
}
