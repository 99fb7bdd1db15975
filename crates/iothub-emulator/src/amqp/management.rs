//! The `$management` node of the Event Hub-compatible endpoint: event hub and partition
//! metadata (docs/amqp.md "$management").
//!
//! Same request/reply pattern as `$cbs`. A request carries application properties
//! `operation` = `READ`, `type` (`com.microsoft:eventhub` or `com.microsoft:partition`),
//! `name` (the event hub), `partition` for a partition, and sometimes `security_token` and
//! `locales`, which are not needed here. The reply's body is an amqp-value map with string
//! keys; `status-code` 200 and `status-description` `OK` go in its application properties.
//!
//! Value types are the ones the clients decode: azure-eventhub (pyamqp) reads every string
//! value with `.decode("utf-8")`, divides `created_at` and `last_enqueued_time_utc` by 1000
//! (timestamps in ms), and iterates `partition_ids` (an array of strings; the .NET client
//! casts it to `string[]`, which a list would not satisfy).

use fe2o3_amqp::types::messaging::{AmqpValue, Message, MessageId};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, Timestamp, Value};

use super::values::{status_reply, text_property};

/// `type` of an event hub metadata request.
pub const EVENTHUB_TYPE: &str = "com.microsoft:eventhub";

/// `type` of a partition metadata request.
pub const PARTITION_TYPE: &str = "com.microsoft:partition";

/// A metadata request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagementRequest {
    /// `com.microsoft:eventhub`: name, creation time, partition ids.
    EventHub {
        /// `name`: the event hub asked about.
        name: String,
    },
    /// `com.microsoft:partition`: one partition's sequence numbers and offsets.
    Partition {
        /// `name`: the event hub.
        name: String,
        /// `partition`: the partition id.
        partition: String,
    },
}

/// Why a `$management` request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// A required application property is absent.
    #[error("$management request without the {0} application property")]
    MissingProperty(&'static str),
    /// An application property is not a string.
    #[error("the {0} application property of a $management request must be a string")]
    NotAString(&'static str),
    /// `operation` is not `READ`.
    #[error("unsupported $management operation {0:?} (only READ)")]
    UnsupportedOperation(String),
    /// `type` is neither an event hub nor a partition.
    #[error("unsupported $management type {0:?}")]
    UnsupportedType(String),
}

impl ManagementError {
    /// The status code to answer with (400: the request is malformed).
    #[must_use]
    pub fn status(&self) -> i32 {
        400
    }
}

/// What [`eventhub_reply`] describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHubProperties {
    /// The event hub's name.
    pub name: String,
    /// When it was created, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Its partition ids, in order (`"0"`, `"1"`, …).
    pub partition_ids: Vec<String>,
}

/// What [`partition_reply`] describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProperties {
    /// The event hub's name.
    pub name: String,
    /// The partition id.
    pub partition: String,
    /// Sequence number of the oldest retained event.
    pub begin_sequence_number: i64,
    /// Sequence number of the newest event (-1 when none was ever enqueued).
    pub last_enqueued_sequence_number: i64,
    /// Offset of the newest event, as `x-opt-offset` carries it (`"-1"` when none).
    pub last_enqueued_offset: String,
    /// When the newest event was enqueued, ms since the Unix epoch (0 when none).
    pub last_enqueued_time_ms: i64,
    /// Whether no event is retained.
    pub is_partition_empty: bool,
}

/// Parses a `$management` request (its body is not read).
///
/// # Errors
/// [`ManagementError`] naming the missing or unsupported part.
///
/// # Example
/// ```
/// use fe2o3_amqp::types::messaging::{ApplicationProperties, Message};
/// use fe2o3_amqp::types::primitives::Value;
/// use iothub_emulator::amqp::management::{parse_management_request, ManagementRequest};
/// let request = Message::builder()
///     .application_properties(
///         ApplicationProperties::builder()
///             .insert("operation", "READ")
///             .insert("type", "com.microsoft:partition")
///             .insert("name", "iothub-ehub-h")
///             .insert("partition", "1")
///             .build(),
///     )
///     .body(Value::Null)
///     .build();
/// assert_eq!(
///     parse_management_request(&request),
///     Ok(ManagementRequest::Partition { name: "iothub-ehub-h".into(), partition: "1".into() })
/// );
/// ```
pub fn parse_management_request<B>(msg: &Message<B>) -> Result<ManagementRequest, ManagementError> {
    let application = msg.application_properties.as_ref();
    let text = |key: &'static str| -> Result<&str, ManagementError> {
        text_property(application, key)
            .map_err(|()| ManagementError::NotAString(key))?
            .ok_or(ManagementError::MissingProperty(key))
    };
    let operation = text("operation")?;
    // The SDKs send `READ`; case is not significant to the service.
    if !operation.eq_ignore_ascii_case("READ") {
        return Err(ManagementError::UnsupportedOperation(operation.to_owned()));
    }
    let kind = text("type")?;
    let name = text("name")?.to_owned();
    if kind == EVENTHUB_TYPE {
        Ok(ManagementRequest::EventHub { name })
    } else if kind == PARTITION_TYPE {
        Ok(ManagementRequest::Partition {
            name,
            partition: text("partition")?.to_owned(),
        })
    } else {
        Err(ManagementError::UnsupportedType(kind.to_owned()))
    }
}

/// The request's `message-id`, for the reply's `correlation-id`.
#[must_use]
pub fn correlation_of<B>(msg: &Message<B>) -> Option<MessageId> {
    msg.properties.as_ref().and_then(|p| p.message_id.clone())
}

/// The reply to an event hub request: status 200 and the map `name` (string), `created_at`
/// (timestamp), `partition_ids` (array of strings), `partition_count` (int), `type`
/// (`com.microsoft:eventhub`).
///
/// # Example
/// ```
/// use iothub_emulator::amqp::management::{eventhub_reply, EventHubProperties};
/// let reply = eventhub_reply(None, &EventHubProperties {
///     name: "iothub-ehub-h".into(),
///     created_at_ms: 1_700_000_000_000,
///     partition_ids: vec!["0".into(), "1".into()],
/// });
/// assert!(reply.application_properties.is_some());
/// ```
#[must_use]
pub fn eventhub_reply(
    correlation: Option<MessageId>,
    properties: &EventHubProperties,
) -> Message<AmqpValue<Value>> {
    let ids: Array<Value> = properties
        .partition_ids
        .iter()
        .map(|id| Value::String(id.clone()))
        .collect();
    let count = i32::try_from(properties.partition_ids.len()).unwrap_or(i32::MAX);
    let map = string_map([
        ("name", Value::String(properties.name.clone())),
        (
            "created_at",
            Value::Timestamp(Timestamp::from_milliseconds(properties.created_at_ms)),
        ),
        ("partition_ids", Value::Array(ids)),
        ("partition_count", Value::Int(count)),
        ("type", Value::String(EVENTHUB_TYPE.to_owned())),
    ]);
    status_reply(correlation, 200, "OK", map)
}

/// The reply to a partition request: status 200 and the map `name`, `partition` (strings),
/// `begin_sequence_number`, `last_enqueued_sequence_number` (longs), `last_enqueued_offset`
/// (string), `last_enqueued_time_utc` (timestamp), `is_partition_empty` (bool), `type`
/// (`com.microsoft:partition`).
#[must_use]
pub fn partition_reply(
    correlation: Option<MessageId>,
    properties: &PartitionProperties,
) -> Message<AmqpValue<Value>> {
    let map = string_map([
        ("name", Value::String(properties.name.clone())),
        ("partition", Value::String(properties.partition.clone())),
        (
            "begin_sequence_number",
            Value::Long(properties.begin_sequence_number),
        ),
        (
            "last_enqueued_sequence_number",
            Value::Long(properties.last_enqueued_sequence_number),
        ),
        (
            "last_enqueued_offset",
            Value::String(properties.last_enqueued_offset.clone()),
        ),
        (
            "last_enqueued_time_utc",
            Value::Timestamp(Timestamp::from_milliseconds(
                properties.last_enqueued_time_ms,
            )),
        ),
        (
            "is_partition_empty",
            Value::Bool(properties.is_partition_empty),
        ),
        ("type", Value::String(PARTITION_TYPE.to_owned())),
    ]);
    status_reply(correlation, 200, "OK", map)
}

/// A refusal on `$management`: `status` (e.g. 400 malformed, 401 unauthorized, 404 unknown
/// event hub or partition) and its description, no body.
#[must_use]
pub fn error_reply(
    correlation: Option<MessageId>,
    status: i32,
    description: &str,
) -> Message<AmqpValue<Value>> {
    status_reply(correlation, status, description, Value::Null)
}

/// A map with string keys, in the given order.
fn string_map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let map: OrderedMap<Value, Value> = entries
        .into_iter()
        .map(|(k, v)| (Value::String(k.to_owned()), v))
        .collect();
    Value::Map(map)
}

#[cfg(test)]
mod tests;
