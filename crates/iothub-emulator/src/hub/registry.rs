//! Registry operations for the service side and the CLI: create identities with generated keys,
//! bootstrap the shared access policies, build connection strings.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::Connection;

use crate::hub::ids;
use crate::store::StoreError;
use crate::store::registry::{self, Authentication, IdentityRecord, Policy, Status};

/// The default shared access policies and their rights (docs/protocol.md §3).
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    ("iothubowner", "RegistryWrite,ServiceConnect,DeviceConnect"),
    ("service", "ServiceConnect"),
    ("device", "DeviceConnect"),
    ("registryRead", "RegistryRead"),
    ("registryReadWrite", "RegistryWrite"),
];

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The identity exists already (REST 409 `409001 DeviceAlreadyExists`).
    #[error("identity already exists")]
    AlreadyExists,
    /// The identity does not exist (REST 404).
    #[error("identity not found")]
    NotFound,
    /// An id breaks the IoT Hub id rules (≤128 ASCII characters from the allowed set).
    #[error("invalid identity id")]
    InvalidId,
    /// A supplied key is not base64.
    #[error("invalid key")]
    InvalidKey,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to create.
#[derive(Clone, Debug, Default)]
pub struct NewIdentity {
    /// Device id.
    pub device_id: String,
    /// Module id (the device must exist).
    pub module_id: Option<String>,
    /// Primary key; generated (32 random bytes) when `None`.
    pub primary_key: Option<String>,
    /// Secondary key; generated when `None`.
    pub secondary_key: Option<String>,
    /// Use self-signed X.509 with this thumbprint instead of keys.
    pub x509_thumbprint: Option<String>,
    /// Create disabled.
    pub disabled: bool,
}

/// A fresh random 256-bit key, base64 (the size real hubs generate).
///
/// ```
/// let key = iothub_emulator::hub::registry::generate_key();
/// assert_eq!(key.len(), 44);
/// assert_ne!(key, iothub_emulator::hub::registry::generate_key());
/// ```
#[must_use]
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    // invariant: the system RNG only fails on broken platforms; an all-zero key would still
    // be a valid (if weak) key rather than a crash, so the error is ignored deliberately.
    let _ = SystemRandom::new().fill(&mut bytes);
    STANDARD.encode(bytes)
}

/// Creates the default policies with generated keys when missing (first run).
///
/// # Errors
/// [`StoreError`] from the database.
pub fn ensure_policies(conn: &Connection) -> Result<(), StoreError> {
    for (name, rights) in DEFAULT_POLICIES {
        if registry::policy(conn, name)?.is_none() {
            registry::put_policy(
                conn,
                &Policy {
                    name: (*name).into(),
                    primary_key: generate_key(),
                    secondary_key: generate_key(),
                    rights: (*rights).into(),
                },
            )?;
        }
    }
    Ok(())
}

/// Creates a device or module identity.
///
/// # Errors
/// [`RegistryError::AlreadyExists`], [`RegistryError::NotFound`] (module of an unknown
/// device), [`RegistryError::InvalidId`], [`RegistryError::InvalidKey`], or a store error.
pub fn create(
    conn: &Connection,
    new: NewIdentity,
    now_ms: i64,
) -> Result<IdentityRecord, RegistryError> {
    if !ids::is_valid_identity_id(&new.device_id)
        || new
            .module_id
            .as_deref()
            .is_some_and(|m| !ids::is_valid_identity_id(m))
    {
        return Err(RegistryError::InvalidId);
    }
    if registry::find(conn, &new.device_id, new.module_id.as_deref())?.is_some() {
        return Err(RegistryError::AlreadyExists);
    }
    if new.module_id.is_some() && registry::find(conn, &new.device_id, None)?.is_none() {
        return Err(RegistryError::NotFound);
    }
    let authentication = match new.x509_thumbprint {
        Some(t) => Authentication::SelfSigned {
            primary_thumbprint: t.to_ascii_uppercase(),
            secondary_thumbprint: String::new(),
        },
        None => {
            for k in [&new.primary_key, &new.secondary_key].into_iter().flatten() {
                if STANDARD.decode(k).map_or(true, |b| b.is_empty()) {
                    return Err(RegistryError::InvalidKey);
                }
            }
            Authentication::Sas {
                primary_key: new.primary_key.unwrap_or_else(generate_key),
                secondary_key: new.secondary_key.unwrap_or_else(generate_key),
            }
        }
    };
    let record = IdentityRecord {
        device_id: new.device_id,
        module_id: new.module_id,
        authentication,
        status: if new.disabled {
            Status::Disabled
        } else {
            Status::Enabled
        },
        generation_id: generation_id(),
        created_ms: now_ms,
    };
    registry::insert(conn, &record)?;
    Ok(record)
}

/// The identity's connection string for hub host `host`: keys give
/// `HostName=…;DeviceId=…[;ModuleId=…];SharedAccessKey=…`, X.509 gives `…;x509=true`.
///
/// ```
/// use iothub_emulator::store::registry::*;
/// let r = IdentityRecord {
///     device_id: "d1".into(), module_id: None, status: Status::Enabled,
///     authentication: Authentication::Sas { primary_key: "a2V5".into(), secondary_key: "b".into() },
///     generation_id: "g".into(), created_ms: 0,
/// };
/// assert_eq!(
///     iothub_emulator::hub::registry::connection_string(&r, "localhost"),
///     "HostName=localhost;DeviceId=d1;SharedAccessKey=a2V5"
/// );
/// ```
#[must_use]
pub fn connection_string(record: &IdentityRecord, host: &str) -> String {
    let mut s = format!("HostName={host};DeviceId={}", record.device_id);
    if let Some(m) = &record.module_id {
        s.push_str(&format!(";ModuleId={m}"));
    }
    match &record.authentication {
        Authentication::Sas { primary_key, .. } => {
            s.push_str(&format!(";SharedAccessKey={primary_key}"))
        }
        Authentication::SelfSigned { .. } => s.push_str(";x509=true"),
    }
    s
}

/// The service connection string of policy `policy`.
///
/// # Errors
/// [`RegistryError::NotFound`] when the policy does not exist.
pub fn service_connection_string(
    conn: &Connection,
    host: &str,
    policy: &str,
) -> Result<String, RegistryError> {
    let p = registry::policy(conn, policy)?.ok_or(RegistryError::NotFound)?;
    Ok(format!(
        "HostName={host};SharedAccessKeyName={};SharedAccessKey={}",
        p.name, p.primary_key
    ))
}

/// The identity as the REST API shows it (docs/protocol.md §10 field names).
#[must_use]
pub fn to_json(record: &IdentityRecord) -> serde_json::Value {
    let authentication = match &record.authentication {
        Authentication::Sas {
            primary_key,
            secondary_key,
        } => serde_json::json!({
            "type": "sas",
            "symmetricKey": { "primaryKey": primary_key, "secondaryKey": secondary_key },
            "x509Thumbprint": { "primaryThumbprint": null, "secondaryThumbprint": null },
        }),
        Authentication::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => serde_json::json!({
            "type": "selfSigned",
            "symmetricKey": { "primaryKey": null, "secondaryKey": null },
            "x509Thumbprint": {
                "primaryThumbprint": primary_thumbprint,
                "secondaryThumbprint": (!secondary_thumbprint.is_empty()).then_some(secondary_thumbprint),
            },
        }),
    };
    let mut v = serde_json::json!({
        "deviceId": record.device_id,
        "generationId": record.generation_id,
        "status": record.status.as_str(),
        "authentication": authentication,
    });
    if let Some(m) = &record.module_id {
        v["moduleId"] = serde_json::Value::String(m.clone());
    }
    v
}

fn generation_id() -> String {
    let mut bytes = [0u8; 8];
    // invariant: see `generate_key`; a zero generation id is harmless.
    let _ = SystemRandom::new().fill(&mut bytes);
    format!("{}", u64::from_le_bytes(bytes) % 1_000_000_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::registry::SCHEMA).unwrap();
        c
    }

    #[test]
    fn creates_devices_with_generated_keys_and_refuses_duplicates() {
        let c = db();
        let r = create(
            &c,
            NewIdentity {
                device_id: "d1".into(),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        let Authentication::Sas {
            primary_key,
            secondary_key,
        } = &r.authentication
        else {
            panic!()
        };
        assert_ne!(primary_key, secondary_key);
        assert!(matches!(
            create(
                &c,
                NewIdentity {
                    device_id: "d1".into(),
                    ..Default::default()
                },
                0
            ),
            Err(RegistryError::AlreadyExists)
        ));
    }

    #[test]
    fn modules_need_their_device_and_ids_follow_the_rules() {
        let c = db();
        let module = NewIdentity {
            device_id: "d1".into(),
            module_id: Some("m".into()),
            ..Default::default()
        };
        assert!(matches!(
            create(&c, module, 0),
            Err(RegistryError::NotFound)
        ));
        let bad = NewIdentity {
            device_id: "a/b".into(),
            ..Default::default()
        };
        assert!(matches!(create(&c, bad, 0), Err(RegistryError::InvalidId)));
    }

    #[test]
    fn policies_are_generated_once() {
        let c = db();
        ensure_policies(&c).unwrap();
        let first = service_connection_string(&c, "h", "iothubowner").unwrap();
        ensure_policies(&c).unwrap();
        assert_eq!(
            first,
            service_connection_string(&c, "h", "iothubowner").unwrap()
        );
        for (name, _) in DEFAULT_POLICIES {
            assert!(registry::policy(&c, name).unwrap().is_some());
        }
    }
}
