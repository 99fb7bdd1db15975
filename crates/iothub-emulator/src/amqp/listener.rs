//! The AMQP listeners (docs/amqp.md "Endpoints"): AMQPS with TLS from the first byte (Azure
//! clients do not send AMQP's TLS upgrade header, so rustls terminates TLS before the AMQP
//! acceptor sees a byte) and plain AMQP for `UseDevelopmentEmulator=true` connection strings.
//! AMQP over WebSockets arrives through the HTTPS listener (`http/websocket.rs`).
//!
//! Each listener admits at most `max_unauthenticated` connections that have not finished
//! their AMQP open handshake (SASL and OPEN), as the MQTT listeners do until CONNECT.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::connection::{Peer, serve_connection};
use super::context::AmqpContext;
use crate::listener_limits::{Admission, Gate, accept_admitted};

/// Serves AMQPS on `listener` until `shutdown` fires.
pub(crate) async fn serve_amqps(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<AmqpContext>,
    shutdown: watch::Receiver<bool>,
) {
    let gate = Gate::new("amqps", ctx.limits.max_unauthenticated);
    accept_admitted(listener, gate, shutdown, |stream, peer, admission| {
        tls_connection(stream, peer, admission, acceptor.clone(), ctx.clone())
    })
    .await;
}

/// Serves plain AMQP on `listener` until `shutdown` fires.
pub(crate) async fn serve_amqp_plain(
    listener: TcpListener,
    ctx: Arc<AmqpContext>,
    shutdown: watch::Receiver<bool>,
) {
    let gate = Gate::new("amqp", ctx.limits.max_unauthenticated);
    accept_admitted(listener, gate, shutdown, |stream, addr, admission| {
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            transport: "amqp",
            addr: Some(addr),
        };
        serve_connection(stream, peer, Some(admission), ctx.clone())
    })
    .await;
}

async fn tls_connection(
    stream: TcpStream,
    addr: SocketAddr,
    admission: Admission,
    acceptor: TlsAcceptor,
    ctx: Arc<AmqpContext>,
) {
    let _ = stream.set_nodelay(true);
    let limit = ctx.limits.tls_handshake;
    let tls = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(transport = "amqps", peer = %addr, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(transport = "amqps", peer = %addr, "TLS handshake not finished within {limit:?}");
            return;
        }
    };
    let peer = Peer {
        transport: "amqps",
        addr: Some(addr),
    };
    serve_connection(tls, peer, Some(admission), ctx).await;
}
