//! The hub: IoT Hub's behaviour — registry and authentication, telemetry with its durable
//! acknowledgement, C2D queues, twins, direct methods, DPS, connection state and the live
//! event feed — behind the typed operations of [`Hub`]. Nothing here names a transport: the
//! MQTT, HTTP (and AMQP) adapters parse and build wire shapes at the edge and call these
//! operations. Time comes from an injected [`Clock`].
//!
//! The domain rules themselves are sans-IO functions over a database transaction and `now`
//! (`auth`, `c2d`, `twin`, `provisioning`, `registry`, `telemetry`) and a sans-IO correlator
//! (`methods`); [`Hub`] runs them on the store and routes their results to connections.

pub mod audience;
pub mod auth;
pub mod c2d;
mod c2d_ops;
mod c2d_pump;
mod clock;
mod connect;
mod connection_log;
mod connections;
pub mod consumer_groups;
mod device_side;
pub mod event_hub;
pub mod event_log;
pub mod file_upload;
mod file_upload_ops;
mod handle;
pub mod ids;
mod ingest;
mod method_ops;
pub mod methods;
pub mod provisioning;
pub mod registry;
pub mod registry_ops;
pub mod routes;
pub mod service_auth;
mod service_side;
pub mod telemetry;

mod to_device;
pub mod twin;
pub mod twin_ops;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connect::{ConnectError, DeviceConnection, DeviceLogin, DpsLogin};
pub use connection_log::{ConnectionEvent, ConnectionEventKind, EVENTS_PER_DEVICE};
pub use connections::{ConnectionRef, Outbox};
pub use device_side::DeviceRequest;
pub use handle::{Hub, HubError, HubOptions};
pub use to_device::{CloseReason, Interests, ToDevice};

use crate::lock::lock;
