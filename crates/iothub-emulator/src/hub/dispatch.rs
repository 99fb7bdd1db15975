//! Wiring of the twin, C2D, direct-method and DPS domains to live connections and to the
//! service side: the one place that runs their sans-IO functions on the store (`Store::call`,
//! group commit) with the wall clock, builds the reply topics with `iothub-proto`, and pushes
//! the publishes to the right connection through [`Hub::send`].
//!
//! The session glue calls [`Domains::inbound`], [`Domains::subscribed`], [`Domains::acked`]
//! and [`Domains::closed`]; the service layer calls the `pub async` operations
//! ([`Domains::patch_twin`], [`Domains::send_c2d`], [`Domains::invoke_method`], …).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use iothub_proto::topic::{DesiredPatchTopic, DpsResponseTopic, TwinResponseTopic};
use iothub_proto::{RequestId, Status};
use rumqttc::mqttbytes::QoS;
use serde_json::Value;

use super::auth::Identity;
use super::c2d::{self, C2dError, C2dLimits, Enqueued, OutgoingMessage};
use super::methods::{MethodCall, MethodError, MethodInvoker, MethodResult};
use super::provisioning::{
    self, Attestation, DpsAuthError, DpsConfig, DpsReply, ProvisionedDevice,
};
use super::registry::{self, NewIdentity, RegistryError};
use super::twin::{self, TwinError, TwinReply, TwinUpdate};
use super::{Hub, Outbound};
use crate::mqtt::Inbound;
use crate::store::StoreError;

/// Most C2D messages in flight (delivered, not yet PUBACKed) per connection.
const C2D_IN_FLIGHT: usize = 10;

/// Errors of the service-side operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A C2D operation failed.
    #[error(transparent)]
    C2d(#[from] C2dError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A twin operation failed.
    #[error(transparent)]
    Twin(#[from] TwinError),
}

/// The hub's domains, bound to a [`Hub`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct Domains {
    hub: Hub,
    methods: MethodInvoker,
    dps: Arc<DpsConfig>,
    limits: C2dLimits,
    /// Which identity a connection id belongs to (for method requests).
    connections: Arc<Mutex<HashMap<u64, Identity>>>,
    /// Authenticated DPS registrations, by lower-cased registration id.
    registrations: Arc<Mutex<HashMap<String, Attestation>>>,
}

impl Domains {
    /// Binds the domains to `hub`; `dps` says which host name devices are assigned to.
    pub fn new(hub: Hub, dps: DpsConfig) -> Self {
        let connections: Arc<Mutex<HashMap<u64, Identity>>> = Arc::default();
        let methods = {
            let hub = hub.clone();
            let connections = connections.clone();
            MethodInvoker::new(move |out| {
                let identity = lock(&connections).get(&out.connection).cloned();
                if let Some(identity) = identity {
                    // PROTOCOL.md §7: method requests are QoS 0.
                    let publish = Outbound::Publish {
                        topic: out.topic,
                        payload: Bytes::from(out.payload),
                        qos: QoS::AtMostOnce,
                        tag: None,
                    };
                    hub.send(&identity, publish);
                }
            })
        };
        Self {
            hub,
            methods,
            dps: Arc::new(dps),
            limits: C2dLimits::DEFAULT,
            connections,
            registrations: Arc::default(),
        }
    }

    /// The method invoker (for the service layer's `POST …/methods`).
    pub fn methods(&self) -> &MethodInvoker {
        &self.methods
    }

    // ---- session side ----------------------------------------------------------------

    /// Authenticates a DPS CONNECT (username `{scope}/registrations/{id}/…`); remembers the
    /// registration for its requests.
    ///
    /// # Errors
    /// `Ok(Err(_))` means CONNACK 5; `Err` is a store failure.
    pub async fn authenticate_dps(
        &self,
        id_scope: &str,
        registration_id: &str,
        password: &str,
    ) -> Result<Result<Attestation, DpsAuthError>, StoreError> {
        let (scope, id, password) = (
            id_scope.to_owned(),
            registration_id.to_owned(),
            password.to_owned(),
        );
        let result = self
            .hub
            .store()
            .call(move |tx| {
                Ok(provisioning::authenticate_registration(
                    tx,
                    &scope,
                    &id,
                    &password,
                    SystemTime::now(),
                ))
            })
            .await?;
        if let Ok(att) = &result {
            lock(&self.registrations).insert(att.registration_id.to_ascii_lowercase(), att.clone());
        }
        Ok(result)
    }

    /// Handles a twin, method-response or DPS publish of `identity` on `connection` (DPS
    /// connections use the registration id as `identity.device_id`). Runs in the background;
    /// replies go out through [`Hub::send`].
    pub(crate) fn inbound(&self, identity: &Identity, connection: u64, inbound: Inbound) {
        match inbound {
            Inbound::MethodResponse { rid, status, body } => {
                self.methods
                    .handle_response(connection, &rid, i64::from(status), &body);
            }
            Inbound::Telemetry { .. } => {}
            other => {
                let this = self.clone();
                let identity = identity.clone();
                tokio::spawn(async move { this.request(identity, other).await });
            }
        }
    }

    /// The connection's subscriptions changed: start or stop method routing, deliver C2D.
    pub(crate) fn subscribed(&self, identity: &Identity, connection: u64) {
        lock(&self.connections).insert(connection, identity.clone());
        if self.hub.receives_methods(identity) {
            self.methods.handle_subscribed(
                &identity.device_id,
                identity.module_id.as_deref(),
                connection,
            );
        } else {
            self.methods.handle_disconnected(connection);
        }
        self.spawn_pump(identity);
    }

    /// The device PUBACKed a tagged publish: a C2D delivery is complete; deliver the next.
    pub(crate) fn acked(&self, identity: &Identity, tag: &str) {
        let Ok(lock_token) = tag.parse::<i64>() else {
            return;
        };
        let (this, identity) = (self.clone(), identity.clone());
        tokio::spawn(async move {
            let done = this
                .hub
                .store()
                .call(move |tx| Ok(c2d::complete(tx, lock_token, SystemTime::now())))
                .await;
            if !matches!(done, Ok(Ok(_))) {
                tracing::warn!(?done, "c2d completion failed");
            }
            this.pump(&identity).await;
        });
    }

    /// The connection closed: its method calls can no longer be sent there, and its
    /// uncompleted C2D deliveries return to the queue (redelivered with DUP next time).
    pub(crate) fn closed(&self, identity: &Identity, connection: u64) {
        self.methods.handle_disconnected(connection);
        lock(&self.connections).remove(&connection);
        let (this, identity) = (self.clone(), identity.clone());
        tokio::spawn(async move {
            let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
            let released = this
                .hub
                .store()
                .call(move |tx| Ok(c2d::release(tx, &device, module.as_deref())))
                .await;
            if !matches!(released, Ok(Ok(_))) {
                tracing::warn!(?released, "c2d release failed");
            }
        });
    }

    // ---- service side ----------------------------------------------------------------

    /// `PATCH /twins/{id}`: merges tags and desired properties and pushes the desired patch
    /// to the connected device.
    ///
    /// # Errors
    /// [`DomainError::Twin`] (400, 412) or [`DomainError::Store`].
    pub async fn patch_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
    ) -> Result<TwinUpdate, DomainError> {
        self.change_twin(identity, body, if_match, false).await
    }

    /// `PUT /twins/{id}`: replaces tags and desired properties (see [`twin::service_replace`]).
    ///
    /// # Errors
    /// As [`Domains::patch_twin`].
    pub async fn replace_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
    ) -> Result<TwinUpdate, DomainError> {
        self.change_twin(identity, body, if_match, true).await
    }

    /// Enqueues a C2D message and delivers it at once to a connected, subscribed device.
    ///
    /// # Errors
    /// [`DomainError::C2d`] (403004 queue full, 413 too large) or [`DomainError::Store`].
    pub async fn send_c2d(
        &self,
        identity: &Identity,
        message: OutgoingMessage,
    ) -> Result<Enqueued, DomainError> {
        let (device, module, limits) = (
            identity.device_id.clone(),
            identity.module_id.clone(),
            self.limits,
        );
        let enqueued = self
            .hub
            .store()
            .call(move |tx| {
                Ok(c2d::enqueue(
                    tx,
                    &device,
                    module.as_deref(),
                    message,
                    &limits,
                    SystemTime::now(),
                ))
            })
            .await??;
        self.pump(identity).await;
        Ok(enqueued)
    }

    /// Invokes a direct method (see [`MethodInvoker::invoke`]).
    ///
    /// # Errors
    /// [`MethodError`] (404103, 504101, …).
    pub async fn invoke_method(
        &self,
        identity: &Identity,
        call: MethodCall,
    ) -> Result<MethodResult, MethodError> {
        self.methods
            .invoke(&identity.device_id, identity.module_id.as_deref(), call)
            .await
    }

    // ---- internals -------------------------------------------------------------------

    async fn change_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
        replace: bool,
    ) -> Result<TwinUpdate, DomainError> {
        let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
        let update = self
            .hub
            .store()
            .call(move |tx| {
                let now = SystemTime::now();
                Ok(if replace {
                    twin::service_replace(
                        tx,
                        &device,
                        module.as_deref(),
                        &body,
                        if_match.as_deref(),
                        now,
                    )
                } else {
                    twin::service_patch(
                        tx,
                        &device,
                        module.as_deref(),
                        &body,
                        if_match.as_deref(),
                        now,
                    )
                })
            })
            .await??;
        // PROTOCOL.md §6: only a connected, subscribed device gets the patch; nothing is kept.
        if let Some(note) = update
            .notification
            .as_ref()
            .filter(|_| self.hub.receives_desired(identity))
        {
            let publish = Outbound::Publish {
                topic: DesiredPatchTopic::new(note.version).to_string(),
                payload: Bytes::from(note.body.clone()),
                qos: QoS::AtMostOnce,
                tag: None,
            };
            self.hub.send(identity, publish);
        }
        Ok(update)
    }

    async fn request(&self, identity: Identity, inbound: Inbound) {
        let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
        let reply = match inbound {
            Inbound::TwinGet { rid } => {
                let r = self
                    .hub
                    .store()
                    .call(move |tx| {
                        Ok(twin::handle_get(
                            tx,
                            &device,
                            module.as_deref(),
                            SystemTime::now(),
                        ))
                    })
                    .await;
                twin_publish(&rid, r)
            }
            Inbound::ReportedPatch { rid, body } => {
                let r = self
                    .hub
                    .store()
                    .call(move |tx| {
                        Ok(twin::handle_reported_patch(
                            tx,
                            &device,
                            module.as_deref(),
                            &body,
                            SystemTime::now(),
                        ))
                    })
                    .await;
                twin_publish(&rid, r)
            }
            Inbound::DpsRegister { rid, body } => {
                let Some(att) = self.attestation(&device) else {
                    return;
                };
                let dps = self.dps.clone();
                let r = self
                    .hub
                    .store()
                    .call(move |tx| {
                        Ok(provisioning::handle_register(
                            tx,
                            &att,
                            &body,
                            &dps,
                            &mut provision,
                            SystemTime::now(),
                        ))
                    })
                    .await;
                dps_publish(&rid, r)
            }
            Inbound::DpsPoll { rid, operation_id } => {
                let Some(att) = self.attestation(&device) else {
                    return;
                };
                let r = self
                    .hub
                    .store()
                    .call(move |tx| {
                        Ok(provisioning::handle_operation_status(
                            tx,
                            &att,
                            &operation_id,
                            SystemTime::now(),
                        ))
                    })
                    .await;
                dps_publish(&rid, r)
            }
            Inbound::Telemetry { .. } | Inbound::MethodResponse { .. } => return,
        };
        self.hub.send(&identity, reply);
    }

    fn attestation(&self, registration_id: &str) -> Option<Attestation> {
        lock(&self.registrations)
            .get(&registration_id.to_ascii_lowercase())
            .cloned()
    }

    fn spawn_pump(&self, identity: &Identity) {
        let (this, identity) = (self.clone(), identity.clone());
        tokio::spawn(async move { this.pump(&identity).await });
    }

    /// Delivers waiting C2D messages to a connected, subscribed identity.
    async fn pump(&self, identity: &Identity) {
        if !self.hub.receives_c2d(identity) {
            return;
        }
        let (device, module, limits) = (
            identity.device_id.clone(),
            identity.module_id.clone(),
            self.limits,
        );
        let deliveries = self
            .hub
            .store()
            .call(move |tx| {
                Ok(c2d::next_deliveries(
                    tx,
                    &device,
                    module.as_deref(),
                    C2D_IN_FLIGHT,
                    &limits,
                    SystemTime::now(),
                ))
            })
            .await;
        let Ok(Ok(deliveries)) = deliveries else {
            tracing::warn!(?deliveries, "c2d delivery failed");
            return;
        };
        for d in deliveries {
            let (topic, payload, tag) = (
                d.topic,
                Bytes::from(d.payload),
                Some(d.lock_token.to_string()),
            );
            // A message delivered before without completion goes out with DUP set (§5).
            let publish = if d.dup {
                Outbound::Redelivery {
                    topic,
                    payload,
                    qos: QoS::AtLeastOnce,
                    tag,
                }
            } else {
                Outbound::Publish {
                    topic,
                    payload,
                    qos: QoS::AtLeastOnce,
                    tag,
                }
            };
            if !self.hub.send(identity, publish) {
                break;
            }
        }
    }
}

/// Creates (or re-keys) the assigned device in the registry, on the registration's transaction.
fn provision(conn: &rusqlite::Connection, device: &ProvisionedDevice) -> Result<(), String> {
    let new = NewIdentity {
        device_id: device.device_id.clone(),
        primary_key: Some(device.primary_key.clone()),
        secondary_key: Some(device.secondary_key.clone()),
        ..NewIdentity::default()
    };
    match registry::create(
        conn,
        new,
        crate::hub::timestamp::unix_millis(SystemTime::now()),
    ) {
        Ok(_) | Err(RegistryError::AlreadyExists) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn twin_publish(rid: &str, reply: Result<Result<TwinReply, TwinError>, StoreError>) -> Outbound {
    let reply = match reply {
        Ok(Ok(r)) => r,
        other => {
            tracing::warn!(?other, "twin request failed");
            TwinReply {
                status: 500,
                version: None,
                body: Vec::new(),
            }
        }
    };
    let mut topic = TwinResponseTopic::new(Status::from(reply.status), RequestId::new(rid));
    if let Some(v) = reply.version {
        topic = topic.version(v);
    }
    // Real hubs answer twin requests at QoS 0 (PROTOCOL.md §6 "Observed QoS").
    Outbound::Publish {
        topic: topic.to_string(),
        payload: Bytes::from(reply.body),
        qos: QoS::AtMostOnce,
        tag: None,
    }
}

fn dps_publish(
    rid: &str,
    reply: Result<Result<DpsReply, provisioning::DpsError>, StoreError>,
) -> Outbound {
    let reply = match reply {
        Ok(Ok(r)) => r,
        other => {
            tracing::warn!(?other, "dps request failed");
            DpsReply::error(500_000, "Internal server error.", SystemTime::now())
        }
    };
    let mut topic = DpsResponseTopic::new(Status::from(reply.status), RequestId::new(rid));
    if let Some(s) = reply.retry_after {
        topic = topic.retry_after(s);
    }
    Outbound::Publish {
        topic: topic.to_string(),
        payload: Bytes::from(reply.body),
        qos: QoS::AtMostOnce,
        tag: None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
