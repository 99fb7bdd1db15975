//! Connecting to the hub: a device's or module's connection (authentication, takeover, the
//! persistent session) and a DPS registration's. Every outcome, refusals included, goes into
//! the device's connection history. Transports call these; what the connection may then do
//! is in `device_side.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use iothub_proto::credentials::ParsedUsername;

use super::Hub;
use super::auth::{self, AuthFailure, AuthMethod, ConnectCredentials, Identity};
use super::connection_log::{ConnectionEvent, ConnectionEventKind};
use super::connections::{ConnectionRef, Outbox};
use super::lock;
use super::provisioning;
use super::routes::{self, RouteSource};
use super::telemetry::{ConnectionStamp, Sender};
use crate::store::StoreError;
use crate::store::registry as registry_store;
use crate::store::sessions::{self, StoredSubscription};

/// What a device offers when it connects to the hub (on MQTT: CONNECT and the TLS client
/// certificate).
#[derive(Clone, Copy, Debug)]
pub struct DeviceLogin<'a> {
    /// The transport, for the connection history (`mqtt+tls`, …).
    pub transport: &'static str,
    /// The credentials.
    pub credentials: ConnectCredentials<'a>,
    /// Start afresh (true) or resume the stored session (false).
    pub clean_session: bool,
}

/// A DPS registration connecting (docs/protocol.md §9).
#[derive(Clone, Copy, Debug)]
pub struct DpsLogin<'a> {
    /// The transport, for the log.
    pub transport: &'static str,
    /// The transport's client id; must be the registration id.
    pub client_id: &'a str,
    /// The ID scope from the username.
    pub id_scope: &'a str,
    /// The registration id from the username.
    pub registration_id: &'a str,
    /// The SAS token.
    pub password: &'a str,
}

/// Why a connection could not be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The hub refused it, for this reason.
    #[error("refused: {0}")]
    Refused(#[from] AuthFailure),
    /// The hub failed while deciding (CONNACK 3 on MQTT).
    #[error("could not authenticate")]
    Internal(#[from] StoreError),
}

/// An accepted connection.
#[derive(Debug)]
pub struct DeviceConnection {
    /// Which connection this is.
    pub connection: ConnectionRef,
    /// Who it is and what the hub stamps on its telemetry.
    pub stamp: Arc<ConnectionStamp>,
    /// When its SAS token runs out (the allowed skew included): the transport closes it then
    /// (docs/protocol.md §2.3).
    pub expires_at: Option<SystemTime>,
    /// The stored session resumed (clean session 0 with a stored session), if any.
    pub restored_session: Option<Vec<StoredSubscription>>,
    /// What the hub sends this connection.
    pub outbound: Outbox,
}

/// Pseudo module id keeping DPS connections apart from hub connections of the same id.
pub(super) const DPS_SESSION: &str = "$dps";

impl Hub {
    /// Authenticates a device or module connection and makes it the identity's live one (a
    /// previous connection is told to close). Reads the persistent session, or deletes it for
    /// a clean session.
    ///
    /// # Errors
    /// [`ConnectError::Refused`] with the rule that failed, or [`ConnectError::Internal`].
    pub async fn connect_device(
        &self,
        login: DeviceLogin<'_>,
    ) -> Result<DeviceConnection, ConnectError> {
        let connected = self.authenticate_device(login).await;
        let (device_id, module_id, kind) = match &connected {
            Ok(c) => (
                c.connection.identity.device_id.clone(),
                c.connection.identity.module_id.clone(),
                ConnectionEventKind::Connected,
            ),
            Err(ConnectError::Refused(reason)) => {
                let (device, module) = claimed_identity(&login.credentials);
                let reason = reason.to_string();
                (device, module, ConnectionEventKind::Refused { reason })
            }
            Err(ConnectError::Internal(_)) => return connected,
        };
        self.inner.connection_log.record(
            &device_id,
            ConnectionEvent {
                at: self.now(),
                module_id,
                transport: login.transport,
                kind,
            },
        );
        if let Ok(c) = &connected {
            let now = self.now();
            self.route(
                RouteSource::ConnectionState,
                &c.connection.identity,
                "deviceConnected",
                || routes::connection_state_body(now),
            )
            .await;
        }
        connected
    }

    async fn authenticate_device(
        &self,
        login: DeviceLogin<'_>,
    ) -> Result<DeviceConnection, ConnectError> {
        let names = self.inner.names.clone();
        let creds = login.credentials;
        let (client_id, username, password) = (
            creds.client_id.to_owned(),
            creds.username.map(str::to_owned),
            creds.password.map(str::to_owned),
        );
        let thumbprints = creds.thumbprints.map(|(a, b)| (a.to_owned(), b.to_owned()));
        let clean_session = login.clean_session;
        let now = self.now_unix_secs();
        let (authed, generation_id, stored) = self
            .inner
            .store
            .call(move |tx| {
                let creds = ConnectCredentials {
                    client_id: &client_id,
                    username: username.as_deref(),
                    password: password.as_deref(),
                    thumbprints: thumbprints.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                };
                let authed = match auth::authenticate(tx, &names, creds, now)? {
                    Ok(a) => a,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let (device_id, module_id) = (
                    &authed.identity.device_id,
                    authed.identity.module_id.as_deref(),
                );
                let generation = registry_store::find(tx, device_id, module_id)?
                    .map(|r| r.generation_id)
                    .unwrap_or_default();
                // The persistent session (docs/protocol.md §1.5); clean session 1 discards it
                // (only a session that exists is deleted: a CONNECT that changes nothing needs
                // no sync).
                let session = sessions::load(tx, device_id, module_id)?;
                if clean_session && session.is_some() {
                    sessions::delete(tx, device_id, module_id)?;
                }
                Ok(Ok((authed, generation, session)))
            })
            .await??;
        let identity = authed.identity.clone();
        let (id, outbound) = self.inner.connections.attach(&identity);
        let expires_at = authed.expires_at.map(|se| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(se.saturating_add(auth::MAX_SKEW_SECS))
        });
        let stamp = Arc::new(ConnectionStamp::new(&Sender {
            identity: &identity,
            method: &authed.method,
            model_id: authed.model_id.as_deref(),
            generation_id: &generation_id,
        }));
        Ok(DeviceConnection {
            connection: ConnectionRef { identity, id },
            stamp,
            expires_at,
            restored_session: if clean_session { None } else { stored },
            outbound,
        })
    }

    /// Authenticates a DPS registration's connection. DPS connections never resume a
    /// session and never take over the device's hub connection.
    ///
    /// # Errors
    /// [`ConnectError::Refused`] or [`ConnectError::Internal`].
    pub async fn connect_dps(&self, login: DpsLogin<'_>) -> Result<DeviceConnection, ConnectError> {
        let registration_id = login.registration_id;
        if login.client_id != registration_id {
            return Err(AuthFailure::ClientIdMismatch {
                client_id: login.client_id.to_owned(),
                expected: registration_id.to_owned(),
            }
            .into());
        }
        let (scope, id, password) = (
            login.id_scope.to_owned(),
            registration_id.to_owned(),
            login.password.to_owned(),
        );
        let now = self.now();
        let attestation = self
            .inner
            .store
            .call(move |tx| {
                Ok(provisioning::authenticate_registration(
                    tx, &scope, &id, &password, now,
                ))
            })
            .await?
            .map_err(|e| AuthFailure::Registration {
                registration_id: registration_id.to_owned(),
                reason: e.to_string(),
            })?;
        lock(&self.inner.registrations).insert(
            attestation.registration_id.to_ascii_lowercase(),
            attestation,
        );
        let identity = Identity {
            device_id: registration_id.to_owned(),
            module_id: Some(DPS_SESSION.into()),
        };
        let (id, outbound) = self.inner.connections.attach(&identity);
        // DPS connections send no telemetry; the stamp is never used.
        let stamp = Arc::new(ConnectionStamp::new(&Sender {
            identity: &identity,
            method: &AuthMethod::IdentityKey,
            model_id: None,
            generation_id: "",
        }));
        Ok(DeviceConnection {
            connection: ConnectionRef { identity, id },
            stamp,
            expires_at: None,
            restored_session: None,
            outbound,
        })
    }
}

/// The identity a refused client claimed, for its history: the username's
/// (`{host}/{device}[/{module}]/…`), else the client id's (`{device}[/{module}]`).
fn claimed_identity(credentials: &ConnectCredentials<'_>) -> (String, Option<String>) {
    if let Some(user) = credentials
        .username
        .and_then(|u| ParsedUsername::parse(u).ok())
    {
        return (
            user.device_id().to_owned(),
            user.module_id().map(str::to_owned),
        );
    }
    match credentials.client_id.split_once('/') {
        Some((d, m)) => (d.to_owned(), Some(m.to_owned())),
        None => (credentials.client_id.to_owned(), None),
    }
}
