//! C2D delivery: hands waiting messages to a connected device that asked for them, at most
//! a few in flight at a time (docs/protocol.md §5).

use super::Hub;
use super::auth::Identity;
use super::c2d;
use super::to_device::{Interests, ToDevice};

/// Most C2D messages delivered and not yet completed per connection.
const C2D_IN_FLIGHT: usize = 10;

impl Hub {
    /// Delivers in the background (see [`Hub::pump`]).
    pub(super) fn spawn_pump(&self, identity: &Identity) {
        let (hub, identity) = (self.clone(), identity.clone());
        tokio::spawn(async move { hub.pump(&identity).await });
    }

    /// Delivers waiting C2D messages to a connected identity that asked for C2D.
    pub(super) async fn pump(&self, identity: &Identity) {
        if !self.inner.connections.receives(identity, Interests::C2D) {
            return;
        }
        let (device, module, limits) = (
            identity.device_id.clone(),
            identity.module_id.clone(),
            self.inner.c2d_limits,
        );
        let now = self.now();
        let deliveries = self
            .inner
            .store
            .call(move |tx| {
                Ok(c2d::next_deliveries(
                    tx,
                    &device,
                    module.as_deref(),
                    C2D_IN_FLIGHT,
                    &limits,
                    now,
                ))
            })
            .await;
        let Ok(Ok(deliveries)) = deliveries else {
            tracing::warn!(?deliveries, "c2d delivery failed");
            return;
        };
        for delivery in deliveries {
            if !self
                .inner
                .connections
                .send(identity, ToDevice::C2d(Box::new(delivery)))
            {
                break;
            }
        }
    }
}
