//! The AMQP 1.0 adapter's sans-IO parts (docs/amqp.md): what a link address names, the
//! Event Hubs start filter, the `$cbs` and `$management` request/reply shapes, and the
//! mapping between hub values and AMQP messages.
//!
//! Every function here is pure: no I/O, no clock (times are arguments), no hub calls. The
//! I/O side (listeners, SASL, sessions, link tasks) calls them. fe2o3-amqp's types are
//! named only in this module tree, never in `hub/`.

pub mod address;
pub mod c2d_message;
pub mod cbs;
pub mod event_message;
pub mod feedback_message;
pub mod management;
pub mod selector;

mod values;
