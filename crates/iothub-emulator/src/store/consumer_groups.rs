//! The Event Hub-compatible endpoint's consumer groups: a durable set of
//! names, `$Default` always in it. Names compare case-insensitively. The rules on names and
//! on `$Default` are the hub's (`hub/consumer_groups.rs`); this is only their table.

use rusqlite::{Connection, params};

use super::StoreError;

/// The consumer groups table (part of migration step 8), with `$Default`.
pub(crate) const SCHEMA: &str = "
CREATE TABLE consumer_groups (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    created_ms INTEGER NOT NULL
);
INSERT INTO consumer_groups (name, created_ms) VALUES ('$Default', 0);
";

/// Every consumer group, sorted case-insensitively.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn list(conn: &Connection) -> Result<Vec<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name FROM consumer_groups ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// Whether `name` exists (case-insensitively).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM consumer_groups WHERE name = ?1")?
        .query_row([name], |r| r.get::<_, i64>(0))?
        > 0)
}

/// Adds `name`; false when it existed already.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn insert(conn: &Connection, name: &str, now_ms: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("INSERT OR IGNORE INTO consumer_groups (name, created_ms) VALUES (?1, ?2)")?
        .execute(params![name, now_ms])?
        == 1)
}

/// Removes `name`; false when it did not exist.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM consumer_groups WHERE name = ?1")?
        .execute([name])?
        == 1)
}
