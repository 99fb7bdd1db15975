//! CONNECT → the hub's connect operations, and their outcome → CONNACK (docs/protocol.md
//! §1.2-1.8, §9). Every refusal is logged with its reason, never with a secret.

use std::net::SocketAddr;
use std::sync::Arc;

use iothub_proto::credentials::IncomingUsername;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode};

use super::session::{AuthResult, Principal};
use crate::hub::auth::ConnectCredentials;
use crate::hub::telemetry::ConnectionStamp;
use crate::hub::{
    ConnectError, ConnectionRef, DeviceConnection, DeviceLogin, DpsLogin, Hub, Outbox,
};

/// Who is on the other end once authenticated.
pub(crate) struct Peer {
    pub(crate) connection: ConnectionRef,
    /// What the hub stamps on its telemetry (auth method, generation id, model).
    pub(crate) stamp: Arc<ConnectionStamp>,
    pub(crate) outbound: Outbox,
}

/// Where a connection comes from, for the log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    /// `mqtt`, `mqtt+tls` or `mqtt+ws`.
    pub(crate) transport: &'static str,
    /// The peer's address, when known.
    pub(crate) peer: Option<SocketAddr>,
}

impl Link {
    /// The peer's address for the log (`-` when the transport does not know it).
    pub(crate) fn peer(&self) -> String {
        self.peer.map_or_else(|| "-".to_owned(), |a| a.to_string())
    }
}

/// Authenticates `connect` with the hub. `thumbprints` are those of the TLS client
/// certificate, if one was presented.
pub(crate) async fn login(
    hub: &Hub,
    connect: &Connect,
    thumbprints: Option<&(String, String)>,
    link: Link,
) -> (AuthResult, Option<Peer>) {
    let username = connect.login.as_ref().map(|l| l.username.as_str());
    let password = connect.login.as_ref().map(|l| l.password.as_str());
    let dps = username.and_then(|u| match IncomingUsername::parse(u) {
        Ok(IncomingUsername::Dps(dps)) => Some(dps),
        _ => None,
    });
    let (outcome, principal) = match dps {
        Some(dps) => {
            let login = DpsLogin {
                transport: link.transport,
                client_id: &connect.client_id,
                id_scope: dps.id_scope(),
                registration_id: dps.registration_id(),
                password: password.unwrap_or_default(),
            };
            (hub.connect_dps(login).await, None)
        }
        None => {
            let login = DeviceLogin {
                transport: link.transport,
                credentials: ConnectCredentials {
                    client_id: &connect.client_id,
                    username,
                    password,
                    thumbprints: thumbprints.map(|(a, b)| (a.as_str(), b.as_str())),
                },
                clean_session: connect.clean_session,
            };
            let outcome = hub.connect_device(login).await;
            let principal = outcome.as_ref().ok().map(|c| Principal::Device {
                device_id: c.connection.identity.device_id.clone(),
                module_id: c.connection.identity.module_id.clone(),
            });
            (outcome, principal)
        }
    };
    match outcome {
        Ok(connection) => accepted(hub, connection, principal.unwrap_or(Principal::Dps), link),
        Err(error) => (
            AuthResult::Refused(refused(&error, &connect.client_id, link)),
            None,
        ),
    }
}

fn accepted(
    hub: &Hub,
    connection: DeviceConnection,
    principal: Principal,
    link: Link,
) -> (AuthResult, Option<Peer>) {
    let DeviceConnection {
        connection,
        stamp,
        expires_at,
        restored_session,
        outbound,
    } = connection;
    // The token's expiry on the hub's clock, as a deadline on the connection's clock.
    let expires = expires_at.map(|at| {
        let left = at.duration_since(hub.now()).unwrap_or_default();
        tokio::time::Instant::now().into_std() + left
    });
    tracing::info!(
        transport = link.transport,
        peer = %link.peer(),
        "{} connected{}",
        connection.identity,
        if restored_session.is_some() { " (session resumed)" } else { "" },
    );
    let result = AuthResult::Accepted {
        principal,
        restored: restored_session,
        expires,
    };
    let peer = Peer {
        connection,
        stamp,
        outbound,
    };
    (result, Some(peer))
}

/// Logs the refusal and picks its CONNACK: 3 for a disabled identity or an internal failure
/// (docs/protocol.md §1.7), 5 for everything else.
fn refused(error: &ConnectError, client_id: &str, link: Link) -> ConnectReturnCode {
    match error {
        ConnectError::Refused(reason) => {
            tracing::info!(
                transport = link.transport,
                peer = %link.peer(),
                client_id,
                "refused CONNECT: {reason}"
            );
            if reason.is_disabled() {
                ConnectReturnCode::ServiceUnavailable
            } else {
                ConnectReturnCode::NotAuthorized
            }
        }
        ConnectError::Internal(e) => {
            tracing::error!(error = %e, client_id, "authentication failed internally");
            ConnectReturnCode::ServiceUnavailable
        }
    }
}
