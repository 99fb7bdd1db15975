//! Device Provisioning Service topics (docs/protocol.md §9).

use core::fmt;

use super::{
    Malformed, TopicError, parse_decimal, parse_status, query_of, raw_param, request_id,
    segment_then_query, write_response,
};
use crate::encode::{Sink, WriteTo};
use crate::properties::PropertyBag;
use crate::request_id::RequestId;
use crate::status::Status;
use crate::text::Decimal;

const REGISTER_PREFIX: &str = "$dps/registrations/PUT/iotdps-register/";
const POLL_PREFIX: &str = "$dps/registrations/GET/iotdps-get-operationstatus/";
const RESPONSE_PREFIX: &str = "$dps/registrations/res/";

/// `$dps/registrations/PUT/iotdps-register/?$rid={rid}`: start a registration.
///
/// ```
/// use iothub_proto::RequestId;
/// use iothub_proto::topic::DpsRegisterTopic;
///
/// assert_eq!(
///     DpsRegisterTopic::new(RequestId::Number(1)).to_string(),
///     "$dps/registrations/PUT/iotdps-register/?$rid=1"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsRegisterTopic<'a> {
    request_id: RequestId<'a>,
}

impl<'a> DpsRegisterTopic<'a> {
    /// A registration request with id `request_id`.
    pub const fn new(request_id: RequestId<'a>) -> Self {
        Self { request_id }
    }
}

impl fmt::Display for DpsRegisterTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REGISTER_PREFIX)?;
        f.write_str("?$rid=")?;
        self.request_id.write_plain(f)
    }
}

/// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`: poll.
///
/// The operation id is written as received (azure-sdk-for-c does the same).
///
/// ```
/// use iothub_proto::RequestId;
/// use iothub_proto::topic::DpsPollTopic;
///
/// assert_eq!(
///     DpsPollTopic::new(RequestId::Number(2), "4.d0a671905ea5b2c8.e7173b7b").to_string(),
///     "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.d0a671905ea5b2c8.e7173b7b"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsPollTopic<'a> {
    request_id: RequestId<'a>,
    operation_id: &'a str,
}

impl<'a> DpsPollTopic<'a> {
    /// A status query for `operation_id` with request id `request_id`.
    pub const fn new(request_id: RequestId<'a>, operation_id: &'a str) -> Self {
        Self {
            request_id,
            operation_id,
        }
    }
}

impl fmt::Display for DpsPollTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(POLL_PREFIX)?;
        f.write_str("?$rid=")?;
        self.request_id.write_plain(f)?;
        f.write_str("&operationId=")?;
        f.write_str(self.operation_id)
    }
}

/// A registration request as received by DPS (or the emulator).
///
/// ```
/// use iothub_proto::topic::DpsRegister;
///
/// let register = DpsRegister::parse("$dps/registrations/PUT/iotdps-register/?$rid=1")?;
/// assert_eq!(register.request_id().as_number(), Some(1));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsRegister<'a> {
    pub(super) request_id: RequestId<'a>,
}

impl<'a> DpsRegister<'a> {
    /// Parses `$dps/registrations/PUT/iotdps-register/?$rid={rid}`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] without `$rid`.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let query = topic
            .strip_prefix(REGISTER_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        Ok(Self {
            request_id: request_id(query_of(query)?)?,
        })
    }

    /// The request id to echo.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }
}

/// An operation-status poll as received by DPS (or the emulator).
///
/// ```
/// use iothub_proto::topic::DpsPoll;
///
/// let poll = DpsPoll::parse("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc")?;
/// assert_eq!(poll.request_id().as_number(), Some(2));
/// assert_eq!(poll.operation_id(), "4.abc");
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsPoll<'a> {
    request_id: RequestId<'a>,
    operation_id: &'a str,
}

impl<'a> DpsPoll<'a> {
    /// Parses `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] without `$rid` or
    /// `operationId`.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let query = topic
            .strip_prefix(POLL_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        let query = query_of(query)?;
        let request_id = request_id(query)?;
        let operation_id = raw_param(query, "operationId").filter(|id| !id.is_empty());
        Ok(Self {
            request_id,
            operation_id: operation_id.ok_or(Malformed::MissingOperationId)?,
        })
    }

    /// The request id to echo.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }

    /// The operation id, as received.
    pub const fn operation_id(&self) -> &'a str {
        self.operation_id
    }
}

/// `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`: DPS's answer (hub side).
///
/// ```
/// use iothub_proto::topic::DpsResponseTopic;
/// use iothub_proto::{RequestId, Status};
///
/// let topic = DpsResponseTopic::new(Status::ACCEPTED, RequestId::Number(1)).retry_after(3);
/// assert_eq!(topic.to_string(), "$dps/registrations/res/202/?$rid=1&retry-after=3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsResponseTopic<'a> {
    status: Status,
    request_id: RequestId<'a>,
    retry_after: Option<u32>,
}

impl<'a> DpsResponseTopic<'a> {
    /// A response with `status` to `request_id`.
    pub const fn new(status: Status, request_id: RequestId<'a>) -> Self {
        Self {
            status,
            request_id,
            retry_after: None,
        }
    }

    /// Asks the device to wait `seconds` before polling (or retrying).
    pub const fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl fmt::Display for DpsResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for DpsResponseTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_response(out, RESPONSE_PREFIX, self.status, self.request_id);
        if let Some(seconds) = self.retry_after {
            out.put("&retry-after=");
            Decimal(u64::from(seconds)).write_to(out);
        }
    }
}

/// A DPS response as received by the device.
///
/// ```
/// use iothub_proto::topic::DpsResponse;
/// use iothub_proto::{RequestId, Status};
///
/// let response = DpsResponse::parse("$dps/registrations/res/202/?$rid=1&retry-after=3")?;
/// assert_eq!(response.status(), Status::ACCEPTED);
/// assert_eq!(response.request_id(), RequestId::Number(1));
/// assert_eq!(response.retry_after(), Some(3));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpsResponse<'a> {
    status: Status,
    request_id: RequestId<'a>,
    retry_after: Option<u32>,
    query: PropertyBag<'a>,
}

impl<'a> DpsResponse<'a> {
    /// Parses `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]…`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for another topic; [`Malformed`] for a bad status, a
    /// missing `$rid` or a non-numeric `retry-after`.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(RESPONSE_PREFIX)
            .ok_or(TopicError::Unrecognized)?;
        let (status, query) = segment_then_query(rest)?;
        let status = parse_status(status)?;
        let request_id = request_id(query)?;
        let retry_after = match raw_param(query, "retry-after") {
            Some(s) => Some(
                parse_decimal(s)
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or(Malformed::InvalidRetryAfter)?,
            ),
            None => None,
        };
        Ok(Self {
            status,
            request_id,
            retry_after,
            query,
        })
    }

    /// The status: 202 in progress, 200 done, 4xx/5xx errors.
    pub const fn status(&self) -> Status {
        self.status
    }

    /// The request id this answers.
    pub const fn request_id(&self) -> RequestId<'a> {
        self.request_id
    }

    /// Seconds to wait before polling or retrying, when DPS says.
    pub const fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    /// The whole query, for parameters not modelled here.
    pub const fn query(&self) -> PropertyBag<'a> {
        self.query
    }
}
