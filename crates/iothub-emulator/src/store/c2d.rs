//! SQL for cloud-to-device queues and their feedback records.
//!
//! One row per queued message. `locked_until_ms` NULL means Enqueued (visible); a value means
//! Invisible (delivered, waiting for the device's PUBACK) until that time (docs/protocol.md §5
//! "Queue and lifecycle"). Completed and dead-lettered messages are deleted; their outcome
//! lives on as a feedback row when the sender asked for it.

use rusqlite::{Connection, OptionalExtension, Row, params};

/// Schema for C2D queues and feedback, applied by the store's migrations.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2d_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order and lock token
    device_id        TEXT NOT NULL,
    module_id        TEXT NOT NULL DEFAULT '',
    message_id       TEXT NOT NULL,
    correlation_id   TEXT,
    user_id          TEXT,
    content_type     TEXT,
    content_encoding TEXT,
    ack              TEXT NOT NULL DEFAULT 'none',
    properties       TEXT NOT NULL DEFAULT '[]',  -- JSON array of [name, value]
    body             BLOB NOT NULL,
    enqueued_ms      INTEGER NOT NULL,
    expiry_ms        INTEGER NOT NULL,
    delivery_count   INTEGER NOT NULL DEFAULT 0,
    locked_until_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS c2d_messages_by_identity ON c2d_messages (device_id, module_id, seq);
CREATE INDEX IF NOT EXISTS c2d_messages_by_expiry ON c2d_messages (expiry_ms);
CREATE TABLE IF NOT EXISTS c2d_feedback (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    original_message_id TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    module_id           TEXT NOT NULL DEFAULT '',
    enqueued_ms         INTEGER NOT NULL,
    status_code         TEXT NOT NULL,
    description         TEXT NOT NULL,
    recorded_ms         INTEGER NOT NULL
);
";

/// A queued message as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Queue position; also the lock token handed to the delivering session.
    pub seq: i64,
    /// Addressed device.
    pub device_id: String,
    /// Addressed module (`""` for the device itself).
    pub module_id: String,
    /// `$.mid`.
    pub message_id: String,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// `$.uid`.
    pub user_id: Option<String>,
    /// `$.ct`.
    pub content_type: Option<String>,
    /// `$.ce`.
    pub content_encoding: Option<String>,
    /// `none`, `positive`, `negative` or `full`.
    pub ack: String,
    /// Application properties as a JSON array of `[name, value]` pairs.
    pub properties: String,
    /// Message body.
    pub body: Vec<u8>,
    /// Enqueue time, Unix ms.
    pub enqueued_ms: i64,
    /// Absolute expiry, Unix ms.
    pub expiry_ms: i64,
    /// How many times the message has been handed to a session.
    pub delivery_count: i64,
    /// Lock expiry while Invisible; `None` while Enqueued.
    pub locked_until_ms: Option<i64>,
}

/// A feedback record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFeedback {
    /// Row id (order of recording).
    pub id: i64,
    /// `$.mid` of the message the record is about.
    pub original_message_id: String,
    /// Addressed device.
    pub device_id: String,
    /// Addressed module (`""` for the device itself).
    pub module_id: String,
    /// When the original message was enqueued, Unix ms.
    pub enqueued_ms: i64,
    /// `Success`, `Expired`, `DeliveryCountExceeded`, `Rejected` or `Purged`.
    pub status_code: String,
    /// Human-readable outcome.
    pub description: String,
    /// When the outcome happened, Unix ms.
    pub recorded_ms: i64,
}

const COLUMNS: &str = "seq, device_id, module_id, message_id, correlation_id, user_id, content_type, \
     content_encoding, ack, properties, body, enqueued_ms, expiry_ms, delivery_count, locked_until_ms";

/// Appends a message (its `seq` is ignored) and returns the assigned `seq`.
///
/// # Errors
/// Any SQLite error.
pub fn insert(conn: &Connection, m: &StoredMessage) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO c2d_messages (device_id, module_id, message_id, correlation_id, user_id,
             content_type, content_encoding, ack, properties, body, enqueued_ms, expiry_ms,
             delivery_count, locked_until_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            m.device_id,
            m.module_id,
            m.message_id,
            m.correlation_id,
            m.user_id,
            m.content_type,
            m.content_encoding,
            m.ack,
            m.properties,
            m.body,
            m.enqueued_ms,
            m.expiry_ms,
            m.delivery_count,
            m.locked_until_ms
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Every queued message of one identity, oldest first.
///
/// # Errors
/// Any SQLite error.
pub fn list(
    conn: &Connection,
    device_id: &str,
    module_id: &str,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM c2d_messages WHERE device_id = ?1 AND module_id = ?2 ORDER BY seq"
    ))?;
    let rows = st.query_map(params![device_id, module_id], message_from_row)?;
    rows.collect()
}

/// Every message whose expiry is at or before `now_ms`, any identity.
///
/// # Errors
/// Any SQLite error.
pub fn list_expired(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM c2d_messages WHERE expiry_ms <= ?1 ORDER BY seq"
    ))?;
    let rows = st.query_map(params![now_ms], message_from_row)?;
    rows.collect()
}

/// One message by lock token.
///
/// # Errors
/// Any SQLite error.
pub fn get(conn: &Connection, seq: i64) -> rusqlite::Result<Option<StoredMessage>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM c2d_messages WHERE seq = ?1"),
        params![seq],
        message_from_row,
    )
    .optional()
}

/// Number of queued messages (Enqueued or Invisible) of one identity.
///
/// # Errors
/// Any SQLite error.
pub fn count(conn: &Connection, device_id: &str, module_id: &str) -> rusqlite::Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM c2d_messages WHERE device_id = ?1 AND module_id = ?2",
        params![device_id, module_id],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Marks a message Invisible until `locked_until_ms` with the given delivery count.
///
/// # Errors
/// Any SQLite error.
pub fn lock(
    conn: &Connection,
    seq: i64,
    locked_until_ms: i64,
    delivery_count: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE c2d_messages SET locked_until_ms = ?2, delivery_count = ?3 WHERE seq = ?1",
        params![seq, locked_until_ms, delivery_count],
    )?;
    Ok(())
}

/// Returns every Invisible message of one identity to Enqueued; returns how many.
///
/// # Errors
/// Any SQLite error.
pub fn unlock_all(conn: &Connection, device_id: &str, module_id: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE c2d_messages SET locked_until_ms = NULL
         WHERE device_id = ?1 AND module_id = ?2 AND locked_until_ms IS NOT NULL",
        params![device_id, module_id],
    )
}

/// Deletes one message; returns whether it existed.
///
/// # Errors
/// Any SQLite error.
pub fn delete(conn: &Connection, seq: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM c2d_messages WHERE seq = ?1", params![seq])? == 1)
}

/// Records a feedback row (its `id` is ignored).
///
/// # Errors
/// Any SQLite error.
pub fn insert_feedback(conn: &Connection, f: &StoredFeedback) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO c2d_feedback (original_message_id, device_id, module_id, enqueued_ms,
             status_code, description, recorded_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            f.original_message_id,
            f.device_id,
            f.module_id,
            f.enqueued_ms,
            f.status_code,
            f.description,
            f.recorded_ms
        ],
    )?;
    Ok(())
}

/// Removes and returns up to `max` of the oldest feedback rows.
///
/// # Errors
/// Any SQLite error.
pub fn take_feedback(conn: &Connection, max: usize) -> rusqlite::Result<Vec<StoredFeedback>> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let rows: Vec<StoredFeedback> = {
        let mut st = conn.prepare_cached(
            "SELECT id, original_message_id, device_id, module_id, enqueued_ms, status_code,
                    description, recorded_ms
             FROM c2d_feedback ORDER BY id LIMIT ?1",
        )?;
        let rows = st.query_map(params![limit], |r| {
            Ok(StoredFeedback {
                id: r.get(0)?,
                original_message_id: r.get(1)?,
                device_id: r.get(2)?,
                module_id: r.get(3)?,
                enqueued_ms: r.get(4)?,
                status_code: r.get(5)?,
                description: r.get(6)?,
                recorded_ms: r.get(7)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if let Some(last) = rows.last() {
        conn.execute("DELETE FROM c2d_feedback WHERE id <= ?1", params![last.id])?;
    }
    Ok(rows)
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        seq: r.get(0)?,
        device_id: r.get(1)?,
        module_id: r.get(2)?,
        message_id: r.get(3)?,
        correlation_id: r.get(4)?,
        user_id: r.get(5)?,
        content_type: r.get(6)?,
        content_encoding: r.get(7)?,
        ack: r.get(8)?,
        properties: r.get(9)?,
        body: r.get(10)?,
        enqueued_ms: r.get(11)?,
        expiry_ms: r.get(12)?,
        delivery_count: r.get(13)?,
        locked_until_ms: r.get(14)?,
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

    fn message(device: &str, mid: &str) -> StoredMessage {
        StoredMessage {
            seq: 0,
            device_id: device.into(),
            module_id: String::new(),
            message_id: mid.into(),
            correlation_id: Some("c".into()),
            user_id: None,
            content_type: None,
            content_encoding: Some("utf-8".into()),
            ack: "full".into(),
            properties: "[]".into(),
            body: b"hi".to_vec(),
            enqueued_ms: 10,
            expiry_ms: 100,
            delivery_count: 0,
            locked_until_ms: None,
        }
    }

    #[test]
    fn messages_round_trip_in_queue_order_per_identity() {
        let conn = db();
        let a = insert(&conn, &message("d1", "a")).unwrap();
        insert(&conn, &message("d2", "x")).unwrap();
        let b = insert(&conn, &message("d1", "b")).unwrap();
        let listed = list(&conn, "d1", "").unwrap();
        assert_eq!(listed.iter().map(|m| m.seq).collect::<Vec<_>>(), [a, b]);
        assert_eq!(
            listed[0],
            StoredMessage {
                seq: a,
                ..message("d1", "a")
            }
        );
        assert_eq!(count(&conn, "d1", "").unwrap(), 2);
        lock(&conn, a, 70, 1).unwrap();
        assert_eq!(get(&conn, a).unwrap().unwrap().locked_until_ms, Some(70));
        assert_eq!(unlock_all(&conn, "d1", "").unwrap(), 1);
        assert!(delete(&conn, a).unwrap());
        assert!(!delete(&conn, a).unwrap());
        assert_eq!(list_expired(&conn, 100).unwrap().len(), 2);
    }

    #[test]
    fn feedback_is_taken_oldest_first_and_only_once() {
        let conn = db();
        for i in 0..3 {
            let f = StoredFeedback {
                id: 0,
                original_message_id: format!("m{i}"),
                device_id: "d1".into(),
                module_id: String::new(),
                enqueued_ms: 1,
                status_code: "Success".into(),
                description: "Success".into(),
                recorded_ms: 2,
            };
            insert_feedback(&conn, &f).unwrap();
        }
        let first = take_feedback(&conn, 2).unwrap();
        assert_eq!(
            first
                .iter()
                .map(|f| f.original_message_id.as_str())
                .collect::<Vec<_>>(),
            ["m0", "m1"]
        );
        let rest = take_feedback(&conn, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(take_feedback(&conn, 10).unwrap().is_empty());
    }
}
