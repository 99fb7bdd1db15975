//! The MQTT adapter: framing (`codec`), the hub's wire shapes (`topics`), the sans-IO
//! per-connection session (`session`), CONNECT to the hub (`login`), and the I/O loop
//! (`connection`). rumqttc's packet types never leave this module.

mod codec;
mod connection;
mod login;
mod publish_checks;
mod session;
mod topics;

pub(crate) use connection::serve;
pub(crate) use login::Link;
#[cfg(test)]
pub(crate) use topics::outgoing;
