//! Consumer groups of the Event Hub-compatible endpoint (docs/rest-api.md):
//! a durable set of names a partition reader attaches under. `$Default` always exists and
//! cannot be deleted. Names follow Event Hubs' rules: 1 to 50 characters, letters, digits,
//! `.`, `_` and `-`, beginning and ending with a letter or digit; they compare
//! case-insensitively.

use super::Hub;
use crate::store::StoreError;
use crate::store::consumer_groups as sql;
use crate::timestamp::unix_millis;

/// The consumer group every hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// Longest consumer group name.
pub const MAX_NAME_LEN: usize = 50;

/// Why a consumer group operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerGroupError {
    /// The name breaks the naming rules (the reason says which).
    #[error("invalid consumer group name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A group of that name (compared case-insensitively) exists already.
    #[error("consumer group {0:?} exists already")]
    AlreadyExists(String),
    /// No group of that name.
    #[error("consumer group {0:?} does not exist")]
    NotFound(String),
    /// `$Default` cannot be deleted.
    #[error("the $Default consumer group cannot be deleted")]
    DefaultCannotBeDeleted,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a name a user wants to create against Event Hubs' rules.
///
/// ```
/// use iothub_emulator::hub::consumer_groups::check_name;
/// assert!(check_name("analytics.v2_blue-1").is_ok());
/// assert!(check_name("-leading").is_err());
/// assert!(check_name("$Default").is_err(), "only the built-in group has a `$`");
/// assert!(check_name(&"a".repeat(51)).is_err());
/// ```
///
/// # Errors
/// [`ConsumerGroupError::InvalidName`] with the rule broken.
pub fn check_name(name: &str) -> Result<(), ConsumerGroupError> {
    let invalid = |reason| {
        Err(ConsumerGroupError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return invalid("it must have 1 to 50 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    if !alnum(name.as_bytes().first()) || !alnum(name.as_bytes().last()) {
        return invalid("it must begin and end with a letter or digit");
    }
    Ok(())
}

impl Hub {
    /// Every consumer group, `$Default` included, sorted.
    ///
    /// # Errors
    /// [`ConsumerGroupError::Store`].
    pub async fn consumer_groups(&self) -> Result<Vec<String>, ConsumerGroupError> {
        Ok(self.inner.store.call(|tx| sql::list(tx)).await?)
    }

    /// Whether a consumer group of that name exists (case-insensitively): what a partition
    /// reader's attach checks.
    ///
    /// # Errors
    /// [`ConsumerGroupError::Store`].
    pub async fn has_consumer_group(&self, name: &str) -> Result<bool, ConsumerGroupError> {
        let name = name.to_owned();
        Ok(self
            .inner
            .store
            .call(move |tx| sql::exists(tx, &name))
            .await?)
    }

    /// Creates a consumer group.
    ///
    /// # Errors
    /// [`ConsumerGroupError::InvalidName`], [`ConsumerGroupError::AlreadyExists`] or
    /// [`ConsumerGroupError::Store`].
    pub async fn create_consumer_group(&self, name: &str) -> Result<(), ConsumerGroupError> {
        let (owned, now) = (name.to_owned(), unix_millis(self.now()));
        self.inner
            .store
            .call(move |tx| Ok(create(tx, &owned, now)))
            .await?
    }

    /// Deletes a consumer group.
    ///
    /// # Errors
    /// [`ConsumerGroupError::DefaultCannotBeDeleted`], [`ConsumerGroupError::NotFound`] or
    /// [`ConsumerGroupError::Store`].
    pub async fn delete_consumer_group(&self, name: &str) -> Result<(), ConsumerGroupError> {
        let owned = name.to_owned();
        self.inner
            .store
            .call(move |tx| Ok(delete(tx, &owned)))
            .await?
    }
}

/// Creates consumer group `name` in the store at `now_ms`: the rule [`Hub::create_consumer_group`]
/// applies, for tools that open the store without a hub (the CLI with no emulator running).
///
/// # Errors
/// As [`Hub::create_consumer_group`].
pub fn create(
    conn: &rusqlite::Connection,
    name: &str,
    now_ms: i64,
) -> Result<(), ConsumerGroupError> {
    if name.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP) {
        return Err(ConsumerGroupError::AlreadyExists(name.to_owned()));
    }
    check_name(name)?;
    if sql::insert(conn, name, now_ms)? {
        Ok(())
    } else {
        Err(ConsumerGroupError::AlreadyExists(name.to_owned()))
    }
}

/// Deletes consumer group `name` from the store: the rule [`Hub::delete_consumer_group`]
/// applies, for tools that open the store without a hub.
///
/// # Errors
/// As [`Hub::delete_consumer_group`].
pub fn delete(conn: &rusqlite::Connection, name: &str) -> Result<(), ConsumerGroupError> {
    if name.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP) {
        return Err(ConsumerGroupError::DefaultCannotBeDeleted);
    }
    if sql::delete(conn, name)? {
        Ok(())
    } else {
        Err(ConsumerGroupError::NotFound(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(
            crate::store::Store::open_in_memory().unwrap(),
            vec!["localhost".into()],
        )
    }

    #[tokio::test]
    async fn default_always_exists_and_cannot_be_deleted() {
        let hub = hub();
        assert_eq!(hub.consumer_groups().await.unwrap(), vec!["$Default"]);
        assert!(hub.has_consumer_group("$Default").await.unwrap());
        assert!(hub.has_consumer_group("$default").await.unwrap());
        assert!(matches!(
            hub.delete_consumer_group("$Default").await,
            Err(ConsumerGroupError::DefaultCannotBeDeleted)
        ));
        assert!(matches!(
            hub.create_consumer_group("$Default").await,
            Err(ConsumerGroupError::AlreadyExists(_))
        ));
    }

    #[tokio::test]
    async fn groups_are_created_listed_and_deleted_case_insensitively() {
        let hub = hub();
        hub.create_consumer_group("analytics").await.unwrap();
        hub.create_consumer_group("Zeta-1").await.unwrap();
        assert!(matches!(
            hub.create_consumer_group("ANALYTICS").await,
            Err(ConsumerGroupError::AlreadyExists(_))
        ));
        assert_eq!(
            hub.consumer_groups().await.unwrap(),
            vec!["$Default", "analytics", "Zeta-1"]
        );
        assert!(hub.has_consumer_group("Analytics").await.unwrap());
        hub.delete_consumer_group("ANALYTICS").await.unwrap();
        assert!(!hub.has_consumer_group("analytics").await.unwrap());
        assert!(matches!(
            hub.delete_consumer_group("analytics").await,
            Err(ConsumerGroupError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn invalid_names_are_refused_before_the_store() {
        let hub = hub();
        for bad in ["", "a b", "_x", "x-", "ü", &"a".repeat(51)] {
            assert!(
                matches!(
                    hub.create_consumer_group(bad).await,
                    Err(ConsumerGroupError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        hub.create_consumer_group(&"a".repeat(50)).await.unwrap();
        hub.create_consumer_group("1").await.unwrap();
    }

    proptest::proptest! {
        /// The rule, written out once more as a predicate, over any string (the name comes
        /// from a URL path): accepted exactly when it holds, never a panic.
        #[test]
        fn check_name_accepts_exactly_event_hubs_names(name in "\\PC{0,60}|[a-zA-Z0-9._-]{0,52}") {
            let ok = (1..=MAX_NAME_LEN).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && name.as_bytes()[0].is_ascii_alphanumeric()
                && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
            proptest::prop_assert_eq!(check_name(&name).is_ok(), ok);
        }
    }

    #[test]
    fn consumer_groups_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let store = crate::store::Store::open(&path).unwrap();
            store
                .call_blocking(|tx| sql::insert(tx, "durable", 1))
                .unwrap();
        }
        let store = crate::store::Store::open(&path).unwrap();
        let names = store.call_blocking(|tx| sql::list(tx)).unwrap();
        assert_eq!(names, vec!["$Default", "durable"]);
    }
}
