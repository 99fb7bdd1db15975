//! Device twin topics (docs/protocol.md §6).

use core::fmt;

use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;

use super::{
    Malformed, TopicError, parse_decimal, parse_status, query_of, raw_param, request_id,
    segment_then_query, write_response,
};
use crate::request_id::RequestId;
use crate::status::Status;
use crate::text::Decimal;

const GET_PREFIX: &str = "$iothub/twin/GET/";
const REPORTED_PREFIX: &str = "$iothub/twin/PATCH/properties/reported/";
const DESIRED_PREFIX: &str = "$iothub/twin/PATCH/properties/desired/";
const RESPONSE_PREFIX: &str = "$iothub/twin/res/";

/// `$iothub/twin/GET/?$rid={rid}`: ask for the whole twin (any body; Python sends `" "`).
///
/// ```
/// use iothub_proto::RequestId;
/// use iothub_proto::topic::TwinGetTopic;
///
/// assert_eq!(TwinGetTopic::new(RequestId::Number(1)).to_string(), "$iothub/twin/GET/?$rid=1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinGetTopic<'a> {
    request_id: RequestId<'a>,
}

impl<'a> TwinGetTopic<'a> {
    /// A GET with request id `request_id`.
    pub const fn new(request_id: RequestId<'a>) -> Self {
        Self { request_id }
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
    /// use iothub_proto::topic::TwinGetTopic;
    ///
    /// let topic = TwinGetTopic::new(RequestId::Number(1));
    /// let mut buf = [0u8; 64];
    /// let len = topic.encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"$iothub/twin/GET/?$rid=1");
    /// assert_eq!(topic.encode_to(&mut buf[..5]), Err(iothub_proto::BufferTooSmall { required: len }));
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl fmt::Display for TwinGetTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for TwinGetTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_request(out, GET_PREFIX, self.request_id);
    }
}

/// Writes `{prefix}?$rid={rid}`, the shape of both twin requests.
fn write_request(out: &mut dyn Sink, prefix: &str, request_id: RequestId<'_>) {
    out.put(prefix);
    out.put("?$rid=");
    request_id.write_to(out);
}

/// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`: publish a reported-properties patch.
///
/// ```
/// use iothub_proto::RequestId;
/// use iothub_proto::topic::ReportedPatchTopic;
///
/// assert_eq!(
///     ReportedPatchTopic::new(RequestId::new("id_one")).to_string(),
///     "$iothub/twin/PATCH/properties/reported/?$rid=id_one"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedPatchTopic<'a> {
    request_id: RequestId<'a>,
}

impl<'a> ReportedPatchTopic<'a> {
    /// A reported patch with request id `request_id`.
    pub const fn new(request_id: RequestId<'a>) -> Self {
        Self { request_id }
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
    /// use iothub_proto::topic::ReportedPatchTopic;
    ///
    /// let topic = ReportedPatchTopic::new(RequestId::Number(0));
    /// let mut buf = [0u8; 64];
    /// let len = topic.encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"$iothub/twin/PATCH/properties/reported/?$rid=0");
    /// assert_eq!(topic.encode_to(&mut buf[..9]), Err(iothub_proto::BufferTooSmall { required: len }));
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl fmt::Display for ReportedPatchTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for ReportedPatchTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_request(out, REPORTED_PREFIX, self.request_id);
    }
}

/// A twin GET or reported patch as received by the hub.
///
/// ```
/// use iothub_proto::topic::TwinRequest;
///
/// let get = TwinRequest::parse_get("$iothub/twin/GET/?$rid=0f8fad5b")?;
/// assert_eq!(get.request_id().as_str(), Some("0f8fad5b"));
/// let patch = TwinRequest::parse_reported_patch("$iothub/twin/PATCH/properties/reported/?$rid=4")?;
/// assert_eq!(patch.request_id().as_number(), Some(4));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinRequest<'a> {
    pub(super) request_id: RequestId<'a>,
}

impl<'a> TwinRequest<'a> {
    /// Parses a twin GET topic.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] when the query is
    /// missing or has no `$rid`.
    pub fn parse_get(topic: &'a str) -> Result<Self, TopicError> {
        Self::parse_with(topic, GET_PREFIX)
    }

    /// Parses a reported-patch topic.
    ///
    /// # Errors
    ///
    /// As for [`Self::parse_get`].
    pub fn parse_reported_patch(topic: &'a str) -> Result<Self, TopicError> {
        Self::parse_with(topic, REPORTED_PREFIX)
    }

    fn parse_with(topic: &'a str, prefix: &str) -> Result<Self, TopicError> {
        let query = topic.strip_prefix(prefix).ok_or(TopicError::Unrecognized)?;
        Ok(Self {
            request_id: request_id(query_of(query)?)?,
        })
    }

    /// The request id to echo in the response.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }
}

/// `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`: the hub's answer (hub side).
///
/// ```
/// use iothub_proto::topic::TwinResponseTopic;
/// use iothub_proto::{RequestId, Status};
///
/// let topic = TwinResponseTopic::new(Status::NO_CONTENT, RequestId::new("0")).version(2);
/// assert_eq!(topic.to_string(), "$iothub/twin/res/204/?$rid=0&$version=2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinResponseTopic<'a> {
    status: Status,
    request_id: RequestId<'a>,
    version: Option<u64>,
}

impl<'a> TwinResponseTopic<'a> {
    /// A response with `status` to request `request_id`.
    pub const fn new(status: Status, request_id: RequestId<'a>) -> Self {
        Self {
            status,
            request_id,
            version: None,
        }
    }

    /// Adds `$version` (the new reported version after a successful patch).
    pub const fn version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl fmt::Display for TwinResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for TwinResponseTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_response(out, RESPONSE_PREFIX, self.status, self.request_id);
        if let Some(version) = self.version {
            out.put("&$version=");
            Decimal(version).write_to(out);
        }
    }
}

/// A twin response as received by the device.
///
/// ```
/// use iothub_proto::topic::TwinResponse;
/// use iothub_proto::{RequestId, Status};
///
/// // docs/protocol.md §6, real trace
/// let response = TwinResponse::parse("$iothub/twin/res/204/?$rid=0&$version=2")?;
/// assert_eq!(response.status(), Status::NO_CONTENT);
/// assert_eq!(response.request_id(), RequestId::Number(0));
/// assert_eq!(response.version(), Some(2));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinResponse<'a> {
    status: Status,
    request_id: RequestId<'a>,
    version: Option<u64>,
}

impl<'a> TwinResponse<'a> {
    /// Parses `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] for a bad status, a
    /// missing `$rid` or a non-numeric `$version`.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(RESPONSE_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        let (status, query) = segment_then_query(rest)?;
        let status = parse_status(status)?;
        let request_id = request_id(query)?;
        let version = match raw_param(query, "$version") {
            Some(v) => Some(parse_decimal(v).ok_or(Malformed::InvalidVersion)?),
            None => None,
        };
        Ok(Self {
            status,
            request_id,
            version,
        })
    }

    /// The status: 200 for GET, 204 for a patch, 4xx/5xx for errors.
    pub const fn status(&self) -> Status {
        self.status
    }

    /// The request id this answers.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }

    /// The new reported `$version` after a successful patch.
    pub const fn version(&self) -> Option<u64> {
        self.version
    }
}

/// `$iothub/twin/PATCH/properties/desired/?$version={v}`: a desired patch (hub side).
///
/// ```
/// use iothub_proto::topic::DesiredPatchTopic;
///
/// assert_eq!(DesiredPatchTopic::new(3).to_string(), "$iothub/twin/PATCH/properties/desired/?$version=3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredPatchTopic {
    version: u64,
}

impl DesiredPatchTopic {
    /// A patch bringing desired properties to `version`.
    pub const fn new(version: u64) -> Self {
        Self { version }
    }
}

impl fmt::Display for DesiredPatchTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DESIRED_PREFIX)?;
        f.write_str("?$version=")?;
        fmt::Display::fmt(&Decimal(self.version), f)
    }
}

/// A desired-properties patch notification as received by the device.
///
/// ```
/// use iothub_proto::topic::DesiredPatch;
///
/// let patch = DesiredPatch::parse("$iothub/twin/PATCH/properties/desired/?$version=3")?;
/// assert_eq!(patch.version(), 3);
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DesiredPatch {
    pub(super) version: u64,
}

impl DesiredPatch {
    /// Parses `$iothub/twin/PATCH/properties/desired/?$version={v}`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] when `$version` is
    /// missing or not a number.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let query = topic
            .strip_prefix(DESIRED_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        let version = raw_param(query_of(query)?, "$version").ok_or(Malformed::MissingVersion)?;
        Ok(Self {
            version: parse_decimal(version).ok_or(Malformed::InvalidVersion)?,
        })
    }

    /// The desired `$version` after this patch; ignore patches not newer than a GET's.
    pub const fn version(&self) -> u64 {
        self.version
    }
}
