//! One MQTT connection: the only code that reads and writes MQTT frames. It drives the sans-IO
//! [`Session`] and performs the async work its actions ask for.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use iothub_proto::credentials::{IncomingUsername, ParsedDpsUsername};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, PubAck, Publish};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::codec::{Decoder, Framed};

use super::codec::{CodecError, HubCodec};
use super::session::{Action, AuthResult, Feeds, Inbound, Principal, Session, Subscription};
use crate::hub::auth::{
    self, AuthFailure, AuthMethod, Authenticated, ConnectCredentials, Identity,
};
use crate::hub::dispatch::Domains;
use crate::hub::telemetry::{ConnectionStamp, DeviceMessage, Origin, Sender};
use crate::hub::{Hub, Outbound};
use crate::store::{registry, sessions};

type AckFuture = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// Frames taken from the read buffer per wake-up beyond the first, so that one pipelining
/// client cannot hold its task (and its store batch) for ever.
const MAX_BUFFERED_FRAMES: usize = 256;

/// How an inbound publish (or a batch of telemetry publishes) completes, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Completion {
    /// Handled: send the PUBACK for this packet id.
    Ack(u16),
    /// A telemetry batch is durable: send the PUBACKs of its QoS 1 messages, in order.
    Acks(Vec<u16>),
    /// Handled, and a QoS 0 publish has no PUBACK (MQTT-4.3.1).
    NoAck,
    /// The telemetry append failed: acknowledge nothing more and close; the client resends.
    Failed,
}

/// Who is on the other end once authenticated.
struct Peer {
    /// Who it is, and what the hub stamps on its telemetry (auth method, generation id, model).
    stamp: Arc<ConnectionStamp>,
    conn_id: u64,
    outbound: tokio::sync::mpsc::UnboundedReceiver<Outbound>,
}

impl Peer {
    fn identity(&self) -> &Identity {
        self.stamp.identity()
    }
}

/// Serves one client until it disconnects, breaks a rule, is taken over, or `shutdown` fires.
///
/// `thumbprints` are the `(sha1, sha256)` of the TLS client certificate, if any.
pub(crate) async fn serve<S>(
    hub: Hub,
    domains: Domains,
    stream: S,
    thumbprints: Option<(String, String)>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut framed = Framed::new(stream, HubCodec);
    let mut session = Session::new(Instant::now());
    let mut peer: Option<Peer> = None;
    // PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2); telemetry ones only once
    // the append is durable (issue 3 point 6).
    let mut acks: FuturesOrdered<AckFuture> = FuturesOrdered::new();
    let mut in_flight: HashMap<u16, Option<String>> = HashMap::new();
    let mut next_pkid: u16 = 0;
    let mut publish_will = false;
    // A frame after the ones just taken from the read buffer was malformed: close once the
    // frames before it are handled (as if they had been read one by one).
    let mut bad_frame = None;

    'conn: loop {
        let deadline = tokio::time::Instant::from_std(session.poll_timeout());
        let actions = tokio::select! {
            _ = shutdown.changed() => break 'conn,
            frame = framed.next() => match frame {
                Some(Ok(packet)) => {
                    let now = Instant::now();
                    let mut actions = session.handle_packet(packet, now);
                    bad_frame = take_buffered(&mut framed, &mut session, &mut actions, now);
                    actions
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "closing connection: bad frame");
                    publish_will = true;
                    break 'conn;
                }
                None => {
                    publish_will = true;
                    break 'conn;
                }
            },
            Some(done) = acks.next(), if !acks.is_empty() => {
                // Every PUBACK whose append has already committed leaves in the same flush:
                // one TLS record and one write for a whole group commit, not one per message.
                match send_ready_acks(&mut framed, &mut acks, done).await {
                    AckOutcome::Sent => continue,
                    AckOutcome::WriteFailed => {
                        publish_will = true;
                        break 'conn;
                    }
                    // The append failed: no PUBACK; the client will retry after reconnecting.
                    AckOutcome::AppendFailed => break 'conn,
                }
            }
            message = recv(&mut peer) => {
                let dup = matches!(message, Some(Outbound::Redelivery { .. }));
                match message {
                Some(
                    Outbound::Publish { topic, payload, qos, tag }
                    | Outbound::Redelivery { topic, payload, qos, tag },
                ) => {
                    let Some(granted) = feed_for(&topic).and_then(|f| session.feed_qos(f)) else {
                        continue;
                    };
                    let qos = if qos == QoS::AtMostOnce || granted == QoS::AtMostOnce { QoS::AtMostOnce } else { QoS::AtLeastOnce };
                    let mut publish = Publish::from_bytes(topic, qos, payload);
                    // DUP is only meaningful (and only allowed) at QoS 1 (MQTT 3.1.1 §3.3.1.1).
                    publish.dup = dup && qos == QoS::AtLeastOnce;
                    let mut completed_on_send = None;
                    if qos == QoS::AtLeastOnce {
                        next_pkid = allocate(next_pkid, &in_flight);
                        publish.pkid = next_pkid;
                        in_flight.insert(next_pkid, tag);
                    } else {
                        // QoS 0 completes a C2D message when it is sent (PROTOCOL.md §5).
                        completed_on_send = tag;
                    }
                    if framed.send(Packet::Publish(publish)).await.is_err() {
                        publish_will = true;
                        break 'conn;
                    }
                    if let (Some(tag), Some(p)) = (completed_on_send, &peer) {
                        domains.acked(p.identity(), &tag);
                    }
                    continue;
                }
                // Taken over by a newer connection of the same identity (§1.5).
                Some(Outbound::Close) | None => break 'conn,
                }
            }
            () = tokio::time::sleep_until(deadline) => session.handle_timeout(Instant::now()),
        };
        // Consecutive telemetry PUBLISHes become one durable append (one store job, one
        // reply); anything else first hands the batch over, so PUBACKs keep arrival order.
        let mut batch = TelemetryBatch::default();
        for action in actions {
            if let Action::Inbound {
                ack,
                inbound:
                    Inbound::Telemetry {
                        properties,
                        body,
                        retain,
                    },
            } = action
            {
                let Some(p) = &peer else { break 'conn };
                batch.push(p, ack, &properties, body, retain);
                continue;
            }
            if let Some(append) = peer.as_ref().and_then(|p| batch.take_append(&hub, p)) {
                acks.push_back(append);
            }
            match action {
                Action::Send(packet) => {
                    if framed.send(packet).await.is_err() {
                        publish_will = true;
                        break 'conn;
                    }
                }
                Action::Authenticate(connect) => {
                    let (result, authed) =
                        authenticate(&hub, &domains, &connect, thumbprints.as_ref()).await;
                    if let Some(p) = authed {
                        peer = Some(p);
                    }
                    let follow = session.handle_auth(result, Instant::now());
                    for a in follow {
                        let stop = match a {
                            Action::Send(packet) => framed.send(packet).await.is_err(),
                            Action::Subscribed => {
                                publish_feeds(&hub, &domains, &peer, &session);
                                false
                            }
                            Action::Close { .. } => true,
                            _ => false,
                        };
                        if stop {
                            break 'conn;
                        }
                    }
                }
                Action::Inbound { ack, inbound } => {
                    let Some(p) = &peer else { break 'conn };
                    acks.push_back(handle_inbound(&domains, p, ack, inbound));
                }
                Action::Acked(pkid) => {
                    if let (Some(Some(tag)), Some(p)) = (in_flight.remove(&pkid), &peer) {
                        domains.acked(p.identity(), &tag);
                        hub.delivered(p.identity(), tag);
                    }
                }
                Action::Subscribed => publish_feeds(&hub, &domains, &peer, &session),
                Action::Close { reason, will } => {
                    tracing::debug!(reason, "closing connection");
                    publish_will = will;
                    break 'conn;
                }
            }
        }
        if let Some(append) = peer.as_ref().and_then(|p| batch.take_append(&hub, p)) {
            acks.push_back(append);
        }
        if let Some(e) = bad_frame.take() {
            tracing::debug!(error = %e, "closing connection: bad frame");
            publish_will = true;
            break 'conn;
        }
    }

    // Flush acknowledged-to-be work: appends already started still complete (their PUBACK
    // cannot be sent any more, so the client will resend; duplicates are at-least-once).
    while acks.next().await.is_some() {}
    let Some(p) = peer else { return };
    if let Some(will) = publish_will.then(|| session.take_will()).flatten() {
        {
            let properties = will
                .topic
                .split_once("/messages/events/")
                .map_or("", |(_, b)| b)
                .to_string();
            let message =
                p.stamp
                    .message(&properties, will.message, Origin::Will, SystemTime::now());
            if let Err(e) = hub.queue_messages(&p.stamp, vec![message]).await {
                tracing::warn!(error = %e, "could not store the Will message");
            }
        }
    }
    // Persistent sessions were stored at every subscription change (`publish_feeds`), so a
    // connection that was taken over cannot overwrite its successor's state here.
    hub.detach(p.identity(), p.conn_id);
    domains.closed(p.identity(), p.conn_id);
}

/// What became of a run of ready completions.
enum AckOutcome {
    /// Every PUBACK due was written and flushed.
    Sent,
    /// The connection could not be written.
    WriteFailed,
    /// An append failed: nothing from it on is acknowledged; close.
    AppendFailed,
}

/// Feeds the PUBACKs of `first` and of every following completion that is already ready (in
/// order, MQTT-4.6.0-2), then flushes once. After a failed append nothing more is
/// acknowledged, as with a single PUBACK.
async fn send_ready_acks<S>(
    framed: &mut Framed<S, HubCodec>,
    acks: &mut FuturesOrdered<AckFuture>,
    first: Completion,
) -> AckOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut outcome = AckOutcome::Sent;
    let mut next = Some(first);
    while let Some(done) = next.take() {
        let pkids = match done {
            Completion::Ack(pkid) => vec![pkid],
            Completion::Acks(pkids) => pkids,
            Completion::NoAck => Vec::new(),
            Completion::Failed => {
                outcome = AckOutcome::AppendFailed;
                break;
            }
        };
        for pkid in pkids {
            if framed
                .feed(Packet::PubAck(PubAck::new(pkid)))
                .await
                .is_err()
            {
                return AckOutcome::WriteFailed;
            }
        }
        // `now_or_never` only takes results that are ready; the select loop polls `acks` again
        // with its own waker, so nothing still pending is missed.
        next = acks.next().now_or_never().flatten();
    }
    if framed.flush().await.is_err() {
        return AckOutcome::WriteFailed;
    }
    outcome
}

/// Takes every further frame already in the read buffer (at most [`MAX_BUFFERED_FRAMES`])
/// through the session, appending its actions, without reading the socket. Stops before
/// anything that needs the connection's answer first (authentication) and after a close.
/// Returns the error of a malformed frame, to be reported once the earlier frames are handled.
fn take_buffered<S>(
    framed: &mut Framed<S, HubCodec>,
    session: &mut Session,
    actions: &mut Vec<Action>,
    now: Instant,
) -> Option<CodecError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let halts = |new: &[Action]| {
        new.iter()
            .any(|a| matches!(a, Action::Authenticate(_) | Action::Close { .. }))
    };
    if halts(actions) {
        return None;
    }
    for _ in 0..MAX_BUFFERED_FRAMES {
        match HubCodec.decode(framed.read_buffer_mut()) {
            Ok(Some(packet)) => {
                let new = session.handle_packet(packet, now);
                let halt = halts(&new);
                actions.extend(new);
                if halt {
                    return None;
                }
            }
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
    None
}

/// Telemetry PUBLISHes waiting to be appended together.
#[derive(Default)]
struct TelemetryBatch {
    messages: Vec<DeviceMessage>,
    /// Packet ids to acknowledge once the batch is durable (QoS 0 messages have none).
    pkids: Vec<u16>,
}

impl TelemetryBatch {
    /// Stamps one message from `peer` (issue 3 point 6) and adds it.
    fn push(&mut self, peer: &Peer, ack: Option<u16>, properties: &str, body: Bytes, retain: bool) {
        self.messages.push(peer.stamp.message(
            properties,
            body,
            Origin::Publish { retain },
            SystemTime::now(),
        ));
        self.pkids.extend(ack);
    }

    /// The batch's durable append as an ordered completion, leaving the batch empty; `None`
    /// when there is nothing to append.
    fn take_append(&mut self, hub: &Hub, peer: &Peer) -> Option<AckFuture> {
        if self.messages.is_empty() {
            return None;
        }
        let Self { messages, pkids } = std::mem::take(self);
        let appended = hub.queue_messages(&peer.stamp, messages);
        Some(Box::pin(async move {
            match appended.await {
                Ok(_) => Completion::Acks(pkids),
                Err(e) => {
                    tracing::error!(error = %e, "telemetry append failed");
                    Completion::Failed
                }
            }
        }))
    }
}

async fn recv(peer: &mut Option<Peer>) -> Option<Outbound> {
    match peer {
        Some(p) => p.outbound.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs authentication for a CONNECT and attaches the connection on success.
async fn authenticate(
    hub: &Hub,
    domains: &Domains,
    connect: &rumqttc::mqttbytes::v4::Connect,
    thumbprints: Option<&(String, String)>,
) -> (AuthResult, Option<Peer>) {
    if let (Some(login), Ok(IncomingUsername::Dps(dps))) = (
        connect.login.as_ref(),
        connect.login.as_ref().map_or(Err(()), |l| {
            IncomingUsername::parse(&l.username).map_err(drop)
        }),
    ) {
        return authenticate_dps(hub, domains, connect, dps, &login.password).await;
    }
    let names = hub.names().to_vec();
    let client_id = connect.client_id.clone();
    let username = connect.login.as_ref().map(|l| l.username.clone());
    let password = connect.login.as_ref().map(|l| l.password.clone());
    let thumbs = thumbprints.cloned();
    let clean_session = connect.clean_session;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let outcome = hub
        .store()
        .call(move |tx| {
            let creds = ConnectCredentials {
                client_id: &client_id,
                username: username.as_deref(),
                password: password.as_deref(),
                thumbprints: thumbs.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            };
            let result = auth::authenticate(tx, &names, creds, now)?;
            let Ok(a) = &result else {
                return Ok((result, None, None));
            };
            let (device_id, module_id) = (&a.identity.device_id, a.identity.module_id.as_deref());
            let generation = registry::find(tx, device_id, module_id)?.map(|r| r.generation_id);
            // The persistent session (PROTOCOL.md §1.5); clean session 1 discards it (only a
            // session that exists is deleted: a CONNECT that changes nothing needs no sync).
            let session = sessions::load(tx, device_id, module_id)?;
            if clean_session && session.is_some() {
                sessions::delete(tx, device_id, module_id)?;
            }
            Ok((result, generation, session))
        })
        .await;
    let (authed, generation_id, stored): (Authenticated, String, _) = match outcome {
        Ok((Ok(a), g, session)) => (a, g.unwrap_or_default(), session),
        Ok((Err(AuthFailure::Disabled), ..)) => {
            return (
                AuthResult::Refused(ConnectReturnCode::ServiceUnavailable),
                None,
            );
        }
        Ok((Err(AuthFailure::NotAuthorized), ..)) => {
            return (AuthResult::Refused(ConnectReturnCode::NotAuthorized), None);
        }
        Err(e) => {
            // PROTOCOL.md §1.7: the gateway answers 3 for internal errors during CONNECT.
            tracing::error!(error = %e, "authentication failed internally");
            return (
                AuthResult::Refused(ConnectReturnCode::ServiceUnavailable),
                None,
            );
        }
    };
    let identity = authed.identity.clone();
    let (conn_id, outbound) = hub.attach(&identity);
    let expires = authed.expires_at.map(|se| {
        let left = se.saturating_add(auth::MAX_SKEW_SECS).saturating_sub(now);
        Instant::now() + std::time::Duration::from_secs(left)
    });
    let principal = Principal::Device {
        device_id: identity.device_id.clone(),
        module_id: identity.module_id.clone(),
    };
    let restored = stored.map(|subscriptions| {
        subscriptions
            .into_iter()
            .filter_map(|s| {
                let qos = if s.qos == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                Subscription::restore(&principal, s.filter, qos)
            })
            .collect()
    });
    let stamp = Arc::new(ConnectionStamp::new(&Sender {
        identity: &identity,
        method: &authed.method,
        model_id: authed.model_id.as_deref(),
        generation_id: &generation_id,
    }));
    let peer = Peer {
        stamp,
        conn_id,
        outbound,
    };
    (
        AuthResult::Accepted {
            principal,
            restored,
            expires,
        },
        Some(peer),
    )
}

/// DPS CONNECT (PROTOCOL.md §9): client id = registration id, SAS with `skn=registration`
/// checked by the provisioning domain. DPS sessions are never persistent.
async fn authenticate_dps(
    hub: &Hub,
    domains: &Domains,
    connect: &rumqttc::mqttbytes::v4::Connect,
    username: ParsedDpsUsername<'_>,
    password: &str,
) -> (AuthResult, Option<Peer>) {
    let registration_id = username.registration_id();
    if connect.client_id != registration_id {
        return (AuthResult::Refused(ConnectReturnCode::NotAuthorized), None);
    }
    match domains
        .authenticate_dps(username.id_scope(), registration_id, password)
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return (AuthResult::Refused(ConnectReturnCode::NotAuthorized), None),
        Err(e) => {
            tracing::error!(error = %e, "DPS authentication failed internally");
            return (
                AuthResult::Refused(ConnectReturnCode::ServiceUnavailable),
                None,
            );
        }
    }
    // A DPS session must not take over the device's hub connection of the same id.
    let identity = Identity {
        device_id: registration_id.to_string(),
        module_id: Some(DPS_SESSION.into()),
    };
    let (conn_id, outbound) = hub.attach(&identity);
    // DPS sessions publish no telemetry; their stamp is never used.
    let stamp = Arc::new(ConnectionStamp::new(&Sender {
        identity: &identity,
        method: &AuthMethod::IdentityKey,
        model_id: None,
        generation_id: "",
    }));
    let peer = Peer {
        stamp,
        conn_id,
        outbound,
    };
    let principal = Principal::Dps {
        registration_id: registration_id.to_string(),
    };
    (
        AuthResult::Accepted {
            principal,
            restored: None,
            expires: None,
        },
        Some(peer),
    )
}

/// Pseudo module id keeping DPS sessions apart from hub sessions of the same id.
const DPS_SESSION: &str = "$dps";

/// Turns one inbound publish other than telemetry (which goes through [`TelemetryBatch`])
/// into its (ordered) PUBACK future.
fn handle_inbound(domains: &Domains, peer: &Peer, ack: Option<u16>, inbound: Inbound) -> AckFuture {
    domains.inbound(peer.identity(), peer.conn_id, inbound);
    Box::pin(std::future::ready(
        ack.map_or(Completion::NoAck, Completion::Ack),
    ))
}

/// Tells the hub which feeds this identity now receives (used for method 404s and C2D).
fn publish_feeds(hub: &Hub, domains: &Domains, peer: &Option<Peer>, session: &Session) {
    if let Some(p) = peer {
        let mut feeds = Feeds::default();
        for s in session.subscriptions() {
            feeds = feeds.union(s.feeds);
        }
        hub.set_connection_feeds(p.identity(), p.conn_id, feeds);
        // Clean session 0 keeps subscriptions across reconnects (PROTOCOL.md §1.5); keep the
        // stored copy current so a takeover by a reconnecting device sees it at once. DPS has
        // no persistent sessions (§9).
        if !session.clean_session()
            && matches!(session.principal(), Some(Principal::Device { .. }))
            && hub.is_current(p.identity(), p.conn_id)
        {
            hub.save_session(p.identity(), session.subscriptions());
        }
        domains.subscribed(p.identity(), p.conn_id);
    }
}

/// Which subscription feed an outbound topic belongs to.
fn feed_for(topic: &str) -> Option<Feeds> {
    if topic.starts_with("devices/") {
        Some(Feeds::C2D)
    } else if topic.starts_with("$iothub/twin/res/") {
        Some(Feeds::TWIN_RESPONSES)
    } else if topic.starts_with("$iothub/twin/PATCH/properties/desired/") {
        Some(Feeds::DESIRED)
    } else if topic.starts_with("$iothub/methods/POST/") {
        Some(Feeds::METHODS)
    } else if topic.starts_with("$dps/registrations/res/") {
        Some(Feeds::DPS)
    } else {
        None
    }
}

/// Next free packet id (1..=65535) not in flight.
fn allocate(last: u16, in_flight: &HashMap<u16, Option<String>>) -> u16 {
    let mut id = last;
    loop {
        id = id.checked_add(1).unwrap_or(1);
        if !in_flight.contains_key(&id) || id == last {
            return id;
        }
    }
}
