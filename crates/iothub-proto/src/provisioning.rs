//! DPS registration over MQTT as a sans-IO state machine (docs/protocol.md §9), feature `json`.
//!
//! [`Registration`] owns no socket, clock or allocator. The caller connects to DPS with the
//! DPS username and SAS password (docs/protocol.md §9), subscribes to
//! [`DPS_RESPONSE_FILTER`](crate::topic::DPS_RESPONSE_FILTER), and then drives the machine
//! with the quinn-proto vocabulary:
//!
//! 1. [`Registration::start`] once, at `now`;
//! 2. publish everything [`Registration::poll_transmit`] yields (QoS 1);
//! 3. feed every received publish to [`Registration::handle_publish`];
//! 4. wake at [`Registration::poll_timeout`] and call [`Registration::handle_timeout`];
//! 5. after each call, check [`Registration::poll_event`] for the outcome.
//!
//! The service flow: register, receive `202` with an `operationId` and `retry-after`, poll
//! after that many seconds (3 s when absent) until `200` with status `assigned`, `failed` or
//! `disabled`. 429 and 5xx answers are retried with backoff (never sooner than `retry-after`);
//! a request without an answer within the response timeout is sent again; the whole
//! registration gives up at its overall timeout.

use core::fmt::{self, Write};
use core::time::Duration;

use crate::encode::{encode_into, encoded_len};
use crate::error::BufferTooSmall;
use crate::json::{DpsBody, JsonError, JsonText, RegistrationStatus};
use crate::pnp::JsonString;
use crate::request_id::RequestId;
use crate::retry::Backoff;
use crate::status::Status;
use crate::time::Instant;
use crate::topic::{DpsPollTopic, DpsRegisterTopic, DpsResponse, TopicError};

/// A DPS registration in progress; see the [module docs](self) for the call order.
///
/// ```
/// use core::time::Duration;
/// use iothub_proto::provisioning::{Registration, RegistrationEvent};
/// use iothub_proto::Instant;
///
/// let mut reg = Registration::new("paho-sample-device1", Some(r#"{"modelId":"dtmi:com:example:Thermostat;1"}"#));
/// let mut buf = [0u8; 256];
/// let t0 = Instant::from_millis(0);
/// reg.start(t0);
///
/// let tx = reg.poll_transmit(&mut buf)?.expect("register request");
/// assert_eq!(tx.topic, "$dps/registrations/PUT/iotdps-register/?$rid=0");
/// assert_eq!(
///     tx.payload,
///     br#"{"registrationId":"paho-sample-device1","payload":{"modelId":"dtmi:com:example:Thermostat;1"}}"#
/// );
///
/// // 202: assigning, poll again after retry-after
/// reg.handle_publish(
///     "$dps/registrations/res/202/?$rid=0&retry-after=3",
///     br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b","status":"assigning"}"#,
///     t0,
/// )?;
/// assert_eq!(reg.poll_transmit(&mut buf)?, None);
/// let wake = reg.poll_timeout().unwrap();
/// assert_eq!(wake, t0 + Duration::from_secs(3));
/// reg.handle_timeout(wake);
/// let tx = reg.poll_transmit(&mut buf)?.expect("poll request");
/// assert_eq!(
///     tx.topic,
///     "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId=4.d0a671905ea5b2c8.e7173b7b"
/// );
///
/// // 200: assigned
/// reg.handle_publish(
///     "$dps/registrations/res/200/?$rid=1",
///     br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b","status":"assigned",
///          "registrationState":{"assignedHub":"contoso.azure-devices.net","deviceId":"paho-sample-device1","status":"assigned"}}"#,
///     wake,
/// )?;
/// assert_eq!(
///     reg.poll_event(),
///     Some(RegistrationEvent::Assigned { assigned_hub: "contoso.azure-devices.net", device_id: "paho-sample-device1" })
/// );
/// assert_eq!(reg.poll_timeout(), None);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    registration_id: &'a str,
    payload: Option<&'a str>,
    settings: Settings,
    /// The next request id; advanced only when a request is actually written.
    next_request_id: u32,
    state: State,
    /// Retriable failures (429, 5xx, no answer) since the last progress.
    attempt: u32,
    deadline: Option<Instant>,
    operation_id: FixedText<OPERATION_ID_CAPACITY>,
    assigned_hub: FixedText<HUB_CAPACITY>,
    device_id: FixedText<DEVICE_ID_CAPACITY>,
    message: FixedText<MESSAGE_CAPACITY>,
    outcome: Option<Outcome>,
    outcome_reported: bool,
}

/// One MQTT publish to make, written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'b> {
    /// The topic to publish on.
    pub topic: &'b str,
    /// The payload (JSON for a register request, empty for a poll).
    pub payload: &'b [u8],
}

/// The outcome of a registration, reported once by [`Registration::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationEvent<'r> {
    /// The device is assigned: connect to `assigned_hub` as `device_id` (docs/protocol.md §9).
    Assigned {
        /// Host name of the IoT hub, e.g. `contoso.azure-devices.net`.
        assigned_hub: &'r str,
        /// Device id to use there.
        device_id: &'r str,
    },
    /// The enrollment is disabled.
    Disabled,
    /// DPS refused or failed the registration, or retries ran out.
    Failed {
        /// The response status (from the topic).
        status: Status,
        /// The DPS error code, e.g. `401002`, when the body has one.
        error_code: Option<u32>,
        /// The error message from the body, possibly truncated; may be empty.
        message: &'r str,
    },
    /// No outcome within the overall timeout.
    TimedOut,
}

/// Why a received publish could not be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The body of the DPS response is not the documented JSON; the request will be retried
    /// after the response timeout.
    Json(JsonError),
    /// The topic looks like a DPS response but is malformed.
    Topic(TopicError),
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(_) => f.write_str("invalid dps response body"),
            Self::Topic(_) => f.write_str("invalid dps response topic"),
        }
    }
}

impl core::error::Error for RegistrationError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            Self::Topic(e) => Some(e),
        }
    }
}

impl<'a> Registration<'a> {
    /// Default wait before polling when DPS sends no `retry-after` (azure-sdk-for-c uses 3 s).
    pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(3);
    /// Default wait for an answer before sending a request again.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default limit for the whole registration.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default number of retries after 429, 5xx or a missing answer.
    pub const DEFAULT_MAX_RETRIES: u32 = 8;

    /// A registration for `registration_id`, with an optional custom payload written verbatim
    /// as the JSON value of `"payload"` (e.g. `{"modelId":"dtmi:…"}`, docs/protocol.md §8).
    pub fn new(registration_id: &'a str, payload: Option<&'a str>) -> Self {
        Self {
            registration_id,
            payload,
            settings: Settings {
                default_retry_after: Self::DEFAULT_RETRY_AFTER,
                response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
                timeout: Self::DEFAULT_TIMEOUT,
                max_retries: Self::DEFAULT_MAX_RETRIES,
                backoff: Backoff::new(Self::DEFAULT_RETRY_AFTER, Duration::from_secs(60)),
            },
            next_request_id: 0,
            state: State::Idle,
            attempt: 0,
            deadline: None,
            operation_id: FixedText::new(),
            assigned_hub: FixedText::new(),
            device_id: FixedText::new(),
            message: FixedText::new(),
            outcome: None,
            outcome_reported: false,
        }
    }

    /// Sets the wait before polling when DPS sends no `retry-after`.
    pub fn default_retry_after(mut self, wait: Duration) -> Self {
        self.settings.default_retry_after = wait;
        self
    }

    /// Sets how long to wait for an answer before sending a request again.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.settings.response_timeout = timeout;
        self
    }

    /// Sets the limit for the whole registration, counted from [`Self::start`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Sets how many retriable failures in a row are tolerated.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.settings.max_retries = retries;
        self
    }

    /// Sets the backoff for 429 / 5xx retries (jitter is not applied: the core has no RNG).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// Starts the registration: the register request becomes ready to transmit.
    /// Calling it again restarts from scratch.
    pub fn start(&mut self, now: Instant) {
        // Request ids keep counting so that answers to a previous run are ignored.
        *self = Self {
            settings: self.settings,
            next_request_id: self.next_request_id,
            ..Self::new(self.registration_id, self.payload)
        };
        self.deadline = Some(now + self.settings.timeout);
        self.state = State::Ready {
            request: Request::Register,
            since: now,
        };
    }

    /// The next publish to make, if any, written into `buf`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] when topic and payload do not fit; the publish stays pending.
    pub fn poll_transmit<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Transmit<'b>>, BufferTooSmall> {
        let State::Ready { request, since } = self.state else {
            return Ok(None);
        };
        let number = self.next_request_id;
        let request_id = RequestId::Number(number);
        let (topic, payload) = match request {
            Request::Register => {
                let body = RegisterBody {
                    registration_id: self.registration_id,
                    payload: self.payload,
                };
                write_pair(buf, &DpsRegisterTopic::new(request_id), &body)?
            }
            Request::Poll => write_pair(
                buf,
                &DpsPollTopic::new(request_id, self.operation_id.as_str()),
                &format_args!(""),
            )?,
        };
        self.next_request_id = number.wrapping_add(1);
        self.state = State::Awaiting {
            request,
            request_id: number,
            deadline: since + self.settings.response_timeout,
        };
        Ok(Some(Transmit { topic, payload }))
    }

    /// Handles a publish received on the DPS connection.
    ///
    /// Returns `Ok(false)` for a publish that is not a DPS response or answers no request
    /// in flight (a stale or duplicate answer), `Ok(true)` when it was consumed.
    ///
    /// # Errors
    ///
    /// [`RegistrationError::Topic`] for a malformed DPS response topic and
    /// [`RegistrationError::Json`] for an unreadable body; either way the request in flight
    /// is retried after the response timeout.
    pub fn handle_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: Instant,
    ) -> Result<bool, RegistrationError> {
        let response = match DpsResponse::parse(topic) {
            Ok(response) => response,
            Err(TopicError::Unrecognized) => return Ok(false),
            Err(e) => return Err(RegistrationError::Topic(e)),
        };
        let State::Awaiting {
            request,
            request_id,
            ..
        } = self.state
        else {
            return Ok(false);
        };
        if response.request_id() != RequestId::Number(request_id) {
            return Ok(false);
        }
        let status = response.status();
        // Error answers may come with bodies we cannot read; only a success needs its body.
        let body = match DpsBody::parse(payload) {
            Ok(body) => body,
            Err(e) if status.is_success() => return Err(RegistrationError::Json(e)),
            Err(_) => DpsBody::default(),
        };
        let retry_after = response
            .retry_after()
            .map(|s| Duration::from_secs(u64::from(s)));
        if status.is_retriable() {
            self.retry(request, status, &body, retry_after, now);
        } else if status.is_success() {
            self.progress(status, &body, retry_after, now);
        } else {
            self.fail(status, &body, None);
        }
        Ok(true)
    }

    /// Acts on the clock: sends the next poll or retry when due, re-sends an unanswered
    /// request, and gives up at the overall timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            self.finish(Outcome::TimedOut);
            return;
        }
        match self.state {
            State::Waiting { request, at } if now >= at => {
                self.state = State::Ready {
                    request,
                    since: now,
                }
            }
            State::Awaiting {
                request, deadline, ..
            } if now >= deadline => {
                self.attempt += 1;
                if self.attempt > self.settings.max_retries {
                    self.finish(Outcome::TimedOut);
                } else {
                    self.state = State::Ready {
                        request,
                        since: now,
                    };
                }
            }
            _ => {}
        }
    }

    /// When [`Self::handle_timeout`] should next be called; `None` once finished or before start.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        let step = match self.state {
            State::Waiting { at, .. } => Some(at),
            State::Awaiting { deadline, .. } => Some(deadline),
            State::Idle | State::Ready { .. } | State::Done => None,
        };
        match (step, self.deadline) {
            (Some(step), Some(deadline)) => Some(step.min(deadline)),
            (step, deadline) => step.or(deadline),
        }
    }

    /// The outcome, returned once when the registration finishes.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent<'_>> {
        if self.outcome_reported {
            return None;
        }
        self.outcome?;
        self.outcome_reported = true;
        self.outcome()
    }

    /// The outcome once finished (unlike [`Self::poll_event`], available repeatedly).
    pub fn outcome(&self) -> Option<RegistrationEvent<'_>> {
        Some(match self.outcome? {
            Outcome::Assigned => RegistrationEvent::Assigned {
                assigned_hub: self.assigned_hub.as_str(),
                device_id: self.device_id.as_str(),
            },
            Outcome::Disabled => RegistrationEvent::Disabled,
            Outcome::Failed { status, error_code } => RegistrationEvent::Failed {
                status,
                error_code,
                message: self.message.as_str(),
            },
            Outcome::TimedOut => RegistrationEvent::TimedOut,
        })
    }

    /// The operation id DPS assigned, once known.
    pub fn operation_id(&self) -> Option<&str> {
        Some(self.operation_id.as_str()).filter(|id| !id.is_empty())
    }

    fn retry(
        &mut self,
        request: Request,
        status: Status,
        body: &DpsBody<'_>,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        if self.attempt >= self.settings.max_retries {
            self.fail(status, body, None);
            return;
        }
        let wait = self
            .settings
            .backoff
            .delay_with_retry_after(self.attempt, 0, retry_after);
        self.attempt += 1;
        self.state = State::Waiting {
            request,
            at: now + wait,
        };
    }

    fn progress(
        &mut self,
        status: Status,
        body: &DpsBody<'_>,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        match body.status {
            Some(RegistrationStatus::Assigned) => {
                let (Some(hub), Some(device_id)) =
                    (non_empty(body.assigned_hub), non_empty(body.device_id))
                else {
                    return self.fail(
                        status,
                        body,
                        Some("assigned without assignedHub or deviceId"),
                    );
                };
                if self.assigned_hub.set(hub).is_err() || self.device_id.set(device_id).is_err() {
                    return self.fail(status, body, Some("assignedHub or deviceId too long"));
                }
                self.finish(Outcome::Assigned);
            }
            Some(RegistrationStatus::Disabled) => self.finish(Outcome::Disabled),
            Some(RegistrationStatus::Failed) => self.fail(status, body, None),
            Some(RegistrationStatus::Assigning | RegistrationStatus::Unassigned) | None
                if status == Status::ACCEPTED || body.status.is_some() =>
            {
                let stored = body.operation_id.map(|id| self.operation_id.set(id));
                if stored.is_some_and(|s| s.is_err())
                    || !is_plain_query_value(self.operation_id.as_str())
                {
                    self.operation_id.clear();
                    return self.fail(status, body, Some("unusable operationId"));
                }
                if self.operation_id.as_str().is_empty() {
                    return self.fail(status, body, Some("no operationId to poll"));
                }
                self.attempt = 0;
                let wait = retry_after.unwrap_or(self.settings.default_retry_after);
                self.state = State::Waiting {
                    request: Request::Poll,
                    at: now + wait,
                };
            }
            _ => self.fail(status, body, Some("unexpected registration status")),
        }
    }

    fn fail(&mut self, status: Status, body: &DpsBody<'_>, fallback: Option<&str>) {
        self.message.clear();
        // Writing into `FixedText` truncates instead of failing.
        let _ = match (body.message, fallback) {
            (_, Some(text)) => self.message.write_str(text),
            (Some(message), None) => write!(self.message, "{message}"),
            (None, None) => Ok(()),
        };
        self.finish(Outcome::Failed {
            status,
            error_code: body.error_code,
        });
    }

    fn finish(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
        self.state = State::Done;
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    default_retry_after: Duration,
    response_timeout: Duration,
    timeout: Duration,
    max_retries: u32,
    backoff: Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Register,
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// A request is ready for `poll_transmit`; its answer is due `response_timeout` after `since`.
    Ready {
        request: Request,
        since: Instant,
    },
    Awaiting {
        request: Request,
        request_id: u32,
        deadline: Instant,
    },
    Waiting {
        request: Request,
        at: Instant,
    },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Assigned,
    Disabled,
    Failed {
        status: Status,
        error_code: Option<u32>,
    },
    TimedOut,
}

/// `{"registrationId":"…"[,"payload":…]}` (docs/protocol.md §9).
struct RegisterBody<'a> {
    registration_id: &'a str,
    payload: Option<&'a str>,
}

impl fmt::Display for RegisterBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{\"registrationId\":")?;
        fmt::Display::fmt(&JsonString(self.registration_id), f)?;
        if let Some(payload) = self.payload {
            f.write_str(",\"payload\":")?;
            f.write_str(payload)?;
        }
        f.write_str("}")
    }
}

/// Writes `topic` then `payload` into `buf`, or reports the total length needed.
fn write_pair<'b>(
    buf: &'b mut [u8],
    topic: &impl fmt::Display,
    payload: &impl fmt::Display,
) -> Result<(&'b str, &'b [u8]), BufferTooSmall> {
    let topic_len = encoded_len(topic);
    let required = topic_len + encoded_len(payload);
    if buf.len() < required {
        return Err(BufferTooSmall { required });
    }
    let (topic_buf, payload_buf) = buf.split_at_mut(topic_len);
    let topic = encode_into(topic, topic_buf)?;
    let payload = encode_into(payload, payload_buf)?;
    Ok((topic, payload.as_bytes()))
}

fn non_empty(text: Option<JsonText<'_>>) -> Option<JsonText<'_>> {
    text.filter(|t| !t.raw().is_empty())
}

/// An operation id goes into a query unescaped (as azure-sdk-for-c does), so it must not
/// carry query syntax.
fn is_plain_query_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Byte-wise (no char decoding): `& = # + / ?`, C0 controls and DEL are single bytes, and
    // the C1 controls U+0080..U+009F are `C2 80`..`C2 9F` in UTF-8 (`char::is_control`).
    !bytes.iter().enumerate().any(|(at, &byte)| {
        matches!(
            byte,
            b'&' | b'=' | b'#' | b'+' | b'/' | b'?' | 0x00..=0x1f | 0x7f
        ) || (byte == 0xc2 && matches!(bytes.get(at + 1), Some(0x80..=0x9f)))
    })
}

const OPERATION_ID_CAPACITY: usize = 128;
const HUB_CAPACITY: usize = 256;
const DEVICE_ID_CAPACITY: usize = 128;
const MESSAGE_CAPACITY: usize = 128;

/// Inline storage for a short string taken from a response body.
#[derive(Debug, Clone, Copy)]
struct FixedText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedText<N> {
    const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // invariant: only whole UTF-8 text is ever stored (see `set` and `push_truncated`).
        crate::text::utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Stores the unescaped `text`, or fails (leaving it empty) when it does not fit.
    fn set(&mut self, text: JsonText<'_>) -> Result<(), JsonError> {
        self.len = 0;
        let len = text.unescape_into(&mut self.buf)?.len();
        self.len = len;
        Ok(())
    }

    /// Appends as much of `text` as fits, cutting at a character boundary.
    fn push_truncated(&mut self, text: &str) {
        let room = N - self.len;
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.buf[self.len..self.len + end].copy_from_slice(&text.as_bytes()[..end]);
        self.len += end;
    }
}

/// Appends as much as fits, so long messages are cut rather than lost.
impl<const N: usize> fmt::Write for FixedText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_truncated(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
