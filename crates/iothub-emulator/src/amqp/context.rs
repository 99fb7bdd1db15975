//! What every AMQP connection of the emulator shares.

use tokio::sync::watch;

use super::epochs::Epochs;
use crate::hub::Hub;
use crate::listener_limits::ListenerLimits;

/// The Event Hub-compatible endpoint's identity (docs/amqp.md "Endpoints"): its own name and
/// host, answered by the same process as the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHubEndpoint {
    /// The Event Hub name (`EntityPath`); by default the hub's name.
    pub name: String,
    /// The host clients are redirected to.
    pub host: String,
    /// The AMQPS port clients are redirected to.
    pub port: u16,
    /// When the Event Hub was created (the data dir's creation), Unix milliseconds.
    pub created_at_ms: i64,
}

/// The shared state of the AMQP listeners.
#[derive(Debug)]
pub(crate) struct AmqpContext {
    pub(crate) hub: Hub,
    pub(crate) endpoint: EventHubEndpoint,
    pub(crate) epochs: Epochs,
    pub(crate) limits: ListenerLimits,
    pub(crate) shutdown: watch::Receiver<bool>,
}
