//! The application's side: a cheap-`Clone` [`DeviceClient`] handle and its streams.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::{Command, Driver, DriverOptions};
use crate::message::{C2dMessage, MAX_TELEMETRY_SIZE};
use crate::options::ClientOptions;
use crate::session::{AckToken, Qos};
use crate::{
    ConnectRefusal, CredentialError, Error, Message, NetworkError, ProtocolError, Request,
};

/// Connection status, observed with [`DeviceClient::connection_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Dialling or waiting for CONNACK.
    Connecting,
    /// CONNACK accepted.
    Connected,
    /// Lost or refused; the client retries after `retry_in`.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// Backoff before the next attempt.
        retry_in: Duration,
    },
    /// Closed for good.
    Closed,
}

/// Why a connection ended (or never came up), typed like the matching [`Error`] variants.
///
/// Its `Display` is one human-readable line, never containing a key or token:
///
/// ```
/// use iothub_device::{ConnectRefusal, DisconnectReason, Request};
///
/// let refused = DisconnectReason::Refused(ConnectRefusal::NotAuthorized);
/// assert_eq!(refused.to_string(), "connection refused by the hub: not authorized (CONNACK 5)");
/// let silent = DisconnectReason::Timeout(Request::KeepAlive);
/// assert_eq!(silent.to_string(), "no answer in time to keep-alive");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// Credentials could not be produced (for example a pre-made SAS token that expired).
    /// Fault: the caller's key or token; the client keeps trying in case it is replaced.
    Credentials(CredentialError),
    /// Dialling, the proxy, TLS, the WebSocket upgrade or the socket failed. Fault: the
    /// environment, or a wrong host, port or CA.
    Network(NetworkError),
    /// The server broke the protocol. Fault: the server.
    Protocol(ProtocolError),
    /// The hub refused the connection; authentication failures are backed off, never
    /// retried in a tight loop. Fault: the credentials or the identity's state on the hub.
    Refused(ConnectRefusal),
    /// No answer in time (no CONNACK, PINGRESP or PUBACK): the link is considered dead.
    /// Fault: the network or the service.
    Timeout(Request),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Credentials(e) => write!(f, "{e}"),
            Self::Network(e) => write!(f, "{e}"),
            Self::Protocol(e) => write!(f, "the server broke the protocol: {e}"),
            Self::Refused(code) => write!(f, "connection refused by the hub: {code}"),
            Self::Timeout(request) => write!(f, "no answer in time to {request}"),
        }?;
        // The cause, as one line (no secret ever reaches these errors' messages).
        let mut cause = std::error::Error::source(match self {
            Self::Credentials(e) => e as &dyn std::error::Error,
            Self::Network(e) => e,
            Self::Protocol(e) => e,
            Self::Refused(_) | Self::Timeout(_) => return Ok(()),
        });
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl From<DisconnectReason> for Error {
    fn from(reason: DisconnectReason) -> Self {
        match reason {
            DisconnectReason::Credentials(e) => Self::Credentials(e),
            DisconnectReason::Network(e) => Self::Network(e),
            DisconnectReason::Protocol(e) => Self::Protocol(e),
            DisconnectReason::Refused(code) => Self::Refused(code),
            DisconnectReason::Timeout(request) => Self::Timeout(request),
        }
    }
}

/// A desired-properties change, de-duplicated by `$version`.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPatch {
    /// The desired `$version` this change brings the device to.
    pub version: u64,
    /// The patch (or, when `full`, the whole desired section), including `$version`.
    pub properties: Value,
    /// `true` when this is the whole desired section fetched after a reconnect because it
    /// changed while the device was offline.
    pub full: bool,
}

/// A direct-method invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// Method name (for Plug and Play components: `{component}*{command}`).
    pub name: String,
    /// The hub's request id, echoed in the response.
    pub request_id: String,
    /// Request payload (`null` when empty or not JSON).
    pub payload: Value,
}

/// The answer to a direct method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResponse {
    /// Status reported to the caller (any integer; 200 for success by convention).
    pub status: u16,
    /// JSON payload.
    pub payload: Value,
}

impl MethodResponse {
    /// A response with this status and payload.
    pub fn new(status: u16, payload: Value) -> Self {
        Self { status, payload }
    }

    /// `200` with `payload`.
    pub fn ok(payload: Value) -> Self {
        Self::new(200, payload)
    }
}

/// An async direct-method handler.
pub type MethodHandler =
    Arc<dyn Fn(MethodCall) -> Pin<Box<dyn Future<Output = MethodResponse> + Send>> + Send + Sync>;

/// Registered method handlers, shared between handles and the driver.
#[derive(Default)]
pub(crate) struct Methods {
    handlers: Mutex<HashMap<String, MethodHandler>>,
    fallback: Mutex<Option<MethodHandler>>,
}

impl Methods {
    pub(crate) fn handler(&self, name: &str) -> Option<MethodHandler> {
        let found = lock(&self.handlers).get(name).cloned();
        found.or_else(|| lock(&self.fallback).clone())
    }
}

/// A handle to one device connection. Clone it freely: every clone talks to the same driver
/// task. The connection closes (draining in-flight messages) when [`DeviceClient::close`] is
/// called or the last handle is dropped.
#[derive(Clone)]
pub struct DeviceClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    methods: Arc<Methods>,
    /// Device id and module id, for telemetry topics.
    identity: Arc<(String, Option<String>)>,
    /// The hub's HTTPS endpoint and credentials for file uploads (`upload.rs`).
    pub(crate) upload: Arc<crate::upload::Uploader>,
}

impl std::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// Starts the client and waits until it is connected.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the hub refuses the credentials and [`Error::Credentials`]
    /// when none can be produced (the client is closed then), [`Error::Timeout`] with
    /// [`Request::Connect`] when no connection came up within the request timeout (the client
    /// keeps trying in the background only if you use [`DeviceClient::start`] instead), and
    /// configuration errors.
    pub async fn connect(options: ClientOptions) -> Result<Self, Error> {
        let timeout = options.request_timeout;
        let client = Self::start(options)?;
        let mut state = client.state.clone();
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                match &*state.borrow_and_update() {
                    ConnectionState::Connected => return Ok(()),
                    ConnectionState::Disconnected {
                        reason: DisconnectReason::Refused(code),
                        ..
                    } => return Err(Error::Refused(*code)),
                    ConnectionState::Disconnected {
                        reason: DisconnectReason::Credentials(e),
                        ..
                    } => return Err(Error::Credentials(*e)),
                    ConnectionState::Closed => return Err(Error::Closed),
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => {
                client.close().await;
                Err(e)
            }
            Err(_) => {
                client.close().await;
                Err(Error::Timeout(Request::Connect))
            }
        }
    }

    /// Starts the client without waiting: it connects (and reconnects) in the background and
    /// accepts telemetry into its outbox meanwhile. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// Configuration errors (unreadable certificates, bad connection string, unusable outbox
    /// directory).
    pub fn start(options: ClientOptions) -> Result<Self, Error> {
        let upload = options.upload_config();
        let driver_options = options.into_driver_options()?;
        Self::spawn(driver_options, upload)
    }

    pub(crate) fn spawn(
        options: DriverOptions,
        upload: crate::upload::UploadConfig,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel(256);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let methods = Arc::new(Methods::default());
        let identity = Arc::new((options.device_id.clone(), options.module_id.clone()));
        let driver = Driver::new(options, rx, tx.downgrade(), state_tx, methods.clone())?;
        tokio::spawn(driver.run());
        Ok(Self {
            commands: tx,
            state: state_rx,
            methods,
            identity,
            upload: Arc::new(crate::upload::Uploader::new(upload)),
        })
    }

    /// Sends telemetry; resolves once the hub acknowledged it (PUBACK).
    ///
    /// Accepted messages survive disconnects (re-sent after reconnect) and, with an outbox
    /// directory, process restarts.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] over 256 KiB, [`Error::OutboxFull`] when the outbox holds
    /// its capacity, [`Error::Closed`] when the client closed before the hub acknowledged.
    pub async fn send_telemetry(&self, message: Message) -> Result<(), Error> {
        self.enqueue_telemetry(message).await?.await
    }

    /// Puts telemetry in the outbox and returns a future that resolves when the hub
    /// acknowledged it, so many messages can be in flight from one task.
    ///
    /// # Errors
    ///
    /// As [`DeviceClient::send_telemetry`], for the outbox admission.
    pub async fn enqueue_telemetry(
        &self,
        message: Message,
    ) -> Result<impl Future<Output = Result<(), Error>> + Send + 'static, Error> {
        let size = message.size();
        if size > MAX_TELEMETRY_SIZE {
            return Err(Error::MessageTooLarge {
                size,
                limit: MAX_TELEMETRY_SIZE,
            });
        }
        let (done, rx) = oneshot::channel();
        let topic = message.topic(&self.identity.0, self.identity.1.as_deref());
        let qos = if message.is_at_most_once() {
            Qos::AtMostOnce
        } else {
            Qos::AtLeastOnce
        };
        self.command(Command::Telemetry {
            topic,
            payload: message.payload(),
            qos,
            done,
        })
        .await?;
        Ok(async move { rx.await.unwrap_or(Err(Error::Closed)) })
    }

    /// The stream of cloud-to-device messages. Subscribes on first use. Each message is
    /// acknowledged to the hub (completed) when [`C2dReceiver::recv`] returns it, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the client is closed.
    pub async fn c2d_messages(&self) -> Result<C2dReceiver, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.command(Command::EnableC2d(tx)).await?;
        Ok(C2dReceiver {
            rx,
            commands: self.commands.clone(),
        })
    }

    /// The stream of desired-property changes, de-duplicated by `$version`, including a
    /// whole-section update after a reconnect when something changed while offline.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the client is closed.
    pub async fn desired_properties(&self) -> Result<DesiredReceiver, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.command(Command::EnableDesired(tx)).await?;
        Ok(DesiredReceiver { rx })
    }

    /// Fetches the twin's `{"desired": …, "reported": …}` document.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] for an error status, [`Error::Timeout`] when no answer came in
    /// the request timeout.
    pub async fn twin(&self) -> Result<Value, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::TwinGet(tx)).await?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Patches reported properties; returns the new reported `$version`.
    ///
    /// # Errors
    ///
    /// As [`DeviceClient::twin`].
    pub async fn update_reported(&self, patch: &Value) -> Result<u64, Error> {
        self.update_reported_raw(Bytes::from(patch.to_string()))
            .await
    }

    pub(crate) async fn update_reported_raw(&self, body: Bytes) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::TwinPatch(body, tx)).await?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Registers an async handler for direct method `name` and subscribes to methods.
    /// Unknown methods are answered `501` unless [`DeviceClient::on_any_method`] is set.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the client is closed.
    pub async fn on_method<F, Fut>(&self, name: &str, handler: F) -> Result<(), Error>
    where
        F: Fn(MethodCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MethodResponse> + Send + 'static,
    {
        let handler: MethodHandler = Arc::new(move |call| Box::pin(handler(call)));
        lock(&self.methods.handlers).insert(name.to_owned(), handler);
        self.command(Command::EnableMethods).await
    }

    /// Registers the handler for methods without a specific handler.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the client is closed.
    pub async fn on_any_method<F, Fut>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(MethodCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MethodResponse> + Send + 'static,
    {
        let handler: MethodHandler = Arc::new(move |call| Box::pin(handler(call)));
        *lock(&self.methods.fallback) = Some(handler);
        self.command(Command::EnableMethods).await
    }

    /// Watches the connection state.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Closes the connection after in-flight messages are acknowledged (bounded by the drain
    /// timeout). Messages still unacknowledged then resolve with [`Error::Closed`].
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| Error::Closed)
    }
}

/// Cloud-to-device messages; see [`DeviceClient::c2d_messages`].
#[derive(Debug)]
pub struct C2dReceiver {
    rx: mpsc::UnboundedReceiver<(C2dMessage, Option<AckToken>)>,
    commands: mpsc::Sender<Command>,
}

impl C2dReceiver {
    /// The next message; `None` when the client closed. Taking a message acknowledges it.
    pub async fn recv(&mut self) -> Option<C2dMessage> {
        let (message, ack) = self.rx.recv().await?;
        if let Some(token) = ack {
            let _ = self.commands.send(Command::Ack(token)).await;
        }
        Some(message)
    }
}

/// Desired-property changes; see [`DeviceClient::desired_properties`].
#[derive(Debug)]
pub struct DesiredReceiver {
    rx: mpsc::UnboundedReceiver<DesiredPatch>,
}

impl DesiredReceiver {
    /// The next change; `None` when the client closed.
    pub async fn recv(&mut self) -> Option<DesiredPatch> {
        self.rx.recv().await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a handler registration panicked; the map is still valid.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
