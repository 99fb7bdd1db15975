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

/// Schema for the queue of file upload notifications (docs/file-upload.md), applied by the
/// store's migrations as its own step. `id` orders the queue: taking removes the lowest ids,
/// putting back reinserts below the lowest left, so a released notification is next again.
pub const SCHEMA_NOTIFICATIONS: &str = "
CREATE TABLE IF NOT EXISTS file_notifications (
    id              INTEGER PRIMARY KEY,
    device_id       TEXT NOT NULL,
    blob_uri        TEXT NOT NULL,
    blob_name       TEXT NOT NULL,
    last_updated_ms INTEGER NOT NULL,
    size_bytes      INTEGER NOT NULL,
    enqueued_ms     INTEGER NOT NULL
);
";

/// One queued file upload notification as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredNotification {
    /// The uploading device.
    pub device_id: String,
    /// The blob's URL (no SAS token).
    pub blob_uri: String,
    /// `{deviceId}/{name}`.
    pub blob_name: String,
    /// When the blob was last written, Unix milliseconds.
    pub last_updated_ms: i64,
    /// The blob's size in bytes.
    pub size_bytes: i64,
    /// When the hub queued the notification, Unix milliseconds.
    pub enqueued_ms: i64,
}

fn insert_notification(
    conn: &Connection,
    id: Option<i64>,
    n: &StoredNotification,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO file_notifications (id, device_id, blob_uri, blob_name, last_updated_ms,
             size_bytes, enqueued_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        n.device_id,
        n.blob_uri,
        n.blob_name,
        n.last_updated_ms,
        n.size_bytes,
        n.enqueued_ms
    ])?;
    Ok(())
}

/// Queues `n` at the back, dropping the oldest beyond `max_kept`; returns how many were
/// dropped.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn push_notification(
    conn: &Connection,
    n: &StoredNotification,
    max_kept: usize,
) -> Result<usize, StoreError> {
    insert_notification(conn, None, n)?;
    let keep = i64::try_from(max_kept).unwrap_or(i64::MAX);
    let dropped = conn
        .prepare_cached(
            "DELETE FROM file_notifications WHERE id NOT IN
                 (SELECT id FROM file_notifications ORDER BY id DESC LIMIT ?1)",
        )?
        .execute(params![keep])?;
    Ok(dropped)
}

/// Removes and returns up to `max` notifications, oldest first.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn take_notifications(
    conn: &Connection,
    max: usize,
) -> Result<Vec<StoredNotification>, StoreError> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let rows: Vec<(i64, StoredNotification)> = conn
        .prepare_cached(
            "SELECT id, device_id, blob_uri, blob_name, last_updated_ms, size_bytes, enqueued_ms
             FROM file_notifications ORDER BY id LIMIT ?1",
        )?
        .query_map(params![limit], |r| {
            Ok((
                r.get(0)?,
                StoredNotification {
                    device_id: r.get(1)?,
                    blob_uri: r.get(2)?,
                    blob_name: r.get(3)?,
                    last_updated_ms: r.get(4)?,
                    size_bytes: r.get(5)?,
                    enqueued_ms: r.get(6)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if let Some((last, _)) = rows.last() {
        conn.prepare_cached("DELETE FROM file_notifications WHERE id <= ?1")?
            .execute(params![last])?;
    }
    Ok(rows.into_iter().map(|(_, n)| n).collect())
}

/// Puts notifications taken earlier back at the front of the queue, in their order.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn return_notifications(
    conn: &Connection,
    notifications: &[StoredNotification],
) -> Result<(), StoreError> {
    let lowest: i64 = conn.query_row(
        "SELECT COALESCE(MIN(id), 1) FROM file_notifications",
        [],
        |r| r.get(0),
    )?;
    let count = i64::try_from(notifications.len()).unwrap_or(i64::MAX);
    for (offset, n) in (0..).zip(notifications) {
        insert_notification(conn, Some(lowest.saturating_sub(count) + offset), n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_NOTIFICATIONS).unwrap();
        conn
    }

    fn note(n: i64) -> StoredNotification {
        StoredNotification {
            device_id: format!("d{n}"),
            blob_uri: format!("https://a/c/d{n}/f"),
            blob_name: format!("d{n}/f"),
            last_updated_ms: n,
            size_bytes: n * 10,
            enqueued_ms: n,
        }
    }

    fn take_all(conn: &Connection) -> Vec<i64> {
        take_notifications(conn, usize::MAX)
            .unwrap()
            .iter()
            .map(|n| n.enqueued_ms)
            .collect()
    }

    #[test]
    fn taken_oldest_first_and_put_back_at_the_front_in_order() {
        let conn = queue();
        for n in 1..=5 {
            assert_eq!(push_notification(&conn, &note(n), 100).unwrap(), 0);
        }
        let taken = take_notifications(&conn, 2).unwrap();
        assert_eq!(taken, vec![note(1), note(2)]);
        // More arrive while the two are out; the two come back ahead of everything.
        push_notification(&conn, &note(6), 100).unwrap();
        return_notifications(&conn, &taken).unwrap();
        assert_eq!(take_all(&conn), vec![1, 2, 3, 4, 5, 6]);
        // An empty queue takes nothing, and a release into it is next again.
        assert!(take_notifications(&conn, 10).unwrap().is_empty());
        return_notifications(&conn, &[note(7), note(8)]).unwrap();
        push_notification(&conn, &note(9), 100).unwrap();
        assert_eq!(take_all(&conn), vec![7, 8, 9]);
    }

    #[test]
    fn beyond_the_cap_the_oldest_are_dropped() {
        let conn = queue();
        for n in 1..=3 {
            assert_eq!(push_notification(&conn, &note(n), 3).unwrap(), 0);
        }
        assert_eq!(push_notification(&conn, &note(4), 3).unwrap(), 1);
        assert_eq!(take_all(&conn), vec![2, 3, 4]);
    }
}
