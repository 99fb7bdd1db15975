//! The per-client MQTT session as a sans-IO state machine: packets and hub messages in,
//! [`Action`]s out, time passed in explicitly. The connection task (`connection.rs`) does all
//! I/O and the async work the actions ask for (authentication, durable appends, hub calls).
//! Outbound QoS 1 bookkeeping (packet ids, what each PUBACK completes) lives here too.
//!
//! Rules enforced here (docs/protocol.md §1.5-1.6, §4, §11):
//! - the first packet must be CONNECT, a second CONNECT closes, CONNECT must come within 30 s;
//! - a device may publish and subscribe only its own topics; anything else closes;
//! - PUBLISH with QoS 2 closes; SUBACK grants at most QoS 1; at most 5 subscriptions;
//! - keep-alive enforced at 1.5 x (cap 1767 s; 0 means the cap);
//! - D2C messages over 256 KB close the connection;
//! - the connection is closed when the SAS token expires.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use iothub_proto::percent::Decoded;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, Unsubscribe,
};

use super::topics::{self, Incoming, Publisher};
use crate::hub::{DeviceRequest, Interests, ToDevice};
use crate::store::sessions::StoredSubscription;

/// Time allowed between the transport being up and CONNECT (the MQTT 5 doc's 30 s; §1.5).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Server-side keep-alive cap: the Azure load-balancer idle timeout (§1.6).
pub(crate) const KEEP_ALIVE_CAP: Duration = Duration::from_secs(1767);
/// Maximum subscriptions per device (§1.5).
pub(crate) const MAX_SUBSCRIPTIONS: usize = 5;

/// Who the session belongs to after CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A device or module identity.
    Device {
        device_id: String,
        module_id: Option<String>,
    },
    /// A DPS registration (docs/protocol.md §9).
    Dps,
}

/// One subscription kept by the session (and across reconnects with clean session 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) filter: String,
    pub(crate) feeds: Interests,
    pub(crate) qos: QoS,
}

/// What the connection must do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Authenticate this CONNECT, then call [`Session::handle_auth`].
    Authenticate(Box<Connect>),
    /// Write a packet.
    Send(Packet),
    /// Append telemetry; if `ack` holds a packet id, send its PUBACK once the append is
    /// durable (in order with every other PUBACK).
    Telemetry {
        ack: Option<u16>,
        properties: String,
        body: bytes::Bytes,
        retain: bool,
    },
    /// Hand a request to the hub; if `ack` holds a packet id, send its PUBACK (in order).
    Request {
        ack: Option<u16>,
        request: DeviceRequest,
    },
    /// The device has C2D delivery `lock_token` (it acknowledged it, or it went out at QoS 0).
    C2dDelivered(i64),
    /// What the connection receives changed; `save` is the persistent session to store
    /// (clean session 0 only).
    Subscribed {
        interests: Interests,
        save: Option<Vec<StoredSubscription>>,
    },
    /// Close the connection; `will` says whether the Will message must be published.
    Close { reason: &'static str, will: bool },
}

/// The result of authentication, fed back through [`Session::handle_auth`].
#[derive(Debug)]
pub(crate) enum AuthResult {
    /// Accepted: who, whether a stored session exists (clean session 0), its subscriptions,
    /// and the token expiry as an instant.
    Accepted {
        principal: Principal,
        restored: Option<Vec<StoredSubscription>>,
        expires: Option<Instant>,
    },
    /// Refused with this CONNACK code.
    Refused(ConnectReturnCode),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    AwaitConnect,
    Authenticating,
    Connected,
    Closed,
}

/// The sans-IO session.
#[derive(Debug)]
pub(crate) struct Session {
    phase: Phase,
    keep_alive: Duration,
    idle_deadline: Instant,
    expires: Option<Instant>,
    principal: Option<Principal>,
    clean_session: bool,
    will: Option<LastWill>,
    subscriptions: Vec<Subscription>,
    /// Our QoS 1 publishes not yet acknowledged, by packet id, with their C2D lock tokens.
    in_flight: HashMap<u16, Option<i64>>,
    last_pkid: u16,
}

impl Session {
    /// A session whose transport just came up at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            phase: Phase::AwaitConnect,
            keep_alive: KEEP_ALIVE_CAP,
            idle_deadline: now + CONNECT_TIMEOUT,
            expires: None,
            principal: None,
            clean_session: true,
            will: None,
            subscriptions: Vec::new(),
            in_flight: HashMap::new(),
            last_pkid: 0,
        }
    }

    /// The Will message, taken (it is published at most once).
    pub(crate) fn take_will(&mut self) -> Option<LastWill> {
        self.will.take()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub(crate) fn poll_timeout(&self) -> Instant {
        match self.expires {
            Some(e) if e < self.idle_deadline => e,
            _ => self.idle_deadline,
        }
    }

    /// Keep-alive, CONNECT and token-expiry deadlines.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        if self.expires.is_some_and(|e| now >= e) {
            return self.close("token expired", true);
        }
        if now >= self.idle_deadline {
            let reason = if self.phase == Phase::AwaitConnect {
                "no CONNECT in time"
            } else {
                "keep-alive timeout"
            };
            return self.close(reason, true);
        }
        Vec::new()
    }

    /// One packet from the client.
    pub(crate) fn handle_packet(&mut self, packet: Packet, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Closed => return Vec::new(),
            Phase::AwaitConnect => {
                return match packet {
                    Packet::Connect(connect) => self.on_connect(connect),
                    _ => self.close("first packet is not CONNECT", false),
                };
            }
            // Pipelined packets before CONNACK are a protocol error for us (no client does it).
            Phase::Authenticating => return self.close("packet before CONNACK", false),
            Phase::Connected => {}
        }
        self.idle_deadline = now + self.keep_alive;
        match packet {
            Packet::Connect(_) => self.close("second CONNECT", true),
            Packet::Publish(publish) => self.on_publish(&publish),
            Packet::PubAck(ack) => self
                .in_flight
                .remove(&ack.pkid)
                .flatten()
                .map(Action::C2dDelivered)
                .into_iter()
                .collect(),
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe),
            Packet::PingReq => vec![Action::Send(Packet::PingResp)],
            Packet::Disconnect => {
                self.will = None;
                self.close("client disconnected", false)
            }
            // QoS 2 flows and server-to-client packet types are never valid from a device.
            _ => self.close("unexpected packet type", true),
        }
    }

    /// The outcome of [`Action::Authenticate`].
    pub(crate) fn handle_auth(&mut self, result: AuthResult, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Authenticating {
            return Vec::new();
        }
        match result {
            AuthResult::Refused(code) => {
                let mut out = vec![Action::Send(Packet::ConnAck(ConnAck::new(code, false)))];
                out.extend(self.close("CONNECT refused", false));
                out
            }
            AuthResult::Accepted {
                principal,
                restored,
                expires,
            } => {
                // DPS has no persistent sessions (§9); clean session 1 discards state (§1.5).
                let persistent =
                    !self.clean_session && matches!(principal, Principal::Device { .. });
                let session_present = persistent && restored.is_some();
                if persistent {
                    self.subscriptions = restore(&principal, restored.unwrap_or_default());
                }
                // A Will IoT Hub could not route is dropped, not fatal (UNCONFIRMED).
                if self.will.as_ref().is_some_and(|will| {
                    !topics::own_telemetry_topic(publisher(&principal), &will.topic)
                        || will.qos == QoS::ExactlyOnce
                }) {
                    self.will = None;
                }
                self.principal = Some(principal);
                self.expires = expires;
                self.phase = Phase::Connected;
                self.idle_deadline = now + self.keep_alive;
                let ack = ConnAck::new(ConnectReturnCode::Success, session_present);
                let mut out = vec![Action::Send(Packet::ConnAck(ack))];
                if !self.subscriptions.is_empty() {
                    out.push(self.subscribed(false));
                }
                out
            }
        }
    }

    /// A message from the hub: published if the subscriptions ask for it (at most at the
    /// granted QoS), or the close it asks for.
    pub(crate) fn handle_to_device(&mut self, message: ToDevice) -> Vec<Action> {
        if self.phase != Phase::Connected {
            return Vec::new();
        }
        if let ToDevice::Close(reason) = message {
            return self.close(reason.as_str(), false);
        }
        let Some(granted) = message.interest().and_then(|i| self.granted_qos(i)) else {
            return Vec::new();
        };
        let Some(out) = topics::outgoing(message) else {
            return Vec::new();
        };
        let qos = if out.qos == QoS::AtMostOnce || granted == QoS::AtMostOnce {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let mut publish = Publish::from_bytes(out.topic, qos, out.payload);
        let mut actions = Vec::with_capacity(2);
        if qos == QoS::AtLeastOnce {
            // DUP is only meaningful (and only allowed) at QoS 1 (MQTT 3.1.1 §3.3.1.1).
            publish.dup = out.redelivery;
            publish.pkid = self.next_pkid();
            self.in_flight.insert(publish.pkid, out.lock_token);
            actions.push(Action::Send(Packet::Publish(publish)));
        } else {
            actions.push(Action::Send(Packet::Publish(publish)));
            // At QoS 0 a C2D message is complete once sent (docs/protocol.md §5).
            actions.extend(out.lock_token.map(Action::C2dDelivered));
        }
        actions
    }

    /// The QoS the subscriptions grant for `interest`, if any asks for it.
    fn granted_qos(&self, interest: Interests) -> Option<QoS> {
        self.subscriptions
            .iter()
            .filter(|s| s.feeds.contains(interest))
            .map(|s| s.qos)
            .max_by_key(|q| *q as u8)
    }

    /// Next free packet id (1..=65535) not in flight.
    fn next_pkid(&mut self) -> u16 {
        let mut id = self.last_pkid;
        loop {
            id = id.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&id) || id == self.last_pkid {
                self.last_pkid = id;
                return id;
            }
        }
    }

    fn on_connect(&mut self, connect: Connect) -> Vec<Action> {
        self.phase = Phase::Authenticating;
        self.clean_session = connect.clean_session;
        self.will = connect.last_will.clone();
        self.keep_alive = keep_alive_timeout(connect.keep_alive);
        vec![Action::Authenticate(Box::new(connect))]
    }

    fn on_publish(&mut self, publish: &Publish) -> Vec<Action> {
        let ack = match publish.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(publish.pkid),
            // "IoT Hub closes the network connection" (§1.5).
            QoS::ExactlyOnce => return self.close("QoS 2 publish", true),
        };
        let Some(principal) = &self.principal else {
            return self.close("publish before CONNECT", true);
        };
        match topics::incoming(publisher(principal), publish) {
            Ok(Incoming::Telemetry {
                properties,
                body,
                retain,
            }) => vec![Action::Telemetry {
                ack,
                properties,
                body,
                retain,
            }],
            Ok(Incoming::Request(request)) => vec![Action::Request { ack, request }],
            Err(reason) => self.close(reason, true),
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) -> Vec<Action> {
        let Some(principal) = self.principal.clone() else {
            return self.close("subscribe before CONNECT", true);
        };
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for filter in subscribe.filters {
            let Some(feeds) = filter_feeds(&principal, &filter.path) else {
                return self.close("subscription to a topic the identity may not read", true);
            };
            // SUBACK grants at most QoS 1 (§1.5).
            let qos = if filter.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            if let Some(existing) = self
                .subscriptions
                .iter_mut()
                .find(|s| s.filter == filter.path)
            {
                existing.qos = qos;
            } else if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                // UNCONFIRMED: the documented limit is 5; we refuse the extra filter with the
                // 3.1.1 failure code and keep the connection.
                codes.push(SubscribeReasonCode::Failure);
                continue;
            } else {
                self.subscriptions.push(Subscription {
                    filter: filter.path,
                    feeds,
                    qos,
                });
            }
            codes.push(SubscribeReasonCode::Success(qos));
        }
        vec![
            Action::Send(Packet::SubAck(SubAck::new(subscribe.pkid, codes))),
            self.subscribed(true),
        ]
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Vec<Action> {
        self.subscriptions
            .retain(|s| !unsubscribe.topics.contains(&s.filter));
        vec![
            Action::Send(Packet::UnsubAck(UnsubAck {
                pkid: unsubscribe.pkid,
            })),
            self.subscribed(true),
        ]
    }

    /// What the subscriptions now ask for; with `changed`, the persistent session to store
    /// (clean session 0 keeps subscriptions across reconnects, §1.5; DPS has none, §9).
    fn subscribed(&self, changed: bool) -> Action {
        let interests = self
            .subscriptions
            .iter()
            .fold(Interests::default(), |all, s| all.union(s.feeds));
        let persistent =
            !self.clean_session && matches!(self.principal, Some(Principal::Device { .. }));
        let save = (changed && persistent).then(|| {
            self.subscriptions
                .iter()
                .map(|s| StoredSubscription {
                    filter: s.filter.clone(),
                    qos: s.qos as u8,
                })
                .collect()
        });
        Action::Subscribed { interests, save }
    }

    fn close(&mut self, reason: &'static str, will: bool) -> Vec<Action> {
        self.phase = Phase::Closed;
        vec![Action::Close {
            reason,
            will: will && self.will.is_some(),
        }]
    }
}

/// Stored subscriptions read back, their interests worked out again; a filter the principal
/// may no longer use is dropped.
fn restore(principal: &Principal, stored: Vec<StoredSubscription>) -> Vec<Subscription> {
    stored
        .into_iter()
        .filter_map(|s| {
            let qos = if s.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let feeds = filter_feeds(principal, &s.filter)?;
            Some(Subscription {
                filter: s.filter,
                feeds,
                qos,
            })
        })
        .collect()
}

fn publisher(principal: &Principal) -> Publisher<'_> {
    match principal {
        Principal::Device {
            device_id,
            module_id,
        } => Publisher::Device {
            device_id,
            module_id: module_id.as_deref(),
        },
        Principal::Dps => Publisher::Dps,
    }
}

/// 1.5 x the client keep-alive, capped at 1767 s; 0 (no keep-alive) gets the cap (§1.6).
fn keep_alive_timeout(seconds: u16) -> Duration {
    if seconds == 0 {
        return KEEP_ALIVE_CAP;
    }
    (Duration::from_secs(u64::from(seconds)) * 3 / 2).min(KEEP_ALIVE_CAP)
}

/// Whether a topic segment names `id` (Python percent-encodes ids in topics, §3).
fn segment_is(segment: &str, id: &str) -> bool {
    segment == id || Decoded::new(segment).eq_str(id)
}

/// Which feeds a subscription filter grants, or `None` when the identity may not use it
/// (§1.3, §1.5, §5-§7, §9; broad filters `#` and `devices/{id}/messages/#` are accepted).
fn filter_feeds(principal: &Principal, filter: &str) -> Option<Interests> {
    match principal {
        Principal::Dps => match filter {
            "$dps/registrations/res/#" | "#" => Some(Interests::DPS),
            _ => None,
        },
        Principal::Device {
            device_id,
            module_id,
        } => {
            match filter {
                "#" => return Some(Interests::DEVICE_ALL),
                "$iothub/twin/res/#" => return Some(Interests::TWIN_RESPONSES),
                "$iothub/twin/PATCH/properties/desired/#" => return Some(Interests::DESIRED),
                "$iothub/twin/#" => {
                    return Some(Interests::TWIN_RESPONSES.union(Interests::DESIRED));
                }
                "$iothub/methods/POST/#" => return Some(Interests::METHODS),
                _ => {}
            }
            let parts: Vec<&str> = filter.split('/').collect();
            let dev_ok = |s: &str| s == "+" || segment_is(s, device_id);
            match (module_id, parts.as_slice()) {
                (None, ["devices", d, "messages", "devicebound", "#"])
                | (None, ["devices", d, "messages", "#"])
                | (None, ["devices", d, "#"])
                    if dev_ok(d) =>
                {
                    Some(Interests::C2D)
                }
                (Some(m), ["devices", d, "modules", mm, "#"])
                | (Some(m), ["devices", d, "modules", mm, "inputs", "#"])
                | (Some(m), ["devices", d, "modules", mm, "messages", "devicebound", "#"])
                    if dev_ok(d) && segment_is(mm, m) =>
                {
                    Some(Interests::C2D)
                }
                _ => None,
            }
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
