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
//! ```
//! use iothub_proto::properties::SystemProperty;
//! use iothub_proto::topic::{self, Incoming, MethodResponseTopic, TwinGetTopic};
//! use iothub_proto::{RequestIds, encode_into};
//!
//! // 0. after CONNECT, subscribe to the filters of the features in use
//! let filters = [topic::METHODS_FILTER, topic::TWIN_RESPONSE_FILTER, topic::DESIRED_PATCH_FILTER];
//! // then ask for the twin (docs/protocol.md §6, reconnect flow); `rid` correlates the answer
//! let mut ids = RequestIds::new();
//! let twin_rid = ids.next_id();
//! let mut out = [0u8; 128];
//! let get = encode_into(&TwinGetTopic::new(twin_rid), &mut out).unwrap();
//! assert_eq!(get, "$iothub/twin/GET/?$rid=0");
//!
//! // 1. publishes arrive from the MQTT client (topic + payload)
//! let received = [
//!     "$iothub/twin/res/200/?$rid=0",
//!     "$iothub/methods/POST/reboot/?$rid=1a",
//!     "devices/dev1/messages/devicebound/%24.mid=m1&%24.ct=text%2Fplain&iothub-ack=full",
//!     "$iothub/twin/PATCH/properties/desired/?$version=3",
//! ];
//! for topic in received {
//!     // 2. classify each one without allocating
//!     match Incoming::parse(topic) {
//!         Ok(Incoming::TwinResponse(response)) => {
//!             assert_eq!(response.request_id(), twin_rid);
//!             assert!(response.status().is_success());
//!         }
//!         Ok(Incoming::MethodRequest(request)) => {
//!             // 3. answer on the response topic, encoded into caller storage
//!             let answer = MethodResponseTopic::new(request.request_id(), 200);
//!             let answer = encode_into(&answer, &mut out).unwrap();
//!             assert_eq!(answer, "$iothub/methods/res/200/?$rid=1a");
//!         }
//!         Ok(Incoming::C2d(message)) => {
//!             let content_type = message.properties().system(SystemProperty::ContentType);
//!             assert!(content_type.is_some_and(|ct| ct.eq_str("text/plain")));
//!         }
//!         Ok(Incoming::DesiredPatch(patch)) => assert_eq!(patch.version(), 3),
//!         Ok(_) => {}
//!         Err(e) => panic!("{e}"),
//!     }
//! }
//! # let _ = filters;
//! ```
//!
//! # Modules
//!
//! | module | what it covers | docs/protocol.md |
//! |---|---|---|
//! | [`connection_string`] | device, module, token, policy, X.509 and service connection strings | §3 |
//! | [`sas`] | resource URIs, string-to-sign, [`sas::Signer`], token formatting, parsing and hub-side verification | §2 |
//! | [`credentials`] | MQTT client ids and usernames (hub, module, DPS), hub-side username parsing, ports | §1, §9 |
//! | [`topic`] | every topic a device or hub sends and receives: builders, parsers, subscribe filters | §4–§7, §9 |
//! | [`properties`] | property bags: borrowed decoding, Python-compatible encoding | §4, §5 |
//! | [`pnp`] | Plug and Play: writable-property acknowledgements, components, command names | §8 |
//! | [`percent`] | RFC 3986 percent-encoding as IoT Hub uses it | §4 |
//! | [`bytes`] | the telemetry topic, property-bag pairs and SAS token over `&[u8]` input (for a C API) | §2, §4 |
//! | [`Status`], [`Backoff`], [`RequestIds`] | status classes, retry math, request ids | §6, §11 |
//! | [`Iso8601`] | UTC timestamps to and from Unix time, as the hub writes them | §4, §6 |
//! | `provisioning`, `json` (feature `json`) | the DPS registration state machine; a validating, borrowed JSON scanner and the DPS / twin fields | §6, §9 |
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | *(none)* | everything above, `no_std`, no allocation |
//! | `alloc` | `to_string`-style conveniences returning `String` |
//! | `std` | implies `alloc` |
//! | `hmac` | `sas::HmacSha256Signer` (signing and verifying tokens with a base64 key) and DPS group key derivation |
//! | `json` | a validating, allocation-free JSON scanner (`json::JsonValue`), DPS and twin fields read with it (no DOM), and the `provisioning` state machine |
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bytes;
pub mod connection_string;
pub mod credentials;
mod encode;
mod error;
#[cfg(feature = "json")]
pub mod json;
pub mod percent;
pub mod pnp;
pub mod properties;
#[cfg(feature = "json")]
pub mod provisioning;
mod request_id;
mod retry;
pub mod sas;
mod status;
mod text;
mod time;
mod timestamp;
pub mod topic;

pub use encode::{EncodedLen, encode_into, encoded_len};
pub use error::BufferTooSmall;
pub use request_id::{RequestId, RequestIds};
pub use retry::Backoff;
pub use status::Status;
pub use time::Instant;
pub use timestamp::{Iso8601, Iso8601Error};
