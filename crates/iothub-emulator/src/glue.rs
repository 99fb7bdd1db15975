//! Glue between sessions and the hub domain modules of helper H3b (twins, methods, DPS):
//! parsed requests in, outbound publishes to the right connection.

use crate::hub::Hub;
use crate::hub::auth::Identity;
use crate::mqtt::Inbound;

/// Routes a non-telemetry publish from `identity` to its domain module.
pub(crate) fn route(hub: &Hub, identity: &Identity, inbound: Inbound) {
    let _ = (hub, identity);
    tracing::debug!(?inbound, "no domain handler wired for this request yet");
}
