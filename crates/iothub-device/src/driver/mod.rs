//! The one task that owns the connection.
//!
//! It dials, feeds the sans-IO [`Session`], routes what arrives (C2D, twin responses, desired
//! patches, method calls), serves the application's commands, renews the SAS token by a
//! planned reconnect, reconnects with backoff after failures, and drains on close. Nothing
//! else touches the socket; applications hold [`DeviceClient`](crate::DeviceClient) handles.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iothub_proto::RequestIds;
use iothub_proto::topic::{
    C2dFilter, DESIRED_PATCH_FILTER, METHODS_FILTER, MethodResponseTopic, TWIN_RESPONSE_FILTER,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

mod incoming;

use crate::backoff::Backoff;
use crate::client::{DesiredPatch, Methods};
use crate::message::C2dMessage;
use crate::session::{
    AckToken, ConnectRequest, OutgoingPublish, PublishId, Qos, Session, SessionConfig,
    SessionEvent, encode_disconnect,
};
use crate::store::DurableOutbox;
use crate::transport::{Connection, Endpoint};
use crate::{ConnectionState, CredentialError, DisconnectReason, Error, NetworkError, Request};

/// Longest wait for in-flight acknowledgements before a planned token renewal.
const RENEWAL_DRAIN: Duration = Duration::from_secs(5);

/// How long a connection must last before the reconnect backoff starts over.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Commands handled per wake-up before writing to the socket.
const COMMAND_BATCH: usize = 128;

/// Credentials for one CONNECT, minted fresh for every connection.
#[derive(Debug, Clone)]
pub(crate) struct LoginInfo {
    pub(crate) client_id: String,
    pub(crate) username: String,
    /// SAS token; `None` for X.509.
    pub(crate) password: Option<String>,
    /// Token lifetime; the driver reconnects after `renew_fraction` of it.
    pub(crate) valid_for: Option<Duration>,
}

/// Mints credentials (the SAS signer lives behind this).
pub(crate) trait LoginSource: Send + Sync + 'static {
    fn login(&self) -> Result<LoginInfo, CredentialError>;
}

/// Everything the driver needs, resolved from the public options.
pub(crate) struct DriverOptions {
    pub(crate) endpoint: Endpoint,
    pub(crate) session: SessionConfig,
    pub(crate) device_id: String,
    pub(crate) module_id: Option<String>,
    pub(crate) login: Arc<dyn LoginSource>,
    pub(crate) backoff: Backoff,
    /// Minimum wait after the hub refused our credentials: no reconnect storms.
    pub(crate) auth_backoff_min: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) max_packet_size: usize,
    pub(crate) outbox_dir: Option<PathBuf>,
    /// Fraction of the token lifetime after which it is renewed (default 0.8, as the C SDK).
    pub(crate) renew_fraction: f64,
}

/// What the handles ask of the driver.
pub(crate) enum Command {
    Telemetry {
        topic: String,
        payload: Bytes,
        qos: Qos,
        done: oneshot::Sender<Result<(), Error>>,
    },
    EnableC2d(mpsc::UnboundedSender<(C2dMessage, Option<AckToken>)>),
    EnableDesired(mpsc::UnboundedSender<DesiredPatch>),
    EnableMethods,
    TwinGet(oneshot::Sender<Result<Value, Error>>),
    TwinPatch(Bytes, oneshot::Sender<Result<u64, Error>>),
    MethodResponse {
        request_id: String,
        status: u16,
        payload: Bytes,
    },
    Ack(AckToken),
    Close(oneshot::Sender<()>),
}

enum Waiter {
    Telemetry {
        done: Option<oneshot::Sender<Result<(), Error>>>,
        file: Option<PathBuf>,
    },
    /// Twin request or method response: completion comes from elsewhere (or nowhere).
    Other,
}

enum RequestKind {
    Get(oneshot::Sender<Result<Value, Error>>),
    Patch(oneshot::Sender<Result<u64, Error>>),
    Resync,
}

impl RequestKind {
    /// The request named in a timeout.
    fn request(&self) -> Request {
        match self {
            Self::Patch(_) => Request::TwinPatch,
            Self::Get(_) | Self::Resync => Request::TwinGet,
        }
    }
}

struct PendingRequest {
    kind: RequestKind,
    deadline: Instant,
    publish_id: PublishId,
}

/// How a connection ended.
enum Ended {
    /// Closing, and nothing left to deliver (or the drain timeout passed).
    Closed,
    /// Failed, refused or never came up; reconnect after a backoff.
    Lost(DisconnectReason),
    /// A planned reconnect with a fresh SAS token.
    Renewal,
}

/// The dial in progress: TCP, proxy, TLS and WebSocket handshakes.
type Dial = Pin<Box<dyn Future<Output = Result<Connection, DisconnectReason>> + Send>>;

/// What the connection is doing; the driver's one loop serves commands in every state.
enum Link {
    /// Waiting out the backoff until `until`.
    Offline { until: Instant },
    /// Credentials could not be minted; ends the attempt at once.
    Failed(DisconnectReason),
    /// Dialling; CONNECT goes out with `login` once the transport is open.
    Dialling { dial: Dial, login: Box<LoginInfo> },
    /// The transport is open and the session runs on it (CONNACK may still be pending).
    Online {
        connection: Connection,
        read_buf: BytesMut,
        /// When the SAS token should be renewed.
        renew_at: Option<Instant>,
        /// Renewing: reconnect once in-flight messages are acknowledged, or at this deadline.
        renew_deadline: Option<Instant>,
    },
    /// Between states, never waited on.
    Closed,
}

impl Link {
    /// The next step of the link itself: the backoff ending, the dial finishing, or bytes
    /// arriving (fed to `session`).
    async fn progress(&mut self, session: &mut Session, max_packet_size: usize) -> Wake {
        match self {
            Self::Offline { until } => {
                sleep_until(*until).await;
                Wake::BackoffOver
            }
            Self::Failed(reason) => Wake::Ended(Ended::Lost(reason.clone())),
            Self::Dialling { dial, .. } => Wake::Dialled(dial.as_mut().await),
            Self::Online {
                connection,
                read_buf,
                ..
            } => Wake::Read(match connection.read(read_buf).await {
                Ok(0) => Err(DisconnectReason::Network(NetworkError::ClosedByPeer)),
                Ok(_) => session
                    .handle_bytes(read_buf, max_packet_size, Instant::now().into_std())
                    .map_err(DisconnectReason::Protocol),
                Err(e) => Err(DisconnectReason::Network(NetworkError::Io(Arc::new(e)))),
            }),
            Self::Closed => std::future::pending().await,
        }
    }
}

/// Why [`Driver::wait`] returned.
enum Wake {
    BackoffOver,
    Dialled(Result<Connection, DisconnectReason>),
    Ended(Ended),
    /// A command, a timer or a request deadline was handled; nothing else changed.
    Handled,
    /// Bytes were read and fed to the session (or reading failed).
    Read(Result<(), DisconnectReason>),
}

pub(crate) struct Driver {
    options: DriverOptions,
    session: Session,
    commands: mpsc::Receiver<Command>,
    weak_commands: mpsc::WeakSender<Command>,
    state: watch::Sender<ConnectionState>,
    methods: Arc<Methods>,
    waiters: HashMap<PublishId, Waiter>,
    requests: HashMap<String, PendingRequest>,
    request_ids: RequestIds,
    next_id: PublishId,
    durable: Option<DurableOutbox>,
    c2d: Option<mpsc::UnboundedSender<(C2dMessage, Option<AckToken>)>>,
    desired: Option<mpsc::UnboundedSender<DesiredPatch>>,
    desired_version: Option<u64>,
    closing: Option<(Vec<oneshot::Sender<()>>, Instant)>,
    commands_open: bool,
    /// When the current connection's CONNACK arrived.
    connected_at: Option<Instant>,
}

impl Driver {
    pub(crate) fn new(
        options: DriverOptions,
        commands: mpsc::Receiver<Command>,
        weak_commands: mpsc::WeakSender<Command>,
        state: watch::Sender<ConnectionState>,
        methods: Arc<Methods>,
    ) -> Result<Self, Error> {
        let mut driver = Self {
            session: Session::new(options.session.clone()),
            options,
            commands,
            weak_commands,
            state,
            methods,
            waiters: HashMap::new(),
            requests: HashMap::new(),
            request_ids: RequestIds::new(),
            next_id: 0,
            durable: None,
            c2d: None,
            desired: None,
            desired_version: None,
            closing: None,
            commands_open: true,
            connected_at: None,
        };
        if let Some(dir) = driver.options.outbox_dir.clone() {
            let (outbox, stored) = DurableOutbox::open(&dir)?;
            for message in stored {
                let id = driver.allocate_id();
                driver.session.restore(OutgoingPublish {
                    id,
                    topic: message.topic,
                    payload: message.payload,
                    qos: Qos::AtLeastOnce,
                });
                driver.waiters.insert(
                    id,
                    Waiter::Telemetry {
                        done: None,
                        file: Some(message.path),
                    },
                );
            }
            driver.durable = Some(outbox);
        }
        Ok(driver)
    }

    /// Runs until closed (by [`Command::Close`] or when every handle is dropped).
    ///
    /// This is the driver's only `select!`: whatever the link is doing (waiting out a
    /// backoff, dialling, connected), the same loop serves commands, request deadlines and
    /// the close deadline, so applications never block on the network.
    pub(crate) async fn run(mut self) {
        let mut link = Link::Offline {
            until: Instant::now(),
        };
        let mut backoff_attempt: u32 = 0;
        loop {
            let ended = match &mut link {
                Link::Online {
                    connection,
                    renew_deadline,
                    ..
                } => self.pump(connection, renew_deadline.is_some()).await,
                // Not connected and nothing left to deliver: closing needs no connection.
                _ if self.close_complete() => Some(Ended::Closed),
                _ => None,
            };
            let wake = match ended {
                Some(ended) => Wake::Ended(ended),
                None => self.wait(&mut link).await,
            };
            let ended = match wake {
                Wake::Ended(ended) => ended,
                Wake::BackoffOver => {
                    link = self.dial();
                    continue;
                }
                Wake::Dialled(Ok(connection)) => {
                    link = self.start_connection(connection, &mut link);
                    continue;
                }
                Wake::Dialled(Err(reason)) => Ended::Lost(reason),
                Wake::Read(Ok(())) => continue,
                Wake::Read(Err(reason)) => Ended::Lost(reason),
                Wake::Handled => continue,
            };
            match self.end_connection(link, ended, &mut backoff_attempt).await {
                Some(next) => link = next,
                None => break,
            }
        }
        self.finish();
    }

    /// Waits for the next thing to happen and handles what needs no change of link.
    async fn wait(&mut self, link: &mut Link) -> Wake {
        let (session_timeout, renew_at, renew_deadline) = match link {
            Link::Online {
                renew_at,
                renew_deadline,
                ..
            } => (
                self.session.poll_timeout().map(Instant::from_std),
                renew_at.filter(|_| renew_deadline.is_none()),
                *renew_deadline,
            ),
            _ => (None, None, None),
        };
        let next_request = self.next_request_deadline();
        let close_deadline = self.closing.as_ref().map(|c| c.1);
        let max_packet_size = self.options.max_packet_size;
        tokio::select! {
            wake = link.progress(&mut self.session, max_packet_size) => wake,
            cmd = self.commands.recv(), if self.commands_open => {
                self.handle_command(cmd);
                // Take what else is already queued, so one write carries many packets.
                for _ in 0..COMMAND_BATCH {
                    match self.commands.try_recv() {
                        Ok(cmd) => self.handle_command(Some(cmd)),
                        Err(_) => break,
                    }
                }
                Wake::Handled
            }
            () = sleep_until_opt(session_timeout) => {
                self.session.handle_timeout(Instant::now().into_std());
                Wake::Handled
            }
            () = sleep_until_opt(renew_at) => {
                tracing::debug!("renewing the SAS token by a planned reconnect");
                // Let what is in flight be acknowledged first (bounded), so the renewal
                // causes no re-sends and no duplicates at the hub.
                self.session.drain();
                if let Link::Online { renew_deadline, .. } = link {
                    *renew_deadline = Some(Instant::now() + RENEWAL_DRAIN);
                }
                Wake::Handled
            }
            () = sleep_until_opt(renew_deadline) => Wake::Ended(Ended::Renewal),
            () = sleep_until_opt(next_request) => {
                self.expire_requests();
                Wake::Handled
            }
            () = sleep_until_opt(close_deadline) => Wake::Ended(Ended::Closed),
        }
    }

    /// Mints credentials and starts dialling (the dial runs inside [`Driver::wait`]).
    fn dial(&mut self) -> Link {
        self.publish_state(ConnectionState::Connecting);
        let login = match self.options.login.login() {
            Ok(login) => login,
            Err(e) => {
                return Link::Failed(DisconnectReason::Credentials(e));
            }
        };
        let endpoint = self.options.endpoint.clone();
        Link::Dialling {
            dial: Box::pin(async move { Connection::open(&endpoint).await }),
            login: Box::new(login),
        }
    }

    /// The transport is open: queue CONNECT and go online.
    fn start_connection(&mut self, connection: Connection, previous: &mut Link) -> Link {
        let Link::Dialling { login, .. } = std::mem::replace(previous, Link::Closed) else {
            // invariant: only a dialling link yields `Wake::Dialled`.
            return Link::Closed;
        };
        let LoginInfo {
            client_id,
            username,
            password,
            valid_for,
        } = *login;
        let connected_at = Instant::now();
        let renew_at = valid_for
            .map(|ttl| connected_at + ttl.mul_f64(self.options.renew_fraction.clamp(0.05, 1.0)));
        let request = ConnectRequest {
            client_id,
            username,
            password,
            // Clean session 0 keeps C2D queued and subscriptions across connections
            // (`docs/protocol.md`, connecting).
            clean_session: false,
        };
        self.session
            .start_connection(request, connected_at.into_std());
        Link::Online {
            connection,
            read_buf: BytesMut::with_capacity(4 * 1024),
            renew_at,
            renew_deadline: None,
        }
    }

    /// Ends the current connection the way `ended` says and picks what comes next: `None`
    /// when the client is done.
    async fn end_connection(
        &mut self,
        link: Link,
        ended: Ended,
        backoff_attempt: &mut u32,
    ) -> Option<Link> {
        if let Link::Online { mut connection, .. } = link {
            if matches!(ended, Ended::Closed | Ended::Renewal) {
                // A polite DISCONNECT: the hub does not publish a Will for it.
                let mut buf = BytesMut::new();
                encode_disconnect(&mut buf);
                let _ = tokio::time::timeout(Duration::from_secs(5), connection.write(&buf)).await;
            }
            connection.shutdown().await;
        }
        // Reset the backoff only after a connection that lasted: a hub that accepts and
        // then drops at once (throttling, quota, a duplicate identity) must not get a
        // reconnect storm.
        if self
            .connected_at
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE_CONNECTION)
        {
            *backoff_attempt = 0;
        }
        self.session.handle_connection_lost();
        self.drain_session_events();
        let delay = match ended {
            Ended::Closed => return None,
            Ended::Renewal => Duration::ZERO,
            Ended::Lost(reason) => {
                let mut delay = self.options.backoff.delay(*backoff_attempt);
                if matches!(reason, DisconnectReason::Refused(_)) {
                    // A refused login is never retried in a tight loop.
                    delay = delay.max(self.options.auth_backoff_min);
                }
                *backoff_attempt = backoff_attempt.saturating_add(1);
                tracing::debug!(%reason, retry_in = ?delay, "disconnected");
                self.publish_state(ConnectionState::Disconnected {
                    reason,
                    retry_in: delay,
                });
                delay
            }
        };
        Some(Link::Offline {
            until: Instant::now() + delay,
        })
    }

    /// Moves session events and packets until the session is quiet; returns how the
    /// connection ended if it did.
    async fn pump(&mut self, connection: &mut Connection, renewing: bool) -> Option<Ended> {
        loop {
            // Events first (they may queue packets: PUBACKs, resync GETs), then the wire; and
            // again while either produced more, so nothing waits for an unrelated wake-up.
            if let Some(ended) = self.process_events() {
                return Some(ended);
            }
            if let Err(reason) = self.write_pending(connection).await {
                return Some(Ended::Lost(reason));
            }
            if self.session.has_transmit() {
                continue;
            }
            if self.close_complete() {
                return Some(Ended::Closed);
            }
            if renewing && self.session.is_quiet() {
                return Some(Ended::Renewal);
            }
            return None;
        }
    }

    async fn write_pending(&mut self, connection: &mut Connection) -> Result<(), DisconnectReason> {
        let mut buf = BytesMut::new();
        self.session
            .write_transmit(
                Instant::now().into_std(),
                &mut buf,
                self.options.max_packet_size,
            )
            .map_err(DisconnectReason::Protocol)?;
        if buf.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(
            self.options.session.response_timeout,
            connection.write(&buf),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DisconnectReason::Network(NetworkError::Io(Arc::new(e)))),
            Err(_) => Err(DisconnectReason::Timeout(Request::Write)),
        }
    }

    /// Handles session events; returns how the connection ended if it did.
    fn process_events(&mut self) -> Option<Ended> {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::Connected { .. } => {
                    self.connected_at = Some(Instant::now());
                    self.publish_state(ConnectionState::Connected);
                    if self.desired.is_some() {
                        // Desired patches are not kept for offline devices: GET the twin after
                        // every connect and surface what changed (docs/protocol.md §6, reconnect
                        // flow).
                        self.start_resync();
                    }
                }
                SessionEvent::Refused(code) => {
                    return Some(Ended::Lost(DisconnectReason::Refused(code)));
                }
                SessionEvent::Delivered(id) => self.delivered(id),
                SessionEvent::Publish {
                    topic,
                    payload,
                    ack,
                } => self.route(&topic, &payload, ack),
                SessionEvent::SubscribeRefused(filter) => {
                    tracing::warn!(%filter, "the hub refused a subscription");
                }
                SessionEvent::Subscribed => {}
                SessionEvent::ConnectionLost(reason) => {
                    return Some(Ended::Lost(reason.into()));
                }
            }
        }
        None
    }

    /// Events raised after the connection is gone (none are expected; deliveries cannot happen).
    fn drain_session_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if let SessionEvent::Delivered(id) = event {
                self.delivered(id);
            }
        }
    }

    fn handle_command(&mut self, command: Option<Command>) {
        let Some(command) = command else {
            // Every handle is gone: close gracefully.
            self.commands_open = false;
            self.begin_close(None);
            return;
        };
        match command {
            Command::Telemetry {
                topic,
                payload,
                qos,
                done,
            } => self.telemetry(topic, payload, qos, done),
            Command::EnableC2d(tx) => {
                self.c2d = Some(tx);
                let filter = match &self.options.module_id {
                    Some(m) => C2dFilter::new(&self.options.device_id)
                        .module(m)
                        .to_string(),
                    None => C2dFilter::new(&self.options.device_id).to_string(),
                };
                self.session.subscribe(&filter);
            }
            Command::EnableDesired(tx) => {
                self.desired = Some(tx);
                self.session.subscribe(DESIRED_PATCH_FILTER);
                self.session.subscribe(TWIN_RESPONSE_FILTER);
                if self.session.is_connected() {
                    self.start_resync();
                }
            }
            Command::EnableMethods => self.session.subscribe(METHODS_FILTER),
            Command::TwinGet(reply) => self.twin_request(RequestKind::Get(reply), None),
            Command::TwinPatch(body, reply) => {
                self.twin_request(RequestKind::Patch(reply), Some(body));
            }
            Command::MethodResponse {
                request_id,
                status,
                payload,
            } => {
                let topic =
                    MethodResponseTopic::new(iothub_proto::RequestId::new(&request_id), status)
                        .to_string();
                // A method response belongs to this connection's request: if the outbox is
                // full the caller times out at the service, which is the right outcome.
                let _ = self.publish_internal(topic, payload);
            }
            Command::Ack(token) => self.session.ack(token),
            Command::Close(reply) => self.begin_close(Some(reply)),
        }
    }

    fn telemetry(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: Qos,
        done: oneshot::Sender<Result<(), Error>>,
    ) {
        if self.closing.is_some() {
            let _ = done.send(Err(Error::Closed));
            return;
        }
        if self.session.len() >= self.options.session.capacity {
            let _ = done.send(Err(Error::OutboxFull {
                capacity: self.options.session.capacity,
            }));
            return;
        }
        // At-most-once messages are never made durable: they are not worth re-sending.
        let durable = self.durable.as_mut().filter(|_| qos == Qos::AtLeastOnce);
        let file = match durable.map(|d| d.put(&topic, &payload)) {
            Some(Ok(path)) => Some(path),
            Some(Err(e)) => {
                let _ = done.send(Err(e));
                return;
            }
            None => None,
        };
        let id = self.allocate_id();
        let publish = OutgoingPublish {
            id,
            topic,
            payload,
            qos,
        };
        match self.session.publish(publish) {
            Ok(()) => {
                self.waiters.insert(
                    id,
                    Waiter::Telemetry {
                        done: Some(done),
                        file,
                    },
                );
            }
            Err(full) => {
                if let (Some(d), Some(path)) = (&self.durable, &file) {
                    let _ = d.remove(path);
                }
                let _ = done.send(Err(Error::OutboxFull {
                    capacity: full.capacity,
                }));
            }
        }
    }

    fn publish_internal(&mut self, topic: String, payload: Bytes) -> Option<PublishId> {
        let id = self.allocate_id();
        let publish = OutgoingPublish {
            id,
            topic,
            payload,
            qos: Qos::AtLeastOnce,
        };
        self.session.publish(publish).ok()?;
        self.waiters.insert(id, Waiter::Other);
        Some(id)
    }

    fn delivered(&mut self, id: PublishId) {
        match self.waiters.remove(&id) {
            Some(Waiter::Telemetry { done, file }) => {
                let mut result = Ok(());
                if let (Some(durable), Some(path)) = (&self.durable, &file) {
                    result = durable.remove(path);
                }
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
            Some(Waiter::Other) | None => {}
        }
    }

    fn begin_close(&mut self, reply: Option<oneshot::Sender<()>>) {
        match &mut self.closing {
            Some((replies, _)) => replies.extend(reply),
            None => {
                self.closing = Some((
                    reply.into_iter().collect(),
                    Instant::now() + self.options.drain_timeout,
                ));
            }
        }
    }

    /// Closing and nothing left in flight (or nothing to drain).
    fn close_complete(&self) -> bool {
        self.closing.is_some() && self.session.is_drained()
    }

    fn finish(&mut self) {
        self.publish_state(ConnectionState::Closed);
        for (_, waiter) in self.waiters.drain() {
            if let Waiter::Telemetry {
                done: Some(done), ..
            } = waiter
            {
                // Not acknowledged by the hub: never reported delivered. With a durable
                // outbox the message stays on disk for the next process.
                let _ = done.send(Err(Error::Closed));
            }
        }
        for (_, request) in self.requests.drain() {
            fail_request(request.kind, Error::Closed);
        }
        if let Some((replies, _)) = self.closing.take() {
            for reply in replies {
                let _ = reply.send(());
            }
        }
    }

    fn publish_state(&self, state: ConnectionState) {
        let _ = self.state.send(state);
    }

    fn allocate_id(&mut self) -> PublishId {
        self.next_id += 1;
        self.next_id
    }
}

fn fail_request(kind: RequestKind, error: Error) {
    match kind {
        RequestKind::Get(reply) => {
            let _ = reply.send(Err(error));
        }
        RequestKind::Patch(reply) => {
            let _ = reply.send(Err(error));
        }
        RequestKind::Resync => {}
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
