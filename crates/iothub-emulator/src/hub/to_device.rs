//! What the hub sends to one device connection, in the hub's own terms: a transport turns each
//! [`ToDevice`] into its wire shape (an MQTT topic and payload, an AMQP message) and decides
//! whether the connection receives it at all (see [`Interests`]).

use bytes::Bytes;

use super::c2d::C2dDelivery;

/// A message from the hub to one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToDevice {
    /// A cloud-to-device message. The transport reports its completion with
    /// [`super::Hub::c2d_delivered`] once the device acknowledged it, or right after sending it
    /// when the device asked not to acknowledge (docs/protocol.md §5).
    C2d(Box<C2dDelivery>),
    /// The answer to a twin GET or reported-properties PATCH (docs/protocol.md §6).
    TwinResponse {
        /// The device's request id.
        request_id: String,
        /// Status (200, 204, 400, 429, ...).
        status: u16,
        /// The twin's new reported `$version`, for a PATCH.
        version: Option<u64>,
        /// JSON body (the twin for a GET, empty for a PATCH).
        body: Bytes,
    },
    /// A desired-properties patch (docs/protocol.md §6).
    DesiredPatch {
        /// The desired `$version` after the patch.
        version: u64,
        /// The patch, JSON.
        body: Bytes,
    },
    /// A direct-method request (docs/protocol.md §7).
    MethodRequest {
        /// The method's name.
        method: String,
        /// The request id the device answers with.
        request_id: String,
        /// JSON payload.
        payload: Bytes,
    },
    /// A DPS answer (docs/protocol.md §9).
    DpsResponse {
        /// The device's request id.
        request_id: String,
        /// Status (200, 202, 401, 429, ...).
        status: u16,
        /// Seconds the device should wait before polling again.
        retry_after: Option<u32>,
        /// JSON body.
        body: Bytes,
    },
    /// The connection must close.
    Close(CloseReason),
}

impl ToDevice {
    /// What a connection must have asked for to receive this message (`None`: always sent).
    #[must_use]
    pub fn interest(&self) -> Option<Interests> {
        match self {
            Self::C2d(_) => Some(Interests::C2D),
            Self::TwinResponse { .. } => Some(Interests::TWIN_RESPONSES),
            Self::DesiredPatch { .. } => Some(Interests::DESIRED),
            Self::MethodRequest { .. } => Some(Interests::METHODS),
            Self::DpsResponse { .. } => Some(Interests::DPS),
            Self::Close(_) => None,
        }
    }
}

/// Why the hub closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// A newer connection of the same identity took over (docs/protocol.md §1.5).
    TakenOver,
    /// The identity was disabled or deleted through the service API.
    IdentityChanged,
}

impl CloseReason {
    /// The reason in words, for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TakenOver => "taken over by a newer connection of the same identity",
            Self::IdentityChanged => "identity disabled or deleted",
        }
    }
}

/// What a connection has asked to receive (on MQTT: worked out from its subscriptions).
///
/// ```
/// use iothub_emulator::hub::Interests;
/// let both = Interests::C2D.union(Interests::METHODS);
/// assert!(both.contains(Interests::METHODS));
/// assert!(!both.contains(Interests::DESIRED));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interests(u8);

impl Interests {
    /// Cloud-to-device messages.
    pub const C2D: Self = Self(1);
    /// Answers to its own twin requests.
    pub const TWIN_RESPONSES: Self = Self(2);
    /// Desired-property patches.
    pub const DESIRED: Self = Self(4);
    /// Direct-method requests.
    pub const METHODS: Self = Self(8);
    /// DPS answers.
    pub const DPS: Self = Self(16);
    /// Everything a device (not a DPS registration) can receive.
    pub const DEVICE_ALL: Self = Self(1 | 2 | 4 | 8);

    /// Whether every interest in `other` is in `self`.
    #[must_use]
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}
