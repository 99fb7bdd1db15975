//! One MQTT connection's I/O: the only code that reads and writes MQTT frames. It feeds the
//! sans-IO [`Session`] with frames, hub messages and deadlines, and performs the actions it
//! returns: writing packets, calling the hub, and sending PUBACKs in arrival order once the
//! work they acknowledge is done (telemetry: once durable, docs/protocol.md §4).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{Packet, PubAck};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::codec::{CodecError, HubCodec};
use super::login::{self, Link, Peer};
use super::session::{Action, Session};
use crate::hub::telemetry::{DeviceMessage, Origin};
use crate::hub::{Hub, ToDevice};

type AckFuture = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// Frames taken from the read buffer per wake-up beyond the first, so that one pipelining
/// client cannot hold its task (and its store batch) for ever.
const MAX_BUFFERED_FRAMES: usize = 256;

/// Bytes of encoded packets after which the write buffer is flushed before more are added
/// (the codec sink's own boundary).
const FLUSH_AT: usize = 8 * 1024;

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

/// What woke the connection task.
enum Wake {
    Shutdown,
    Frame(Option<Result<Packet, CodecError>>),
    Done(Completion),
    Hub(Option<ToDevice>),
    Timeout,
}

/// What a wake-up asks the connection to do.
enum Step {
    Close(Flow),
    /// Perform the session's actions; then close if a malformed frame followed them.
    Execute {
        actions: Vec<Action>,
        bad_frame: Option<CodecError>,
    },
    /// Send the PUBACKs of this and every further ready completion.
    Done(Completion),
}

/// What an action needs after [`Connection::apply`].
enum Next {
    Continue,
    /// The write buffer is full: flush before going on.
    Flush,
    /// Authenticate, then feed the session the outcome.
    Authenticate(Box<rumqttc::mqttbytes::v4::Connect>),
    Close(Flow),
}

/// Whether the connection goes on, and if not why and whether its Will is published.
#[derive(Debug)]
enum Flow {
    Continue,
    Close {
        reason: Cow<'static, str>,
        will: bool,
    },
}

impl Flow {
    fn close(reason: impl Into<Cow<'static, str>>, will: bool) -> Self {
        Self::Close {
            reason: reason.into(),
            will,
        }
    }
}

/// Serves one client until it disconnects, breaks a rule, is taken over, or `shutdown` fires.
/// `thumbprints` are the `(sha1, sha256)` of the TLS client certificate, if any.
pub(crate) async fn serve<S>(
    hub: Hub,
    stream: S,
    link: Link,
    thumbprints: Option<(String, String)>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let connection = Connection {
        hub,
        framed: Framed::new(stream, HubCodec),
        session: Session::new(now()),
        peer: None,
        acks: FuturesOrdered::new(),
        link,
        thumbprints,
        started: Instant::now(),
    };
    connection.run(shutdown).await;
}

struct Connection<S> {
    hub: Hub,
    framed: Framed<S, HubCodec>,
    session: Session,
    peer: Option<Peer>,
    /// PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2).
    acks: FuturesOrdered<AckFuture>,
    link: Link,
    thumbprints: Option<(String, String)>,
    started: Instant,
}

/// The session's clock: tokio's, so that tests can pause and advance it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The I/O loop. Its future lives as long as the connection, so what it holds across an
    /// await is held by every idle connection: each wake-up is first turned into actions or
    /// completions synchronously (no packet or hub message is kept across an await), packets
    /// are encoded straight into the write buffer, and only flushes, authentication and
    /// durable appends are awaited.
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (reason, will) = loop {
            let step = {
                let wake = self.wake(&mut shutdown).await;
                self.on_wake(wake)
            };
            let flow = match step {
                Step::Close(flow) => flow,
                Step::Execute { actions, bad_frame } => {
                    match (self.execute(actions).await, bad_frame) {
                        // A malformed frame after the ones handled: close once they are done, as
                        // if they had been read one by one.
                        (Flow::Continue, Some(e)) => {
                            Flow::close(format!("malformed frame: {e}"), true)
                        }
                        (flow, _) => flow,
                    }
                }
                Step::Done(done) => self.send_ready_acks(done).await,
            };
            if let Flow::Close { reason, will } = flow {
                break (reason, will);
            }
        };
        self.finish(reason, will).await;
    }

    /// Waits for the next thing to react to.
    async fn wake(&mut self, shutdown: &mut watch::Receiver<bool>) -> Wake {
        let deadline = tokio::time::Instant::from_std(self.session.poll_timeout());
        tokio::select! {
            _ = shutdown.changed() => Wake::Shutdown,
            frame = self.framed.next() => Wake::Frame(frame),
            Some(done) = self.acks.next(), if !self.acks.is_empty() => Wake::Done(done),
            message = recv(&mut self.peer) => Wake::Hub(message),
            () = tokio::time::sleep_until(deadline) => Wake::Timeout,
        }
    }

    /// What a wake-up asks for, worked out without waiting.
    fn on_wake(&mut self, wake: Wake) -> Step {
        match wake {
            Wake::Shutdown => Step::Close(Flow::close("emulator shutting down", false)),
            Wake::Frame(Some(Ok(packet))) => {
                let now = now();
                let mut actions = self.session.handle_packet(packet, now);
                let bad_frame = self.take_buffered(&mut actions, now);
                Step::Execute { actions, bad_frame }
            }
            Wake::Frame(Some(Err(e))) => {
                Step::Close(Flow::close(format!("malformed frame: {e}"), true))
            }
            Wake::Frame(None) => Step::Close(Flow::close("the device closed the connection", true)),
            Wake::Done(done) => Step::Done(done),
            Wake::Hub(Some(message)) => Step::Execute {
                actions: self.session.handle_to_device(message),
                bad_frame: None,
            },
            Wake::Hub(None) => Step::Close(Flow::close("hub closed the connection", false)),
            Wake::Timeout => Step::Execute {
                actions: self.session.handle_timeout(now()),
                bad_frame: None,
            },
        }
    }

    /// Performs the session's actions in order. Consecutive telemetry PUBLISHes become one
    /// durable append (one store job, one reply); anything else first hands the batch over,
    /// so PUBACKs keep arrival order. Packets are written with one flush at the end (also
    /// before a close, so that a refusing CONNACK goes out), or earlier when the write buffer
    /// is full.
    async fn execute(&mut self, actions: Vec<Action>) -> Flow {
        let mut queue: VecDeque<Action> = actions.into();
        let mut batch = TelemetryBatch::default();
        let flow = loop {
            // The action is consumed by `apply` before anything is awaited.
            let Some(next) = queue.pop_front().map(|a| self.apply(a, &mut batch)) else {
                break Flow::Continue;
            };
            match next {
                Next::Continue => {}
                Next::Flush => {
                    if let Err(e) = self.framed.flush().await {
                        return Flow::close(format!("write failed: {e}"), true);
                    }
                }
                Next::Authenticate(connect) => {
                    if let Err(e) = self.framed.flush().await {
                        return Flow::close(format!("write failed: {e}"), true);
                    }
                    // Boxed: authentication happens once per connection and its future is
                    // the largest this loop awaits; inline, every idle connection's task
                    // would carry its size for its whole life.
                    let login =
                        login::login(&self.hub, &connect, self.thumbprints.as_ref(), self.link);
                    let (result, peer) = Box::pin(login).await;
                    self.peer = peer;
                    // The answer (CONNACK, restored subscriptions) comes before anything else.
                    for follow in self.session.handle_auth(result, now()).into_iter().rev() {
                        queue.push_front(follow);
                    }
                }
                Next::Close(flow) => break flow,
            }
        };
        self.hand_over(&mut batch);
        match self.framed.flush().await {
            Ok(()) => flow,
            Err(e) => Flow::close(format!("write failed: {e}"), true),
        }
    }

    /// Performs one action, or says what must be awaited for it.
    fn apply(&mut self, action: Action, batch: &mut TelemetryBatch) -> Next {
        if let Action::Telemetry {
            ack,
            properties,
            body,
            retain,
        } = action
        {
            let Some(p) = &self.peer else {
                return Next::Close(Flow::close("telemetry before authentication", false));
            };
            batch.push(p, ack, &properties, body, retain, &self.hub);
            return Next::Continue;
        }
        self.hand_over(batch);
        match action {
            Action::Send(packet) => self.write(packet),
            Action::Authenticate(connect) => Next::Authenticate(connect),
            Action::Request { ack, request } => {
                if let Some(p) = &self.peer {
                    self.hub.device_request(&p.connection, request);
                }
                let done = ack.map_or(Completion::NoAck, Completion::Ack);
                self.acks.push_back(Box::pin(std::future::ready(done)));
                Next::Continue
            }
            Action::C2dDelivered(lock_token) => {
                if let Some(p) = &self.peer {
                    self.hub.c2d_delivered(&p.connection, lock_token);
                }
                Next::Continue
            }
            Action::Subscribed { interests, save } => {
                if let Some(p) = &self.peer {
                    self.hub.interests_changed(&p.connection, interests);
                    if let Some(subscriptions) = save {
                        self.hub.save_session(&p.connection, subscriptions);
                    }
                }
                Next::Continue
            }
            Action::Close { reason, will } => Next::Close(Flow::close(reason, will)),
            Action::Telemetry { .. } => Next::Continue,
        }
    }

    /// Queues the batch's durable append as the next ordered completion.
    fn hand_over(&mut self, batch: &mut TelemetryBatch) {
        if let Some(append) = self
            .peer
            .as_ref()
            .and_then(|p| batch.take_append(&self.hub, p))
        {
            self.acks.push_back(append);
        }
    }

    /// Encodes `packet` into the write buffer (written at the next flush); asks for a flush
    /// once the buffer holds [`FLUSH_AT`] bytes, as the codec's own sink would.
    fn write(&mut self, packet: Packet) -> Next {
        if let Err(e) = HubCodec.encode(packet, self.framed.write_buffer_mut()) {
            return Next::Close(Flow::close(format!("write failed: {e}"), true));
        }
        if self.framed.write_buffer().len() >= FLUSH_AT {
            Next::Flush
        } else {
            Next::Continue
        }
    }

    /// Writes the PUBACKs of `first` and of every following completion that is already ready
    /// (in order, MQTT-4.6.0-2), then flushes once: one TLS record and one write for a whole
    /// group commit. After a failed append nothing more is acknowledged.
    async fn send_ready_acks(&mut self, first: Completion) -> Flow {
        let mut outcome = Flow::Continue;
        let mut next = Some(first);
        while let Some(done) = next.take() {
            let pkids = match done {
                Completion::Ack(pkid) => vec![pkid],
                Completion::Acks(pkids) => pkids,
                Completion::NoAck => Vec::new(),
                Completion::Failed => {
                    // No PUBACK: the client will retry after reconnecting.
                    outcome = Flow::close("telemetry append failed", false);
                    break;
                }
            };
            for pkid in pkids {
                let ack = Packet::PubAck(PubAck::new(pkid));
                if let Err(e) = HubCodec.encode(ack, self.framed.write_buffer_mut()) {
                    return Flow::close(format!("write failed: {e}"), true);
                }
            }
            // `now_or_never` only takes results that are ready; the select loop polls `acks`
            // again with its own waker, so nothing still pending is missed.
            next = self.acks.next().now_or_never().flatten();
        }
        if let Err(e) = self.framed.flush().await {
            return Flow::close(format!("write failed: {e}"), true);
        }
        outcome
    }

    /// Takes every further frame already in the read buffer (at most [`MAX_BUFFERED_FRAMES`])
    /// through the session, appending its actions, without reading the socket. Stops before
    /// anything that needs the connection's answer first (authentication) and after a close.
    /// Returns the error of a malformed frame, to be reported once the earlier frames are
    /// handled.
    fn take_buffered(&mut self, actions: &mut Vec<Action>, now: Instant) -> Option<CodecError> {
        let halts = |new: &[Action]| {
            new.iter()
                .any(|a| matches!(a, Action::Authenticate(_) | Action::Close { .. }))
        };
        if halts(actions) {
            return None;
        }
        for _ in 0..MAX_BUFFERED_FRAMES {
            match HubCodec.decode(self.framed.read_buffer_mut()) {
                Ok(Some(packet)) => {
                    let new = self.session.handle_packet(packet, now);
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

    /// Lets appends already started complete (their PUBACK cannot be sent any more, so the
    /// client will resend; duplicates are at-least-once), publishes the Will if due, and
    /// tells the hub the connection is gone.
    async fn finish(&mut self, reason: Cow<'static, str>, publish_will: bool) {
        while self.acks.next().await.is_some() {}
        let Some(p) = self.peer.take() else {
            tracing::debug!(transport = self.link.transport, peer = %self.link.peer(), %reason, "connection closed before CONNECT was accepted");
            return;
        };
        if let Some(will) = publish_will.then(|| self.session.take_will()).flatten() {
            let properties = will
                .topic
                .split_once("/messages/events/")
                .map_or("", |(_, bag)| bag);
            let message = p
                .stamp
                .message(properties, will.message, Origin::Will, self.hub.now());
            // Boxed: it runs once, at the end, and would otherwise size every connection's
            // task for its whole life.
            let stored = Box::pin(self.hub.queue_messages(&p.stamp, vec![message]));
            if let Err(e) = stored.await {
                tracing::warn!(error = %e, "could not store the Will message");
            }
        }
        let duration = self.started.elapsed();
        tracing::info!(
            transport = self.link.transport,
            peer = %self.link.peer(),
            "{} disconnected after {:.1} s: {reason}",
            p.connection.identity,
            duration.as_secs_f64(),
        );
        self.hub
            .disconnected(&p.connection, self.link.transport, &reason, duration);
    }
}

/// Telemetry PUBLISHes waiting to be appended together.
#[derive(Default)]
struct TelemetryBatch {
    messages: Vec<DeviceMessage>,
    /// Packet ids to acknowledge once the batch is durable (QoS 0 messages have none).
    pkids: Vec<u16>,
}

impl TelemetryBatch {
    /// Stamps one message from `peer` and adds it.
    fn push(
        &mut self,
        peer: &Peer,
        ack: Option<u16>,
        properties: &str,
        body: Bytes,
        retain: bool,
        hub: &Hub,
    ) {
        self.messages.push(peer.stamp.message(
            properties,
            body,
            Origin::Publish { retain },
            hub.now(),
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

async fn recv(peer: &mut Option<Peer>) -> Option<ToDevice> {
    match peer {
        Some(p) => p.outbound.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener_limits::AdmittedUntilConnack;

    /// The size of the future `f` returns, without building its arguments.
    fn future_size<A, B, C, D, E, F: Future>(_f: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle connection's task holds this future for its whole life (BENCHMARKS.md,
    /// the transport-free hub against the build before it): it must not grow unnoticed. The
    /// stream is what the TLS listener serves. Unoptimized builds lay the future out larger;
    /// `bench/emulator/heap.sh` shows the release build's task.
    #[test]
    fn an_idle_connection_task_stays_small() {
        type Tls = AdmittedUntilConnack<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;
        let stream = std::mem::size_of::<Framed<Tls, HubCodec>>();
        let size = future_size(serve::<Tls>);
        println!(
            "serve future: {size} bytes (Framed TLS stream {stream}, Session {}, Peer {}, Action {}, ToDevice {})",
            std::mem::size_of::<Session>(),
            std::mem::size_of::<Option<Peer>>(),
            std::mem::size_of::<Action>(),
            std::mem::size_of::<ToDevice>(),
        );
        let limit = if cfg!(debug_assertions) { 5_500 } else { 3_072 };
        assert!(size <= limit, "{size}");
    }
}
