//! Identity registry rows: devices, modules, shared access policies and hub settings.
//!
//! Functions take a `&Connection` (a [`rusqlite::Transaction`] derefs to one) so they compose
//! inside [`super::Store::call`].

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// Tables of the registry (migration step 1).
pub(crate) const SCHEMA: &str = "
CREATE TABLE identities (
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL DEFAULT '',
    auth_type TEXT NOT NULL,
    primary_key TEXT,
    secondary_key TEXT,
    primary_thumbprint TEXT,
    secondary_thumbprint TEXT,
    status TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, module_id)
);
CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    primary_key TEXT NOT NULL,
    secondary_key TEXT NOT NULL,
    rights TEXT NOT NULL
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Whether an identity may connect (IoT Hub `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Connections are refused with CONNACK 3 (docs/protocol.md §1.7).
    Disabled,
    /// The identity may connect.
    Enabled,
}

impl Status {
    /// The REST spelling: `enabled` or `disabled`.
    ///
    /// ```
    /// use iothub_emulator::store::registry::Status;
    /// assert_eq!(Status::Disabled.as_str(), "disabled");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
        }
    }
}

/// How an identity authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// Symmetric keys (base64); SAS tokens signed with either are accepted.
    Sas {
        /// Primary key (base64).
        primary_key: String,
        /// Secondary key (base64).
        secondary_key: String,
    },
    /// Self-signed X.509: the presented leaf certificate's SHA-1 or SHA-256 thumbprint
    /// (upper-case hex) must equal one of these.
    SelfSigned {
        /// Primary thumbprint.
        primary_thumbprint: String,
        /// Secondary thumbprint (may be empty).
        secondary_thumbprint: String,
    },
}

impl Authentication {
    /// The REST `authentication.type` value: `sas` or `selfSigned`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Sas { .. } => "sas",
            Self::SelfSigned { .. } => "selfSigned",
        }
    }
}

/// One device or module identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    /// Device id (case-sensitive).
    pub device_id: String,
    /// Module id, `None` for the device itself.
    pub module_id: Option<String>,
    /// Credentials.
    pub authentication: Authentication,
    /// Enabled or disabled.
    pub status: Status,
    /// Random id fixed at creation (REST `generationId`).
    pub generation_id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A shared access policy (`iothubowner`, `service`, `device`, `registryRead`, `registryReadWrite`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Policy name, e.g. `iothubowner`.
    pub name: String,
    /// Primary key (base64).
    pub primary_key: String,
    /// Secondary key (base64).
    pub secondary_key: String,
    /// Comma-separated rights, e.g. `RegistryWrite,ServiceConnect,DeviceConnect`.
    pub rights: String,
}

/// Inserts a new identity.
///
/// # Errors
/// [`StoreError::Sqlite`], including a constraint error when it already exists.
pub fn insert(conn: &Connection, r: &IdentityRecord) -> Result<(), StoreError> {
    let (auth_type, pk, sk, pt, st) = auth_columns(&r.authentication);
    conn.execute(
        "INSERT INTO identities (device_id, module_id, auth_type, primary_key, secondary_key,
             primary_thumbprint, secondary_thumbprint, status, generation_id, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.device_id,
            r.module_id.as_deref().unwrap_or(""),
            auth_type,
            pk,
            sk,
            pt,
            st,
            r.status.as_str(),
            r.generation_id,
            r.created_ms
        ],
    )?;
    Ok(())
}

/// Stores the status and credentials of an existing identity (its generation id and creation
/// time stay). Returns how many rows changed: 0 when the identity does not exist.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn update(conn: &Connection, r: &IdentityRecord) -> Result<usize, StoreError> {
    let (auth_type, pk, sk, pt, st) = auth_columns(&r.authentication);
    let changed = conn.execute(
        "UPDATE identities SET auth_type = ?3, primary_key = ?4, secondary_key = ?5,
             primary_thumbprint = ?6, secondary_thumbprint = ?7, status = ?8
         WHERE device_id = ?1 AND module_id = ?2",
        params![
            r.device_id,
            r.module_id.as_deref().unwrap_or(""),
            auth_type,
            pk,
            sk,
            pt,
            st,
            r.status.as_str()
        ],
    )?;
    Ok(changed)
}

/// The `auth_type` and key/thumbprint columns of an identity row.
#[allow(clippy::type_complexity)]
fn auth_columns(
    auth: &Authentication,
) -> (
    &'static str,
    Option<&String>,
    Option<&String>,
    Option<&String>,
    Option<&String>,
) {
    match auth {
        Authentication::Sas {
            primary_key,
            secondary_key,
        } => ("sas", Some(primary_key), Some(secondary_key), None, None),
        Authentication::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => (
            "selfSigned",
            None,
            None,
            Some(primary_thumbprint),
            Some(secondary_thumbprint),
        ),
    }
}

/// Finds one identity (`module_id` `None` = the device itself).
///
/// # Errors
/// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
pub fn find(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<Option<IdentityRecord>, StoreError> {
    let row = conn
        .query_row(
            &format!("{SELECT} WHERE device_id = ?1 AND module_id = ?2"),
            params![device_id, module_id.unwrap_or("")],
            Row::read,
        )
        .optional()?;
    row.map(Row::into_record).transpose()
}

/// Lists every identity, devices first then their modules, ordered by id.
///
/// # Errors
/// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
pub fn list(conn: &Connection) -> Result<Vec<IdentityRecord>, StoreError> {
    let mut st = conn.prepare(&format!("{SELECT} ORDER BY device_id, module_id"))?;
    let rows = st
        .query_map([], Row::read)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(Row::into_record).collect()
}

/// Deletes an identity; deleting a device also deletes its modules. Returns how many rows went.
/// Their persistent MQTT sessions go with them.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn delete(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<usize, StoreError> {
    super::sessions::delete(conn, device_id, module_id)?;
    let n = match module_id {
        None => conn.execute(
            "DELETE FROM identities WHERE device_id = ?1",
            params![device_id],
        )?,
        Some(m) => conn.execute(
            "DELETE FROM identities WHERE device_id = ?1 AND module_id = ?2",
            params![device_id, m],
        )?,
    };
    Ok(n)
}

/// Sets the status of an identity. Returns false when it does not exist.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn set_status(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    status: Status,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE identities SET status = ?3 WHERE device_id = ?1 AND module_id = ?2",
        params![device_id, module_id.unwrap_or(""), status.as_str()],
    )?;
    Ok(n == 1)
}

/// Inserts or replaces a policy.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn put_policy(conn: &Connection, p: &Policy) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO policies (name, primary_key, secondary_key, rights)
         VALUES (?1, ?2, ?3, ?4)",
        params![p.name, p.primary_key, p.secondary_key, p.rights],
    )?;
    Ok(())
}

/// Finds a policy by name.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn policy(conn: &Connection, name: &str) -> Result<Option<Policy>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT name, primary_key, secondary_key, rights FROM policies WHERE name = ?1",
            params![name],
            |r| {
                Ok(Policy {
                    name: r.get(0)?,
                    primary_key: r.get(1)?,
                    secondary_key: r.get(2)?,
                    rights: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Reads a hub setting (e.g. `id_scope`).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Writes a hub setting.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}

const SELECT: &str = "SELECT device_id, module_id, auth_type, primary_key, secondary_key,
    primary_thumbprint, secondary_thumbprint, status, generation_id, created_ms FROM identities";

/// A raw row before validation.
struct Row {
    device_id: String,
    module_id: String,
    auth_type: String,
    primary_key: Option<String>,
    secondary_key: Option<String>,
    primary_thumbprint: Option<String>,
    secondary_thumbprint: Option<String>,
    status: String,
    generation_id: String,
    created_ms: i64,
}

impl Row {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            device_id: r.get(0)?,
            module_id: r.get(1)?,
            auth_type: r.get(2)?,
            primary_key: r.get(3)?,
            secondary_key: r.get(4)?,
            primary_thumbprint: r.get(5)?,
            secondary_thumbprint: r.get(6)?,
            status: r.get(7)?,
            generation_id: r.get(8)?,
            created_ms: r.get(9)?,
        })
    }

    fn into_record(self) -> Result<IdentityRecord, StoreError> {
        let authentication = match self.auth_type.as_str() {
            "sas" => Authentication::Sas {
                primary_key: self.primary_key.ok_or(StoreError::Corrupt("missing key"))?,
                secondary_key: self.secondary_key.unwrap_or_default(),
            },
            "selfSigned" => Authentication::SelfSigned {
                primary_thumbprint: self
                    .primary_thumbprint
                    .ok_or(StoreError::Corrupt("missing thumbprint"))?,
                secondary_thumbprint: self.secondary_thumbprint.unwrap_or_default(),
            },
            _ => return Err(StoreError::Corrupt("unknown authentication type")),
        };
        let status = match self.status.as_str() {
            "enabled" => Status::Enabled,
            "disabled" => Status::Disabled,
            _ => return Err(StoreError::Corrupt("unknown status")),
        };
        Ok(IdentityRecord {
            device_id: self.device_id,
            module_id: (!self.module_id.is_empty()).then_some(self.module_id),
            authentication,
            status,
            generation_id: self.generation_id,
            created_ms: self.created_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c.execute_batch(crate::store::sessions::SCHEMA).unwrap();
        c
    }

    fn device(id: &str, module: Option<&str>) -> IdentityRecord {
        IdentityRecord {
            device_id: id.into(),
            module_id: module.map(Into::into),
            authentication: Authentication::Sas {
                primary_key: "a".into(),
                secondary_key: "b".into(),
            },
            status: Status::Enabled,
            generation_id: "g".into(),
            created_ms: 1,
        }
    }

    #[test]
    fn stores_and_finds_devices_and_modules_separately() {
        let c = db();
        insert(&c, &device("d1", None)).unwrap();
        insert(&c, &device("d1", Some("m1"))).unwrap();
        assert_eq!(find(&c, "d1", None).unwrap().unwrap().module_id, None);
        assert_eq!(
            find(&c, "d1", Some("m1"))
                .unwrap()
                .unwrap()
                .module_id
                .as_deref(),
            Some("m1")
        );
        assert!(
            find(&c, "D1", None).unwrap().is_none(),
            "ids are case-sensitive"
        );
        assert!(
            insert(&c, &device("d1", None)).is_err(),
            "duplicates are refused"
        );
    }

    #[test]
    fn deleting_a_device_deletes_its_modules() {
        let c = db();
        insert(&c, &device("d1", None)).unwrap();
        insert(&c, &device("d1", Some("m1"))).unwrap();
        insert(&c, &device("d2", None)).unwrap();
        let sub = [crate::store::sessions::StoredSubscription {
            filter: "#".into(),
            qos: 1,
        }];
        crate::store::sessions::save(&c, "d1", Some("m1"), &sub).unwrap();
        crate::store::sessions::save(&c, "d2", None, &sub).unwrap();
        assert_eq!(delete(&c, "d1", None).unwrap(), 2);
        assert_eq!(list(&c).unwrap().len(), 1);
        assert_eq!(
            crate::store::sessions::load(&c, "d1", Some("m1")).unwrap(),
            None,
            "a deleted identity's persistent session goes with it"
        );
        assert!(
            crate::store::sessions::load(&c, "d2", None)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn status_round_trips() {
        let c = db();
        insert(&c, &device("d1", None)).unwrap();
        assert!(set_status(&c, "d1", None, Status::Disabled).unwrap());
        assert_eq!(
            find(&c, "d1", None).unwrap().unwrap().status,
            Status::Disabled
        );
        assert!(!set_status(&c, "nope", None, Status::Disabled).unwrap());
    }
}
