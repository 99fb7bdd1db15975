//! SQL for file uploads (docs/file-upload.md): one row per SAS URI the hub handed out, keyed by
//! its correlation id, with the outcome the device reported.
//!
//! A row is `pending` from creation until the device's notification makes it `completed` or
//! `failed`. A pending row whose `expires_ms` has passed counts as expired: no statement
//! rewrites it, every reader compares with `now` (so expiry needs no timer, as for C2D).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;

/// Schema for file uploads, applied by the store's migrations as its own step.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS file_uploads (
    correlation_id     TEXT PRIMARY KEY,
    device_id          TEXT NOT NULL,
    module_id          TEXT NOT NULL DEFAULT '',
    host_name          TEXT NOT NULL,
    container          TEXT NOT NULL,
    blob_name          TEXT NOT NULL,
    created_ms         INTEGER NOT NULL,
    expires_ms         INTEGER NOT NULL,
    state              TEXT NOT NULL DEFAULT 'pending',  -- pending | completed | failed
    status_code        INTEGER,
    status_description TEXT,
    size_bytes         INTEGER,
    completed_ms       INTEGER
);
CREATE INDEX IF NOT EXISTS file_uploads_by_device ON file_uploads (device_id, created_ms);
";

/// One upload as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUpload {
    /// The correlation id handed to the device.
    pub correlation_id: String,
    /// The uploading device.
    pub device_id: String,
    /// The uploading module (`""` for the device itself).
    pub module_id: String,
    /// The storage host name handed to the device (`hostName`).
    pub host_name: String,
    /// The container.
    pub container: String,
    /// The blob name (`{deviceId}/{name}`).
    pub blob_name: String,
    /// When the SAS URI was handed out, Unix ms.
    pub created_ms: i64,
    /// When the SAS token and the correlation expire, Unix ms.
    pub expires_ms: i64,
    /// `pending`, `completed` or `failed`.
    pub state: String,
    /// The device's `statusCode`.
    pub status_code: Option<i64>,
    /// The device's `statusDescription`.
    pub status_description: Option<String>,
    /// The blob's size when the upload completed (when the hub could read it).
    pub size_bytes: Option<i64>,
    /// When the device's notification arrived, Unix ms.
    pub completed_ms: Option<i64>,
}

const COLUMNS: &str = "correlation_id, device_id, module_id, host_name, container, blob_name,
    created_ms, expires_ms, state, status_code, status_description, size_bytes, completed_ms";

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredUpload> {
    Ok(StoredUpload {
        correlation_id: r.get(0)?,
        device_id: r.get(1)?,
        module_id: r.get(2)?,
        host_name: r.get(3)?,
        container: r.get(4)?,
        blob_name: r.get(5)?,
        created_ms: r.get(6)?,
        expires_ms: r.get(7)?,
        state: r.get(8)?,
        status_code: r.get(9)?,
        status_description: r.get(10)?,
        size_bytes: r.get(11)?,
        completed_ms: r.get(12)?,
    })
}

/// Inserts a new pending upload.
///
/// # Errors
/// [`StoreError::Sqlite`] (a duplicate correlation id included).
pub fn insert(conn: &Connection, u: &StoredUpload) -> Result<(), StoreError> {
    conn.execute(
        &format!("INSERT INTO file_uploads ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
        params![
            u.correlation_id,
            u.device_id,
            u.module_id,
            u.host_name,
            u.container,
            u.blob_name,
            u.created_ms,
            u.expires_ms,
            u.state,
            u.status_code,
            u.status_description,
            u.size_bytes,
            u.completed_ms,
        ],
    )?;
    Ok(())
}

/// The upload with `correlation_id`, if any.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn find(conn: &Connection, correlation_id: &str) -> Result<Option<StoredUpload>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM file_uploads WHERE correlation_id = ?1"),
            params![correlation_id],
            from_row,
        )
        .optional()?)
}

/// How many of the device's uploads (its modules' included) are pending and not expired at
/// `now_ms`.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn active_count(conn: &Connection, device_id: &str, now_ms: i64) -> Result<u32, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM file_uploads
         WHERE device_id = ?1 AND state = 'pending' AND expires_ms > ?2",
        params![device_id, now_ms],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Records the device's outcome of a pending upload; `false` when it is not pending.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn finish(
    conn: &Connection,
    correlation_id: &str,
    success: bool,
    status_code: i64,
    status_description: &str,
    size_bytes: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE file_uploads
         SET state = ?2, status_code = ?3, status_description = ?4, size_bytes = ?5,
             completed_ms = ?6
         WHERE correlation_id = ?1 AND state = 'pending'",
        params![
            correlation_id,
            if success { "completed" } else { "failed" },
            status_code,
            status_description,
            size_bytes,
            now_ms,
        ],
    )?;
    Ok(n == 1)
}

/// The device's uploads, newest first, at most `limit`.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn list(
    conn: &Connection,
    device_id: &str,
    limit: usize,
) -> Result<Vec<StoredUpload>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM file_uploads WHERE device_id = ?1
         ORDER BY created_ms DESC, rowid DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = st
        .query_map(params![device_id, limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
