//! The hub domain: identities and authentication, telemetry, and (helper H3b) twins, C2D,
//! direct methods and DPS. No sockets here.
pub mod audience;
pub mod auth;
pub mod c2d;
pub mod dispatch;
pub mod ids;
pub mod methods;
pub mod provisioning;
pub mod registry;
mod state;
pub mod telemetry;
pub mod timestamp;
pub mod twin;
pub use state::{Delivery, Hub, Outbound};
