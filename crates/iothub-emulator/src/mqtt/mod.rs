//! The MQTT side of the hub: framing, per-client sessions, connection tasks and listeners.

mod codec;
mod connection;
mod publish_checks;
mod session;
pub(crate) use connection::serve;
pub(crate) use session::{Feeds, Inbound, Subscription};
