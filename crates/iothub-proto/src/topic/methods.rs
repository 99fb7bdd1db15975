//! Direct-method topics (docs/protocol.md §7).

use core::fmt;

use super::{Malformed, TopicError, parse_status, request_id, segment_then_query, write_response};
use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;
use crate::request_id::RequestId;
use crate::status::Status;

const REQUEST_PREFIX: &str = "$iothub/methods/POST/";
const RESPONSE_PREFIX: &str = "$iothub/methods/res/";

/// `$iothub/methods/POST/{name}/?$rid={rid}`: a method call (hub side).
///
/// ```
/// use iothub_proto::RequestId;
/// use iothub_proto::topic::MethodRequestTopic;
///
/// let topic = MethodRequestTopic::new("component_one*TestMethod", RequestId::Number(1));
/// assert_eq!(topic.to_string(), "$iothub/methods/POST/component_one*TestMethod/?$rid=1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodRequestTopic<'a> {
    name: &'a str,
    request_id: RequestId<'a>,
}

impl<'a> MethodRequestTopic<'a> {
    /// A call of method `name` (written as is: method names exclude `/ ? = &`).
    pub const fn new(name: &'a str, request_id: RequestId<'a>) -> Self {
        Self { name, request_id }
    }
}

impl fmt::Display for MethodRequestTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REQUEST_PREFIX)?;
        f.write_str(self.name)?;
        f.write_str("/?$rid=")?;
        self.request_id.write_plain(f)
    }
}

/// A method call as received by the device.
///
/// ```
/// use iothub_proto::topic::MethodRequest;
///
/// let request = MethodRequest::parse("$iothub/methods/POST/getMaxMinReport/?$rid=1a")?;
/// assert_eq!(request.name(), "getMaxMinReport");
/// assert_eq!(request.request_id().as_str(), Some("1a"));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodRequest<'a> {
    name: &'a str,
    request_id: RequestId<'a>,
}

impl<'a> MethodRequest<'a> {
    /// Parses `$iothub/methods/POST/{name}/?$rid={rid}`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] for an empty name or
    /// a missing `$rid`.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(REQUEST_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        let (name, query) = segment_then_query(rest)?;
        if name.is_empty() {
            return Err(Malformed::EmptySegment.into());
        }
        Ok(Self {
            name,
            request_id: request_id(query)?,
        })
    }

    /// The method name, possibly `{component}*{command}` (see [`crate::pnp::CommandName`]).
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The opaque request id to echo in the response.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }
}

/// `$iothub/methods/res/{status}/?$rid={rid}`: the device's answer to a method call.
///
/// ```
/// use iothub_proto::topic::MethodResponseTopic;
/// use iothub_proto::{RequestId, Status};
///
/// let topic = MethodResponseTopic::new(RequestId::new("1a"), Status::OK);
/// assert_eq!(topic.to_string(), "$iothub/methods/res/200/?$rid=1a");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodResponseTopic<'a> {
    request_id: RequestId<'a>,
    status: Status,
}

impl<'a> MethodResponseTopic<'a> {
    /// An answer with `status` (any integer the device chooses) to `request_id`.
    pub fn new(request_id: RequestId<'a>, status: impl Into<Status>) -> Self {
        Self {
            request_id,
            status: status.into(),
        }
    }

    /// Writes the topic into `buf` without `core::fmt` and returns its length in bytes (the
    /// same text as [`Display`](fmt::Display)).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::RequestId;
    /// use iothub_proto::topic::MethodResponseTopic;
    ///
    /// let topic = MethodResponseTopic::new(RequestId::new("1a"), 200);
    /// let mut buf = [0u8; 64];
    /// let len = topic.encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"$iothub/methods/res/200/?$rid=1a");
    /// assert_eq!(topic.encode_to(&mut buf[..7]), Err(iothub_proto::BufferTooSmall { required: len }));
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl fmt::Display for MethodResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for MethodResponseTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_response(out, RESPONSE_PREFIX, self.status, self.request_id);
    }
}

/// A method response as received by the hub.
///
/// ```
/// use iothub_proto::topic::MethodResponse;
///
/// let response = MethodResponse::parse("$iothub/methods/res/65535/?$rid=7")?;
/// assert_eq!(response.status().code(), 65535);
/// assert_eq!(response.request_id().as_number(), Some(7));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodResponse<'a> {
    status: Status,
    request_id: RequestId<'a>,
}

impl<'a> MethodResponse<'a> {
    /// Parses `$iothub/methods/res/{status}/?$rid={rid}`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] for a bad status or a
    /// missing `$rid`.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(RESPONSE_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        let (status, query) = segment_then_query(rest)?;
        Ok(Self {
            status: parse_status(status)?,
            request_id: request_id(query)?,
        })
    }

    /// The status the device chose.
    pub const fn status(&self) -> Status {
        self.status
    }

    /// The request id of the call this answers.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }
}
