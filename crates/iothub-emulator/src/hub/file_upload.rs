//! File upload, the hub's rules (docs/file-upload.md): which storage account a device uploads
//! to, the SAS URI and correlation id it gets, at most 10 uploads in flight per device, the
//! correlation's expiry with its SAS token, blob-name validation, the device's outcome and the
//! file upload notification a completed upload produces.
//!
//! Sans-IO like the C2D rules: [`create`] and [`finish`] are functions of a transaction and
//! `now`, so expiry is tested by passing a later `now`. Correlations are durable (the
//! `file_uploads` table, `store/file_uploads.rs`): a hub restarted within the hour still
//! accepts the notification of an upload begun before. Signing and checking blob SAS tokens is
//! `file_upload/blob_sas.rs`; the storage configuration is `file_upload/storage.rs`.

pub mod blob_sas;
pub mod storage;

use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde_json::{Value, json};

pub use self::storage::{
    BUILTIN_ACCOUNT, FileUploadStorage, StorageAccount, StorageConnectionStringError,
};
use super::auth::{AuthFailure, Identity};
use super::ids;
use crate::store::StoreError;
use crate::store::file_uploads::{self, StoredNotification, StoredUpload};
use crate::timestamp::{from_unix_millis, iso8601_millis, unix_millis};

/// Default lifetime of a file-upload SAS token and its correlation: one hour, as on a real hub
/// (docs/file-upload.md "Limits").
pub const DEFAULT_SAS_TTL: Duration = Duration::from_secs(3600);

/// Uploads a device may have in flight at once, as on a real hub (403006 beyond).
pub const MAX_CONCURRENT_UPLOADS: u32 = 10;

/// Default blob container (`--file-upload-container`).
pub const DEFAULT_CONTAINER: &str = "fileupload";

/// Azure Storage's limit on a blob name, in characters.
pub const MAX_BLOB_NAME_CHARS: usize = 1024;

/// How file upload is set up ([`crate::hub::HubOptions::file_upload`]).
#[derive(Clone, Debug)]
pub struct FileUploadOptions {
    /// Where the files go; [`FileUploadStorage::None`] refuses every upload.
    pub storage: FileUploadStorage,
    /// The blob container.
    pub container: String,
    /// Lifetime of each SAS token and of its correlation.
    pub sas_ttl: Duration,
    /// Uploads a device may have in flight.
    pub max_concurrent: u32,
    /// Reads the size of a blob in an [`FileUploadStorage::External`] account for the
    /// notification; `None`: such notifications say 0 bytes.
    pub storage_client: Option<crate::storage_client::StorageClient>,
}

impl Default for FileUploadOptions {
    fn default() -> Self {
        Self {
            storage: FileUploadStorage::None,
            container: DEFAULT_CONTAINER.to_owned(),
            sas_ttl: DEFAULT_SAS_TTL,
            max_concurrent: MAX_CONCURRENT_UPLOADS,
            storage_client: None,
        }
    }
}

/// Why a file-upload request was refused. Never holds a key, a token or a signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileUploadError {
    /// The device's credentials were refused.
    #[error("refused: {0}")]
    Refused(AuthFailure),
    /// The hub has no storage account for file uploads.
    #[error("file upload is not configured: the hub has no storage account")]
    NoStorage,
    /// The blob name is not acceptable.
    #[error("invalid blob name: {0}")]
    InvalidBlobName(&'static str),
    /// The request body is not the expected JSON.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The device has the maximum number of uploads in flight.
    #[error("device {device_id} has {active} file uploads in progress (at most {max})")]
    TooManyUploads {
        /// The device.
        device_id: String,
        /// Uploads in flight.
        active: u32,
        /// The limit.
        max: u32,
    },
    /// No upload has this correlation id (or it belongs to another device).
    #[error("unknown correlation id {0}")]
    UnknownCorrelation(String),
    /// The correlation expired with its SAS token.
    #[error("correlation id {correlation_id} expired at {expired_at}")]
    ExpiredCorrelation {
        /// The correlation id.
        correlation_id: String,
        /// When it expired (ISO 8601).
        expired_at: String,
    },
    /// The device already reported the outcome of this upload.
    #[error("the upload {0} was already completed")]
    AlreadyCompleted(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the hub answers `POST /devices/{id}/files`: everything a device needs to upload one
/// blob (the JSON field names are IoT Hub's: `correlationId`, `hostName`, `containerName`,
/// `blobName`, `sasToken`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SasUri {
    /// Names this upload in the device's notification.
    pub correlation_id: String,
    /// The storage host (`{account}.blob.core.windows.net`, or host, port and path of another
    /// endpoint).
    pub host_name: String,
    /// The container.
    pub container_name: String,
    /// `{deviceId}/{name}`.
    pub blob_name: String,
    /// The blob SAS token, with its leading `?` as IoT Hub sends it.
    pub sas_token: String,
}

impl SasUri {
    /// The JSON body IoT Hub answers with.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "correlationId": self.correlation_id,
            "hostName": self.host_name,
            "containerName": self.container_name,
            "blobName": self.blob_name,
            "sasToken": self.sas_token,
        })
    }

    /// The blob's URL with the SAS token, as the device SDKs build it:
    /// `https://{hostName}/{containerName}/{blobName}{sasToken}`.
    #[must_use]
    pub fn blob_url(&self) -> String {
        format!(
            "https://{}/{}/{}{}",
            self.host_name,
            self.container_name,
            encode_blob_path(&self.blob_name),
            self.sas_token
        )
    }
}

/// The device's report of how an upload ended (`POST /devices/{id}/files/notifications`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The correlation id from [`SasUri`].
    pub correlation_id: String,
    /// Whether the upload succeeded.
    pub is_success: bool,
    /// The device's status code (usually the storage's HTTP status).
    pub status_code: i64,
    /// The device's description.
    pub status_description: String,
}

/// A file upload notification: what the hub tells the service about a completed upload
/// (AMQP `/messages/serviceBound/filenotifications`, the REST event stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileNotification {
    /// The uploading device.
    pub device_id: String,
    /// The blob's URL (without a SAS token).
    pub blob_uri: String,
    /// `{deviceId}/{name}`.
    pub blob_name: String,
    /// When the blob was last written (the hub's time of the device's notification).
    pub last_updated: SystemTime,
    /// The blob's size.
    pub blob_size_in_bytes: u64,
    /// When the hub enqueued the notification.
    pub enqueued: SystemTime,
}

impl FileNotification {
    /// The row the store queues.
    pub(crate) fn to_stored(&self) -> StoredNotification {
        StoredNotification {
            device_id: self.device_id.clone(),
            blob_uri: self.blob_uri.clone(),
            blob_name: self.blob_name.clone(),
            last_updated_ms: unix_millis(self.last_updated),
            size_bytes: i64::try_from(self.blob_size_in_bytes).unwrap_or(i64::MAX),
            enqueued_ms: unix_millis(self.enqueued),
        }
    }

    /// A notification read back from the store.
    pub(crate) fn from_stored(n: StoredNotification) -> Self {
        Self {
            device_id: n.device_id,
            blob_uri: n.blob_uri,
            blob_name: n.blob_name,
            last_updated: from_unix_millis(n.last_updated_ms),
            blob_size_in_bytes: u64::try_from(n.size_bytes).unwrap_or(0),
            enqueued: from_unix_millis(n.enqueued_ms),
        }
    }

    /// The notification's JSON body, as IoT Hub sends it:
    /// `{deviceId, blobUri, blobName, lastUpdatedTime, blobSizeInBytes, enqueuedTimeUtc}`.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use iothub_emulator::hub::file_upload::FileNotification;
    /// let n = FileNotification {
    ///     device_id: "d1".into(),
    ///     blob_uri: "https://acct.blob.core.windows.net/fileupload/d1/a.txt".into(),
    ///     blob_name: "d1/a.txt".into(),
    ///     last_updated: UNIX_EPOCH + Duration::from_secs(1),
    ///     blob_size_in_bytes: 5,
    ///     enqueued: UNIX_EPOCH + Duration::from_secs(2),
    /// };
    /// let json = n.to_json();
    /// assert_eq!(json["blobSizeInBytes"], 5);
    /// assert_eq!(json["lastUpdatedTime"], "1970-01-01T00:00:01.000Z");
    /// assert_eq!(json["enqueuedTimeUtc"], "1970-01-01T00:00:02.000Z");
    /// ```
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "deviceId": self.device_id,
            "blobUri": self.blob_uri,
            "blobName": self.blob_name,
            "lastUpdatedTime": iso8601_millis(self.last_updated),
            "blobSizeInBytes": self.blob_size_in_bytes,
            "enqueuedTimeUtc": iso8601_millis(self.enqueued),
        })
    }
}

/// Where an upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    /// SAS handed out, no notification yet.
    Pending,
    /// The device reported success.
    Completed,
    /// The device reported failure.
    Failed,
    /// No notification before the SAS token expired.
    Expired,
}

impl UploadState {
    /// `pending`, `completed`, `failed` or `expired`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

/// One upload as the REST API and the dashboard show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileUpload {
    /// The row.
    pub stored: StoredUpload,
    /// Its state at the time it was read.
    pub state: UploadState,
}

impl FileUpload {
    /// From a stored row, as of `now_ms`.
    #[must_use]
    pub fn at(stored: StoredUpload, now_ms: i64) -> Self {
        let state = match stored.state.as_str() {
            "completed" => UploadState::Completed,
            "failed" => UploadState::Failed,
            _ if stored.expires_ms <= now_ms => UploadState::Expired,
            _ => UploadState::Pending,
        };
        Self { stored, state }
    }

    /// The blob's URL without a SAS token.
    #[must_use]
    pub fn blob_uri(&self) -> String {
        blob_uri(
            &self.stored.host_name,
            &self.stored.container,
            &self.stored.blob_name,
        )
    }

    /// JSON for `GET /devices/{id}/files` (our extension).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let s = &self.stored;
        json!({
            "correlationId": s.correlation_id,
            "deviceId": s.device_id,
            "moduleId": (!s.module_id.is_empty()).then_some(&s.module_id),
            "containerName": s.container,
            "blobName": s.blob_name,
            "blobUri": self.blob_uri(),
            "state": self.state.as_str(),
            "createdTimeUtc": iso8601_millis(from_unix_millis(s.created_ms)),
            "expiryTimeUtc": iso8601_millis(from_unix_millis(s.expires_ms)),
            "completedTimeUtc": s.completed_ms.map(|ms| iso8601_millis(from_unix_millis(ms))),
            "statusCode": s.status_code,
            "statusDescription": s.status_description,
            "blobSizeInBytes": s.size_bytes,
        })
    }
}

/// `https://{host}/{container}/{blob}` with the blob name's path segments percent-encoded.
#[must_use]
pub fn blob_uri(host_name: &str, container: &str, blob_name: &str) -> String {
    format!(
        "https://{host_name}/{container}/{}",
        encode_blob_path(blob_name)
    )
}

/// Percent-encodes each `/`-separated segment of a blob name (the slashes stay).
fn encode_blob_path(blob_name: &str) -> String {
    blob_name
        .split('/')
        .map(|s| iothub_proto::percent::encode(s).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks the name a device asked for (before the `{deviceId}/` prefix): Azure Storage's
/// rules (1 to 1024 characters in all), and what a file store needs (no empty, `.` or `..`
/// segment, no backslash, no control character). The reason names the rule.
///
/// ```
/// use iothub_emulator::hub::file_upload::validate_blob_name;
/// assert!(validate_blob_name("logs/2026-12-07.txt").is_ok());
/// assert!(validate_blob_name("../escape").is_err());
/// assert!(validate_blob_name("").is_err());
/// ```
///
/// # Errors
/// The rule that failed.
pub fn validate_blob_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the blob name is empty");
    }
    if name.chars().count() > MAX_BLOB_NAME_CHARS {
        return Err("the blob name is longer than 1024 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("the blob name contains a control character");
    }
    if name.contains('\\') {
        return Err("the blob name contains a backslash");
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("the blob name has an empty, `.` or `..` path segment");
    }
    if name.ends_with('.') {
        return Err("the blob name ends with a dot");
    }
    Ok(())
}

/// Creates an upload for `identity`: validates the name, counts the device's uploads in
/// flight, signs a SAS token for `{deviceId}/{name}` and stores the correlation.
///
/// `host_name` is the storage host handed to the device; `account` signs the token.
///
/// # Errors
/// [`FileUploadError::InvalidBlobName`], [`FileUploadError::TooManyUploads`], or the store's.
pub fn create(
    conn: &Connection,
    identity: &Identity,
    requested_name: &str,
    account: &StorageAccount,
    host_name: &str,
    options: &FileUploadOptions,
    now: SystemTime,
) -> Result<SasUri, FileUploadError> {
    validate_blob_name(requested_name).map_err(FileUploadError::InvalidBlobName)?;
    let blob_name = format!("{}/{requested_name}", identity.device_id);
    if blob_name.chars().count() > MAX_BLOB_NAME_CHARS {
        return Err(FileUploadError::InvalidBlobName(
            "`{deviceId}/{name}` is longer than 1024 characters",
        ));
    }
    let now_ms = unix_millis(now);
    let active = file_uploads::active_count(conn, &identity.device_id, now_ms)?;
    if active >= options.max_concurrent {
        return Err(FileUploadError::TooManyUploads {
            device_id: identity.device_id.clone(),
            active,
            max: options.max_concurrent,
        });
    }
    let expiry = now + options.sas_ttl;
    let token = blob_sas::sign(
        account,
        &options.container,
        &blob_name,
        blob_sas::UPLOAD_PERMISSIONS,
        expiry,
    );
    let correlation_id = correlation_id();
    file_uploads::insert(
        conn,
        &StoredUpload {
            correlation_id: correlation_id.clone(),
            device_id: identity.device_id.clone(),
            module_id: identity.module_id.clone().unwrap_or_default(),
            host_name: host_name.to_owned(),
            container: options.container.clone(),
            blob_name: blob_name.clone(),
            created_ms: now_ms,
            expires_ms: unix_millis(expiry),
            state: "pending".into(),
            status_code: None,
            status_description: None,
            size_bytes: None,
            completed_ms: None,
        },
    )?;
    Ok(SasUri {
        correlation_id,
        host_name: host_name.to_owned(),
        container_name: options.container.clone(),
        blob_name,
        sas_token: format!("?{token}"),
    })
}

/// A correlation id: opaque to devices; real hubs send a long base64 string, the emulator a
/// random UUID without hyphens.
fn correlation_id() -> String {
    ids::uuid_v4().replace('-', "")
}

/// The pending upload `correlation_id` of `identity`'s device, checked for the notification
/// that is about to finish it.
///
/// # Errors
/// [`FileUploadError::UnknownCorrelation`] (none, or another device's),
/// [`FileUploadError::AlreadyCompleted`], [`FileUploadError::ExpiredCorrelation`].
pub fn pending(
    conn: &Connection,
    identity: &Identity,
    correlation_id: &str,
    now: SystemTime,
) -> Result<StoredUpload, FileUploadError> {
    let unknown = || FileUploadError::UnknownCorrelation(correlation_id.to_owned());
    let Some(upload) = file_uploads::find(conn, correlation_id)? else {
        return Err(unknown());
    };
    // A device can finish its own uploads only (its modules' too: they share the device's
    // blob prefix).
    if upload.device_id != identity.device_id {
        return Err(unknown());
    }
    if upload.state != "pending" {
        return Err(FileUploadError::AlreadyCompleted(correlation_id.to_owned()));
    }
    if upload.expires_ms <= unix_millis(now) {
        return Err(FileUploadError::ExpiredCorrelation {
            correlation_id: correlation_id.to_owned(),
            expired_at: iso8601_millis(from_unix_millis(upload.expires_ms)),
        });
    }
    Ok(upload)
}

/// Notifications kept for a reader that never comes; the oldest are dropped beyond (a real
/// hub keeps them for the notification's time to live, one hour by default).
pub const MAX_QUEUED_NOTIFICATIONS: usize = 10_000;

/// Records the device's outcome; for a success, queues the notification (durably, in the
/// same transaction) and returns it.
/// `blob_size` is the size the storage reports, when the caller could read it.
///
/// # Errors
/// As [`pending`], or the store's.
pub fn finish(
    conn: &Connection,
    identity: &Identity,
    outcome: &UploadOutcome,
    blob_size: Option<u64>,
    now: SystemTime,
) -> Result<(StoredUpload, Option<FileNotification>), FileUploadError> {
    let upload = pending(conn, identity, &outcome.correlation_id, now)?;
    let now_ms = unix_millis(now);
    let size = blob_size.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    let updated = file_uploads::finish(
        conn,
        &outcome.correlation_id,
        outcome.is_success,
        outcome.status_code,
        &outcome.status_description,
        size,
        now_ms,
    )?;
    if !updated {
        // Only this transaction writes the row; `pending` read it as pending just now.
        return Err(FileUploadError::AlreadyCompleted(
            outcome.correlation_id.clone(),
        ));
    }
    let notification = outcome.is_success.then(|| FileNotification {
        device_id: upload.device_id.clone(),
        blob_uri: blob_uri(&upload.host_name, &upload.container, &upload.blob_name),
        blob_name: upload.blob_name.clone(),
        last_updated: now,
        blob_size_in_bytes: blob_size.unwrap_or(0),
        enqueued: now,
    });
    // Queued in the same transaction as the outcome: a success is never recorded without
    // its notification, nor the other way round.
    if let Some(n) = &notification {
        let dropped =
            file_uploads::push_notification(conn, &n.to_stored(), MAX_QUEUED_NOTIFICATIONS)?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "file notification queue full: the oldest notifications dropped"
            );
        }
    }
    let finished = StoredUpload {
        state: if outcome.is_success {
            "completed"
        } else {
            "failed"
        }
        .into(),
        status_code: Some(outcome.status_code),
        status_description: Some(outcome.status_description.clone()),
        size_bytes: size,
        completed_ms: Some(now_ms),
        ..upload
    };
    Ok((finished, notification))
}

/// Parses the body of `POST /devices/{id}/files`: `{"blobName": "…"}`.
///
/// # Errors
/// [`FileUploadError::InvalidRequest`].
pub fn parse_sas_request(body: &[u8]) -> Result<String, FileUploadError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FileUploadError::InvalidRequest(format!("malformed JSON body: {e}")))?;
    match value.get("blobName") {
        Some(Value::String(name)) => Ok(name.clone()),
        Some(_) => Err(FileUploadError::InvalidRequest(
            "blobName must be a string".into(),
        )),
        None => Err(FileUploadError::InvalidRequest(
            "the body must be {\"blobName\": \"…\"}".into(),
        )),
    }
}

/// Parses the body of `POST /devices/{id}/files/notifications`:
/// `{"correlationId","isSuccess","statusCode","statusDescription"}` (`statusCode` and
/// `statusDescription` optional, as some SDKs omit them).
///
/// # Errors
/// [`FileUploadError::InvalidRequest`].
pub fn parse_outcome(body: &[u8]) -> Result<UploadOutcome, FileUploadError> {
    let invalid = |m: &str| FileUploadError::InvalidRequest(m.to_owned());
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FileUploadError::InvalidRequest(format!("malformed JSON body: {e}")))?;
    let correlation_id = value
        .get("correlationId")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("correlationId must be a string"))?
        .to_owned();
    let is_success = value
        .get("isSuccess")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid("isSuccess must be a boolean"))?;
    let status_code = match value.get("statusCode") {
        None | Some(Value::Null) => {
            if is_success {
                200
            } else {
                500
            }
        }
        Some(v) => v
            .as_i64()
            .ok_or_else(|| invalid("statusCode must be an integer"))?,
    };
    let status_description = match value.get("statusDescription") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("statusDescription must be a string")),
    };
    Ok(UploadOutcome {
        correlation_id,
        is_success,
        status_code,
        status_description,
    })
}

#[cfg(test)]
mod tests;
