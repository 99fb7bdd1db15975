//! The registry as the service side uses it (REST today, AMQP next): create, read, update,
//! list and delete device and module identities, each answered with the live facts a
//! service view shows (ETag, connection state, last activity, C2D queue depth).
//!
//! Create is a put without a condition (an existing identity is [`HubError::AlreadyExists`]);
//! update is a put with an ETag condition or `*` (a stale ETag is
//! [`HubError::PreconditionFailed`]). Omitted keys are generated. Disabling or deleting an
//! identity closes its live connection, as IoT Hub does.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest;
use rusqlite::Connection;

use super::Hub;
use super::auth::Identity;
use super::c2d;
use super::handle::HubError;
use super::registry::{self, NewIdentity, RegistryError};
use super::twin;
use crate::store::StoreError;
use crate::store::registry::{self as registry_store, Authentication, IdentityRecord, Status};
use crate::timestamp::unix_millis;

/// An identity as the service side sees it: the stored record and the live facts about it
/// at the time of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredIdentity {
    /// The stored identity.
    pub record: IdentityRecord,
    /// Whether it has a live connection.
    pub connected: bool,
    /// When its last telemetry was enqueued (ms since the Unix epoch), if it sent any since
    /// the emulator started (connects alone do not count).
    pub last_activity_ms: Option<i64>,
    /// C2D messages waiting for it (expired ones excluded).
    pub c2d_depth: usize,
}

impl RegisteredIdentity {
    /// The identity's registry ETag (see [`etag`]).
    #[must_use]
    pub fn etag(&self) -> String {
        etag(&self.record)
    }
}

/// What a put changes: status and credentials, both optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityChange {
    /// New status; `None` keeps it (a new identity is enabled).
    pub status: Option<Status>,
    /// New credentials; `None` keeps them (a new identity gets generated keys).
    pub credentials: Option<Credentials>,
}

/// Credentials given in a put; `None` keys are generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Symmetric keys (base64).
    Sas {
        /// Primary key; generated when `None`.
        primary_key: Option<String>,
        /// Secondary key; generated when `None`.
        secondary_key: Option<String>,
    },
    /// Self-signed X.509 thumbprints.
    SelfSigned {
        /// Primary thumbprint.
        primary_thumbprint: String,
        /// Secondary thumbprint, if any.
        secondary_thumbprint: Option<String>,
    },
}

/// The identity's registry ETag: changes whenever status or credentials change.
///
/// ```
/// use iothub_emulator::hub::registry_ops::etag;
/// use iothub_emulator::store::registry::{Authentication, IdentityRecord, Status};
/// let mut record = IdentityRecord {
///     device_id: "d1".into(), module_id: None, status: Status::Enabled,
///     authentication: Authentication::Sas { primary_key: "a2V5".into(), secondary_key: "a2V5".into() },
///     generation_id: "1".into(), created_ms: 0,
/// };
/// let before = etag(&record);
/// record.status = Status::Disabled;
/// assert_ne!(etag(&record), before);
/// ```
#[must_use]
pub fn etag(record: &IdentityRecord) -> String {
    let (kind, a, b) = match &record.authentication {
        Authentication::Sas {
            primary_key,
            secondary_key,
        } => ("sas", primary_key, secondary_key),
        Authentication::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => ("selfSigned", primary_thumbprint, secondary_thumbprint),
    };
    let text = format!(
        "{}\n{kind}\n{a}\n{b}\n{}",
        record.generation_id,
        record.status.as_str()
    );
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    STANDARD.encode(&hash.as_ref()[..8])
}

/// Whether `if_match` (`None`, `*` or an ETag) allows changing `record`.
#[must_use]
pub fn etag_matches(record: &IdentityRecord, if_match: Option<&str>) -> bool {
    if_match.is_none_or(|m| m == "*" || m == etag(record))
}

impl Hub {
    /// Device identities (not modules), in registry order, at most `top`.
    ///
    /// # Errors
    /// [`HubError::Store`].
    pub async fn list_devices(&self, top: usize) -> Result<Vec<RegisteredIdentity>, HubError> {
        let now = self.now();
        let rows = self
            .inner
            .store
            .call(move |tx| {
                registry_store::list(tx)?
                    .into_iter()
                    .filter(|r| r.module_id.is_none())
                    .take(top)
                    .map(|r| {
                        let depth = c2d_depth(tx, &r, now);
                        Ok((r, depth))
                    })
                    .collect()
            })
            .await?;
        Ok(self.with_facts(rows))
    }

    /// The modules of `device_id`.
    ///
    /// # Errors
    /// [`HubError::NotFound`] (the device) or [`HubError::Store`].
    pub async fn list_modules(&self, device_id: &str) -> Result<Vec<RegisteredIdentity>, HubError> {
        let now = self.now();
        let device = device_id.to_owned();
        let rows = self
            .inner
            .store
            .call(move |tx| {
                if registry_store::find(tx, &device, None)?.is_none() {
                    return Ok(Err(HubError::NotFound(Identity {
                        device_id: device,
                        module_id: None,
                    })));
                }
                let modules = registry_store::list(tx)?
                    .into_iter()
                    .filter(|r| r.device_id == device && r.module_id.is_some())
                    .map(|r| {
                        let depth = c2d_depth(tx, &r, now);
                        (r, depth)
                    })
                    .collect::<Vec<_>>();
                Ok(Ok(modules))
            })
            .await??;
        Ok(self.with_facts(rows))
    }

    /// One identity.
    ///
    /// # Errors
    /// [`HubError::NotFound`] or [`HubError::Store`].
    pub async fn get_identity(&self, identity: &Identity) -> Result<RegisteredIdentity, HubError> {
        let now = self.now();
        let who = identity.clone();
        let (record, depth) = self
            .inner
            .store
            .call(move |tx| {
                Ok(
                    match registry_store::find(tx, &who.device_id, who.module_id.as_deref())? {
                        None => Err(HubError::NotFound(who)),
                        Some(r) => {
                            let depth = c2d_depth(tx, &r, now);
                            Ok((r, depth))
                        }
                    },
                )
            })
            .await??;
        Ok(self.facts(record, depth))
    }

    /// Creates the identity (`if_match` `None`; a module's device must exist) or updates it
    /// (`if_match` `*` or its current ETag), then closes its live connection if it is now
    /// disabled. Invalid keys are refused before anything is read or written.
    ///
    /// # Errors
    /// [`HubError::AlreadyExists`] (create of an existing identity), [`HubError::NotFound`]
    /// (update of a missing one with an ETag; create of a module of a missing device),
    /// [`HubError::PreconditionFailed`] (stale ETag), [`HubError::Registry`] (invalid id or
    /// key) or [`HubError::Store`].
    pub async fn put_identity(
        &self,
        identity: &Identity,
        change: IdentityChange,
        if_match: Option<String>,
    ) -> Result<RegisteredIdentity, HubError> {
        check_keys(&change)?;
        let now = self.now();
        let who = identity.clone();
        let (record, depth, created) = self
            .inner
            .store
            .call(move |tx| {
                Ok(
                    match registry_store::find(tx, &who.device_id, who.module_id.as_deref())? {
                        None if if_match.as_deref().is_some_and(|c| c != "*") => {
                            Err(HubError::NotFound(who))
                        }
                        None => create(tx, who, change, now)?.map(|r| (r, 0, true)),
                        Some(_) if if_match.is_none() => Err(HubError::AlreadyExists(who)),
                        Some(r) if !etag_matches(&r, if_match.as_deref()) => {
                            Err(HubError::PreconditionFailed)
                        }
                        Some(mut r) => {
                            apply(tx, &mut r, change)?;
                            let depth = c2d_depth(tx, &r, now);
                            Ok((r, depth, false))
                        }
                    },
                )
            })
            .await??;
        if record.status == Status::Disabled {
            self.close_connection(&identity_of(&record));
        }
        if created && self.route_sources().lifecycle {
            let who = identity_of(&record);
            let doc = self.twin_document(&who).await;
            self.route_lifecycle(&who, doc.as_ref(), true).await;
        }
        Ok(self.facts(record, depth))
    }

    /// Deletes a device (with its modules) or a module: identities, twins and C2D queues go
    /// (queued messages are purged, with feedback when asked for), and their live
    /// connections are closed. Returns the removed identities, sorted.
    ///
    /// # Errors
    /// [`HubError::NotFound`], [`HubError::PreconditionFailed`] (stale ETag) or
    /// [`HubError::Store`]; on an error nothing is deleted.
    pub async fn delete_identity(
        &self,
        identity: &Identity,
        if_match: Option<String>,
    ) -> Result<Vec<Identity>, HubError> {
        let now = self.now();
        let who = identity.clone();
        // The twin as it was, for the lifecycle event (read without creating one).
        let doc = if self.route_sources().lifecycle {
            self.stored_twin_document(identity).await
        } else {
            None
        };
        let removed = self
            .inner
            .store
            .call(move |tx| {
                let (device, module) = (&who.device_id, who.module_id.as_deref());
                let Some(record) = registry_store::find(tx, device, module)? else {
                    return Ok(Err(HubError::NotFound(who)));
                };
                if !etag_matches(&record, if_match.as_deref()) {
                    return Ok(Err(HubError::PreconditionFailed));
                }
                let mut removed: Vec<Identity> = match module {
                    Some(_) => vec![identity_of(&record)],
                    None => registry_store::list(tx)?
                        .iter()
                        .filter(|r| r.device_id == *device)
                        .map(identity_of)
                        .collect(),
                };
                removed.sort();
                registry_store::delete(tx, device, module)?;
                // An error below must roll the whole job back, so it leaves as a store error.
                if twin::delete(tx, device, module).is_err() {
                    return Err(StoreError::Corrupt("twin delete failed"));
                }
                for r in &removed {
                    if c2d::purge(tx, &r.device_id, r.module_id.as_deref(), now).is_err() {
                        return Err(StoreError::Corrupt("c2d purge failed"));
                    }
                }
                Ok(Ok(removed))
            })
            .await??;
        for r in &removed {
            self.close_connection(r);
            let doc = doc.as_ref().filter(|_| r == identity);
            self.route_lifecycle(r, doc, false).await;
        }
        Ok(removed)
    }

    /// The stored identity, or [`HubError::NotFound`]: the check every service operation on
    /// one identity makes first.
    pub(super) async fn registered(&self, identity: &Identity) -> Result<IdentityRecord, HubError> {
        let who = identity.clone();
        self.inner
            .store
            .call(move |tx| {
                Ok(
                    registry_store::find(tx, &who.device_id, who.module_id.as_deref())?
                        .ok_or(HubError::NotFound(who)),
                )
            })
            .await?
    }

    /// The identity's waiting C2D messages (0 if the queue cannot be read: a view detail).
    pub(super) async fn c2d_depth_of(&self, record: &IdentityRecord) -> Result<usize, HubError> {
        let (now, r) = (self.now(), record.clone());
        Ok(self
            .inner
            .store
            .call(move |tx| Ok(c2d_depth(tx, &r, now)))
            .await?)
    }

    /// `record` with the live facts about it.
    pub(super) fn facts(&self, record: IdentityRecord, c2d_depth: usize) -> RegisteredIdentity {
        let identity = identity_of(&record);
        RegisteredIdentity {
            connected: self.is_connected(&identity),
            last_activity_ms: self.last_activity(&identity),
            c2d_depth,
            record,
        }
    }

    fn with_facts(&self, rows: Vec<(IdentityRecord, usize)>) -> Vec<RegisteredIdentity> {
        rows.into_iter()
            .map(|(record, depth)| self.facts(record, depth))
            .collect()
    }
}

/// The `Identity` of a record.
#[must_use]
pub fn identity_of(record: &IdentityRecord) -> Identity {
    Identity {
        device_id: record.device_id.clone(),
        module_id: record.module_id.clone(),
    }
}

/// The identity's waiting C2D messages; 0 if the queue cannot be read (a view detail).
pub(super) fn c2d_depth(tx: &Connection, r: &IdentityRecord, now: SystemTime) -> usize {
    c2d::queue_depth(tx, &r.device_id, r.module_id.as_deref(), now).unwrap_or(0)
}

/// Invalid keys are refused before anything is written.
fn check_keys(change: &IdentityChange) -> Result<(), RegistryError> {
    if let Some(Credentials::Sas {
        primary_key,
        secondary_key,
    }) = &change.credentials
    {
        for key in [primary_key, secondary_key].into_iter().flatten() {
            if STANDARD.decode(key).map_or(true, |b| b.is_empty()) {
                return Err(RegistryError::InvalidKey);
            }
        }
    }
    Ok(())
}

/// Creates an identity from a put; the outer error is a store failure (the job rolls back),
/// the inner one the registry's refusal.
fn create(
    tx: &Connection,
    who: Identity,
    change: IdentityChange,
    now: SystemTime,
) -> Result<Result<IdentityRecord, HubError>, StoreError> {
    let mut new = NewIdentity {
        device_id: who.device_id.clone(),
        module_id: who.module_id.clone(),
        disabled: change.status == Some(Status::Disabled),
        ..NewIdentity::default()
    };
    match &change.credentials {
        Some(Credentials::Sas {
            primary_key,
            secondary_key,
        }) => {
            new.primary_key.clone_from(primary_key);
            new.secondary_key.clone_from(secondary_key);
        }
        Some(Credentials::SelfSigned {
            primary_thumbprint, ..
        }) => {
            new.x509_thumbprint = Some(primary_thumbprint.clone());
        }
        None => {}
    }
    let mut record = match registry::create(tx, new, unix_millis(now)) {
        Ok(record) => record,
        Err(RegistryError::Store(e)) => return Err(e),
        // A module of a device that does not exist: the device is what is missing.
        Err(RegistryError::NotFound) => {
            return Ok(Err(HubError::NotFound(Identity {
                device_id: who.device_id,
                module_id: None,
            })));
        }
        Err(RegistryError::AlreadyExists) => return Ok(Err(HubError::AlreadyExists(who))),
        Err(other) => return Ok(Err(other.into())),
    };
    // The secondary thumbprint is not part of `NewIdentity`; set it in place.
    if let Some(Credentials::SelfSigned {
        secondary_thumbprint: Some(_),
        ..
    }) = &change.credentials
    {
        apply(tx, &mut record, change)?;
    }
    Ok(Ok(record))
}

/// Applies status and credentials to an existing identity, in place (generation id kept).
fn apply(
    conn: &Connection,
    record: &mut IdentityRecord,
    change: IdentityChange,
) -> Result<(), StoreError> {
    if let Some(status) = change.status {
        record.status = status;
    }
    match change.credentials {
        None => {}
        Some(Credentials::Sas {
            primary_key,
            secondary_key,
        }) => {
            record.authentication = Authentication::Sas {
                primary_key: primary_key.unwrap_or_else(registry::generate_key),
                secondary_key: secondary_key.unwrap_or_else(registry::generate_key),
            };
        }
        Some(Credentials::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        }) => {
            record.authentication = Authentication::SelfSigned {
                primary_thumbprint: primary_thumbprint.to_ascii_uppercase(),
                secondary_thumbprint: secondary_thumbprint
                    .unwrap_or_default()
                    .to_ascii_uppercase(),
            };
        }
    }
    registry_store::update(conn, record)?;
    Ok(())
}

#[cfg(test)]
mod tests;
