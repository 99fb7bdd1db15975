//! `iothub-proto`: the Azure IoT Hub and Device Provisioning Service (DPS) MQTT dialect as a
//! `#![no_std]`, allocation-free, MQTT-library-agnostic core.
//!
//! # What this crate does not do
//!
//! - It does **no I/O**: no sockets, no TLS, no MQTT packet encoding. Bring any MQTT 3.1.1
//!   client (rumqttc, paho, an RTOS stack); this crate builds and parses the *strings* that
//!   client sends and receives.
//! - It has **no clock and no random number generator**: the current time, token expiry and
//!   retry jitter are arguments.
//! - It does **not allocate** with default features: encoders are [`core::fmt::Display`]
//!   types written into caller storage with [`encode_into`]; parsers return borrowed views.
//! - It implements **no crypto** of its own: signatures come from a [`sas::Signer`]; the
//!   optional `hmac` feature supplies one built on RustCrypto.
//!
//! # Driving the core
//!
//! A device built on this crate runs one loop: build credentials, connect with its own MQTT
//! client, subscribe to the filters in [`topic`], then parse every received topic with
//! [`topic::Incoming::parse`] and answer with the topic builders.
//!
//! ```text
//! use iothub_proto::encode_into;
//! use iothub_proto::topic::{Incoming, MethodResponseTopic};
//!
//! // 1. a publish arrives from the MQTT client (topic + payload)
//! let received = "$iothub/methods/POST/reboot/?$rid=1a";
//! // 2. classify it without allocating
//! let mut buf = [0u8; 64];
//! if let Ok(Incoming::MethodRequest(request)) = Incoming::parse(received) {
//!     // 3. answer on the response topic, encoded into caller storage
//!     let topic = MethodResponseTopic::new(request.request_id(), 200);
//!     let topic = encode_into(&topic, &mut buf).unwrap();
//!     assert_eq!(topic, "$iothub/methods/res/200/?$rid=1a");
//! }
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | *(none)* | everything above, `no_std`, no allocation |
//! | `alloc` | `to_string`-style conveniences returning `String` |
//! | `std` | implies `alloc` |
//! | `hmac` | [`sas::HmacSha256Signer`], token verification and DPS group key derivation |
//! | `json` | borrowed extraction of DPS and twin JSON fields (no DOM) |
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod encode;
mod error;
pub mod connection_string;
pub mod credentials;
pub mod percent;
pub mod sas;
// Modules added by the protocol-core work (see issue 2): connection_string, credentials, sas,
// properties, topic, twin, pnp, status, retry, provisioning, json.
#[cfg(feature = "json")]
pub mod json;
pub mod pnp;
pub mod properties;
#[cfg(feature = "json")]
pub mod provisioning;
mod request_id;
mod retry;
mod status;
mod time;
pub mod topic;

pub use encode::{EncodedLen, encode_into, encoded_len};
pub use error::BufferTooSmall;
pub use request_id::{RequestId, RequestIds};
pub use retry::Backoff;
pub use status::Status;
pub use time::Instant;
