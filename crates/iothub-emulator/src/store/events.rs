//! The durable telemetry event log (the emulator's built-in "events" endpoint).

use std::collections::BTreeMap;

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::StoreError;

/// Tables of the event log (migration step 2).
pub(crate) const SCHEMA: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    module_id TEXT,
    enqueued_ms INTEGER NOT NULL,
    system_properties TEXT NOT NULL,
    application_properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX events_by_time ON events (enqueued_ms);
";

/// One stamped device-to-cloud message as the service side sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryEvent {
    /// Position in the log (strictly increasing; 0 before it is appended).
    pub seq: i64,
    /// Sending device.
    pub device_id: String,
    /// Sending module, if a module sent it.
    pub module_id: Option<String>,
    /// When the hub accepted it, milliseconds since the Unix epoch.
    pub enqueued_ms: i64,
    /// System and hub-stamped properties by their Event Hubs names (`message-id`,
    /// `iothub-connection-device-id`, `iothub-enqueuedtime`, `dt-dataschema`, ...).
    pub system_properties: BTreeMap<String, String>,
    /// Application properties (a key sent without `=` has the value `None`).
    pub application_properties: BTreeMap<String, Option<String>>,
    /// The message body.
    pub body: Bytes,
}

/// Appends an event and returns its sequence number.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn append(conn: &Connection, e: &TelemetryEvent) -> Result<i64, StoreError> {
    insert(conn, &EncodedEvent::encode(e)?)
}

/// An event with its property maps already serialized: what [`insert`] writes.
///
/// The ingest path encodes on the connection's task, so the single database thread only
/// runs the INSERT and no copy of the property maps crosses to it.
#[derive(Clone, Debug)]
pub struct EncodedEvent {
    device_id: String,
    module_id: Option<String>,
    enqueued_ms: i64,
    system_properties: String,
    application_properties: String,
    body: Bytes,
}

impl EncodedEvent {
    /// Serializes the event's property maps (JSON objects, as [`read_after`] expects).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a map cannot be encoded.
    pub fn encode(e: &TelemetryEvent) -> Result<Self, StoreError> {
        Ok(Self {
            device_id: e.device_id.clone(),
            module_id: e.module_id.clone(),
            enqueued_ms: e.enqueued_ms,
            system_properties: serde_json::to_string(&e.system_properties)
                .map_err(|_| StoreError::Corrupt("unencodable properties"))?,
            application_properties: serde_json::to_string(&e.application_properties)
                .map_err(|_| StoreError::Corrupt("unencodable properties"))?,
            body: e.body.clone(),
        })
    }
}

/// Inserts one encoded event with a single statement and returns its sequence number.
///
/// One INSERT is atomic on its own (SQLite undoes a failed statement's changes), so it may run
/// through [`super::Store::call_single_statement`].
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn insert(conn: &Connection, e: &EncodedEvent) -> Result<i64, StoreError> {
    // Cached: the ingest path runs this for every message.
    conn.prepare_cached(
        "INSERT INTO events (device_id, module_id, enqueued_ms, system_properties,
             application_properties, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        e.device_id,
        e.module_id,
        e.enqueued_ms,
        e.system_properties,
        e.application_properties,
        e.body.as_ref()
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Reads up to `limit` events with `seq > after`, oldest first.
///
/// # Errors
/// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
pub fn read_after(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<TelemetryEvent>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, device_id, module_id, enqueued_ms, system_properties,
                application_properties, body
         FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(seq, device_id, module_id, enqueued_ms, sys, app, body)| {
            Ok(TelemetryEvent {
                seq,
                device_id,
                module_id,
                enqueued_ms,
                system_properties: serde_json::from_str(&sys)
                    .map_err(|_| StoreError::Corrupt("system properties"))?,
                application_properties: serde_json::from_str(&app)
                    .map_err(|_| StoreError::Corrupt("application properties"))?,
                body: Bytes::from(body),
            })
        })
        .collect()
}

/// Number of events in the log.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}

/// Deletes events enqueued before `cutoff_ms` (retention); returns how many went.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn purge_before(conn: &Connection, cutoff_ms: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM events WHERE enqueued_ms < ?1",
        params![cutoff_ms],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: i64) -> TelemetryEvent {
        TelemetryEvent {
            seq: 0,
            device_id: "d1".into(),
            module_id: None,
            enqueued_ms: t,
            system_properties: [("message-id".to_string(), "m".to_string())].into(),
            application_properties: [("flag".to_string(), None)].into(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn appended_events_read_back_in_order_with_properties() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        let a = append(&c, &event(10)).unwrap();
        let b = append(&c, &event(20)).unwrap();
        assert!(b > a);
        let all = read_after(&c, 0, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].seq, b);
        assert_eq!(all[0].application_properties.get("flag"), Some(&None));
        assert_eq!(read_after(&c, a, 10).unwrap().len(), 1);
    }

    #[test]
    fn retention_purges_only_older_events() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        append(&c, &event(10)).unwrap();
        append(&c, &event(20)).unwrap();
        assert_eq!(purge_before(&c, 15).unwrap(), 1);
        assert_eq!(count(&c).unwrap(), 1);
    }
}
