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
//!
//! The log is also the Event Hub-compatible endpoint's store: every row has
//! a partition (a stable hash of its device id, worked out by the hub) and a sequence number
//! within that partition, assigned on append by the single database thread, from 0 and
//! without gaps. An event's Event Hubs *offset* is its global `seq`. The per-partition
//! counters live in `event_partitions` (one row per partition, written once per batch), so
//! no index on the partition has to be updated by every insert: a partition reader filters
//! the `seq` range scan instead ([`read_range`]).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

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

/// Migration step 8: partitions, per-partition sequence numbers and the message source.
///
/// Rows written before it have no partition: [`fix_partitions`] assigns them (the device's
/// partition, sequence numbers in log order) when the partition count is first recorded,
/// which an existing data dir does on its first start with this version. `source` is NULL
/// for device telemetry, else the `iothub-message-source` of a route source
/// (`twinChangeEvents`, ...). No index is added: see the module documentation.
pub(crate) const SCHEMA_PARTITIONS: &str = "
ALTER TABLE events ADD COLUMN partition_id INTEGER;
ALTER TABLE events ADD COLUMN partition_seq INTEGER;
ALTER TABLE events ADD COLUMN source TEXT;
CREATE TABLE event_partitions (
    partition_id INTEGER PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    begin_seq INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    last_enqueued_ms INTEGER NOT NULL
);
";

/// The `settings` key holding the partition count fixed when the data dir was created.
const PARTITIONS_SETTING: &str = "event_hub.partitions";
/// The `settings` key holding when the partition count was fixed (ms since the epoch).
const CREATED_SETTING: &str = "event_hub.created_ms";

/// System properties stamped by the hub that are the same for every message of a connection.
const CONNECTION_STAMPED: [&str; 3] = [
    "dt-dataschema",
    "iothub-connection-auth-generation-id",
    "iothub-connection-auth-method",
];

/// Value of `iothub-message-source` for device telemetry.
const TELEMETRY_SOURCE: &str = "Telemetry";

/// One stamped device-to-cloud message (or route-source event) as the service side sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryEvent {
    /// Position in the log (strictly increasing; 0 before it is appended). This is also the
    /// event's Event Hubs offset (`x-opt-offset`).
    pub seq: i64,
    /// The Event Hubs partition: a stable hash of `device_id` (the hub's `partition_of`),
    /// set by the hub on append.
    pub partition: u32,
    /// Sequence number within the partition (`x-opt-sequence-number`): from 0, strictly
    /// increasing, without gaps; 0 before it is appended.
    pub partition_seq: i64,
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
    seqs.first().map(|a| a.seq).ok_or(StoreError::Corrupt(
        "no sequence number for an appended event",
    ))
}

/// An event in its stored form: what [`insert_all`] writes.
///
/// The ingest path encodes on the connection's task, so the single database thread only
/// runs the INSERTs and no copy of the property maps crosses to it.
#[derive(Clone, Debug)]
pub struct EncodedEvent {
    /// The partition the hub assigned (see [`EncodedEvent::in_partition`]).
    partition: u32,
    /// `iothub-message-source` when it is not `Telemetry` (a route source).
    source: Option<String>,
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
        let source = e
            .system_properties
            .get(SOURCE_KEY)
            .filter(|s| *s != TELEMETRY_SOURCE)
            .cloned();
        let mut derived = Derived::of(&e.device_id, e.module_id.as_deref(), e.enqueued_ms);
        derived.source = source.as_deref().unwrap_or(TELEMETRY_SOURCE);
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
            partition: e.partition,
            source,
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
            partition: 0,
            source: None,
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

impl EncodedEvent {
    /// The same row in `partition` (the hub's `partition_of` its device id).
    #[must_use]
    pub fn in_partition(mut self, partition: u32) -> Self {
        self.partition = partition;
        self
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

/// The key of the message source among the system properties.
const SOURCE_KEY: &str = "iothub-message-source";

/// The system properties a row implies.
struct Derived<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
    enqueued: String,
    /// `iothub-message-source`: the row's `source`, `Telemetry` when it has none.
    source: &'a str,
}

impl<'a> Derived<'a> {
    fn of(device_id: &'a str, module_id: Option<&'a str>, enqueued_ms: i64) -> Self {
        Self {
            device_id,
            module_id,
            enqueued: iso8601_millis(from_unix_millis(enqueued_ms)),
            source: TELEMETRY_SOURCE,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "iothub-connection-device-id" => Some(self.device_id),
            "iothub-connection-module-id" => self.module_id,
            "iothub-enqueuedtime" => Some(&self.enqueued),
            SOURCE_KEY => Some(self.source),
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
        put(SOURCE_KEY, self.source);
    }
}

/// Where an appended event landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its global sequence number (the log position, and the Event Hubs offset).
    pub seq: i64,
    /// Its sequence number within its partition.
    pub partition_seq: i64,
}

/// Inserts encoded events in order and returns where each landed. Run it inside a
/// savepoint ([`super::Store::call`]) so that a failure leaves none of them behind (the
/// partition counters included).
///
/// Per partition touched (a batch usually comes from one connection, so one partition) it
/// reads the counter once and writes it once; nothing else is written per row.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn insert_all(conn: &Connection, rows: &[EncodedEvent]) -> Result<Vec<Appended>, StoreError> {
    // The next partition sequence number of every partition in the batch.
    let mut next: Vec<(u32, i64)> = Vec::with_capacity(1);
    {
        let mut counter =
            conn.prepare_cached("SELECT next_seq FROM event_partitions WHERE partition_id = ?1")?;
        for e in rows {
            if !next.iter().any(|(p, _)| *p == e.partition) {
                let n: Option<i64> = counter.query_row([e.partition], |r| r.get(0)).optional()?;
                next.push((e.partition, n.unwrap_or(0)));
            }
        }
    }
    // Each row's stamp id and partition sequence number, before any row is inserted (a new
    // stamp is an insert of its own). A batch usually comes from one connection: its stamp
    // is looked up once.
    let mut last_stamp: Option<(&str, i64)> = None;
    let mut placed = Vec::with_capacity(rows.len());
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
        let slot = next
            .iter_mut()
            .find(|(p, _)| *p == e.partition)
            .ok_or(StoreError::Corrupt("a partition missing from the batch"))?;
        placed.push((stamp, slot.1));
        slot.1 += 1;
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut done = 0;
    while done < rows.len() {
        let n = INSERT_CHUNKS
            .into_iter()
            .find(|&c| c <= rows.len() - done)
            .unwrap_or(1);
        let chunk = done..done + n;
        insert_chunk(conn, &rows[chunk.clone()], &placed[chunk.clone()])?;
        // One statement, one writer: the chunk's rows took consecutive `seq`s ending at the
        // last insert rowid (AUTOINCREMENT gives each row one more than the largest ever).
        let first = conn.last_insert_rowid() - (n as i64 - 1);
        out.extend(
            placed[chunk]
                .iter()
                .enumerate()
                .map(|(i, &(_, partition_seq))| Appended {
                    seq: first + i as i64,
                    partition_seq,
                }),
        );
        done += n;
    }
    // Per partition: the counter, the last row's offset and enqueued time.
    let mut save = conn.prepare_cached(
        "INSERT INTO event_partitions (partition_id, next_seq, begin_seq, last_offset,
             last_enqueued_ms) VALUES (?1, ?2, 0, ?3, ?4)
         ON CONFLICT (partition_id) DO UPDATE SET next_seq = excluded.next_seq,
             last_offset = excluded.last_offset, last_enqueued_ms = excluded.last_enqueued_ms",
    )?;
    for (partition, n) in next {
        let (i, e) = rows
            .iter()
            .enumerate()
            .rfind(|(_, e)| e.partition == partition)
            .ok_or(StoreError::Corrupt("a partition missing from the batch"))?;
        save.execute(params![partition, n, out[i].seq, e.enqueued_ms])?;
    }
    Ok(out)
}

/// Rows per multi-row `INSERT`, largest first: a batch is written as a few statements of
/// these sizes, each prepared once. One statement per row made the database thread pay
/// SQLite's per-statement cost and the AUTOINCREMENT counter update for every row
/// (BENCHMARKS.md, "Run 8").
const INSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Columns of an `events` row as [`insert_chunk`] binds them.
const EVENT_COLUMNS: usize = 10;

/// Inserts `rows` (with their stamp ids and partition sequence numbers) with one statement.
fn insert_chunk(
    conn: &Connection,
    rows: &[EncodedEvent],
    placed: &[(Option<i64>, i64)],
) -> Result<(), StoreError> {
    static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
        INSERT_CHUNKS
            .iter()
            .map(|&n| {
                let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ");
                format!(
                    "INSERT INTO events (device_id, module_id, enqueued_ms, system_properties,
                         application_properties, body, stamp, partition_id, partition_seq,
                         source)
                     VALUES {values}"
                )
            })
            .collect()
    });
    let sql = INSERT_CHUNKS
        .iter()
        .position(|&n| n == rows.len())
        .and_then(|i| SQL.get(i))
        .ok_or(StoreError::Corrupt(
            "an insert of a size not in INSERT_CHUNKS",
        ))?;
    let mut insert = conn.prepare_cached(sql)?;
    for (i, (e, &(stamp, partition_seq))) in rows.iter().zip(placed).enumerate() {
        let at = i * EVENT_COLUMNS;
        insert.raw_bind_parameter(at + 1, &e.device_id)?;
        insert.raw_bind_parameter(at + 2, &e.module_id)?;
        insert.raw_bind_parameter(at + 3, e.enqueued_ms)?;
        insert.raw_bind_parameter(at + 4, &e.system_properties)?;
        insert.raw_bind_parameter(at + 5, &e.application_properties)?;
        insert.raw_bind_parameter(at + 6, e.body.as_ref())?;
        insert.raw_bind_parameter(at + 7, stamp)?;
        insert.raw_bind_parameter(at + 8, e.partition)?;
        insert.raw_bind_parameter(at + 9, partition_seq)?;
        insert.raw_bind_parameter(at + 10, &e.source)?;
    }
    insert.raw_execute()?;
    Ok(())
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
    let mut st = conn.prepare_cached(&format!(
        "{SELECT_EVENTS} WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
    ))?;
    let rows = st
        .query_map(params![after, limit], raw_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(RawRow::decode).collect()
}

/// Most log rows one partition read scans ([`read_range`]): one database job never holds
/// the writer (and so ingest) for long, however sparse the partition.
pub const PARTITION_SCAN_WINDOW: i64 = 20_000;

/// One read of the log: the events, how far it looked, and whether there is more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRead {
    /// Matching events, oldest first.
    pub events: Vec<TelemetryEvent>,
    /// Every event with `seq` up to this one was looked at: pass it as the next `after`.
    pub next: i64,
    /// False when the read reached the end of the log.
    pub more: bool,
}

/// Reads up to `limit` events with `seq > after` (of `partition` only, when given), oldest
/// first. A partition read filters in SQL (other partitions' rows are never decoded) and
/// scans at most [`PARTITION_SCAN_WINDOW`] rows; [`LogRead::next`] says where to continue.
///
/// # Errors
/// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
pub fn read_range(
    conn: &Connection,
    after: i64,
    partition: Option<u32>,
    limit: u32,
) -> Result<LogRead, StoreError> {
    let Some(partition) = partition else {
        let events = read_after(conn, after, limit)?;
        let more = events.len() == limit as usize;
        let next = events.last().map_or(after, |e| e.seq);
        return Ok(LogRead { events, next, more });
    };
    let end = after.saturating_add(PARTITION_SCAN_WINDOW);
    let mut st = conn.prepare_cached(&format!(
        "{SELECT_EVENTS} WHERE e.seq > ?1 AND e.seq <= ?2 AND e.partition_id = ?3
         ORDER BY e.seq LIMIT ?4"
    ))?;
    let rows = st
        .query_map(params![after, end, partition, limit], raw_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let events = rows
        .into_iter()
        .map(RawRow::decode)
        .collect::<Result<Vec<_>, _>>()?;
    let last = last_seq(conn)?;
    if events.len() == limit as usize {
        let next = events.last().map_or(after, |e| e.seq);
        return Ok(LogRead {
            events,
            next,
            more: true,
        });
    }
    let next = end.min(last).max(after);
    Ok(LogRead {
        events,
        next,
        more: next < last,
    })
}

/// The newest `seq` in the log (0 when it is empty).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn last_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))?)
}

/// The oldest `seq` in the log, if any.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn first_seq(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(seq) FROM events")?
        .query_row([], |r| r.get(0))?)
}

const SELECT_EVENTS: &str = "SELECT e.seq, e.device_id, e.module_id, e.enqueued_ms,
        e.system_properties, e.application_properties, e.body, s.properties,
        e.partition_id, e.partition_seq, e.source
    FROM events e LEFT JOIN event_stamps s ON s.id = e.stamp";

/// A row of [`SELECT_EVENTS`] before its JSON is decoded.
struct RawRow {
    seq: i64,
    device_id: String,
    module_id: Option<String>,
    enqueued_ms: i64,
    own: String,
    app: String,
    body: Vec<u8>,
    stamp: Option<String>,
    partition: Option<u32>,
    partition_seq: Option<i64>,
    source: Option<String>,
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        seq: r.get(0)?,
        device_id: r.get(1)?,
        module_id: r.get(2)?,
        enqueued_ms: r.get(3)?,
        own: r.get(4)?,
        app: r.get(5)?,
        body: r.get(6)?,
        stamp: r.get(7)?,
        partition: r.get(8)?,
        partition_seq: r.get(9)?,
        source: r.get(10)?,
    })
}

impl RawRow {
    fn decode(self) -> Result<TelemetryEvent, StoreError> {
        let corrupt = |_| StoreError::Corrupt("system properties");
        let mut system: BTreeMap<String, String> =
            serde_json::from_str(&self.own).map_err(corrupt)?;
        if let Some(stamp) = self.stamp {
            let stamp: BTreeMap<String, String> = serde_json::from_str(&stamp).map_err(corrupt)?;
            for (k, v) in stamp {
                system.entry(k).or_insert(v);
            }
        }
        let mut derived = Derived::of(&self.device_id, self.module_id.as_deref(), self.enqueued_ms);
        derived.source = self.source.as_deref().unwrap_or(TELEMETRY_SOURCE);
        derived.fill(&mut system);
        Ok(TelemetryEvent {
            seq: self.seq,
            // A row written before partitions whose store was never given a partition count
            // ([`fix_partitions`]) reads as partition 0, sequence number -1.
            partition: self.partition.unwrap_or(0),
            partition_seq: self.partition_seq.unwrap_or(-1),
            device_id: self.device_id,
            module_id: self.module_id,
            enqueued_ms: self.enqueued_ms,
            system_properties: system,
            application_properties: serde_json::from_str(&self.app)
                .map_err(|_| StoreError::Corrupt("application properties"))?,
            body: Bytes::from(self.body),
        })
    }
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
    let end: i64 = conn.query_row(
        "SELECT coalesce(
             (SELECT seq FROM events WHERE enqueued_ms >= ?1 ORDER BY seq LIMIT 1),
             (SELECT max(seq) + 1 FROM events), 0)",
        params![cutoff_ms],
        |r| r.get(0),
    )?;
    // Each partition now begins after the newest of its rows that go (only those rows are
    // scanned, as the DELETE scans them anyway).
    conn.execute(
        "UPDATE event_partitions SET begin_seq = gone.last + 1
         FROM (SELECT partition_id, max(partition_seq) AS last FROM events
               WHERE seq < ?1 AND partition_id IS NOT NULL GROUP BY partition_id) AS gone
         WHERE event_partitions.partition_id = gone.partition_id",
        params![end],
    )?;
    Ok(conn.execute("DELETE FROM events WHERE seq < ?1", params![end])?)
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

/// Records the partition count of a new store, or checks it against the recorded one.
/// The first time (a new data dir, or one written before partitions) it also assigns
/// every row without a partition its device's partition (`partition_of`) and sequence
/// numbers in log order. Returns when the count was recorded (ms since the epoch).
///
/// # Errors
/// [`StoreError::PartitionCount`] when the store was created with another count;
/// [`StoreError::Sqlite`].
pub fn fix_partitions(
    conn: &Connection,
    count: u32,
    now_ms: i64,
    partition_of: impl Fn(&str) -> u32,
) -> Result<i64, StoreError> {
    use super::registry::{set_setting, setting};
    if let Some(stored) = setting(conn, PARTITIONS_SETTING)? {
        let stored: u32 = stored
            .parse()
            .map_err(|_| StoreError::Corrupt("partition count"))?;
        if stored != count {
            return Err(StoreError::PartitionCount {
                stored,
                requested: count,
            });
        }
        return Ok(setting(conn, CREATED_SETTING)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0));
    }
    set_setting(conn, PARTITIONS_SETTING, &count.to_string())?;
    set_setting(conn, CREATED_SETTING, &now_ms.to_string())?;
    let old: Vec<(i64, String, i64)> = conn
        .prepare("SELECT seq, device_id, enqueued_ms FROM events WHERE partition_id IS NULL ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut next: BTreeMap<u32, (i64, i64, i64)> = BTreeMap::new();
    let mut update =
        conn.prepare("UPDATE events SET partition_id = ?2, partition_seq = ?3 WHERE seq = ?1")?;
    for (seq, device, enqueued_ms) in old {
        let p = partition_of(&device);
        let slot = next.entry(p).or_insert((0, 0, 0));
        update.execute(params![seq, p, slot.0])?;
        *slot = (slot.0 + 1, seq, enqueued_ms);
    }
    for (p, (n, offset, enqueued_ms)) in next {
        conn.execute(
            "INSERT OR REPLACE INTO event_partitions (partition_id, next_seq, begin_seq,
                 last_offset, last_enqueued_ms) VALUES (?1, ?2, 0, ?3, ?4)",
            params![p, n, offset, enqueued_ms],
        )?;
    }
    Ok(now_ms)
}

/// A partition's counters (Event Hubs partition properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionCounters {
    /// The sequence number the next event will get (0: nothing was ever appended).
    pub next_seq: i64,
    /// The oldest retained sequence number (`begin == next`: nothing retained).
    pub begin_seq: i64,
    /// Offset (global `seq`) of the newest event ever appended (-1: none).
    pub last_offset: i64,
    /// When the newest event was enqueued, ms since the epoch (0: none).
    pub last_enqueued_ms: i64,
}

/// The counters of `partition`.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn partition_counters(
    conn: &Connection,
    partition: u32,
) -> Result<PartitionCounters, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT next_seq, begin_seq, last_offset, last_enqueued_ms FROM event_partitions
             WHERE partition_id = ?1",
        )?
        .query_row([partition], |r| {
            Ok(PartitionCounters {
                next_seq: r.get(0)?,
                begin_seq: r.get(1)?,
                last_offset: r.get(2)?,
                last_enqueued_ms: r.get(3)?,
            })
        })
        .optional()?
        .unwrap_or(PartitionCounters {
            next_seq: 0,
            begin_seq: 0,
            last_offset: -1,
            last_enqueued_ms: 0,
        }))
}

/// What a partition position is measured in, for [`partition_position`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionKey {
    /// The per-partition sequence number.
    SequenceNumber,
    /// The enqueued time, ms since the epoch.
    EnqueuedMs,
}

/// The global `seq` just before the first event of `partition` whose `key` is at least
/// `min` (the `after` to read that partition from), or `None` when no retained event of the
/// partition is that far. Within a partition both keys grow with `seq` (sequence numbers
/// are assigned in log order; times up to the caveat of [`position_at`]), so the first match
/// in `seq` order is the one; the scan stops there.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn partition_position(
    conn: &Connection,
    partition: u32,
    key: PartitionKey,
    min: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = match key {
        PartitionKey::SequenceNumber => {
            "SELECT seq - 1 FROM events WHERE partition_id = ?1 AND partition_seq >= ?2
             ORDER BY seq LIMIT 1"
        }
        PartitionKey::EnqueuedMs => {
            "SELECT seq - 1 FROM events WHERE partition_id = ?1 AND enqueued_ms >= ?2
             ORDER BY seq LIMIT 1"
        }
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![partition, min], |r| r.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests;
