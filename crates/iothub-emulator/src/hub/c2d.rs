//! Cloud-to-device queues: enqueue (hub-side API), delivery to a device session, completion by
//! PUBACK, redelivery after reconnect, expiry, delivery-count limits, purge and feedback
//! (docs/protocol.md §5).
//!
//! Lifecycle: Enqueued → (delivered: Invisible, locked 60 s) → Completed by the device's
//! PUBACK, or back to Enqueued when the session ends ([`release`]) or the lock runs out;
//! dead-lettered when it expires or would be delivered more than `max_delivery_count` times.
//! Every delivery counts towards the delivery count (an MQTT device cannot abandon, so a
//! message that keeps coming back without a PUBACK is the only way to reach the limit).
//!
//! Sans-IO: functions take a SQLite connection or transaction and `now`, and return the
//! publishes to make as [`C2dDelivery`] values; a transport sends them and reports their completion.

use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::hub::ids;
use crate::store::c2d::{self as sql, StoredFeedback, StoredMessage};
use crate::timestamp::{iso8601_millis, unix_millis};

/// Queue limits (docs/protocol.md §5 and §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct C2dLimits {
    /// Messages waiting per identity; the next enqueue fails with 403004.
    pub max_queue_depth: usize,
    /// Largest message (body plus property names and values), bytes.
    pub max_message_bytes: usize,
    /// Time to live when the sender gives no expiry.
    pub default_ttl: Duration,
    /// Deliveries before a message is dead-lettered.
    pub max_delivery_count: u32,
    /// How long a delivered message stays invisible waiting for its PUBACK.
    pub lock_duration: Duration,
}

impl C2dLimits {
    /// IoT Hub's defaults: 50 messages, 64 KB, 1 h TTL, 10 deliveries, 60 s lock.
    pub const DEFAULT: Self = Self {
        max_queue_depth: 50,
        max_message_bytes: 64 * 1024,
        default_ttl: Duration::from_secs(3600),
        max_delivery_count: 10,
        lock_duration: Duration::from_secs(60),
    };
}

impl Default for C2dLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which outcomes the sender wants feedback for (`iothub-ack`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// No feedback (the default).
    #[default]
    None,
    /// Feedback on completion.
    Positive,
    /// Feedback on expiry, delivery-count exhaustion, rejection or purge.
    Negative,
    /// Both.
    Full,
}

impl AckMode {
    /// The wire spelling: `none`, `positive`, `negative` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Positive => "positive",
            Self::Negative => "negative",
            Self::Full => "full",
        }
    }

    /// Parses the wire spelling (case-insensitive); `None` for anything else.
    ///
    /// # Example
    /// ```
    /// use iothub_emulator::hub::c2d::AckMode;
    /// assert_eq!(AckMode::parse("Full"), Some(AckMode::Full));
    /// assert_eq!(AckMode::parse("sometimes"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        [Self::None, Self::Positive, Self::Negative, Self::Full]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }

    fn wants(self, status: FeedbackStatus) -> bool {
        match status {
            FeedbackStatus::Success => matches!(self, Self::Positive | Self::Full),
            _ => matches!(self, Self::Negative | Self::Full),
        }
    }
}

/// A message to enqueue (the hub-side send API).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Body bytes.
    pub body: Vec<u8>,
    /// `$.mid`; a UUID is generated when absent.
    pub message_id: Option<String>,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// `$.uid`.
    pub user_id: Option<String>,
    /// `$.ct`, e.g. `application/json`.
    pub content_type: Option<String>,
    /// `$.ce`, e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Feedback wanted.
    pub ack: AckMode,
    /// Absolute expiry; `now + default_ttl` when absent.
    pub expiry: Option<SystemTime>,
    /// Application properties, delivered in this order.
    pub properties: Vec<(String, String)>,
}

/// What [`enqueue`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The message id (given or generated).
    pub message_id: String,
    /// Messages now waiting for the identity, this one included.
    pub queue_depth: usize,
}

/// One delivery of a queued message to the identity's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct C2dDelivery {
    /// Report it back with [`complete`] when the device acknowledges it (or right after
    /// sending, when the device does not acknowledge).
    pub lock_token: i64,
    /// The message was delivered before without completion (MQTT sends it with DUP set).
    pub redelivery: bool,
    /// The message.
    pub message: C2dMessage,
}

/// A cloud-to-device message as the device receives it (docs/protocol.md §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct C2dMessage {
    /// Addressed device.
    pub device_id: String,
    /// Addressed module, if any.
    pub module_id: Option<String>,
    /// `$.mid`.
    pub message_id: String,
    /// `$.to`: `/devices/{id}[/modules/{m}]/messages/devicebound`.
    pub to: String,
    /// `$.ce`.
    pub content_encoding: Option<String>,
    /// `$.ct`.
    pub content_type: Option<String>,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// `$.uid`.
    pub user_id: Option<String>,
    /// `iothub-ack`.
    pub ack: AckMode,
    /// Application properties, in the order they were sent.
    pub properties: Vec<(String, String)>,
    /// Body.
    pub body: bytes::Bytes,
    /// When it was enqueued, Unix ms.
    pub enqueued_ms: i64,
    /// When it expires, Unix ms.
    pub expiry_ms: i64,
    /// How many times it has been handed to a connection, this delivery included.
    pub delivery_count: i64,
}

/// A feedback outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackStatus {
    /// Delivered and completed by the device.
    Success,
    /// Expired before completion.
    Expired,
    /// Delivered `max_delivery_count` times without completion.
    DeliveryCountExceeded,
    /// Rejected by the device (HTTPS/AMQP only; MQTT cannot reject).
    Rejected,
    /// Removed by a purge.
    Purged,
}

impl FeedbackStatus {
    /// The `statusCode` text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::Expired => "Expired",
            Self::DeliveryCountExceeded => "DeliveryCountExceeded",
            Self::Rejected => "Rejected",
            Self::Purged => "Purged",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::Expired => "Message Expired",
            Self::DeliveryCountExceeded => "Message Delivery Count Exceeded",
            Self::Rejected => "Message Rejected",
            Self::Purged => "Message Purged",
        }
    }
}

/// One feedback record as the service reads it from `/messages/servicebound/feedback`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackRecord {
    /// `$.mid` of the message concerned.
    pub original_message_id: String,
    /// Addressed device.
    pub device_id: String,
    /// Addressed module, for module messages.
    pub module_id: Option<String>,
    /// `Success`, `Expired`, `DeliveryCountExceeded`, `Rejected` or `Purged`.
    pub status_code: String,
    /// Human-readable outcome.
    pub description: String,
    /// When the message was enqueued.
    pub enqueued_time: SystemTime,
}

impl FeedbackRecord {
    /// The record in IoT Hub's feedback JSON shape (`originalMessageId`, `enqueuedTimeUtc`,
    /// `statusCode`, `description`, `deviceId`, `deviceGenerationId` — the latter empty here).
    pub fn to_json(&self) -> Value {
        json!({
            "originalMessageId": self.original_message_id,
            "enqueuedTimeUtc": iso8601_millis(self.enqueued_time),
            "statusCode": self.status_code,
            "description": self.description,
            "deviceId": self.device_id,
            "deviceGenerationId": "",
        })
    }
}

/// Errors from the C2D API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum C2dError {
    /// A stored row could not be decoded.
    #[error("stored c2d message is corrupt")]
    Corrupt,
    /// The message is larger than 64 KB (HTTP 413, error 413001 MessageTooLarge).
    #[error("message of {size} bytes exceeds {limit} bytes")]
    MessageTooLarge {
        /// Body plus property sizes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The identity already has `max_queue_depth` messages waiting (HTTP 403, error
    /// 403004 DeviceMaximumQueueDepthExceeded).
    #[error("device queue is full")]
    QueueFull,
    /// SQLite failed.
    #[error("c2d storage failed")]
    Store(#[from] rusqlite::Error),
}

impl C2dError {
    /// The HTTP-like status and IoT Hub error code to answer with, e.g. `(403, 403004)`.
    pub fn status_and_code(&self) -> (u16, u32) {
        match self {
            Self::QueueFull => (403, 403_004),
            Self::MessageTooLarge { .. } => (413, 413_001),
            Self::Corrupt | Self::Store(_) => (500, 500_001),
        }
    }
}

/// Enqueues a message for a device (`module_id` `None`) or module.
///
/// Expired messages of the identity are dead-lettered first, so they do not count.
///
/// # Errors
/// [`C2dError::QueueFull`] (the 51st message), [`C2dError::MessageTooLarge`], storage errors.
///
/// # Example
/// ```
/// # use std::time::SystemTime;
/// # let conn = rusqlite::Connection::open_in_memory().unwrap();
/// # conn.execute_batch(iothub_emulator::store::c2d::SCHEMA).unwrap();
/// use iothub_emulator::hub::c2d::{self, AckMode, C2dLimits, OutgoingMessage};
/// let now = SystemTime::now();
/// let msg = OutgoingMessage { body: b"hello".to_vec(), message_id: Some("m1".into()), ack: AckMode::Full, ..Default::default() };
/// c2d::enqueue(&conn, "dev3", None, msg, &C2dLimits::DEFAULT, now).unwrap();
/// let out = c2d::next_deliveries(&conn, "dev3", None, 10, &C2dLimits::DEFAULT, now).unwrap();
/// assert_eq!(out[0].message.message_id, "m1");
/// assert_eq!(out[0].message.to, "/devices/dev3/messages/devicebound");
/// assert_eq!(out[0].message.ack, AckMode::Full);
/// ```
pub fn enqueue(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    message: OutgoingMessage,
    limits: &C2dLimits,
    now: SystemTime,
) -> Result<Enqueued, C2dError> {
    let size = message_size(&message);
    if size > limits.max_message_bytes {
        return Err(C2dError::MessageTooLarge {
            size,
            limit: limits.max_message_bytes,
        });
    }
    let module = module_id.unwrap_or("");
    expire_due(conn, now)?;
    let depth = sql::count(conn, device_id, module)?;
    if depth >= limits.max_queue_depth {
        return Err(C2dError::QueueFull);
    }
    let message_id = message.message_id.unwrap_or_else(ids::uuid_v4);
    let properties = Value::Array(
        message
            .properties
            .iter()
            .map(|(k, v)| json!([k, v]))
            .collect(),
    );
    let expiry = message.expiry.unwrap_or(now + limits.default_ttl);
    sql::insert(
        conn,
        &StoredMessage {
            seq: 0,
            device_id: device_id.to_owned(),
            module_id: module.to_owned(),
            message_id: message_id.clone(),
            correlation_id: message.correlation_id,
            user_id: message.user_id,
            content_type: message.content_type,
            content_encoding: message.content_encoding,
            ack: message.ack.as_str().to_owned(),
            properties: properties.to_string(),
            body: message.body,
            enqueued_ms: unix_millis(now),
            expiry_ms: unix_millis(expiry),
            delivery_count: 0,
            locked_until_ms: None,
        },
    )?;
    Ok(Enqueued {
        message_id,
        queue_depth: depth + 1,
    })
}

/// Takes up to `max` messages to publish to the identity's session now, oldest first: each is
/// locked for `lock_duration` and its delivery count incremented. Expired messages and
/// messages out of deliveries are dead-lettered on the way (with feedback when asked for).
///
/// A message whose lock ran out without a PUBACK is handed out again (with `dup`).
///
/// # Errors
/// Storage errors or [`C2dError::Corrupt`].
pub fn next_deliveries(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    max: usize,
    limits: &C2dLimits,
    now: SystemTime,
) -> Result<Vec<C2dDelivery>, C2dError> {
    expire_due(conn, now)?;
    let now_ms = unix_millis(now);
    let locked_until = unix_millis(now + limits.lock_duration);
    let mut out = Vec::new();
    for m in sql::list(conn, device_id, module_id.unwrap_or(""))? {
        if out.len() >= max {
            break;
        }
        if m.locked_until_ms.is_some_and(|until| until > now_ms) {
            continue;
        }
        if m.delivery_count >= i64::from(limits.max_delivery_count) {
            dead_letter(conn, &m, FeedbackStatus::DeliveryCountExceeded, now)?;
            continue;
        }
        sql::lock(conn, m.seq, locked_until, m.delivery_count + 1)?;
        out.push(delivery(&m)?);
    }
    Ok(out)
}

/// Completes a delivered message (the device's PUBACK, docs/protocol.md §5: "the device's PUBACK
/// completes the message"); records Success feedback when asked for. Returns `false` when the
/// token is unknown (already completed, expired or purged).
///
/// # Errors
/// Storage errors.
pub fn complete(conn: &Connection, lock_token: i64, now: SystemTime) -> Result<bool, C2dError> {
    let Some(m) = sql::get(conn, lock_token)? else {
        return Ok(false);
    };
    sql::delete(conn, m.seq)?;
    record(conn, &m, FeedbackStatus::Success, now)?;
    Ok(true)
}

/// Returns the identity's delivered-but-uncompleted messages to the queue, for when its
/// session ends: the next session gets them again with DUP set.
///
/// # Errors
/// Storage errors.
pub fn release(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<usize, C2dError> {
    Ok(sql::unlock_all(conn, device_id, module_id.unwrap_or(""))?)
}

/// Deletes every message waiting for the identity (`DELETE /devices/{id}/commands`);
/// records Purged feedback when asked for. Returns how many were removed.
///
/// # Errors
/// Storage errors.
pub fn purge(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    now: SystemTime,
) -> Result<usize, C2dError> {
    let messages = sql::list(conn, device_id, module_id.unwrap_or(""))?;
    for m in &messages {
        dead_letter(conn, m, FeedbackStatus::Purged, now)?;
    }
    Ok(messages.len())
}

/// Messages waiting for the identity (`cloudToDeviceMessageCount`), expired ones excluded.
///
/// # Errors
/// Storage errors.
pub fn queue_depth(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    now: SystemTime,
) -> Result<usize, C2dError> {
    let now_ms = unix_millis(now);
    let list = sql::list(conn, device_id, module_id.unwrap_or(""))?;
    Ok(list.iter().filter(|m| m.expiry_ms > now_ms).count())
}

/// Dead-letters every expired message of any identity (Expired feedback when asked for);
/// returns how many. [`enqueue`] and [`next_deliveries`] do this too, so a periodic call is
/// only needed to make feedback timely for idle devices.
///
/// # Errors
/// Storage errors.
pub fn expire_due(conn: &Connection, now: SystemTime) -> Result<usize, C2dError> {
    let expired = sql::list_expired(conn, unix_millis(now))?;
    for m in &expired {
        dead_letter(conn, m, FeedbackStatus::Expired, now)?;
    }
    Ok(expired.len())
}

/// Removes and returns up to `max` feedback records, oldest first (the service's feedback
/// receiver; IoT Hub batches up to 64).
///
/// # Errors
/// Storage errors.
pub fn take_feedback(conn: &Connection, max: usize) -> Result<Vec<FeedbackRecord>, C2dError> {
    Ok(sql::take_feedback(conn, max)?
        .into_iter()
        .map(|f| FeedbackRecord {
            original_message_id: f.original_message_id,
            device_id: f.device_id,
            module_id: (!f.module_id.is_empty()).then_some(f.module_id),
            status_code: f.status_code,
            description: f.description,
            enqueued_time: crate::timestamp::from_unix_millis(f.enqueued_ms),
        })
        .collect())
}

/// Puts taken feedback records back (a feedback receiver released them: peek-lock). They
/// go behind the records recorded since, which a receiver reads next.
///
/// # Errors
/// Storage errors.
pub fn return_feedback(
    conn: &Connection,
    records: &[FeedbackRecord],
    now: SystemTime,
) -> Result<(), C2dError> {
    for r in records {
        sql::insert_feedback(
            conn,
            &StoredFeedback {
                id: 0,
                original_message_id: r.original_message_id.clone(),
                device_id: r.device_id.clone(),
                module_id: r.module_id.clone().unwrap_or_default(),
                enqueued_ms: unix_millis(r.enqueued_time),
                status_code: r.status_code.clone(),
                description: r.description.clone(),
                recorded_ms: unix_millis(now),
            },
        )?;
    }
    Ok(())
}

fn dead_letter(
    conn: &Connection,
    m: &StoredMessage,
    status: FeedbackStatus,
    now: SystemTime,
) -> Result<(), C2dError> {
    sql::delete(conn, m.seq)?;
    record(conn, m, status, now)
}

fn record(
    conn: &Connection,
    m: &StoredMessage,
    status: FeedbackStatus,
    now: SystemTime,
) -> Result<(), C2dError> {
    let ack = AckMode::parse(&m.ack).unwrap_or_default();
    if ack.wants(status) {
        sql::insert_feedback(
            conn,
            &StoredFeedback {
                id: 0,
                original_message_id: m.message_id.clone(),
                device_id: m.device_id.clone(),
                module_id: m.module_id.clone(),
                enqueued_ms: m.enqueued_ms,
                status_code: status.as_str().to_owned(),
                description: status.description().to_owned(),
                recorded_ms: unix_millis(now),
            },
        )?;
    }
    Ok(())
}

/// The delivery of a stored message that was just locked (its stored count is the count
/// before this delivery).
fn delivery(m: &StoredMessage) -> Result<C2dDelivery, C2dError> {
    let properties: Vec<(String, String)> =
        serde_json::from_str(&m.properties).map_err(|_| C2dError::Corrupt)?;
    let module_id = (!m.module_id.is_empty()).then(|| m.module_id.clone());
    let to = match &module_id {
        Some(module) => format!(
            "/devices/{}/modules/{module}/messages/devicebound",
            m.device_id
        ),
        None => format!("/devices/{}/messages/devicebound", m.device_id),
    };
    Ok(C2dDelivery {
        lock_token: m.seq,
        redelivery: m.delivery_count > 0,
        message: C2dMessage {
            device_id: m.device_id.clone(),
            module_id,
            message_id: m.message_id.clone(),
            to,
            content_encoding: m.content_encoding.clone(),
            content_type: m.content_type.clone(),
            correlation_id: m.correlation_id.clone(),
            user_id: m.user_id.clone(),
            ack: AckMode::parse(&m.ack).unwrap_or_default(),
            properties,
            body: bytes::Bytes::from(m.body.clone()),
            enqueued_ms: m.enqueued_ms,
            expiry_ms: m.expiry_ms,
            delivery_count: m.delivery_count + 1,
        },
    })
}

fn message_size(m: &OutgoingMessage) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    m.body.len()
        + m.properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + opt(&m.message_id)
        + opt(&m.correlation_id)
        + opt(&m.user_id)
        + opt(&m.content_type)
        + opt(&m.content_encoding)
}

#[cfg(test)]
mod tests;
