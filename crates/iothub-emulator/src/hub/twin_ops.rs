//! Twins as the service side reads and writes them: one identity's twin, every twin of a kind
//! (for queries), and changes to tags and desired properties, each with the registry facts a
//! service view shows. Only registered identities have twins here (the twin domain itself
//! would create a fresh twin for any id).

use serde_json::Value;

use super::Hub;
use super::auth::Identity;
use super::handle::HubError;
use super::registry_ops::{RegisteredIdentity, c2d_depth};
use super::twin::{self, TwinDocument};
use crate::store::registry as registry_store;

/// A twin with the registry facts about its identity.
#[derive(Clone, Debug)]
pub struct ServiceTwin {
    /// The identity and its live facts.
    pub identity: RegisteredIdentity,
    /// The twin document.
    pub document: TwinDocument,
}

/// Which identities' twins to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityKind {
    /// Devices (not modules).
    Devices,
    /// Modules of every device.
    Modules,
}

/// How a service write changes the twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwinWrite {
    /// Merge tags and desired properties (`null` deletes); see [`twin::service_patch`].
    Merge,
    /// Replace tags and desired properties; see [`twin::service_replace`].
    Replace,
}

impl Hub {
    /// The identity's twin (created, stamped with the hub's clock, the first time it is read).
    ///
    /// # Errors
    /// [`HubError::NotFound`], [`HubError::Twin`] or [`HubError::Store`].
    pub async fn read_twin(&self, identity: &Identity) -> Result<ServiceTwin, HubError> {
        let now = self.now();
        let who = identity.clone();
        let (record, depth, document) = self
            .inner
            .store
            .call(move |tx| {
                let (device, module) = (&who.device_id, who.module_id.as_deref());
                let Some(record) = registry_store::find(tx, device, module)? else {
                    return Ok(Err(HubError::NotFound(who)));
                };
                let document = match twin::read(tx, device, module, now) {
                    Ok(doc) => doc,
                    Err(e) => return Ok(Err(e.into())),
                };
                let depth = c2d_depth(tx, &record, now);
                Ok(Ok((record, depth, document)))
            })
            .await??;
        Ok(ServiceTwin {
            identity: self.facts(record, depth),
            document,
        })
    }

    /// Every twin of `kind`, in registry order (what a twin query filters). A twin that
    /// cannot be read is left out.
    ///
    /// # Errors
    /// [`HubError::Store`].
    pub async fn list_twins(&self, kind: IdentityKind) -> Result<Vec<ServiceTwin>, HubError> {
        let now = self.now();
        let modules = kind == IdentityKind::Modules;
        let rows = self
            .inner
            .store
            .call(move |tx| {
                let mut out = Vec::new();
                for r in registry_store::list(tx)?
                    .into_iter()
                    .filter(|r| r.module_id.is_some() == modules)
                {
                    let Ok(document) = twin::read(tx, &r.device_id, r.module_id.as_deref(), now)
                    else {
                        continue;
                    };
                    let depth = c2d_depth(tx, &r, now);
                    out.push((r, depth, document));
                }
                Ok(out)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(record, depth, document)| ServiceTwin {
                identity: self.facts(record, depth),
                document,
            })
            .collect())
    }

    /// Changes a registered identity's twin ([`Hub::patch_twin`] or [`Hub::replace_twin`],
    /// which push the desired patch to a subscribed device) and answers the new twin.
    ///
    /// # Errors
    /// [`HubError::NotFound`], [`HubError::Twin`] (rejected body, stale ETag) or
    /// [`HubError::Store`].
    pub async fn write_twin(
        &self,
        identity: &Identity,
        body: Value,
        if_match: Option<String>,
        how: TwinWrite,
    ) -> Result<ServiceTwin, HubError> {
        let record = self.registered(identity).await?;
        let update = match how {
            TwinWrite::Merge => self.patch_twin(identity, body, if_match).await?,
            TwinWrite::Replace => self.replace_twin(identity, body, if_match).await?,
        };
        let depth = self.c2d_depth_of(&record).await?;
        Ok(ServiceTwin {
            identity: self.facts(record, depth),
            document: update.twin,
        })
    }
}

#[cfg(test)]
mod tests;
