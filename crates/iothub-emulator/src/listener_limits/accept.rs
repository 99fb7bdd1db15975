//! The accept loop the MQTT and AMQP listeners share: admit through the listener's [`Gate`],
//! one task per connection, and on shutdown wait for those tasks to end.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Admission, Gate};

/// Accepts on `listener` until `shutdown` fires, running `serve` for every connection `gate`
/// admits in a task of its own; a connection over the cap is closed at once (dropped).
/// Finished tasks are reaped as it goes, and after `shutdown` it waits for the rest (each
/// connection sees the same shutdown signal and closes itself).
pub(crate) async fn accept_admitted<F, Fut>(
    listener: TcpListener,
    gate: Gate,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Admission) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let Some(admission) = gate.admit() else { continue };
                conns.spawn(serve(stream, peer, admission));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    while conns.join_next().await.is_some() {}
}
