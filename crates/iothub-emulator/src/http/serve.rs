//! Serving HTTP/1.1 connections with bounded time (emulator README, "Limits and
//! timeouts"): a request head must arrive within [`ListenerLimits::http_header_read`] of the
//! connection opening or of the previous response (slow-header clients and idle keep-alive
//! connections are closed), and a request body may pause at most
//! [`ListenerLimits::http_body_idle`] between chunks. Upgrades (the MQTT WebSocket) are
//! served; the connection's listener [`Admission`] travels in the request extensions
//! ([`AdmissionSlot`]) so the WebSocket endpoint can keep it until the MQTT CONNECT is
//! accepted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutBody;

use crate::listener_limits::{Admission, ListenerLimits};

/// A connection accepted (and, for HTTPS, through its TLS handshake) and admitted.
pub(crate) struct Accepted<IO> {
    pub(crate) io: IO,
    pub(crate) peer: SocketAddr,
    pub(crate) admission: Admission,
}

/// A connection's [`Admission`], shared between its task and its requests; whoever
/// [takes](AdmissionSlot::take) it decides when it is freed, otherwise it is freed when the
/// connection ends.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdmissionSlot(Arc<Mutex<Option<Admission>>>);

impl AdmissionSlot {
    fn new(admission: Admission) -> Self {
        Self(Arc::new(Mutex::new(Some(admission))))
    }

    /// The admission, if nobody took it yet.
    pub(crate) fn take(&self) -> Option<Admission> {
        self.0.lock().ok()?.take()
    }
}

/// Serves `app` on every connection `incoming` yields until `shutdown` fires, then shuts each
/// connection down gracefully and waits for them.
pub(crate) async fn serve<IO>(
    mut incoming: mpsc::Receiver<Accepted<IO>>,
    app: Router,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = incoming.recv() => match accepted {
                Some(a) => {
                    conns.spawn(connection(a, app.clone(), limits, shutdown.clone()));
                }
                None => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    while conns.join_next().await.is_some() {}
}

async fn connection<IO>(
    accepted: Accepted<IO>,
    app: Router,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        io,
        peer,
        admission,
    } = accepted;
    let slot = AdmissionSlot::new(admission);
    let per_request = slot.clone();
    let body_idle = limits.http_body_idle;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(|b| Body::new(TimeoutBody::new(body_idle, b)));
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(per_request.clone());
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.http_header_read);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(slot);
}
