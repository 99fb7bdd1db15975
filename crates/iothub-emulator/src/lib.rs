//! `iothub-emulator`: a local Azure IoT Hub for device development and tests.
//!
//! # What this crate does not do
//!
//! - It is not a general MQTT broker: devices never see each other's messages; the hub answers
//!   every device itself (twin, methods, C2D), exactly as IoT Hub does.
//! - It speaks MQTT 3.1.1 only (protocol level 4); AMQP and the MQTT 5 preview are out of scope.
//! - It does not emulate Event Hubs/AMQP consumers; the service side reads the event log and the
//!   in-process live feed instead.
//!
//! The listeners, sessions and persistence are described in `README.md` next to this crate;
//! every behaviour chosen where Microsoft's documentation is silent is listed in
//! docs/protocol.md §14.

pub mod amqp;
pub mod data_dir;
mod http;
pub mod hub;
mod listener_limits;
mod lock;
mod mqtt;
mod server;
pub mod storage_client;
pub mod store;
pub mod timestamp;
pub mod tls;

pub use listener_limits::{ListenerLimits, raise_descriptor_limit};
pub use server::{Config, FileUploadConfig, RunningEmulator, StartError};
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
