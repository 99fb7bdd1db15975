//! The crate's error types, grouped by who is at fault (rustls style).
//!
//! [`Error`] is what every fallible call returns. Its variants that describe a broken
//! connection carry the same typed values that [`DisconnectReason`](crate::DisconnectReason)
//! reports while the client reconnects in the background: [`NetworkError`] (DNS, TCP, proxy,
//! TLS, WebSocket, a dropped link), [`ConnectRefusal`] (the CONNACK return code),
//! [`CredentialError`] (a key or token that cannot sign in), [`ProtocolError`] and
//! [`Request`] (which request timed out). A caller branches on these; the underlying error,
//! when there is one, is kept as [`std::error::Error::source`].

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use iothub_proto::connection_string::ConnectionStringError;
use iothub_proto::sas::{KeyError, SignError, TokenError};

/// Everything that can go wrong in the device client.
///
/// The variants say who is at fault: the caller's configuration or input (`Config`,
/// `Credentials`, `InvalidInput`, `MessageTooLarge`, `OutboxFull`, `Closed`), the hub's
/// answer (`Refused`, `Rejected`, `Protocol`), time (`Timeout`), and the environment
/// (`Network`, `Storage`). Ask [`Error::is_retriable`] instead of matching on text.
///
/// ```
/// use iothub_device::{ConnectRefusal, Error, Request};
///
/// let throttled = Error::Rejected { status: 429, body: String::new() };
/// assert!(throttled.is_retriable());
/// assert_eq!(throttled.status(), Some(429));
/// assert!(!Error::OutboxFull { capacity: 10 }.is_retriable());
/// assert!(!Error::Refused(ConnectRefusal::NotAuthorized).is_retriable());
/// assert!(Error::Timeout(Request::TwinGet).is_retriable());
/// assert_eq!(Error::Timeout(Request::TwinGet).to_string(), "twin get timed out");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was closed (or its driver stopped) before the operation completed.
    /// Fault: the caller, or the drain timeout of [`DeviceClient::close`](crate::DeviceClient::close).
    #[error("client is closed")]
    Closed,
    /// The configuration is unusable. Fault: the caller (connection string, files, options).
    #[error("invalid configuration")]
    Config(#[source] ConfigError),
    /// The credentials cannot sign in (bad key, malformed or expired token). Fault: the
    /// caller's key or token.
    #[error("unusable credentials")]
    Credentials(#[source] CredentialError),
    /// An argument is unusable. Fault: the caller.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument or message field at fault (for example `topic`).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message exceeds the IoT Hub limit of 256 KiB for telemetry (`docs/protocol.md`,
    /// limits). Fault: the caller.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// Size counted as the hub counts it: body plus property names and values.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The network connection could not be set up or broke. Fault: the environment (or a
    /// wrong host, port or CA for [`NetworkError::Dns`], [`NetworkError::Tcp`] and
    /// [`NetworkError::Tls`]).
    #[error("network failure")]
    Network(#[source] NetworkError),
    /// The bounded outbox already holds `capacity` messages. Fault: the caller sends faster
    /// than the hub acknowledges; wait for acknowledgements and retry.
    #[error("outbox is full ({capacity} messages)")]
    OutboxFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The server sent something that breaks MQTT 3.1.1 or the IoT Hub dialect. Fault: the
    /// server.
    #[error("protocol violation")]
    Protocol(#[source] ProtocolError),
    /// The hub refused the connection in its CONNACK. Fault: the credentials or the
    /// identity's state on the hub (see [`ConnectRefusal`]).
    #[error("connection refused by the hub: {0}")]
    Refused(ConnectRefusal),
    /// The hub answered a request with an error status (twin 4xx/5xx, DPS failures). Fault:
    /// the request (4xx) or the service (5xx, 429 throttling).
    #[error("request rejected with status {status}")]
    Rejected {
        /// HTTP-like status from the response topic.
        status: u16,
        /// Response body, as text (often a JSON error object).
        body: String,
    },
    /// The durable outbox could not be read or written. Fault: the environment (disk).
    #[error("outbox storage failed")]
    Storage(#[source] io::Error),
    /// No answer in time to this request. Fault: the network or the service.
    #[error("{0} timed out")]
    Timeout(Request),
    /// A file upload failed ([`DeviceClient::upload_file`](crate::DeviceClient::upload_file));
    /// [`UploadError`] says which side refused or failed. Fault: as the inner error says.
    #[error("file upload failed")]
    Upload(#[source] UploadError),
}

impl Error {
    /// Whether trying again later, unchanged, can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Refused(code) => code.is_retriable(),
            Self::Rejected { status, .. } => *status == 429 || *status >= 500,
            Self::Network(e) => e.is_retriable(),
            Self::Timeout(_) => true,
            Self::Upload(e) => e.is_retriable(),
            Self::Closed
            | Self::Config(_)
            | Self::Credentials(_)
            | Self::InvalidInput { .. }
            | Self::MessageTooLarge { .. }
            | Self::OutboxFull { .. }
            | Self::Protocol(_)
            | Self::Storage(_) => false,
        }
    }

    /// The hub's status for [`Error::Rejected`], and the refusing side's status for
    /// [`Error::Upload`] ([`UploadError::status`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => Some(*status),
            Self::Upload(e) => e.status(),
            _ => None,
        }
    }
}

impl From<UploadError> for Error {
    fn from(e: UploadError) -> Self {
        Self::Upload(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Self {
        Self::Credentials(e)
    }
}

/// Why the configuration cannot be used. Fault: always the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The connection string is malformed; the proto error names the field.
    #[error("malformed connection string")]
    ConnectionString(#[source] ConnectionStringError),
    /// A file (certificate, key, CA) could not be read.
    #[error("cannot read {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The HTTP client of file uploads could not be built from the TLS and proxy settings.
    #[error("cannot build the HTTP client")]
    Http(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The connection string names no device (`DeviceId`).
    #[error("the connection string has no DeviceId")]
    MissingDeviceId,
    /// `x509=true` without a client certificate and key ([`ClientOptions::x509_identity`](crate::ClientOptions::x509_identity)).
    #[error("x509=true needs a client certificate and key")]
    MissingX509Identity,
    /// A PEM document holds no usable item of this kind, or is malformed.
    #[error("unreadable PEM {item}")]
    Pem {
        /// What was expected in it.
        item: PemItem,
        /// The parse failure (`NoItemsFound` when there is none of `item`).
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A service (hub-level) connection string cannot connect a device.
    #[error("a service connection string cannot connect a device")]
    ServiceConnectionString,
    /// rustls refused the TLS configuration (a CA that is not a CA certificate, a private key
    /// that does not match the client certificate).
    #[error("unusable TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// The kind of item expected in a PEM document, named in [`ConfigError::Pem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PemItem {
    /// One or more X.509 certificates (a CA file, a client certificate chain).
    Certificate,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

impl std::fmt::Display for PemItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Certificate => "certificate",
            Self::PrivateKey => "private key",
        })
    }
}

/// Why the client cannot produce credentials to sign in with. Fault: the caller's key or
/// token. Seen as [`Error::Credentials`] and as
/// [`DisconnectReason::Credentials`](crate::DisconnectReason::Credentials) (a pre-made token
/// that expires while the client runs).
///
/// ```
/// use iothub_device::CredentialError;
///
/// let expired = CredentialError::TokenExpired { expiry: 1_000 };
/// assert_eq!(expired.to_string(), "the SAS token expired at 1000 (unix seconds)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The DPS group (enrollment) key cannot derive a device key.
    #[error("unusable group key")]
    GroupKey(#[source] KeyError),
    /// The shared access key (device, module or policy key) is not usable.
    #[error("unusable shared access key")]
    Key(#[source] KeyError),
    /// The pre-made SAS token is malformed.
    #[error("malformed SAS token")]
    MalformedToken(#[source] TokenError),
    /// Signing a token failed.
    #[error("cannot sign the SAS token")]
    Signing(#[source] SignError),
    /// The pre-made SAS token's expiry (`se`) has passed.
    #[error("the SAS token expired at {expiry} (unix seconds)")]
    TokenExpired {
        /// The token's `se`, in seconds since the Unix epoch.
        expiry: u64,
    },
}

/// Why the network connection failed. Fault: the environment, or a wrong host, port or CA.
///
/// Equality compares the kind of failure and the host or address named, not the underlying
/// error (an [`io::Error`] cannot be compared).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The connection was closed by the hub (or a middlebox) without an error.
    #[error("the connection was closed by the peer")]
    ClosedByPeer,
    /// The host name did not resolve: a wrong `HostName`/`GatewayHostName`, or no DNS.
    #[error("cannot resolve {host}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Reading from or writing to the open connection failed.
    #[error("the connection failed")]
    Io(#[source] Arc<io::Error>),
    /// The HTTP CONNECT proxy could not be reached or refused the tunnel.
    #[error("proxy {proxy} did not open a tunnel")]
    Proxy {
        /// The proxy's `host:port`.
        proxy: String,
        /// Why (the proxy's status line is in the message).
        #[source]
        source: Arc<io::Error>,
    },
    /// TCP could not connect: nothing listens on that port, or a firewall is in the way.
    #[error("cannot connect to {address}")]
    Tcp {
        /// `host:port` dialled.
        address: String,
        /// The socket error of the last address tried.
        #[source]
        source: Arc<io::Error>,
    },
    /// The TLS handshake failed: the hub's certificate is not trusted (wrong or missing CA),
    /// names another host, or the hub refused the client certificate.
    /// [`NetworkError::tls_error`] gives rustls' reason.
    #[error("TLS handshake with {host} failed")]
    Tls {
        /// The host whose certificate was verified.
        host: String,
        /// The handshake error; it wraps a [`rustls::Error`] when rustls decided.
        #[source]
        source: Arc<io::Error>,
    },
    /// The WebSocket upgrade (`/$iothub/websocket`) was refused or failed.
    #[error("WebSocket upgrade failed")]
    WebSocket(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl NetworkError {
    /// rustls' reason for a [`NetworkError::Tls`] failure (for example
    /// `InvalidCertificate(UnknownIssuer)`), when rustls decided.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::Tls { source, .. } => source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
            _ => None,
        }
    }

    /// Whether retrying later can succeed without a change of configuration.
    pub fn is_retriable(&self) -> bool {
        !matches!(self, Self::Tls { .. })
    }
}

impl PartialEq for NetworkError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Dns { host: a, .. }, Self::Dns { host: b, .. })
            | (Self::Tls { host: a, .. }, Self::Tls { host: b, .. })
            | (Self::Proxy { proxy: a, .. }, Self::Proxy { proxy: b, .. })
            | (Self::Tcp { address: a, .. }, Self::Tcp { address: b, .. }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for NetworkError {}

/// How the server broke MQTT 3.1.1 or the IoT Hub dialect. Fault: the server (or, for
/// [`ProtocolError::Encode`], a packet of ours larger than MQTT allows).
///
/// Equality compares the kind of violation, not the underlying error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An outgoing packet could not be encoded (larger than the MQTT packet limit).
    #[error("cannot encode an outgoing packet")]
    Encode(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A twin response that should carry JSON does not.
    #[error("the twin document is not JSON")]
    InvalidTwin(#[source] Arc<serde_json::Error>),
    /// Bytes from the server are not a valid MQTT 3.1.1 packet (or exceed the packet limit).
    #[error("malformed packet from the server")]
    MalformedPacket(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A reported-properties patch was acknowledged without the new `$version`.
    #[error("twin patch response without $version")]
    MissingTwinVersion,
    /// The server sent a packet a 3.1.1 server must not send to a client, or at the wrong
    /// time (a CONNECT, a second CONNACK, a DISCONNECT).
    #[error("unexpected packet from the server")]
    UnexpectedPacket,
    /// DPS answered with an outcome this client does not know.
    #[error("unknown DPS outcome")]
    UnknownDpsOutcome,
}

impl PartialEq for ProtocolError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl Eq for ProtocolError {}

/// Which request went unanswered, in [`Error::Timeout`] and
/// [`DisconnectReason::Timeout`](crate::DisconnectReason::Timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Request {
    /// Connecting: TCP, proxy, TLS and WebSocket handshakes, or the CONNACK.
    Connect,
    /// A keep-alive PINGREQ got no PINGRESP.
    KeepAlive,
    /// The DPS registration got no final answer.
    Provisioning,
    /// A publish (telemetry, a method response) got no PUBACK within the acknowledgement
    /// timeout.
    Publish,
    /// A twin GET got no response.
    TwinGet,
    /// A reported-properties PATCH got no response.
    TwinPatch,
    /// Writing to the socket stalled.
    Write,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::KeepAlive => "keep-alive",
            Self::Provisioning => "provisioning",
            Self::Publish => "publish acknowledgement",
            Self::TwinGet => "twin get",
            Self::TwinPatch => "twin patch",
            Self::Write => "socket write",
        })
    }
}

/// Why the hub refused a connection: the CONNACK return code (MQTT 3.1.1 §3.2.2.3).
///
/// IoT Hub answers `NotAuthorized` (5) for a bad or expired token and `ServerUnavailable` (3)
/// for a disabled device or transient trouble (`docs/protocol.md`, connecting).
///
/// ```
/// use iothub_device::ConnectRefusal;
///
/// assert_eq!(ConnectRefusal::NotAuthorized.code(), 5);
/// assert_eq!(ConnectRefusal::from_code(3), Some(ConnectRefusal::ServerUnavailable));
/// assert_eq!(ConnectRefusal::from_code(0), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectRefusal {
    /// 2: the client id was rejected.
    BadClientId,
    /// 4: malformed user name or password.
    BadCredentials,
    /// 5: authentication failed (bad signature, expired token, unknown device).
    NotAuthorized,
    /// 1: unacceptable protocol version.
    ProtocolVersion,
    /// 3: the service is unavailable (a disabled device, throttling); retry later.
    ServerUnavailable,
}

impl ConnectRefusal {
    /// The refusal for a CONNACK return code; `None` for 0 (accepted) and unknown codes.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::ProtocolVersion,
            2 => Self::BadClientId,
            3 => Self::ServerUnavailable,
            4 => Self::BadCredentials,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// The CONNACK return code.
    pub fn code(self) -> u8 {
        match self {
            Self::ProtocolVersion => 1,
            Self::BadClientId => 2,
            Self::ServerUnavailable => 3,
            Self::BadCredentials => 4,
            Self::NotAuthorized => 5,
        }
    }

    /// Whether reconnecting with the same credentials can succeed.
    pub fn is_retriable(self) -> bool {
        matches!(self, Self::ServerUnavailable)
    }
}

impl std::fmt::Display for ConnectRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BadClientId => "client id rejected",
            Self::BadCredentials => "bad user name or password",
            Self::NotAuthorized => "not authorized",
            Self::ProtocolVersion => "unacceptable protocol version",
            Self::ServerUnavailable => "server unavailable",
        })?;
        write!(f, " (CONNACK {})", self.code())
    }
}

/// Why a file upload failed, by the side at fault: the hub ([`UploadError::HubRefused`],
/// [`UploadError::InvalidHubResponse`]), the storage ([`UploadError::StorageRefused`]), the
/// network between ([`UploadError::Network`]) or the caller's source and size
/// ([`UploadError::Source`], [`UploadError::TooLarge`]). Seen as [`Error::Upload`].
///
/// When it happens after the hub handed out the blob's SAS URI, the client has already told
/// the hub the upload failed (the notification carries the status below), so nothing half
/// written is ever reported complete.
///
/// ```
/// use iothub_device::{Error, StorageOperation, UploadError};
///
/// let expired = UploadError::StorageRefused {
///     operation: StorageOperation::PutBlock { index: 3 },
///     status: 403,
///     code: Some("AuthenticationFailed".into()),
/// };
/// assert_eq!(
///     expired.to_string(),
///     "the storage refused Put Block 3 with status 403 (AuthenticationFailed)"
/// );
/// assert!(!expired.is_retriable());
/// assert_eq!(Error::Upload(expired).status(), Some(403));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The hub answered the SAS URI request or the completion notification with an error
    /// status (404 unknown device, 403 file upload not allowed or too many concurrent
    /// uploads, 400 unknown correlation id, 429, 5xx). Fault: the hub's configuration or the
    /// request.
    #[error("the hub refused the {request} with status {status}")]
    HubRefused {
        /// Which request.
        request: HubRequest,
        /// The HTTP status.
        status: u16,
        /// The answer's body (IoT Hub's JSON error: `Message`, `ExceptionMessage`).
        body: String,
    },
    /// The hub's answer to the SAS URI request is not what IoT Hub sends. Fault: the hub.
    #[error("unusable answer from the hub: {reason}")]
    InvalidHubResponse {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A request could not be sent or got no answer: DNS, TCP, TLS, the request timeout, a
    /// storage that went away mid-upload. Fault: the environment.
    #[error("no answer from the {endpoint}")]
    Network {
        /// Which side could not be reached.
        endpoint: UploadEndpoint,
        /// The HTTP client's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Reading the file or stream to upload failed. Fault: the caller's source.
    #[error("reading the upload source failed")]
    Source(#[source] Arc<io::Error>),
    /// The storage answered a blob operation with an error status (403 for an expired or
    /// wrong SAS, 5xx). Fault: the SAS (4xx) or the storage (5xx).
    #[error("the storage refused {operation} with status {status}{}", .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    StorageRefused {
        /// Which operation.
        operation: StorageOperation,
        /// The HTTP status.
        status: u16,
        /// Azure Storage's error code (`x-ms-error-code`, such as `AuthenticationFailed`).
        code: Option<String>,
    },
    /// The source is larger than a block blob can be (50,000 blocks of 4000 MiB). Fault: the
    /// caller.
    #[error("{size} bytes exceed the {limit}-byte block blob limit")]
    TooLarge {
        /// The source's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl UploadError {
    /// Whether uploading again later, unchanged, can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::HubRefused { status, .. } | Self::StorageRefused { status, .. } => {
                crate::upload::status_is_retriable(*status)
            }
            Self::Network { .. } => true,
            Self::InvalidHubResponse { .. } | Self::Source(_) | Self::TooLarge { .. } => false,
        }
    }

    /// The refusing side's HTTP status, for [`UploadError::HubRefused`] and
    /// [`UploadError::StorageRefused`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::HubRefused { status, .. } | Self::StorageRefused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Which hub request of a file upload, in [`UploadError::HubRefused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HubRequest {
    /// `POST /devices/{id}/files`: the blob's SAS URI.
    SasUri,
    /// `POST /devices/{id}/files/notifications`: the outcome.
    Notification,
}

impl std::fmt::Display for HubRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SasUri => "SAS URI request",
            Self::Notification => "upload notification",
        })
    }
}

/// Which blob operation, in [`UploadError::StorageRefused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageOperation {
    /// Put Block of the block numbered `index` (from 0).
    PutBlock {
        /// The block's position in the blob.
        index: u32,
    },
    /// Put Block List: committing the blocks.
    PutBlockList,
}

impl std::fmt::Display for StorageOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PutBlock { index } => write!(f, "Put Block {index}"),
            Self::PutBlockList => f.write_str("Put Block List"),
        }
    }
}

/// Which side of a file upload, in [`UploadError::Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UploadEndpoint {
    /// The hub's HTTPS endpoint.
    Hub,
    /// The storage account's blob endpoint.
    Storage,
}

impl std::fmt::Display for UploadEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hub => "hub",
            Self::Storage => "storage",
        })
    }
}
