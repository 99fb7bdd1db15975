//! The AMQP 1.0 service surface (docs/amqp.md): what back ends use to read telemetry (the
//! Event Hub-compatible endpoint), send cloud-to-device messages and receive feedback and
//! file notifications. An adapter like `mqtt/` and `http/`: it parses and builds AMQP at the
//! edge and only calls the hub.
//!
//! I/O: [`listener`] (AMQPS, plain AMQP), [`connection`] (open, sessions), [`routing`] (links
//! by address), the link tasks ([`event_link`], [`c2d_link`], [`service_bound`], [`nodes`]).
//! Decisions without I/O: [`sasl`], [`tokens`], [`epochs`], and the wire shapes
//! ([`address`], [`selector`], [`cbs`], [`management`], [`event_message`], [`c2d_message`],
//! [`feedback_message`]).

pub mod address;
pub mod c2d_message;
pub mod cbs;
pub mod epochs;
pub mod event_message;
pub mod feedback_message;
pub mod full_fields;
pub mod management;
pub mod sasl;
pub mod selector;
pub mod tokens;

mod values;

mod authorize;
mod c2d_link;
mod coalesce;
pub(crate) mod connection;
mod context;
mod event_link;
pub(crate) mod listener;
mod metadata;
mod nodes;
mod refuse;
mod routing;
mod service_bound;

pub(crate) use context::AmqpContext;
pub use context::EventHubEndpoint;
