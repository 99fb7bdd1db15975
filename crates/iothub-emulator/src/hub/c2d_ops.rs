//! The C2D queue as the service side manages it: sending to a registered identity, purging
//! its queue, and taking delivery feedback. The queue rules themselves (limits, TTL, delivery
//! count, feedback) are [`super::c2d`]'s.

use super::Hub;
use super::auth::Identity;
use super::c2d::{self, Enqueued, FeedbackRecord, OutgoingMessage};
use super::handle::HubError;
use crate::store::registry as registry_store;

impl Hub {
    /// [`Hub::send_c2d`] to an identity that must be in the registry.
    ///
    /// # Errors
    /// [`HubError::NotFound`], [`HubError::C2d`] (queue full, too large) or
    /// [`HubError::Store`].
    pub async fn send_c2d_to_registered(
        &self,
        identity: &Identity,
        message: OutgoingMessage,
    ) -> Result<Enqueued, HubError> {
        self.registered(identity).await?;
        self.send_c2d(identity, message).await
    }

    /// Deletes every message waiting for a registered identity (Purged feedback for those
    /// that asked for it); returns how many.
    ///
    /// # Errors
    /// [`HubError::NotFound`], [`HubError::C2d`] or [`HubError::Store`].
    pub async fn purge_c2d(&self, identity: &Identity) -> Result<usize, HubError> {
        let now = self.now();
        let who = identity.clone();
        self.inner
            .store
            .call(move |tx| {
                let (device, module) = (&who.device_id, who.module_id.as_deref());
                if registry_store::find(tx, device, module)?.is_none() {
                    return Ok(Err(HubError::NotFound(who)));
                }
                Ok(c2d::purge(tx, device, module, now).map_err(HubError::from))
            })
            .await?
    }

    /// Removes and returns up to `max` delivery feedback records, oldest first.
    ///
    /// # Errors
    /// [`HubError::C2d`] or [`HubError::Store`].
    pub async fn take_c2d_feedback(&self, max: usize) -> Result<Vec<FeedbackRecord>, HubError> {
        Ok(self
            .inner
            .store
            .call(move |tx| Ok(c2d::take_feedback(tx, max)))
            .await??)
    }

    /// Puts back feedback records a receiver took but released (peek-lock on AMQP): the
    /// next [`Hub::take_c2d_feedback`] returns them again.
    ///
    /// # Errors
    /// [`HubError::C2d`] or [`HubError::Store`].
    pub async fn return_c2d_feedback(&self, records: Vec<FeedbackRecord>) -> Result<(), HubError> {
        let now = self.now();
        Ok(self
            .inner
            .store
            .call(move |tx| Ok(c2d::return_feedback(tx, &records, now)))
            .await??)
    }

    /// The C2D limits (queue depth, message size, TTL, delivery count) this hub enforces.
    #[must_use]
    pub fn c2d_limits(&self) -> super::c2d::C2dLimits {
        self.inner.c2d_limits
    }
}

#[cfg(test)]
mod tests;
