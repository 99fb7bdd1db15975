//! SQL for the Device Provisioning Service: the id scope, individual enrollments, enrollment
//! groups and registration records (docs/protocol.md §9).
//!
//! Registration ids are case-insensitive in DPS, so they are compared with `COLLATE NOCASE`.

use rusqlite::{Connection, OptionalExtension, Row, params};

/// Schema for DPS, applied by the store's migrations.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dps_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dps_enrollments (
    registration_id TEXT PRIMARY KEY COLLATE NOCASE,
    primary_key     TEXT NOT NULL,
    secondary_key   TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dps_enrollment_groups (
    group_id      TEXT PRIMARY KEY COLLATE NOCASE,
    primary_key   TEXT NOT NULL,
    secondary_key TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dps_registrations (
    registration_id TEXT PRIMARY KEY COLLATE NOCASE,
    operation_id    TEXT NOT NULL,
    group_id        TEXT,            -- NULL for an individual enrollment
    status          TEXT NOT NULL,   -- assigned | failed | disabled
    substatus       TEXT,
    device_id       TEXT,
    assigned_hub    TEXT,
    error_code      INTEGER,
    error_message   TEXT,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
";

/// A stored individual enrollment or enrollment group (the id is the registration id or the
/// group id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEnrollment {
    /// Registration id (individual) or group id (group).
    pub id: String,
    /// Primary symmetric key (base64).
    pub primary_key: String,
    /// Secondary symmetric key (base64).
    pub secondary_key: String,
    /// Whether devices may register through it.
    pub enabled: bool,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Last change, Unix ms.
    pub updated_ms: i64,
}

/// Which enrollment table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `dps_enrollments`.
    Individual,
    /// `dps_enrollment_groups`.
    Group,
}

impl Kind {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Individual => ("dps_enrollments", "registration_id"),
            Self::Group => ("dps_enrollment_groups", "group_id"),
        }
    }
}

/// A stored registration (the last registration attempt of one registration id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRegistration {
    /// Registration id.
    pub registration_id: String,
    /// Operation id handed to the device.
    pub operation_id: String,
    /// Enrollment group used, `None` for an individual enrollment.
    pub group_id: Option<String>,
    /// `assigned`, `failed` or `disabled`.
    pub status: String,
    /// e.g. `initialAssignment`.
    pub substatus: Option<String>,
    /// Device id created in the hub.
    pub device_id: Option<String>,
    /// Host name of the hub assigned.
    pub assigned_hub: Option<String>,
    /// Error code for `failed`.
    pub error_code: Option<i64>,
    /// Error message for `failed`.
    pub error_message: Option<String>,
    /// First registration, Unix ms.
    pub created_ms: i64,
    /// This registration, Unix ms.
    pub updated_ms: i64,
}

/// Reads a DPS setting.
///
/// # Errors
/// Any SQLite error.
pub fn setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM dps_settings WHERE key = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()
}

/// Writes a DPS setting.
///
/// # Errors
/// Any SQLite error.
pub fn set_setting(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO dps_settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Inserts an enrollment; returns `false` when the id exists already (case-insensitively).
///
/// # Errors
/// Any SQLite error.
pub fn insert(conn: &Connection, kind: Kind, e: &StoredEnrollment) -> rusqlite::Result<bool> {
    let (table, id) = kind.table();
    let n = conn.execute(
        &format!(
            "INSERT OR IGNORE INTO {table} ({id}, primary_key, secondary_key, enabled, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ),
        params![e.id, e.primary_key, e.secondary_key, e.enabled, e.created_ms, e.updated_ms],
    )?;
    Ok(n == 1)
}

/// One enrollment by id (case-insensitive).
///
/// # Errors
/// Any SQLite error.
pub fn get(conn: &Connection, kind: Kind, id: &str) -> rusqlite::Result<Option<StoredEnrollment>> {
    let (table, col) = kind.table();
    conn.query_row(
        &format!(
            "SELECT {col}, primary_key, secondary_key, enabled, created_ms, updated_ms FROM {table} WHERE {col} = ?1"
        ),
        params![id],
        enrollment_from_row,
    )
    .optional()
}

/// Every enrollment of a kind, ordered by id.
///
/// # Errors
/// Any SQLite error.
pub fn list(conn: &Connection, kind: Kind) -> rusqlite::Result<Vec<StoredEnrollment>> {
    let (table, col) = kind.table();
    let mut st = conn.prepare(&format!(
        "SELECT {col}, primary_key, secondary_key, enabled, created_ms, updated_ms FROM {table} ORDER BY {col}"
    ))?;
    let rows = st.query_map([], enrollment_from_row)?;
    rows.collect()
}

/// Deletes an enrollment; returns whether it existed.
///
/// # Errors
/// Any SQLite error.
pub fn delete(conn: &Connection, kind: Kind, id: &str) -> rusqlite::Result<bool> {
    let (table, col) = kind.table();
    Ok(conn.execute(
        &format!("DELETE FROM {table} WHERE {col} = ?1"),
        params![id],
    )? == 1)
}

/// Enables or disables an enrollment; returns whether it existed.
///
/// # Errors
/// Any SQLite error.
pub fn set_enabled(
    conn: &Connection,
    kind: Kind,
    id: &str,
    enabled: bool,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let (table, col) = kind.table();
    let n = conn.execute(
        &format!("UPDATE {table} SET enabled = ?2, updated_ms = ?3 WHERE {col} = ?1"),
        params![id, enabled, now_ms],
    )?;
    Ok(n == 1)
}

/// Inserts or replaces the registration record of a registration id (keeping its first
/// `created_ms`).
///
/// # Errors
/// Any SQLite error.
pub fn put_registration(conn: &Connection, r: &StoredRegistration) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO dps_registrations (registration_id, operation_id, group_id, status, substatus,
             device_id, assigned_hub, error_code, error_message, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (registration_id) DO UPDATE SET
             operation_id = excluded.operation_id, group_id = excluded.group_id,
             status = excluded.status, substatus = excluded.substatus,
             device_id = excluded.device_id, assigned_hub = excluded.assigned_hub,
             error_code = excluded.error_code, error_message = excluded.error_message,
             updated_ms = excluded.updated_ms",
        params![
            r.registration_id,
            r.operation_id,
            r.group_id,
            r.status,
            r.substatus,
            r.device_id,
            r.assigned_hub,
            r.error_code,
            r.error_message,
            r.created_ms,
            r.updated_ms
        ],
    )?;
    Ok(())
}

/// The registration record of a registration id (case-insensitive).
///
/// # Errors
/// Any SQLite error.
pub fn registration(
    conn: &Connection,
    registration_id: &str,
) -> rusqlite::Result<Option<StoredRegistration>> {
    conn.query_row(
        "SELECT registration_id, operation_id, group_id, status, substatus, device_id, assigned_hub,
                error_code, error_message, created_ms, updated_ms
         FROM dps_registrations WHERE registration_id = ?1",
        params![registration_id],
        |r| {
            Ok(StoredRegistration {
                registration_id: r.get(0)?,
                operation_id: r.get(1)?,
                group_id: r.get(2)?,
                status: r.get(3)?,
                substatus: r.get(4)?,
                device_id: r.get(5)?,
                assigned_hub: r.get(6)?,
                error_code: r.get(7)?,
                error_message: r.get(8)?,
                created_ms: r.get(9)?,
                updated_ms: r.get(10)?,
            })
        },
    )
    .optional()
}

fn enrollment_from_row(r: &Row<'_>) -> rusqlite::Result<StoredEnrollment> {
    Ok(StoredEnrollment {
        id: r.get(0)?,
        primary_key: r.get(1)?,
        secondary_key: r.get(2)?,
        enabled: r.get(3)?,
        created_ms: r.get(4)?,
        updated_ms: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn enrollment(id: &str) -> StoredEnrollment {
        StoredEnrollment {
            id: id.into(),
            primary_key: "cA==".into(),
            secondary_key: "cw==".into(),
            enabled: true,
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[test]
    fn enrollment_ids_are_unique_case_insensitively_per_kind() {
        let conn = db();
        assert!(insert(&conn, Kind::Individual, &enrollment("Dev-1")).unwrap());
        assert!(!insert(&conn, Kind::Individual, &enrollment("dev-1")).unwrap());
        assert!(insert(&conn, Kind::Group, &enrollment("dev-1")).unwrap());
        assert_eq!(
            get(&conn, Kind::Individual, "DEV-1").unwrap().unwrap().id,
            "Dev-1"
        );
        assert!(set_enabled(&conn, Kind::Individual, "dev-1", false, 5).unwrap());
        let e = get(&conn, Kind::Individual, "dev-1").unwrap().unwrap();
        assert_eq!((e.enabled, e.updated_ms), (false, 5));
        assert_eq!(list(&conn, Kind::Group).unwrap().len(), 1);
        assert!(delete(&conn, Kind::Individual, "DEV-1").unwrap());
        assert!(get(&conn, Kind::Individual, "dev-1").unwrap().is_none());
    }

    #[test]
    fn registrations_are_replaced_but_keep_their_creation_time() {
        let conn = db();
        let mut r = StoredRegistration {
            registration_id: "dev-1".into(),
            operation_id: "op1".into(),
            group_id: None,
            status: "assigned".into(),
            substatus: Some("initialAssignment".into()),
            device_id: Some("dev-1".into()),
            assigned_hub: Some("localhost".into()),
            error_code: None,
            error_message: None,
            created_ms: 10,
            updated_ms: 10,
        };
        put_registration(&conn, &r).unwrap();
        r.operation_id = "op2".into();
        r.created_ms = 20;
        r.updated_ms = 20;
        put_registration(&conn, &r).unwrap();
        let got = registration(&conn, "DEV-1").unwrap().unwrap();
        assert_eq!(
            (got.operation_id.as_str(), got.created_ms, got.updated_ms),
            ("op2", 10, 20)
        );
        set_setting(&conn, "id_scope", "0ne00000001").unwrap();
        assert_eq!(
            setting(&conn, "id_scope").unwrap().as_deref(),
            Some("0ne00000001")
        );
    }
}
