//! HTTPS on the hub's HTTPS port: MQTT over WebSocket at `/$iothub/websocket`
//! (docs/protocol.md §1.1).

pub(crate) mod api;
pub(crate) mod blob;
pub(crate) mod dashboard;
mod serve;
mod websocket;

pub(crate) use websocket::serve_https;

/// Serves plain HTTP (REST API, dashboard) on `listener` with `limits` until `shutdown`.
pub(crate) async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: crate::listener_limits::ListenerLimits,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let gate = crate::listener_limits::Gate::new("http", limits.max_unauthenticated);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut stop = shutdown.clone();
    let accept = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => {
                    let Ok((io, peer)) = accepted else { continue };
                    // Over the cap: dropping the stream closes it at once.
                    let Some(admission) = gate.admit() else { continue };
                    if tx.send(serve::Accepted { io, peer, admission }).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    serve::serve(rx, app, limits, shutdown).await;
    accept.abort();
}
