//! The per-client MQTT session as a sans-IO state machine: packets in, [`Action`]s out, time
//! passed in explicitly. The connection task (`connection.rs`) does all I/O and the async work
//! the actions ask for (authentication, durable appends, routing to the hub domain).
//!
//! Rules enforced here (issue 3 point 5; PROTOCOL.md §1.5-1.6, §4, §11):
//! - the first packet must be CONNECT, a second CONNECT closes, CONNECT must come within 30 s;
//! - a device may publish and subscribe only its own topics; anything else closes;
//! - PUBLISH with QoS 2 closes; SUBACK grants at most QoS 1; at most 5 subscriptions;
//! - keep-alive enforced at 1.5 x (cap 1767 s; 0 means the cap);
//! - D2C messages over 256 KB close the connection;
//! - the connection is closed when the SAS token expires.

use std::time::{Duration, Instant};

use bytes::Bytes;
use iothub_proto::percent::Decoded;
use iothub_proto::topic::HubIncoming;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, Unsubscribe,
};

/// Time allowed between the transport being up and CONNECT (the MQTT 5 doc's 30 s; §1.5).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Server-side keep-alive cap: the Azure load-balancer idle timeout (§1.6).
pub(crate) const KEEP_ALIVE_CAP: Duration = Duration::from_secs(1767);
/// Maximum subscriptions per device (§1.5).
pub(crate) const MAX_SUBSCRIPTIONS: usize = 5;
/// Maximum D2C message size: body plus properties (§4, §11).
pub(crate) const MAX_D2C: usize = 256 * 1024;

/// What a connection is allowed to see, derived from its subscriptions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Feeds(u8);

impl Feeds {
    pub(crate) const C2D: Self = Self(1);
    pub(crate) const TWIN_RESPONSES: Self = Self(2);
    pub(crate) const DESIRED: Self = Self(4);
    pub(crate) const METHODS: Self = Self(8);
    pub(crate) const DPS: Self = Self(16);
    const DEVICE_ALL: Self = Self(1 | 2 | 4 | 8);

    pub(crate) fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Who the session belongs to after CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A device or module identity.
    Device {
        device_id: String,
        module_id: Option<String>,
    },
    /// A DPS registration (PROTOCOL.md §9); constructed once DPS auth (helper H3b) is wired.
    #[allow(dead_code)]
    Dps { registration_id: String },
}

/// One subscription kept by the session (and across reconnects with clean session 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) filter: String,
    pub(crate) feeds: Feeds,
    pub(crate) qos: QoS,
}

impl Subscription {
    /// A stored subscription of `principal` read back, its feeds worked out again; `None` if
    /// the filter is not (any more) one the principal may use.
    pub(crate) fn restore(principal: &Principal, filter: String, qos: QoS) -> Option<Self> {
        let feeds = filter_feeds(principal, &filter)?;
        Some(Self { filter, feeds, qos })
    }
}

/// A PUBLISH from the client, classified and authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// D2C telemetry: raw property bag and body.
    Telemetry {
        properties: String,
        body: Bytes,
        retain: bool,
    },
    /// `$iothub/twin/GET/?$rid=`.
    TwinGet { rid: String },
    /// `$iothub/twin/PATCH/properties/reported/?$rid=`.
    ReportedPatch { rid: String, body: Bytes },
    /// `$iothub/methods/res/{status}/?$rid=`.
    MethodResponse {
        rid: String,
        status: i32,
        body: Bytes,
    },
    /// `$dps/registrations/PUT/iotdps-register/?$rid=`.
    DpsRegister { rid: String, body: Bytes },
    /// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=&operationId=`.
    DpsPoll { rid: String, operation_id: String },
}

/// What the connection must do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Authenticate this CONNECT, then call [`Session::handle_auth`].
    Authenticate(Box<Connect>),
    /// Write a packet.
    Send(Packet),
    /// Process an inbound publish; if `ack` holds a packet id, send its PUBACK afterwards
    /// (in order with every other PUBACK; for telemetry only once the append is durable).
    Inbound { ack: Option<u16>, inbound: Inbound },
    /// The client acknowledged our QoS 1 publish `pkid` (C2D completion).
    Acked(u16),
    /// The subscriptions changed (the hub tracks method subscribers and C2D delivery).
    Subscribed,
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
        restored: Option<Vec<Subscription>>,
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
        }
    }

    /// The authenticated principal, once connected.
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Whether the client asked for a clean session.
    pub(crate) fn clean_session(&self) -> bool {
        self.clean_session
    }

    /// Current subscriptions.
    pub(crate) fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// The union of every subscription's feeds, with the QoS to deliver at.
    pub(crate) fn feed_qos(&self, feed: Feeds) -> Option<QoS> {
        self.subscriptions
            .iter()
            .filter(|s| s.feeds.contains(feed))
            .map(|s| s.qos)
            .max_by_key(|q| *q as u8)
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
            Packet::Publish(publish) => self.on_publish(publish),
            Packet::PubAck(ack) => vec![Action::Acked(ack.pkid)],
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
                    self.subscriptions = restored.unwrap_or_default();
                }
                // A Will IoT Hub could not route is dropped, not fatal (UNCONFIRMED).
                if self.will.as_ref().is_some_and(|will| {
                    !own_telemetry_topic(&principal, &will.topic) || will.qos == QoS::ExactlyOnce
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
                    out.push(Action::Subscribed);
                }
                out
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

    fn on_publish(&mut self, publish: Publish) -> Vec<Action> {
        let ack = match publish.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(publish.pkid),
            // "IoT Hub closes the network connection" (§1.5).
            QoS::ExactlyOnce => return self.close("QoS 2 publish", true),
        };
        let Some(principal) = &self.principal else {
            return self.close("publish before CONNECT", true);
        };
        match classify(principal, &publish) {
            Ok(inbound) => vec![Action::Inbound { ack, inbound }],
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
            Action::Subscribed,
        ]
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Vec<Action> {
        self.subscriptions
            .retain(|s| !unsubscribe.topics.contains(&s.filter));
        vec![
            Action::Send(Packet::UnsubAck(UnsubAck {
                pkid: unsubscribe.pkid,
            })),
            Action::Subscribed,
        ]
    }

    fn close(&mut self, reason: &'static str, will: bool) -> Vec<Action> {
        self.phase = Phase::Closed;
        vec![Action::Close {
            reason,
            will: will && self.will.is_some(),
        }]
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

fn own_telemetry_topic(principal: &Principal, topic: &str) -> bool {
    match (principal, HubIncoming::parse(topic)) {
        (
            Principal::Device {
                device_id,
                module_id,
            },
            Ok(HubIncoming::Telemetry(t)),
        ) => {
            t.device_id().eq_str(device_id)
                && match (module_id, t.module_id()) {
                    (None, None) => true,
                    (Some(m), Some(tm)) => tm.eq_str(m),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Classifies and authorises a publish; `Err` is the reason the connection closes.
fn classify(principal: &Principal, publish: &Publish) -> Result<Inbound, &'static str> {
    if let Some(reason) = super::publish_checks::topic_problem(&publish.topic) {
        return Err(reason);
    }
    let incoming = HubIncoming::parse(&publish.topic).map_err(|_| "publish to an unknown topic")?;
    let body = publish.payload.clone();
    let rid = |r: iothub_proto::RequestId<'_>| r.to_string();
    match (principal, incoming) {
        (Principal::Device { .. }, HubIncoming::Telemetry(t)) => {
            if !own_telemetry_topic(principal, &publish.topic) {
                return Err("telemetry on another identity's topic");
            }
            let properties = t.properties().raw().to_string();
            if let Some(reason) = super::publish_checks::property_bag_problem(&properties) {
                return Err(reason);
            }
            if body.len() + properties.len() > MAX_D2C {
                return Err("D2C message over 256 KB");
            }
            Ok(Inbound::Telemetry {
                properties,
                body,
                retain: publish.retain,
            })
        }
        (Principal::Device { .. }, HubIncoming::TwinGet(r)) => Ok(Inbound::TwinGet {
            rid: rid(r.request_id()),
        }),
        (Principal::Device { .. }, HubIncoming::ReportedPatch(r)) => Ok(Inbound::ReportedPatch {
            rid: rid(r.request_id()),
            body,
        }),
        (Principal::Device { .. }, HubIncoming::MethodResponse(r)) => Ok(Inbound::MethodResponse {
            rid: rid(r.request_id()),
            status: i32::from(r.status().code()),
            body,
        }),
        (Principal::Dps { .. }, HubIncoming::DpsRegister(r)) => Ok(Inbound::DpsRegister {
            rid: rid(r.request_id()),
            body,
        }),
        (Principal::Dps { .. }, HubIncoming::DpsPoll(p)) => Ok(Inbound::DpsPoll {
            rid: rid(p.request_id()),
            operation_id: p.operation_id().to_string(),
        }),
        _ => Err("publish to a topic the identity may not use"),
    }
}

/// Which feeds a subscription filter grants, or `None` when the identity may not use it
/// (§1.3, §1.5, §5-§7, §9; broad filters `#` and `devices/{id}/messages/#` are accepted).
fn filter_feeds(principal: &Principal, filter: &str) -> Option<Feeds> {
    match principal {
        Principal::Dps { .. } => match filter {
            "$dps/registrations/res/#" | "#" => Some(Feeds::DPS),
            _ => None,
        },
        Principal::Device {
            device_id,
            module_id,
        } => {
            match filter {
                "#" => return Some(Feeds::DEVICE_ALL),
                "$iothub/twin/res/#" => return Some(Feeds::TWIN_RESPONSES),
                "$iothub/twin/PATCH/properties/desired/#" => return Some(Feeds::DESIRED),
                "$iothub/twin/#" => return Some(Feeds::TWIN_RESPONSES.union(Feeds::DESIRED)),
                "$iothub/methods/POST/#" => return Some(Feeds::METHODS),
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
                    Some(Feeds::C2D)
                }
                (Some(m), ["devices", d, "modules", mm, "#"])
                | (Some(m), ["devices", d, "modules", mm, "inputs", "#"])
                | (Some(m), ["devices", d, "modules", mm, "messages", "devicebound", "#"])
                    if dev_ok(d) && segment_is(mm, m) =>
                {
                    Some(Feeds::C2D)
                }
                _ => None,
            }
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
