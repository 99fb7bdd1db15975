//! The one error type of the crate, grouped by who is at fault (STYLE.md §10).

use std::io;

/// Everything that can go wrong in the device client.
///
/// Variants are grouped by fault: the caller's configuration or input (`Config`,
/// `InvalidInput`, `MessageTooLarge`, `OutboxFull`), the hub's answer (`Refused`,
/// `Rejected`), time (`Timeout`), and the environment (`Closed`, `Storage`, `Tls`,
/// `Transport`, `Protocol`). Ask [`Error::is_retriable`] instead of matching on text.
///
/// ```
/// use iothub_device::Error;
///
/// let throttled = Error::Rejected { status: 429, body: String::new() };
/// assert!(throttled.is_retriable());
/// assert_eq!(throttled.status(), Some(429));
/// assert!(!Error::OutboxFull { capacity: 10 }.is_retriable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was closed (or its driver stopped) before the operation completed.
    #[error("client is closed")]
    Closed,
    /// The configuration is unusable (bad connection string, unreadable certificate, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An argument is unusable (for example a property name the protocol cannot carry).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The message exceeds the IoT Hub limit (256 KiB for telemetry, PROTOCOL.md §4).
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// Size counted as the hub counts it: body plus property names and values.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bounded outbox already holds `capacity` messages.
    #[error("outbox is full ({capacity} messages)")]
    OutboxFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The server sent something that breaks MQTT 3.1.1 or the IoT Hub dialect.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The hub refused the connection in its CONNACK.
    #[error("connection refused: {0}")]
    Refused(ConnectRefusal),
    /// The hub answered a request with an error status (twin 4xx/5xx, DPS failures).
    #[error("request rejected with status {status}")]
    Rejected {
        /// HTTP-like status from the response topic.
        status: u16,
        /// Response body, as text (often a JSON error object).
        body: String,
    },
    /// The durable outbox could not be read or written.
    #[error("outbox storage failed")]
    Storage(#[source] io::Error),
    /// No answer in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// TLS could not be set up (bad CA file, bad client certificate).
    #[error("TLS setup failed")]
    Tls(#[source] rustls::Error),
    /// The network connection failed.
    #[error("transport failed")]
    Transport(#[source] io::Error),
}

/// Why the hub refused a connection: the CONNACK return code (MQTT 3.1.1 §3.2.2.3).
///
/// IoT Hub answers `NotAuthorized` (5) for a bad or expired token and `ServerUnavailable` (3)
/// for transient trouble (PROTOCOL.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectRefusal {
    /// 2: the client id was rejected.
    BadClientId,
    /// 4: malformed user name or password.
    BadCredentials,
    /// 5: authentication failed (bad signature, expired token, unknown or disabled device).
    NotAuthorized,
    /// 1: unacceptable protocol version.
    ProtocolVersion,
    /// 3: the service is unavailable; retry later.
    ServerUnavailable,
}

impl ConnectRefusal {
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
        })
    }
}

impl Error {
    /// Whether trying again later, unchanged, can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Refused(code) => code.is_retriable(),
            Self::Rejected { status, .. } => *status == 429 || *status >= 500,
            Self::Timeout(_) | Self::Transport(_) => true,
            Self::Closed
            | Self::Config(_)
            | Self::InvalidInput(_)
            | Self::MessageTooLarge { .. }
            | Self::OutboxFull { .. }
            | Self::Protocol(_)
            | Self::Storage(_)
            | Self::Tls(_) => false,
        }
    }

    /// The hub's status for [`Error::Rejected`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}
