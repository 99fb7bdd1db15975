//! Persistent MQTT sessions (clean session 0): each identity's subscriptions, so that a device
//! reconnecting with clean session 0 finds them (CONNACK session-present) even after the
//! emulator restarted, as it would on a real hub (docs/protocol.md §1.5). Undelivered C2D messages
//! are kept by the C2D queue itself (`c2d.rs`).

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Table of persistent sessions (migration step 7). `module_id` is `''` for a device.
pub(crate) const SCHEMA: &str = "
CREATE TABLE sessions (
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL DEFAULT '',
    subscriptions TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
);
";

/// One stored subscription: the filter as the device sent it and the QoS granted (0 or 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    /// Topic filter.
    pub filter: String,
    /// Granted QoS.
    pub qos: u8,
}

/// The stored session of an identity, if it has one.
///
/// # Errors
/// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] for an unreadable row.
///
/// # Example
/// ```
/// use iothub_emulator::store::sessions::{self, StoredSubscription};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = iothub_emulator::store::Store::open_in_memory().unwrap();
/// let subs = vec![StoredSubscription { filter: "$iothub/methods/POST/#".into(), qos: 0 }];
/// let back = store
///     .call(move |tx| {
///         sessions::save(tx, "dev1", None, &subs)?;
///         sessions::load(tx, "dev1", None)
///     })
///     .await
///     .unwrap();
/// assert_eq!(back.unwrap()[0].filter, "$iothub/methods/POST/#");
/// # });
/// ```
pub fn load(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<Option<Vec<StoredSubscription>>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached(
            "SELECT subscriptions FROM sessions WHERE device_id = ?1 AND module_id = ?2",
        )?
        .query_row(params![device_id, module_id.unwrap_or("")], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(|_| StoreError::Corrupt("session")))
        .transpose()
}

/// Stores (replaces) the session of an identity.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn save(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
    subscriptions: &[StoredSubscription],
) -> Result<(), StoreError> {
    let json = serde_json::to_string(subscriptions)
        .map_err(|_| StoreError::Corrupt("unencodable session"))?;
    conn.prepare_cached(
        "INSERT INTO sessions (device_id, module_id, subscriptions) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id, module_id) DO UPDATE SET subscriptions = excluded.subscriptions",
    )?
    .execute(params![device_id, module_id.unwrap_or(""), json])?;
    Ok(())
}

/// Discards the session of an identity (clean session 1, or the identity was deleted; a
/// device's deletion takes its modules' sessions too). Returns how many went.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn delete(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<usize, StoreError> {
    Ok(match module_id {
        Some(m) => conn.execute(
            "DELETE FROM sessions WHERE device_id = ?1 AND module_id = ?2",
            params![device_id, m],
        )?,
        None => conn.execute(
            "DELETE FROM sessions WHERE device_id = ?1",
            params![device_id],
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c
    }

    fn sub(filter: &str) -> StoredSubscription {
        StoredSubscription {
            filter: filter.into(),
            qos: 1,
        }
    }

    #[test]
    fn sessions_are_per_identity_and_replaced_whole() {
        let c = db();
        assert_eq!(load(&c, "d1", None).unwrap(), None);
        save(&c, "d1", None, &[sub("a"), sub("b")]).unwrap();
        save(&c, "d1", Some("m1"), &[sub("m")]).unwrap();
        save(&c, "d1", None, &[sub("c")]).unwrap();
        assert_eq!(load(&c, "d1", None).unwrap(), Some(vec![sub("c")]));
        assert_eq!(load(&c, "d1", Some("m1")).unwrap(), Some(vec![sub("m")]));
        // An empty session is still a session (session-present 1).
        save(&c, "d2", None, &[]).unwrap();
        assert_eq!(load(&c, "d2", None).unwrap(), Some(vec![]));
    }

    #[test]
    fn deleting_a_device_takes_its_modules_sessions() {
        let c = db();
        save(&c, "d1", None, &[sub("a")]).unwrap();
        save(&c, "d1", Some("m1"), &[sub("m")]).unwrap();
        save(&c, "d2", None, &[sub("x")]).unwrap();
        assert_eq!(delete(&c, "d1", Some("m1")).unwrap(), 1);
        save(&c, "d1", Some("m1"), &[sub("m")]).unwrap();
        assert_eq!(delete(&c, "d1", None).unwrap(), 2);
        assert_eq!(load(&c, "d1", Some("m1")).unwrap(), None);
        assert_eq!(load(&c, "d2", None).unwrap(), Some(vec![sub("x")]));
    }
}
