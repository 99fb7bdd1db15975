//! `iothub-device`: an async Azure IoT Hub device client over plain MQTT 3.1.1.
//!
//! # What this crate does not do
//!
//! - It does not speak AMQP to the hub, nor MQTT 5 (IoT Hub's MQTT 5 is a deprecated
//!   preview): MQTT 3.1.1 over TCP/TLS 8883 or WebSockets 443. HTTPS is used only by file
//!   uploads ([`DeviceClient::upload_file`]), as on IoT Hub.
//! - It does not implement the service side (sending C2D, invoking methods): that is the
//!   emulator's REST API or the service SDKs.
//! - It does not pick a crypto provider for your process: TLS uses rustls with ring,
//!   passed explicitly, and never installs a process-wide default.
//! - It does not retry forever silently: every telemetry message has an outcome, and the
//!   connection state is observable.
//!
//! # Quick start
//!
//! ```no_run
//! use iothub_device::{ClientOptions, DeviceClient, Message};
//!
//! # async fn run() -> Result<(), iothub_device::Error> {
//! let options = ClientOptions::from_connection_string(
//!     "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
//! )?;
//! let client = DeviceClient::connect(options).await?;
//! // Resolves once the hub acknowledged the message (PUBACK).
//! client.send_telemetry(Message::json(&serde_json::json!({"temperature": 21.5}))).await?;
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Reliability
//!
//! One task owns the connection; [`DeviceClient`] handles are cheap clones. The connection
//! reconnects with exponential backoff and jitter; a refused login is backed off (at least
//! ten seconds by default), never retried in a tight loop. SAS tokens minted from a key are
//! renewed by a planned reconnect at 80 % of their lifetime. Telemetry goes through a bounded
//! at-least-once outbox: un-acknowledged publishes are re-sent after a reconnect, and a
//! message is reported delivered only after the hub's PUBACK. With
//! [`ClientOptions::outbox_dir`] the outbox is durable across process restarts. A planned
//! renewal first lets in-flight messages be acknowledged, and the backoff only starts over
//! after a connection that lasted, so a hub that drops clients at once is not stormed.
//!
//! # What is where
//!
//! | need | API |
//! |---|---|
//! | connect | [`ClientOptions::from_connection_string`] (device, module, policy key, SAS token, `x509=true`), [`DeviceClient::connect`] / [`DeviceClient::start`] |
//! | telemetry | [`DeviceClient::send_telemetry`], [`DeviceClient::enqueue_telemetry`], [`Message`] |
//! | cloud-to-device | [`DeviceClient::c2d_messages`] |
//! | twin | [`DeviceClient::twin`], [`DeviceClient::update_reported`], [`DeviceClient::desired_properties`] |
//! | direct methods | [`DeviceClient::on_method`], [`DeviceClient::on_any_method`] (unknown methods get 501) |
//! | Plug and Play | [`ClientOptions::model_id`], [`Message::component`], [`DeviceClient::acknowledge_writable`], [`DeviceClient::report_property`], [`thermostat`] |
//! | provisioning | [`provision`] with [`ProvisioningOptions`] and [`Attestation`] |
//! | file upload | [`DeviceClient::upload_file`], [`DeviceClient::upload_path`] with [`UploadOptions`] (blocks, [`RetryPolicy`], progress), [`ClientOptions::https_port`]; failures are [`UploadError`]s |
//! | transports | TLS 8883 (Azure roots embedded, [`ClientOptions::trust_ca_pem`]), [`ClientOptions::websockets`], [`ClientOptions::http_proxy`] |
//! | state | [`DeviceClient::connection_state`] ([`DisconnectReason`] says why it is down), [`Error::is_retriable`] |
//! | errors | [`Error`], made of typed parts a caller branches on: [`ConfigError`], [`CredentialError`], [`NetworkError`], [`ProtocolError`], [`ConnectRefusal`], [`Request`] (which request timed out) |

mod backoff;
mod client;
mod driver;
mod error;
mod message;
mod options;
mod pnp;
mod provisioning;
mod session;
mod store;
pub mod thermostat;
mod tls;
mod transport;
mod upload;

pub use client::{
    C2dReceiver, ConnectionState, DesiredPatch, DesiredReceiver, DeviceClient, DisconnectReason,
    MethodCall, MethodHandler, MethodResponse,
};
pub use error::{
    ConfigError, ConnectRefusal, CredentialError, Error, HubRequest, NetworkError, PemItem,
    ProtocolError, Request, StorageOperation, UploadEndpoint, UploadError,
};
pub use message::{C2dMessage, MAX_TELEMETRY_SIZE, Message};
pub use options::{Auth, ClientOptions};
pub use pnp::WritableResponse;
pub use provisioning::{Attestation, Provisioned, ProvisioningOptions, provision};
pub use upload::{
    DEFAULT_BLOCK_SIZE, MAX_BLOB_SIZE, MAX_BLOCK_SIZE, MAX_BLOCKS, RetryPolicy, UploadOptions,
    UploadProgress, Uploaded,
};
