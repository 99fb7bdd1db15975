//! The sans-IO MQTT 3.1.1 session: every delivery guarantee of the client lives here.
//!
//! The session never touches a socket or a clock. The driver feeds it packets and the current
//! time (`handle_packet(…, now)`, `handle_timeout(now)`), asks it what to write
//! (`poll_transmit(now)`), what happened (`poll_event()`) and when to wake it again
//! (`poll_timeout()`). This is the quinn-proto shape (sans-IO), and it is why the
//! reliability rules below are tested deterministically, without sleeps.
//!
//! Call order for one connection:
//! 1. [`Session::start_connection`] queues CONNECT.
//! 2. Drain [`Session::poll_transmit`] onto the wire after every call that can queue packets.
//! 3. Feed every decoded packet to [`Session::handle_packet`]; call
//!    [`Session::handle_timeout`] when [`Session::poll_timeout`] is reached.
//! 4. On any transport failure call [`Session::handle_connection_lost`] and start again at 1.
//!
//! Guarantees (each proven in `tests/it/reliability.rs`):
//! - an outgoing QoS 1 publish is reported [`SessionEvent::Delivered`] only after its PUBACK;
//! - un-acknowledged publishes are sent again, same packet id with DUP set, after every
//!   reconnect (MQTT 3.1.1 §4.4), before anything new;
//! - subscriptions are restored after every CONNACK and nothing is published until the SUBACK
//!   arrived, so twin responses cannot be missed;
//! - incoming QoS 1 publishes are PUBACKed only after the application acknowledged them, and
//!   strictly in arrival order (docs/protocol.md §1.5: "PUBACKs to the server must be in order");
//! - a silent link is detected by a missing PINGRESP, and a hub that stops acknowledging is
//!   detected by the oldest in-flight publish exceeding the acknowledgement timeout.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Login, Packet, PubAck, Publish, Subscribe,
    SubscribeFilter, SubscribeReasonCode,
};

use crate::{ConnectRefusal, DisconnectReason, ProtocolError, Request};

#[cfg(test)]
mod tests;
mod wire;

pub(crate) use wire::encode_disconnect;

/// Identifies one outgoing publish for its whole life, across reconnects.
pub(crate) type PublishId = u64;

/// Timing and capacity knobs of a session.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    /// MQTT keep-alive sent in CONNECT; a PINGREQ goes out after this much send silence.
    pub(crate) keep_alive: Duration,
    /// How long to wait for a PINGRESP (and for a CONNACK) before declaring the link dead.
    pub(crate) response_timeout: Duration,
    /// How long the oldest in-flight publish may wait for its PUBACK before the link is
    /// declared dead and everything is re-sent on a new connection.
    pub(crate) ack_timeout: Duration,
    /// Maximum un-acknowledged QoS 1 publishes on the wire at once.
    pub(crate) max_inflight: usize,
    /// Maximum publishes held (queued plus in flight); more are refused.
    pub(crate) capacity: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(60),
            response_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(60),
            max_inflight: 64,
            capacity: 1000,
        }
    }
}

/// One publish the application asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutgoingPublish {
    /// Caller-chosen identity, reported back in [`SessionEvent::Delivered`].
    pub(crate) id: PublishId,
    /// Full MQTT topic.
    pub(crate) topic: String,
    /// Body.
    pub(crate) payload: Bytes,
    /// QoS 0 is "delivered" once written; QoS 1 once PUBACKed.
    pub(crate) qos: Qos,
}

/// The delivery guarantee of an outgoing publish (IoT Hub supports no QoS 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qos {
    /// QoS 0: written once, never re-sent.
    AtMostOnce,
    /// QoS 1: re-sent until PUBACKed.
    AtLeastOnce,
}

impl Qos {
    fn mqtt(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce => QoS::AtLeastOnce,
        }
    }
}

/// What one CONNECT carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectRequest {
    /// MQTT client id.
    pub(crate) client_id: String,
    /// MQTT user name.
    pub(crate) username: String,
    /// MQTT password (a SAS token); `None` sends an empty one (X.509).
    pub(crate) password: Option<String>,
    /// Clean session: `false` keeps C2D queued and subscriptions across connections.
    pub(crate) clean_session: bool,
}

/// Proof that the application took an incoming QoS 1 publish; give it back to
/// [`Session::ack`] to release the PUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckToken {
    generation: u64,
    pkid: u16,
}

/// Why the session gave up on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LostReason {
    /// The oldest in-flight publish was not acknowledged within the acknowledgement timeout.
    AckTimeout,
    /// No CONNACK within the response timeout.
    ConnAckTimeout,
    /// No PINGRESP within the response timeout.
    PingTimeout,
    /// The server sent something a 3.1.1 server must not send to a client.
    ProtocolViolation,
}

/// What the session tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionEvent {
    /// CONNACK accepted.
    Connected {
        /// The server kept our session (MQTT 3.1.1 §3.2.2.2).
        session_present: bool,
    },
    /// CONNACK refused with this code; the driver must close the transport and back off.
    Refused(ConnectRefusal),
    /// The publish with this id is done: PUBACKed (QoS 1) or written (QoS 0).
    Delivered(PublishId),
    /// A publish from the server. With `ack`, the PUBACK waits for [`Session::ack`].
    Publish {
        /// Its topic.
        topic: String,
        /// Its body.
        payload: Bytes,
        /// Present for QoS 1.
        ack: Option<AckToken>,
    },
    /// The server refused this subscription filter in its SUBACK.
    SubscribeRefused(String),
    /// All subscriptions of this connection are acknowledged.
    Subscribed,
    /// The driver must drop the transport and reconnect.
    ConnectionLost(LostReason),
}

/// Refusal of [`Session::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    /// The configured capacity.
    pub(crate) capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    AwaitingConnAck { deadline: Instant },
    Connected,
}

#[derive(Debug)]
struct Entry {
    publish: OutgoingPublish,
    /// Assigned on first transmission and kept across reconnects (DUP re-send).
    pkid: Option<u16>,
    sent_at: Option<Instant>,
    /// Written at least once, on any connection: a re-send carries DUP.
    written: bool,
}

#[derive(Debug)]
struct IncomingAck {
    pkid: u16,
    released: bool,
}

/// The sans-IO session (see the module docs for the call order).
#[derive(Debug)]
pub(crate) struct Session {
    config: SessionConfig,
    state: State,
    /// Bumped on every connection; stale [`AckToken`]s are ignored.
    generation: u64,
    /// Not yet written on this connection, oldest first. Re-sends go to the front.
    queue: VecDeque<Entry>,
    /// Written and awaiting PUBACK, in send order.
    inflight: VecDeque<Entry>,
    incoming: VecDeque<IncomingAck>,
    subscriptions: Vec<String>,
    /// SUBSCRIBEs awaiting their SUBACK (packet id, filters); publishing waits for them.
    pending_suback: Vec<(u16, Vec<String>)>,
    transmit: VecDeque<Packet>,
    events: VecDeque<SessionEvent>,
    next_pkid: u16,
    last_transmit: Option<Instant>,
    ping_deadline: Option<Instant>,
    /// Send nothing new on this connection (it is about to be closed on purpose).
    draining: bool,
}

impl Session {
    /// A disconnected session.
    pub(crate) fn new(config: SessionConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            generation: 0,
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            incoming: VecDeque::new(),
            subscriptions: Vec::new(),
            pending_suback: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            next_pkid: 0,
            last_transmit: None,
            ping_deadline: None,
            draining: false,
        }
    }

    /// Begins a connection: queues the CONNECT of `request`, with our keep-alive.
    pub(crate) fn start_connection(&mut self, request: ConnectRequest, now: Instant) {
        self.reset_connection();
        self.generation += 1;
        let mut connect = Connect::new(request.client_id);
        connect.clean_session = request.clean_session;
        connect.login = Some(Login::new(
            request.username,
            request.password.unwrap_or_default(),
        ));
        connect.keep_alive = u16::try_from(self.config.keep_alive.as_secs()).unwrap_or(u16::MAX);
        self.transmit.push_back(Packet::Connect(connect));
        self.state = State::AwaitingConnAck {
            deadline: now + self.config.response_timeout,
        };
    }

    /// The transport failed or was closed: everything in flight will be re-sent.
    pub(crate) fn handle_connection_lost(&mut self) {
        self.reset_connection();
    }

    /// Queues a publish. Refused when `capacity` publishes are already held.
    pub(crate) fn publish(&mut self, publish: OutgoingPublish) -> Result<(), Full> {
        if self.len() >= self.config.capacity {
            return Err(Full {
                capacity: self.config.capacity,
            });
        }
        self.queue.push_back(Entry {
            publish,
            pkid: None,
            sent_at: None,
            written: false,
        });
        self.flush();
        Ok(())
    }

    /// Queues a publish recovered from the durable outbox, ignoring the capacity: it was
    /// accepted by an earlier process and must not be dropped.
    pub(crate) fn restore(&mut self, publish: OutgoingPublish) {
        self.queue.push_back(Entry {
            publish,
            pkid: None,
            sent_at: None,
            written: false,
        });
    }

    /// Withdraws a publish that is not yet on the wire (a request that timed out).
    /// Returns `false` if it was already sent or unknown.
    pub(crate) fn cancel(&mut self, id: PublishId) -> bool {
        match self.queue.iter().position(|e| e.publish.id == id) {
            Some(i) if self.queue[i].pkid.is_none() => {
                self.queue.remove(i);
                true
            }
            _ => false,
        }
    }

    /// Adds a subscription, kept for every future connection.
    pub(crate) fn subscribe(&mut self, filter: &str) {
        if self.subscriptions.iter().any(|f| f == filter) {
            return;
        }
        self.subscriptions.push(filter.to_owned());
        if self.state == State::Connected {
            let pkid = self.allocate_pkid();
            let subscribe = Subscribe {
                pkid,
                filters: vec![SubscribeFilter::new(filter.to_owned(), QoS::AtLeastOnce)],
            };
            self.transmit.push_back(Packet::Subscribe(subscribe));
            self.pending_suback.push((pkid, vec![filter.to_owned()]));
        }
    }

    /// The application took the publish behind `token`: release its PUBACK (and any later
    /// ones already released), keeping arrival order.
    pub(crate) fn ack(&mut self, token: AckToken) {
        if token.generation != self.generation || self.state != State::Connected {
            // The connection it arrived on is gone; the hub redelivers it (clean session 0).
            return;
        }
        if let Some(entry) = self.incoming.iter_mut().find(|a| a.pkid == token.pkid) {
            entry.released = true;
        }
        while self.incoming.front().is_some_and(|a| a.released) {
            if let Some(done) = self.incoming.pop_front() {
                self.transmit
                    .push_back(Packet::PubAck(PubAck::new(done.pkid)));
            }
        }
    }

    /// Feeds one packet read from the server.
    pub(crate) fn handle_packet(&mut self, packet: Packet, now: Instant) {
        match packet {
            Packet::ConnAck(connack) => self.handle_connack(connack, now),
            Packet::PubAck(ack) => {
                let acked = self.inflight.iter().position(|e| e.pkid == Some(ack.pkid));
                if let Some(entry) = acked.and_then(|i| self.inflight.remove(i)) {
                    self.events
                        .push_back(SessionEvent::Delivered(entry.publish.id));
                }
                self.flush();
            }
            Packet::Publish(publish) => self.handle_publish(publish),
            Packet::SubAck(suback) => {
                let Some(i) = self.pending_suback.iter().position(|p| p.0 == suback.pkid) else {
                    return;
                };
                let (_, filters) = self.pending_suback.remove(i);
                for (code, filter) in suback.return_codes.iter().zip(filters) {
                    if *code == SubscribeReasonCode::Failure {
                        self.events
                            .push_back(SessionEvent::SubscribeRefused(filter));
                    }
                }
                if self.pending_suback.is_empty() {
                    self.events.push_back(SessionEvent::Subscribed);
                    self.flush();
                }
            }
            Packet::PingResp => self.ping_deadline = None,
            Packet::UnsubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) | Packet::PubRel(_) => {
                // Never requested (we publish and subscribe at QoS <= 1): ignore rather than
                // fail; IoT Hub grants at most QoS 1 (docs/protocol.md §1.5).
            }
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::Disconnect => self.lose(LostReason::ProtocolViolation),
        }
    }

    /// Runs timers that are due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Idle => {}
            State::AwaitingConnAck { deadline } => {
                if now >= deadline {
                    self.lose(LostReason::ConnAckTimeout);
                }
            }
            State::Connected => {
                if self.ping_deadline.is_some_and(|d| now >= d) {
                    self.lose(LostReason::PingTimeout);
                    return;
                }
                if self.ack_deadline().is_some_and(|d| now >= d) {
                    self.lose(LostReason::AckTimeout);
                    return;
                }
                if self.ping_deadline.is_none() && self.ping_due().is_some_and(|d| now >= d) {
                    self.transmit.push_back(Packet::PingReq);
                    self.ping_deadline = Some(now + self.config.response_timeout);
                }
            }
        }
    }

    /// The next packet to write, if any. Writing counts as activity for keep-alive.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Packet> {
        let packet = self.transmit.pop_front()?;
        self.last_transmit = Some(now);
        if let Packet::Publish(p) = &packet
            && let Some(e) = self.inflight.iter_mut().find(|e| e.pkid == Some(p.pkid))
        {
            e.sent_at = Some(now);
            e.written = true;
        }
        Some(packet)
    }

    /// The next event for the driver, if any.
    pub(crate) fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle => None,
            State::AwaitingConnAck { deadline } => Some(deadline),
            State::Connected => [
                self.ping_deadline,
                self.ack_deadline(),
                if self.ping_deadline.is_none() {
                    self.ping_due()
                } else {
                    None
                },
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    /// Whether a CONNACK accepted the current connection.
    pub(crate) fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Publishes held: queued plus in flight.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }

    /// Stops putting new publishes on this connection, so the in-flight ones can be
    /// acknowledged before a planned disconnect (no duplicates from a token renewal).
    /// Undone by the next [`Session::start_connection`].
    pub(crate) fn drain(&mut self) {
        self.draining = true;
    }

    /// Nothing is waiting for a PUBACK on this connection.
    pub(crate) fn is_quiet(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Packets or events are waiting to be polled.
    pub(crate) fn has_transmit(&self) -> bool {
        !self.transmit.is_empty() || !self.events.is_empty()
    }

    /// Nothing left to deliver.
    pub(crate) fn is_drained(&self) -> bool {
        self.len() == 0
    }

    fn handle_connack(&mut self, connack: ConnAck, now: Instant) {
        if !matches!(self.state, State::AwaitingConnAck { .. }) {
            self.lose(LostReason::ProtocolViolation);
            return;
        }
        if let Some(refusal) = refusal(connack.code) {
            self.events.push_back(SessionEvent::Refused(refusal));
            self.reset_connection();
            return;
        }
        self.state = State::Connected;
        self.last_transmit = Some(now);
        self.events.push_back(SessionEvent::Connected {
            session_present: connack.session_present,
        });
        // Always re-subscribe: cheap, and correct whether or not the hub kept the session.
        if !self.subscriptions.is_empty() {
            let pkid = self.allocate_pkid();
            let filters = self
                .subscriptions
                .iter()
                .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
                .collect();
            self.transmit
                .push_back(Packet::Subscribe(Subscribe { pkid, filters }));
            self.pending_suback.push((pkid, self.subscriptions.clone()));
        }
        self.flush();
    }

    fn handle_publish(&mut self, publish: Publish) {
        match publish.qos {
            QoS::AtMostOnce => self.events.push_back(SessionEvent::Publish {
                topic: publish.topic,
                payload: publish.payload,
                ack: None,
            }),
            QoS::AtLeastOnce | QoS::ExactlyOnce => {
                // A DUP re-delivery of a publish the application still holds is dropped: it
                // is acknowledged when the first copy is.
                if self.incoming.iter().any(|a| a.pkid == publish.pkid) {
                    return;
                }
                self.incoming.push_back(IncomingAck {
                    pkid: publish.pkid,
                    released: false,
                });
                let ack = AckToken {
                    generation: self.generation,
                    pkid: publish.pkid,
                };
                self.events.push_back(SessionEvent::Publish {
                    topic: publish.topic,
                    payload: publish.payload,
                    ack: Some(ack),
                });
            }
        }
    }

    /// Moves queued publishes onto the wire while the in-flight window allows.
    fn flush(&mut self) {
        if self.state != State::Connected || !self.pending_suback.is_empty() || self.draining {
            return;
        }
        while self.inflight.len() < self.config.max_inflight {
            let Some(mut entry) = self.queue.pop_front() else {
                break;
            };
            let dup = entry.written;
            let mut publish = Publish::from_bytes(
                entry.publish.topic.clone(),
                entry.publish.qos.mqtt(),
                entry.publish.payload.clone(),
            );
            if entry.publish.qos != Qos::AtMostOnce {
                let pkid = match entry.pkid {
                    Some(pkid) => pkid,
                    None => self.allocate_pkid(),
                };
                entry.pkid = Some(pkid);
                publish.pkid = pkid;
                publish.dup = dup;
            }
            self.transmit.push_back(Packet::Publish(publish));
            if entry.publish.qos == Qos::AtMostOnce {
                // QoS 0 has no acknowledgement: done once handed to the transport.
                self.events
                    .push_back(SessionEvent::Delivered(entry.publish.id));
            } else {
                self.inflight.push_back(entry);
            }
        }
    }

    fn lose(&mut self, reason: LostReason) {
        self.events.push_back(SessionEvent::ConnectionLost(reason));
        self.reset_connection();
    }

    fn reset_connection(&mut self) {
        self.state = State::Idle;
        self.draining = false;
        self.transmit.clear();
        self.incoming.clear();
        self.pending_suback.clear();
        self.ping_deadline = None;
        // Un-acknowledged publishes go back to the front, oldest first, keeping their
        // packet ids so they are re-sent with DUP set (MQTT 3.1.1 §4.4). QoS 0 ones that
        // were never written are simply re-queued too.
        while let Some(mut entry) = self.inflight.pop_back() {
            entry.sent_at = None;
            self.queue.push_front(entry);
        }
    }

    fn ping_due(&self) -> Option<Instant> {
        if self.config.keep_alive.is_zero() {
            return None;
        }
        self.last_transmit.map(|t| t + self.config.keep_alive)
    }

    fn ack_deadline(&self) -> Option<Instant> {
        self.inflight
            .iter()
            .filter_map(|e| e.sent_at)
            .min()
            .map(|t| t + self.config.ack_timeout)
    }

    fn allocate_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid == 0 {
                continue;
            }
            let candidate = self.next_pkid;
            // Queued entries holding a packet id (re-queued after a disconnect) form a prefix
            // of the queue, so the scan stops at the first fresh entry.
            let requeued = self.queue.iter().take_while(|e| e.pkid.is_some());
            let used = self
                .inflight
                .iter()
                .chain(requeued)
                .any(|e| e.pkid == Some(candidate))
                || self.pending_suback.iter().any(|p| p.0 == candidate);
            if !used {
                return candidate;
            }
        }
    }
}

/// The refusal behind a CONNACK return code; `None` when the connection was accepted.
fn refusal(code: ConnectReturnCode) -> Option<ConnectRefusal> {
    Some(match code {
        ConnectReturnCode::Success => return None,
        ConnectReturnCode::RefusedProtocolVersion => ConnectRefusal::ProtocolVersion,
        ConnectReturnCode::BadClientId => ConnectRefusal::BadClientId,
        ConnectReturnCode::ServiceUnavailable => ConnectRefusal::ServerUnavailable,
        ConnectReturnCode::BadUserNamePassword => ConnectRefusal::BadCredentials,
        ConnectReturnCode::NotAuthorized => ConnectRefusal::NotAuthorized,
    })
}

impl From<LostReason> for DisconnectReason {
    fn from(reason: LostReason) -> Self {
        match reason {
            LostReason::AckTimeout => Self::Timeout(Request::Publish),
            LostReason::ConnAckTimeout => Self::Timeout(Request::Connect),
            LostReason::PingTimeout => Self::Timeout(Request::KeepAlive),
            LostReason::ProtocolViolation => Self::Protocol(ProtocolError::UnexpectedPacket),
        }
    }
}
