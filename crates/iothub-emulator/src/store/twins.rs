//! SQL for twin documents (one row per device or module twin).
//!
//! The document is stored as JSON text in the hub's own shape (the store does not read it);
//! versions live inside it, so a read-modify-write inside one transaction is all a patch
//! needs.

use rusqlite::{Connection, OptionalExtension, params};

/// Schema for twins, applied by the store's migrations.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS twins (
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL DEFAULT '',  -- '' for the device twin itself
    document  TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
) WITHOUT ROWID;
";

/// Loads the stored document of a device (`module_id` `None`) or module twin.
///
/// # Errors
/// Any SQLite error.
pub fn load(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT document FROM twins WHERE device_id = ?1 AND module_id = ?2",
        params![device_id, module_id.unwrap_or("")],
        |r| r.get(0),
    )
    .optional()
}

/// Inserts or replaces the stored document of a twin.
///
/// # Errors
/// Any SQLite error.
pub fn save(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    document: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO twins (device_id, module_id, document) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id, module_id) DO UPDATE SET document = excluded.document",
        params![device_id, module_id.unwrap_or(""), document],
    )?;
    Ok(())
}

/// Deletes a module twin, or with `module_id` `None` the device twin and all its module twins
/// (for identity deletion). Returns the number of twins removed.
///
/// # Errors
/// Any SQLite error.
pub fn delete(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> rusqlite::Result<usize> {
    match module_id {
        Some(m) => conn.execute(
            "DELETE FROM twins WHERE device_id = ?1 AND module_id = ?2",
            params![device_id, m],
        ),
        None => conn.execute("DELETE FROM twins WHERE device_id = ?1", params![device_id]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    #[test]
    fn device_and_module_twins_are_separate_rows() {
        let conn = db();
        save(&conn, "d1", None, "device").unwrap();
        save(&conn, "d1", Some("m1"), "module").unwrap();
        save(&conn, "d1", None, "device2").unwrap();
        assert_eq!(load(&conn, "d1", None).unwrap().as_deref(), Some("device2"));
        assert_eq!(
            load(&conn, "d1", Some("m1")).unwrap().as_deref(),
            Some("module")
        );
        assert_eq!(load(&conn, "d2", None).unwrap(), None);
    }

    #[test]
    fn deleting_a_device_removes_its_module_twins() {
        let conn = db();
        save(&conn, "d1", None, "a").unwrap();
        save(&conn, "d1", Some("m1"), "b").unwrap();
        save(&conn, "d2", None, "c").unwrap();
        assert_eq!(delete(&conn, "d1", Some("m1")).unwrap(), 1);
        save(&conn, "d1", Some("m1"), "b").unwrap();
        assert_eq!(delete(&conn, "d1", None).unwrap(), 2);
        assert_eq!(load(&conn, "d2", None).unwrap().as_deref(), Some("c"));
    }
}
