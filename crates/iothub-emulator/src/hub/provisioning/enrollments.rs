//! Enrollment management for the CLI and service layer: individual symmetric-key enrollments
//! and enrollment groups whose devices use derived keys (docs/protocol.md §9 "Group enrollment key
//! derivation"), plus the DPS id scope.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rusqlite::Connection;

use super::DpsError;
use crate::hub::ids;
use crate::store::enrollments::{self as sql, Kind, StoredEnrollment};
use crate::timestamp::{from_unix_millis, unix_millis};

/// An individual enrollment or an enrollment group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// Registration id (individual) or group id (group).
    pub id: String,
    /// Primary symmetric key (base64).
    pub primary_key: String,
    /// Secondary symmetric key (base64).
    pub secondary_key: String,
    /// Whether registrations through it are allowed (otherwise they end `disabled`).
    pub enabled: bool,
    /// When it was created.
    pub created: SystemTime,
    /// When it last changed.
    pub updated: SystemTime,
}

/// Individual enrollment (one registration id) or enrollment group (any registration id whose
/// key derives from the group key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollmentKind {
    /// `iothub hub enrollment …`.
    Individual,
    /// `iothub hub enrollment-group …`.
    Group,
}

impl EnrollmentKind {
    fn sql(self) -> Kind {
        match self {
            Self::Individual => Kind::Individual,
            Self::Group => Kind::Group,
        }
    }
}

/// The DPS id scope of this emulator (`0ne` followed by 8 upper-case hex digits), generated on
/// first use and persisted.
///
/// # Errors
/// [`DpsError::Store`].
///
/// # Example
/// ```
/// # let conn = rusqlite::Connection::open_in_memory().unwrap();
/// # conn.execute_batch(iothub_emulator::store::enrollments::SCHEMA).unwrap();
/// use iothub_emulator::hub::provisioning;
/// let scope = provisioning::id_scope(&conn).unwrap();
/// assert!(scope.starts_with("0ne") && scope.len() == 11);
/// assert_eq!(provisioning::id_scope(&conn).unwrap(), scope);
/// ```
pub fn id_scope(conn: &Connection) -> Result<String, DpsError> {
    if let Some(scope) = sql::setting(conn, ID_SCOPE_KEY)? {
        return Ok(scope);
    }
    let scope = format!(
        "0ne{}",
        ids::hex(&ids::random_bytes::<4>()).to_ascii_uppercase()
    );
    sql::set_setting(conn, ID_SCOPE_KEY, &scope)?;
    Ok(scope)
}

/// Creates an enrollment. Keys not given are generated (64 random bytes, as DPS does); given
/// keys must be base64 of 16 to 64 bytes.
///
/// # Errors
/// [`DpsError::InvalidId`], [`DpsError::InvalidKey`], [`DpsError::AlreadyExists`] or storage.
///
/// # Example
/// ```
/// # let conn = rusqlite::Connection::open_in_memory().unwrap();
/// # conn.execute_batch(iothub_emulator::store::enrollments::SCHEMA).unwrap();
/// use std::time::SystemTime;
/// use iothub_emulator::hub::provisioning::{self, EnrollmentKind};
/// let e = provisioning::create_enrollment(&conn, EnrollmentKind::Individual, "sensor-1", None, None, SystemTime::now()).unwrap();
/// assert!(e.enabled);
/// assert_eq!(e.primary_key.len(), 88);
/// ```
pub fn create_enrollment(
    conn: &Connection,
    kind: EnrollmentKind,
    id: &str,
    primary_key: Option<&str>,
    secondary_key: Option<&str>,
    now: SystemTime,
) -> Result<Enrollment, DpsError> {
    if !is_valid_registration_id(id) {
        return Err(DpsError::InvalidId);
    }
    for key in [primary_key, secondary_key].into_iter().flatten() {
        let len = STANDARD
            .decode(key)
            .map_err(|_| DpsError::InvalidKey)?
            .len();
        if !(16..=64).contains(&len) {
            return Err(DpsError::InvalidKey);
        }
    }
    let now_ms = unix_millis(now);
    let stored = StoredEnrollment {
        id: id.to_owned(),
        primary_key: primary_key.map_or_else(ids::symmetric_key, str::to_owned),
        secondary_key: secondary_key.map_or_else(ids::symmetric_key, str::to_owned),
        enabled: true,
        created_ms: now_ms,
        updated_ms: now_ms,
    };
    if !sql::insert(conn, kind.sql(), &stored)? {
        return Err(DpsError::AlreadyExists);
    }
    Ok(from_stored(stored))
}

/// One enrollment by id (registration ids are case-insensitive).
///
/// # Errors
/// [`DpsError::Store`].
pub fn enrollment(
    conn: &Connection,
    kind: EnrollmentKind,
    id: &str,
) -> Result<Option<Enrollment>, DpsError> {
    Ok(sql::get(conn, kind.sql(), id)?.map(from_stored))
}

/// All enrollments of a kind, ordered by id.
///
/// # Errors
/// [`DpsError::Store`].
pub fn enrollments(conn: &Connection, kind: EnrollmentKind) -> Result<Vec<Enrollment>, DpsError> {
    Ok(sql::list(conn, kind.sql())?
        .into_iter()
        .map(from_stored)
        .collect())
}

/// Deletes an enrollment.
///
/// # Errors
/// [`DpsError::NotFound`] or storage.
pub fn delete_enrollment(
    conn: &Connection,
    kind: EnrollmentKind,
    id: &str,
) -> Result<(), DpsError> {
    if sql::delete(conn, kind.sql(), id)? {
        Ok(())
    } else {
        Err(DpsError::NotFound)
    }
}

/// Enables or disables an enrollment; registrations through a disabled one end with status
/// `disabled`.
///
/// # Errors
/// [`DpsError::NotFound`] or storage.
pub fn set_enrollment_enabled(
    conn: &Connection,
    kind: EnrollmentKind,
    id: &str,
    enabled: bool,
    now: SystemTime,
) -> Result<(), DpsError> {
    if sql::set_enabled(conn, kind.sql(), id, enabled, unix_millis(now))? {
        Ok(())
    } else {
        Err(DpsError::NotFound)
    }
}

/// The device key a group member uses: `base64(HMAC-SHA256(base64decode(group_key),
/// registration_id))`, computed with `iothub-proto`.
///
/// # Errors
/// [`DpsError::InvalidKey`] when the group key is not usable base64.
///
/// # Example
/// ```
/// use iothub_emulator::hub::provisioning::derived_device_key;
/// // docs/protocol.md §2.2 vector 7
/// let key = derived_device_key(
///     "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
///     "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
/// )
/// .unwrap();
/// assert_eq!(key, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=");
/// ```
pub fn derived_device_key(group_key: &str, registration_id: &str) -> Result<String, DpsError> {
    let mut out = [0u8; iothub_proto::sas::DERIVED_KEY_LEN];
    let key = iothub_proto::sas::derive_device_key(group_key, registration_id, &mut out)
        .map_err(|_| DpsError::InvalidKey)?;
    Ok(key.to_owned())
}

/// DPS registration id rules (REST "Runtime Registration"): 1 to 128 characters, ASCII
/// alphanumerics and `- . _ :`, starting and ending with an alphanumeric.
pub(super) fn is_valid_registration_id(id: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    !id.is_empty()
        && id.len() <= 128
        && id.chars().all(ok_char)
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn from_stored(s: StoredEnrollment) -> Enrollment {
    Enrollment {
        id: s.id,
        primary_key: s.primary_key,
        secondary_key: s.secondary_key,
        enabled: s.enabled,
        created: from_unix_millis(s.created_ms),
        updated: from_unix_millis(s.updated_ms),
    }
}

const ID_SCOPE_KEY: &str = "id_scope";
