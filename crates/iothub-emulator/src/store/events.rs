//! The durable telemetry event log (the emulator's built-in "events" endpoint).
//!
//! Storage is normalized so that the single database thread writes as little as possible
//! per message (durable ingest is the emulator's throughput limit, BENCHMARKS.md): of the
//! properties the hub stamps on every message (`telemetry.rs`),
//! - those fixed for a connection (auth method, auth generation id, `dt-dataschema`) are
//!   stored once in `event_stamps` and referenced by each row;
//! - those derivable from the row (`iothub-connection-device-id`, `-module-id`,
//!   `iothub-enqueuedtime`, `iothub-message-source`) are not stored but rebuilt on read;
//! - everything else (what the device sent) stays in the row.
//!
//! A message reads back exactly as it was appended (a property test checks it); a stamped
//! value that does not match its derivation simply stays in the row.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::timestamp::{from_unix_millis, iso8601_millis};

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

/// Migration step 6: per-connection stamps stored once; no time index (retention walks the
/// log from its oldest `seq`, see [`purge_before`]), one B-tree less to write per commit.
/// Rows written before it keep their full `system_properties` and a NULL `stamp`.
pub(crate) const SCHEMA_STAMPS: &str = "
CREATE TABLE event_stamps (
    id INTEGER PRIMARY KEY,
    properties TEXT NOT NULL UNIQUE
);
ALTER TABLE events ADD COLUMN stamp INTEGER REFERENCES event_stamps (id);
DROP INDEX events_by_time;
";

/// System properties stamped by the hub that are the same for every message of a connection.
const CONNECTION_STAMPED: [&str; 3] = [
    "dt-dataschema",
    "iothub-connection-auth-generation-id",
    "iothub-connection-auth-method",
];

/// Value of `iothub-message-source` for device telemetry.
const TELEMETRY_SOURCE: &str = "Telemetry";

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
    let seqs = insert_all(conn, &[EncodedEvent::encode(e)?])?;
    seqs.first().copied().ok_or(StoreError::Corrupt(
        "no sequence number for an appended event",
    ))
}

/// An event in its stored form: what [`insert_all`] writes.
///
/// The ingest path encodes on the connection's task, so the single database thread only
/// runs the INSERTs and no copy of the property maps crosses to it.
#[derive(Clone, Debug)]
pub struct EncodedEvent {
    device_id: String,
    module_id: Option<String>,
    enqueued_ms: i64,
    /// JSON object of the connection-fixed properties (`event_stamps.properties`), if any.
    stamp: Option<Arc<str>>,
    /// JSON object of the system properties neither in the stamp nor derivable.
    system_properties: String,
    application_properties: String,
    body: Bytes,
}

impl EncodedEvent {
    /// Splits and serializes the event's properties (JSON objects, as [`read_after`] expects).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a map cannot be encoded.
    pub fn encode(e: &TelemetryEvent) -> Result<Self, StoreError> {
        let derived = Derived::of(&e.device_id, e.module_id.as_deref(), e.enqueued_ms);
        let mut stamp = BTreeMap::new();
        let mut own = BTreeMap::new();
        for (key, value) in &e.system_properties {
            if CONNECTION_STAMPED.contains(&key.as_str()) {
                stamp.insert(key.as_str(), value.as_str());
            } else if derived.get(key) != Some(value.as_str()) {
                own.insert(key.as_str(), value.as_str());
            }
        }
        Ok(Self {
            device_id: e.device_id.clone(),
            module_id: e.module_id.clone(),
            enqueued_ms: e.enqueued_ms,
            stamp: if stamp.is_empty() {
                None
            } else {
                Some(to_json(&stamp)?.into())
            },
            system_properties: to_json(&own)?,
            application_properties: to_json(&e.application_properties)?,
            body: e.body.clone(),
        })
    }
}

impl EncodedEvent {
    /// The stored form of a message whose connection-fixed properties are `stamp` (a JSON
    /// object as [`EncodedEvent::encode`] would store it) and whose other system properties
    /// are `own`: what the device sent, with neither a connection-fixed nor a derivable key
    /// (those a device cannot send: its `$.` properties have other names).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a map cannot be encoded.
    pub fn from_parts(
        device_id: &str,
        module_id: Option<&str>,
        enqueued_ms: i64,
        stamp: Option<Arc<str>>,
        own: &BTreeMap<String, String>,
        application: &BTreeMap<String, Option<String>>,
        body: Bytes,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            device_id: device_id.to_owned(),
            module_id: module_id.map(str::to_owned),
            enqueued_ms,
            stamp,
            system_properties: to_json(own)?,
            application_properties: to_json(application)?,
            body,
        })
    }
}

/// A property map as a stored JSON object.
fn to_json<M>(map: &M) -> Result<String, StoreError>
where
    M: serde::Serialize + ?Sized,
    for<'a> &'a M: IntoIterator,
{
    // Most messages carry no properties of their own: skip the serializer for them.
    if map.into_iter().next().is_none() {
        return Ok("{}".to_owned());
    }
    serde_json::to_string(map).map_err(|_| StoreError::Corrupt("unencodable properties"))
}

/// Adds the system properties a row implies (device and module id, enqueued time, message
/// source) to `map` where it has none of its own: what the read path rebuilds, and what the
/// live feed adds to a connection's messages, written once.
pub(crate) fn add_derived(
    map: &mut BTreeMap<String, String>,
    device_id: &str,
    module_id: Option<&str>,
    enqueued_ms: i64,
) {
    Derived::of(device_id, module_id, enqueued_ms).fill(map);
}

/// The system properties a row implies.
struct Derived<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
    enqueued: String,
}

impl<'a> Derived<'a> {
    fn of(device_id: &'a str, module_id: Option<&'a str>, enqueued_ms: i64) -> Self {
        Self {
            device_id,
            module_id,
            enqueued: iso8601_millis(from_unix_millis(enqueued_ms)),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "iothub-connection-device-id" => Some(self.device_id),
            "iothub-connection-module-id" => self.module_id,
            "iothub-enqueuedtime" => Some(&self.enqueued),
            "iothub-message-source" => Some(TELEMETRY_SOURCE),
            _ => None,
        }
    }

    /// Adds the derived properties to `map` where it has none of its own.
    fn fill(self, map: &mut BTreeMap<String, String>) {
        let mut put = |k: &str, v: &str| {
            map.entry(k.to_owned()).or_insert_with(|| v.to_owned());
        };
        put("iothub-connection-device-id", self.device_id);
        if let Some(m) = self.module_id {
            put("iothub-connection-module-id", m);
        }
        put("iothub-enqueuedtime", &self.enqueued);
        put("iothub-message-source", TELEMETRY_SOURCE);
    }
}

/// Inserts encoded events in order and returns their sequence numbers. Run it inside a
/// savepoint ([`super::Store::call`]) so that a failure leaves none of them behind.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn insert_all(conn: &Connection, rows: &[EncodedEvent]) -> Result<Vec<i64>, StoreError> {
    // A batch usually comes from one connection: look its stamp up once.
    let mut last_stamp: Option<(&str, i64)> = None;
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (device_id, module_id, enqueued_ms, system_properties,
             application_properties, body, stamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut seqs = Vec::with_capacity(rows.len());
    for e in rows {
        let stamp = match (e.stamp.as_deref(), last_stamp) {
            (None, _) => None,
            (Some(s), Some((last, id))) if s == last => Some(id),
            (Some(s), _) => {
                let id = stamp_id(conn, s)?;
                last_stamp = Some((s, id));
                Some(id)
            }
        };
        insert.execute(params![
            e.device_id,
            e.module_id,
            e.enqueued_ms,
            e.system_properties,
            e.application_properties,
            e.body.as_ref(),
            stamp,
        ])?;
        seqs.push(conn.last_insert_rowid());
    }
    Ok(seqs)
}

/// The id of the stamp `properties`, stored on first use.
fn stamp_id(conn: &Connection, properties: &str) -> Result<i64, StoreError> {
    let found = conn
        .prepare_cached("SELECT id FROM event_stamps WHERE properties = ?1")?
        .query_row([properties], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO event_stamps (properties) VALUES (?1)")?
        .execute([properties])?;
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
        "SELECT e.seq, e.device_id, e.module_id, e.enqueued_ms, e.system_properties,
                e.application_properties, e.body, s.properties
         FROM events e LEFT JOIN event_stamps s ON s.id = e.stamp
         WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![after, limit], |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                ),
                (
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |((seq, device_id, module_id, enqueued_ms), (own, app, body, stamp))| {
                let corrupt = |_| StoreError::Corrupt("system properties");
                let mut system: BTreeMap<String, String> =
                    serde_json::from_str(&own).map_err(corrupt)?;
                if let Some(stamp) = stamp {
                    let stamp: BTreeMap<String, String> =
                        serde_json::from_str(&stamp).map_err(corrupt)?;
                    for (k, v) in stamp {
                        system.entry(k).or_insert(v);
                    }
                }
                add_derived(&mut system, &device_id, module_id.as_deref(), enqueued_ms);
                Ok(TelemetryEvent {
                    seq,
                    device_id,
                    module_id,
                    enqueued_ms,
                    system_properties: system,
                    application_properties: serde_json::from_str(&app)
                        .map_err(|_| StoreError::Corrupt("application properties"))?,
                    body: Bytes::from(body),
                })
            },
        )
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
/// The log is in arrival order, so this deletes from the oldest `seq` up to the first event
/// enqueued at or after the cutoff (no time index to maintain on every append). An event
/// stamped a moment earlier than one appended before it (appends from different connections
/// interleave within a millisecond or two) may outlive the cutoff by that much.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn purge_before(conn: &Connection, cutoff_ms: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM events WHERE seq < coalesce(
             (SELECT seq FROM events WHERE enqueued_ms >= ?1 ORDER BY seq LIMIT 1),
             (SELECT max(seq) + 1 FROM events))",
        params![cutoff_ms],
    )?)
}

/// Where the events enqueued at or after `at_ms` begin in the log: the `seq` to pass to
/// [`read_after`] (the log's last `seq` when none is that recent, 0 for an empty log).
///
/// Scans in arrival order like [`purge_before`], with the same caveat: the log is ordered by
/// arrival, not by stamp, so an event stamped a moment before one appended earlier may be
/// read although it is a millisecond or two older than `at_ms`.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn position_at(conn: &Connection, at_ms: i64) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(
             (SELECT seq - 1 FROM events WHERE enqueued_ms >= ?1 ORDER BY seq LIMIT 1),
             (SELECT max(seq) FROM events),
             0)",
        params![at_ms],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests;
