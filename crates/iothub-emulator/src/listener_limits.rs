//! Bounded time and count on every listener (emulator README, "Limits and timeouts"), so
//! that a flood of idle or slow connections on one listener cannot exhaust the process's
//! descriptors and stop the other listeners or the devices already connected:
//!
//! - every TLS handshake must finish within [`ListenerLimits::tls_handshake`];
//! - an HTTP request head (also a WebSocket upgrade) must arrive within
//!   [`ListenerLimits::http_header_read`] of the connection opening or of the previous
//!   response (which also closes idle keep-alive connections), and a request body may pause
//!   for at most [`ListenerLimits::http_body_idle`] between chunks;
//! - each listener admits at most [`ListenerLimits::max_unauthenticated`] connections that
//!   have not yet authenticated ([`Gate`]); one more is closed as soon as it is accepted.
//!   An MQTT connection (also over WebSocket) stops counting once its CONNECT is accepted;
//!   an HTTP connection counts for its whole life, as each of its requests authenticates on
//!   its own;
//! - the MQTT session itself closes a connection whose CONNECT does not arrive within 30 s.
//!
//! At start-up the process also raises its soft descriptor limit to the hard limit
//! ([`raise_descriptor_limit`]).

mod accept;
mod connack;
mod gate;

use std::time::Duration;

pub(crate) use self::accept::accept_admitted;
pub(crate) use self::connack::AdmittedUntilConnack;
pub(crate) use self::gate::{Admission, Gate};

/// Per-listener bounds; [`Default`] is what the emulator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerLimits {
    /// Longest TLS handshake (default 10 s).
    pub tls_handshake: Duration,
    /// Longest wait for a complete HTTP request head, from the connection opening or the
    /// previous response (default 10 s).
    pub http_header_read: Duration,
    /// Longest pause between two chunks of an HTTP request body (default 30 s).
    pub http_body_idle: Duration,
    /// Most connections per listener that have not authenticated (default 256).
    pub max_unauthenticated: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            http_header_read: Duration::from_secs(10),
            http_body_idle: Duration::from_secs(30),
            max_unauthenticated: 256,
        }
    }
}

impl ListenerLimits {
    /// These limits with every timeout set to `timeout` (tests use short ones).
    ///
    /// ```
    /// use std::time::Duration;
    /// let limits = iothub_emulator::ListenerLimits::default().with_timeouts(Duration::from_secs(1));
    /// assert_eq!(limits.tls_handshake, Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn with_timeouts(mut self, timeout: Duration) -> Self {
        self.tls_handshake = timeout;
        self.http_header_read = timeout;
        self.http_body_idle = timeout;
        self
    }

    /// These limits with at most `n` unauthenticated connections per listener.
    #[must_use]
    pub fn with_max_unauthenticated(mut self, n: usize) -> Self {
        self.max_unauthenticated = n;
        self
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, logs both figures and returns the new
/// soft limit (`None` where it cannot be read or raised: the emulator runs on regardless).
pub fn raise_descriptor_limit() -> Option<u64> {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            tracing::info!(
                soft_before = before.map(|(soft, _)| soft),
                soft = now,
                hard = before.map(|(_, hard)| hard),
                "file descriptor limit"
            );
            Some(now)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the file descriptor limit");
            None
        }
    }
}
