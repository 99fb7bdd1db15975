//! Direct methods: the hub-side invocation (`POST /twins/{id}[/modules/{mid}]/methods`)
//! correlated with the device's answer (docs/protocol.md §7).
//!
//! [`Methods`] is the sans-IO core: calls go in with `now`, request publishes come out as
//! [`Outbound`] values, device responses and timeouts turn into [`Completion`]s. Request ids
//! are generated per connection (`1`, `2`, …) and only a response on the same connection with
//! the same id completes a call; anything else is ignored. [`MethodInvoker`] is the thin async
//! wrapper the service layer awaits.
//!
//! Calling order for the glue: [`Methods::handle_subscribed`] when a connection subscribes to
//! `$iothub/methods/POST/#`, [`Methods::handle_disconnected`] when it closes,
//! [`Methods::handle_response`] for each `$iothub/methods/res/{status}/?$rid={rid}`, and
//! [`Methods::handle_timeout`] at [`Methods::poll_timeout`]; after each, publish every
//! [`Methods::poll_transmit`] at QoS 0 and hand out every [`Methods::poll_completion`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod invoker;

pub use invoker::MethodInvoker;

/// Identifies one live MQTT connection (assigned by the session layer; never reused while
/// calls may be pending on it).
pub type ConnectionId = u64;

/// Largest request or response payload (docs/protocol.md §7: 128 KB).
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// A validated invocation request.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCall {
    /// Method name (`{component}*{command}` for Plug and Play components).
    pub method_name: String,
    /// Serialized JSON payload sent to the device (`null` when none was given).
    pub payload: Vec<u8>,
    /// How long to wait for the device's answer once the request is sent (5–300 s).
    pub response_timeout: Duration,
    /// How long to wait for the device to be connected and subscribed (0–300 s).
    pub connect_timeout: Duration,
}

impl MethodCall {
    /// Parses the REST body `{"methodName":…,"payload":…,"responseTimeoutInSeconds":…,
    /// "connectTimeoutInSeconds":…}` with the documented defaults (30 s, 0 s) and ranges.
    ///
    /// # Errors
    /// [`MethodError::InvalidRequest`] for a missing or invalid name, a timeout out of range or
    /// a non-object body; [`MethodError::PayloadTooLarge`] above 128 KB.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use iothub_emulator::hub::methods::MethodCall;
    /// let call = MethodCall::from_json(&serde_json::json!({"methodName": "reboot", "payload": {"delay": 1}})).unwrap();
    /// assert_eq!(call.response_timeout, Duration::from_secs(30));
    /// assert_eq!(call.connect_timeout, Duration::ZERO);
    /// assert_eq!(call.payload, br#"{"delay":1}"#);
    /// ```
    pub fn from_json(body: &Value) -> Result<Self, MethodError> {
        let body = body
            .as_object()
            .ok_or(MethodError::InvalidRequest("body must be a JSON object"))?;
        let name = body
            .get("methodName")
            .and_then(Value::as_str)
            .ok_or(MethodError::InvalidRequest("methodName is required"))?;
        let payload = body.get("payload").cloned().unwrap_or(Value::Null);
        let response = seconds(body.get("responseTimeoutInSeconds"), 30, 5..=300)?;
        let connect = seconds(body.get("connectTimeoutInSeconds"), 0, 0..=300)?;
        Self::new(name, payload.to_string().into_bytes(), response, connect)
    }

    /// Builds a call from parts, checking the name, the timeouts and the payload size.
    ///
    /// # Errors
    /// As [`MethodCall::from_json`].
    pub fn new(
        method_name: &str,
        payload: Vec<u8>,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, MethodError> {
        if !is_valid_name(method_name) {
            return Err(MethodError::InvalidRequest("invalid methodName"));
        }
        if !(Duration::from_secs(5)..=Duration::from_secs(300)).contains(&response_timeout) {
            return Err(MethodError::InvalidRequest(
                "responseTimeoutInSeconds must be 5-300",
            ));
        }
        if connect_timeout > Duration::from_secs(300) {
            return Err(MethodError::InvalidRequest(
                "connectTimeoutInSeconds must be 0-300",
            ));
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(MethodError::PayloadTooLarge);
        }
        Ok(Self {
            method_name: method_name.to_owned(),
            payload,
            response_timeout,
            connect_timeout,
        })
    }
}

/// The device's answer: REST 200 with `{"status":…,"payload":…}`.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodResult {
    /// The status the device chose (any integer).
    pub status: i64,
    /// The device's JSON body (`null` when empty; a JSON string when the body was not JSON).
    pub payload: Value,
}

impl MethodResult {
    /// The REST response body `{"status":…,"payload":…}`.
    pub fn to_json(&self) -> Value {
        json!({ "status": self.status, "payload": self.payload })
    }
}

/// Why an invocation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    /// The caller stopped waiting (the invoking future was dropped).
    #[error("invocation cancelled")]
    Cancelled,
    /// The device was not connected and subscribed within `connectTimeoutInSeconds`
    /// (HTTP 404, error 404103 DeviceNotOnline).
    #[error("Timed out waiting for device to connect.")]
    DeviceNotOnline,
    /// The request was malformed (HTTP 400, error 400004 ArgumentInvalid).
    #[error("invalid method request: {0}")]
    InvalidRequest(&'static str),
    /// The request payload is over 128 KB (HTTP 413, error 413001).
    #[error("method payload exceeds 128 KB")]
    PayloadTooLarge,
    /// The device answered with more than 128 KB (reported as HTTP 400, error 400004;
    /// a choice, docs/protocol.md §14: what real hubs do is not documented).
    #[error("device response exceeds 128 KB")]
    ResponseTooLarge,
    /// The device did not answer within `responseTimeoutInSeconds` (HTTP 504, error 504101).
    #[error("Timed out waiting for the response from device.")]
    Timeout,
}

impl MethodError {
    /// The HTTP status and IoT Hub error code, e.g. `(504, 504101)`.
    pub fn status_and_code(&self) -> (u16, u32) {
        match self {
            Self::DeviceNotOnline => (404, 404_103),
            Self::Timeout => (504, 504_101),
            Self::PayloadTooLarge => (413, 413_001),
            Self::InvalidRequest(_) | Self::ResponseTooLarge => (400, 400_004),
            Self::Cancelled => (499, 499_000),
        }
    }
}

/// Handle for one invocation inside [`Methods`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(u64);

/// A request to send (fire and forget: QoS 0 on MQTT) on the given connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The connection to send it on.
    pub connection: ConnectionId,
    /// The method's name.
    pub method: String,
    /// The request id the device answers with.
    pub request_id: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// A finished invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Which call.
    pub call: CallId,
    /// Its outcome.
    pub result: Result<MethodResult, MethodError>,
}

/// The sans-IO direct-method correlator (see the module docs for the calling order).
#[derive(Debug, Default)]
pub struct Methods {
    next_call: u64,
    /// Connection subscribed to methods, per identity (device id, module id).
    subscribers: HashMap<Identity, ConnectionId>,
    /// Last request id used on each subscribed connection.
    request_ids: HashMap<ConnectionId, u64>,
    calls: HashMap<CallId, Pending>,
    by_request: HashMap<(ConnectionId, String), CallId>,
    transmits: VecDeque<Outbound>,
    completions: VecDeque<Completion>,
}

type Identity = (String, Option<String>);

#[derive(Debug)]
struct Pending {
    identity: Identity,
    call: MethodCall,
    deadline: Instant,
    /// Set once the request went out.
    sent: Option<(ConnectionId, String)>,
}

impl Methods {
    /// An empty correlator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts an invocation. If the identity has a subscribed connection the request is
    /// queued for [`Methods::poll_transmit`] at once; otherwise the call waits up to its
    /// connect timeout (failing immediately with 404103 when that is 0).
    pub fn invoke(
        &mut self,
        device_id: &str,
        module_id: Option<&str>,
        call: MethodCall,
        now: Instant,
    ) -> CallId {
        self.next_call += 1;
        let id = CallId(self.next_call);
        let identity = (device_id.to_owned(), module_id.map(str::to_owned));
        let connection = self.subscribers.get(&identity).copied();
        let pending = Pending {
            identity,
            deadline: now + call.connect_timeout,
            call,
            sent: None,
        };
        self.calls.insert(id, pending);
        match connection {
            Some(connection) => self.send(id, connection, now),
            None if self
                .calls
                .get(&id)
                .is_some_and(|p| p.call.connect_timeout.is_zero()) =>
            {
                self.finish(id, Err(MethodError::DeviceNotOnline));
            }
            None => {}
        }
        id
    }

    /// A connection subscribed to `$iothub/methods/POST/#` for this identity: calls waiting
    /// for it are sent now.
    pub fn handle_subscribed(
        &mut self,
        device_id: &str,
        module_id: Option<&str>,
        connection: ConnectionId,
        now: Instant,
    ) {
        let identity = (device_id.to_owned(), module_id.map(str::to_owned));
        let mut waiting: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, p)| p.sent.is_none() && p.identity == identity)
            .map(|(id, _)| *id)
            .collect();
        waiting.sort();
        self.subscribers.insert(identity, connection);
        for id in waiting {
            self.send(id, connection, now);
        }
    }

    /// A connection closed (or unsubscribed): new calls no longer go to it. Calls already
    /// sent on it keep waiting for their response timeout, as a device that vanished
    /// mid-call gives the caller a 504.
    pub fn handle_disconnected(&mut self, connection: ConnectionId) {
        self.subscribers.retain(|_, c| *c != connection);
        self.request_ids.remove(&connection);
    }

    /// A device answered on `$iothub/methods/res/{status}/?$rid={rid}`. Returns the call it
    /// completed, or `None` when the id is unknown on this connection (ignored).
    pub fn handle_response(
        &mut self,
        connection: ConnectionId,
        request_id: &str,
        status: i64,
        payload: &[u8],
    ) -> Option<CallId> {
        let id = self
            .by_request
            .remove(&(connection, request_id.to_owned()))?;
        let result = if payload.len() > MAX_PAYLOAD_BYTES {
            Err(MethodError::ResponseTooLarge)
        } else {
            Ok(MethodResult {
                status,
                payload: response_payload(payload),
            })
        };
        self.finish(id, result);
        Some(id)
    }

    /// The earliest deadline among pending calls.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls.values().map(|p| p.deadline).min()
    }

    /// Fails every call whose deadline has passed: 404103 if it was never sent, 504101 if the
    /// device did not answer.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<(CallId, bool)> = self
            .calls
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, p)| (*id, p.sent.is_some()))
            .collect();
        due.sort();
        for (id, sent) in due {
            let error = if sent {
                MethodError::Timeout
            } else {
                MethodError::DeviceNotOnline
            };
            self.finish(id, Err(error));
        }
    }

    /// Forgets a call whose caller stopped waiting; no completion is produced.
    pub fn cancel(&mut self, call: CallId) {
        if let Some(key) = self.calls.remove(&call).and_then(|p| p.sent) {
            self.by_request.remove(&key);
        }
    }

    /// The current deadline of a pending call (`None` once it completed).
    pub fn deadline(&self, call: CallId) -> Option<Instant> {
        self.calls.get(&call).map(|p| p.deadline)
    }

    /// The next request publish to make.
    pub fn poll_transmit(&mut self) -> Option<Outbound> {
        self.transmits.pop_front()
    }

    /// The next finished call.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    fn send(&mut self, id: CallId, connection: ConnectionId, now: Instant) {
        let Some(pending) = self.calls.get_mut(&id) else {
            return;
        };
        let counter = self.request_ids.entry(connection).or_insert(0);
        *counter += 1;
        let rid = counter.to_string();
        pending.deadline = now + pending.call.response_timeout;
        pending.sent = Some((connection, rid.clone()));
        self.by_request.insert((connection, rid.clone()), id);
        self.transmits.push_back(Outbound {
            connection,
            method: pending.call.method_name.clone(),
            request_id: rid,
            payload: pending.call.payload.clone(),
        });
    }

    fn finish(&mut self, id: CallId, result: Result<MethodResult, MethodError>) {
        if let Some(p) = self.calls.remove(&id) {
            if let Some(key) = p.sent {
                self.by_request.remove(&key);
            }
            self.completions.push_back(Completion { call: id, result });
        }
    }
}

fn response_payload(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn seconds(
    value: Option<&Value>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, MethodError> {
    let secs = match value {
        None | Some(Value::Null) => default,
        Some(v) => v.as_u64().ok_or(MethodError::InvalidRequest(
            "timeouts must be whole seconds",
        ))?,
    };
    if range.contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(MethodError::InvalidRequest("timeout out of range"))
    }
}

/// docs/protocol.md §7: US-ASCII printable alphanumerics, excluding
/// `$ ( ) < > @ , ; : \ " / [ ] ? = { } SP HT`.
fn is_valid_name(name: &str) -> bool {
    const EXCLUDED: &[u8] = b"$()<>@,;:\\\"/[]?={} \t";
    !name.is_empty()
        && name.len() <= 1024
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !EXCLUDED.contains(&b))
}

#[cfg(test)]
mod tests;
