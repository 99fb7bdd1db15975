//! `iothub-device`: an async Azure IoT Hub device client over plain MQTT.
//!
//! Work in progress: see the repository README for status.

mod error;
// The driver that uses these layers lands next; until then they are exercised by unit tests.
#[allow(dead_code)]
mod session;
#[allow(dead_code)]
mod tls;
#[allow(dead_code)]
mod transport;

pub use error::{ConnectRefusal, Error};
