//! HTTPS on the hub's HTTPS port: MQTT over WebSocket at `/$iothub/websocket` (PROTOCOL.md §1.1).

pub(crate) mod api;
pub(crate) mod dashboard;
mod websocket;

pub(crate) use websocket::serve_https;
