//! A small AMQP 1.0 service client (on `fe2o3-amqp`) for `iothub hub monitor` and
//! `iothub hub c2d`: the Event Hub-compatible endpoint of a hub, reached through the hub's
//! redirect, and its `/messages/devicebound` and feedback nodes (docs/amqp.md).
//!
//! One job per file. Decisions without I/O: [`endpoint`] (where to connect), [`redirect`]
//! (the hub's `amqp:link:redirect`), [`filter`] (start positions), [`cbs`] and [`management`]
//! (request and reply shapes), [`event`] (an event as `hub monitor` prints it), [`c2d`] (the
//! message `hub c2d` sends), [`feedback`] (feedback records), [`ids`] (message ids). I/O:
//! [`tls`], [`connect`] (TCP/TLS, SASL, `$cbs`), [`request`] (request/reply link pairs),
//! [`events`] (one receiver per partition).

pub(crate) mod c2d;
pub(crate) mod cbs;
pub(crate) mod connect;
pub(crate) mod endpoint;
pub(crate) mod event;
pub(crate) mod events;
pub(crate) mod feedback;
pub(crate) mod filter;
pub(crate) mod ids;
pub(crate) mod management;
pub(crate) mod redirect;
pub(crate) mod request;
pub(crate) mod tls;
