//! What the service side (REST today, AMQP next) asks of the hub: twin changes that reach the
//! device, C2D sends, direct-method calls, and closing an identity's connection.

use serde_json::Value;

use super::Hub;
use super::auth::Identity;
use super::c2d::{self, Enqueued, OutgoingMessage};
use super::handle::HubError;
use super::methods::{MethodCall, MethodError, MethodResult};
use super::to_device::{CloseReason, Interests, ToDevice};
use super::twin::{self, TwinUpdate};

impl Hub {
    /// Merges tags and desired properties into the twin (`PATCH /twins/{id}`) and pushes the
    /// desired patch to the device if it is connected and asked for it.
    ///
    /// # Errors
    /// [`HubError::Twin`] (400, 412) or [`HubError::Store`].
    pub async fn patch_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
    ) -> Result<TwinUpdate, HubError> {
        self.change_twin(identity, body, if_match, false).await
    }

    /// Replaces tags and desired properties (`PUT /twins/{id}`, see
    /// [`twin::service_replace`]) and pushes the desired patch like [`Hub::patch_twin`].
    ///
    /// # Errors
    /// As [`Hub::patch_twin`].
    pub async fn replace_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
    ) -> Result<TwinUpdate, HubError> {
        self.change_twin(identity, body, if_match, true).await
    }

    /// Enqueues a C2D message and delivers it at once to a connected device that asked for
    /// C2D. The same operation serves every transport the service side uses.
    ///
    /// # Errors
    /// [`HubError::C2d`] (403004 queue full, 413 too large) or [`HubError::Store`].
    pub async fn send_c2d(
        &self,
        identity: &Identity,
        message: OutgoingMessage,
    ) -> Result<Enqueued, HubError> {
        let (device, module, limits) = (
            identity.device_id.clone(),
            identity.module_id.clone(),
            self.inner.c2d_limits,
        );
        let now = self.now();
        let enqueued = self
            .inner
            .store
            .call(move |tx| {
                Ok(c2d::enqueue(
                    tx,
                    &device,
                    module.as_deref(),
                    message,
                    &limits,
                    now,
                ))
            })
            .await??;
        self.pump(identity).await;
        Ok(enqueued)
    }

    /// Invokes a direct method and waits for the device's answer, the connect timeout
    /// (404103) or the response timeout (504101). Dropping the future cancels the call.
    ///
    /// # Errors
    /// [`MethodError`] (404103, 504101, …).
    pub async fn invoke_method(
        &self,
        identity: &Identity,
        call: MethodCall,
    ) -> Result<MethodResult, MethodError> {
        self.inner
            .methods
            .invoke(&identity.device_id, identity.module_id.as_deref(), call)
            .await
    }

    /// Closes the identity's live connection (after it was disabled or deleted); false when
    /// it had none.
    pub fn close_connection(&self, identity: &Identity) -> bool {
        self.inner
            .connections
            .send(identity, ToDevice::Close(CloseReason::IdentityChanged))
    }

    async fn change_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
        replace: bool,
    ) -> Result<TwinUpdate, HubError> {
        let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
        let now = self.now();
        let routed = self.route_sources().twin_changes.then(|| body.clone());
        let update = self
            .inner
            .store
            .call(move |tx| {
                let (module, if_match) = (module.as_deref(), if_match.as_deref());
                Ok(if replace {
                    twin::service_replace(tx, &device, module, &body, if_match, now)
                } else {
                    twin::service_patch(tx, &device, module, &body, if_match, now)
                })
            })
            .await??;
        if let Some(body) = routed {
            self.route_service_twin_change(identity, &body, &update.twin, replace)
                .await;
        }
        // docs/protocol.md §6: only a connected device that asked for desired patches gets
        // one; nothing is kept for later.
        if let Some(note) = update.notification.as_ref().filter(|_| {
            self.inner
                .connections
                .receives(identity, Interests::DESIRED)
        }) {
            self.inner.connections.send(
                identity,
                ToDevice::DesiredPatch {
                    version: note.version,
                    body: note.body.clone().into(),
                },
            );
        }
        Ok(update)
    }
}
