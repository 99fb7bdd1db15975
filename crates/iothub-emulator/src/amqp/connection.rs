//! One AMQP connection: the open handshake (SASL, OPEN) within a time limit, then its
//! sessions, each accepting links and handing them to [`super::routing`]. A link that fails
//! or is refused ends alone; the connection and its other links go on.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fe2o3_amqp::acceptor::{ConnectionAcceptor, ListenerSessionHandle, SessionAcceptor};
use fe2o3_amqp::types::definitions::Fields;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::coalesce::Coalesced;
use super::context::AmqpContext;
use super::full_fields::FullFields;
use super::nodes::NodeReplies;
use super::sasl::HubSasl;
use super::tokens::{TokenSource, TokenTable};
use crate::listener_limits::Admission;

/// The container id the emulator answers OPEN with.
pub(crate) const CONTAINER_ID: &str = "iothub-emulator";

/// Longest time from the first byte to a completed OPEN (SASL included), as the MQTT side
/// allows for CONNECT (docs/amqp.md "Limits").
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest frame the emulator accepts (the Event Hubs service offers the same).
const MAX_FRAME_SIZE: u32 = 256 * 1024;

/// The `properties` the emulator puts on its OPEN, BEGIN and ATTACH frames.
///
/// AMQP lets a peer leave out trailing empty fields of a performative, and fe2o3-amqp does;
/// but azure-eventhub's AMQP stack (pyamqp) reads fields by position without checking the
/// list's length (an OPEN's `properties` is its tenth field), as the Event Hubs service always
/// sends every field. Setting the last field makes every frame carry all of them
/// (docs/amqp.md "Choices").
pub(crate) fn full_frame_properties() -> Fields {
    let mut f = Fields::new();
    f.insert(Symbol::from("product"), Value::String(CONTAINER_ID.into()));
    f
}

/// Links a session may have at once, said explicitly on BEGIN (a value other than AMQP's
/// default, which fe2o3-amqp would leave out and pyamqp cannot do without).
const HANDLE_MAX: u32 = 4095;

/// How a connection arrived, for its log lines.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    /// `amqps`, `amqp` or `amqp+ws`.
    pub(crate) transport: &'static str,
    /// The remote address (none over the WebSocket bridge).
    pub(crate) addr: Option<SocketAddr>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

/// What the links of one connection share.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) peer: Peer,
    /// The tokens it holds; link tasks watch it for renewals and expiry.
    pub(crate) tokens: watch::Sender<TokenTable>,
    /// Where `$cbs` and `$management` replies go.
    pub(crate) replies: NodeReplies,
}

/// Serves one AMQP connection over `io` until the client closes it or the emulator stops.
/// `admission` (the listener's place for a connection not yet open) is released once OPEN
/// completes.
pub(crate) async fn serve_connection<IO>(
    io: IO,
    peer: Peer,
    admission: Option<Admission>,
    ctx: Arc<AmqpContext>,
) where
    IO: AsyncRead + AsyncWrite + Debug + Send + Unpin + 'static,
{
    let sasl = HubSasl::default();
    let acceptor = ConnectionAcceptor::builder()
        .container_id(CONTAINER_ID)
        .max_frame_size(MAX_FRAME_SIZE)
        .properties(full_frame_properties())
        .sasl_acceptor(sasl.clone())
        .build();
    let started = Instant::now();
    // Frames padded to their full field count, then written many at a time.
    let io = Coalesced::spawn(FullFields::new(io));
    let mut conn = match tokio::time::timeout(OPEN_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::info!(transport = peer.transport, peer = %peer, "AMQP connection refused while opening: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(transport = peer.transport, peer = %peer, "AMQP open not finished within {OPEN_TIMEOUT:?}");
            return;
        }
    };
    drop(admission);
    let mut tokens = TokenTable::default();
    let mut identity = "anonymous (CBS)".to_string();
    if let Some(plain) = sasl.plain_credentials() {
        let expires =
            iothub_proto::sas::ParsedSasToken::parse(plain.token.trim()).map_or(0, |t| t.expiry());
        tokens.put(TokenSource::SaslPlain, plain.token, expires);
        identity = format!("{} (SASL PLAIN)", plain.user);
    }
    tracing::info!(transport = peer.transport, peer = %peer, identity = %identity, "AMQP connection opened");
    let state = Arc::new(ConnState {
        peer,
        tokens: watch::Sender::new(tokens),
        replies: NodeReplies::default(),
    });
    let mut sessions = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    let reason = loop {
        tokio::select! {
            _ = shutdown.changed() => break "the emulator is stopping",
            incoming = conn.next_incoming_session() => match incoming {
                Some(incoming) => {
                    // handle-max said explicitly: pyamqp compares against it without a default.
                    let acceptor = SessionAcceptor::builder()
                        .handle_max(HANDLE_MAX)
                        .properties(full_frame_properties())
                        .build();
                    match acceptor.accept_incoming_session(incoming, &mut conn).await {
                        Ok(session) => {
                            sessions.spawn(serve_session(session, ctx.clone(), state.clone()));
                        }
                        Err(e) => tracing::debug!(transport = peer.transport, peer = %peer, "session not begun: {e}"),
                    }
                }
                None => break "closed by the client",
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    };
    let _ = conn.close().await;
    sessions.abort_all();
    while sessions.join_next().await.is_some() {}
    tracing::info!(
        transport = peer.transport,
        peer = %peer,
        identity = %identity,
        duration_ms = started.elapsed().as_millis() as u64,
        reason,
        "AMQP connection closed"
    );
}

async fn serve_session(
    mut session: ListenerSessionHandle,
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
) {
    let mut links = JoinSet::new();
    loop {
        tokio::select! {
            attach = session.next_incoming_attach() => match attach {
                Some(attach) => super::routing::route(attach, &mut session, &ctx, &state, &mut links).await,
                None => break,
            },
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
    links.abort_all();
    while links.join_next().await.is_some() {}
    let _ = session.end().await;
}
