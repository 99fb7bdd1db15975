//! The sans-IO half of a file upload: what to send and how to read the answers, with no
//! socket, clock or file in sight, so every rule is unit-tested (`upload/tests.rs`).
//!
//! The wire contract is IoT Hub's device-facing file upload (docs/file-upload.md): `POST
//! /devices/{id}/files` answers `{correlationId, hostName, containerName, blobName,
//! sasToken}`; the device writes the blob at `https://{hostName}/{containerName}/{blobName}`
//! with the SAS appended, as block blob operations (Put Block, then Put Block List); then
//! `POST /devices/{id}/files/notifications` reports the outcome.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use iothub_proto::percent;
use serde_json::{Value, json};

use crate::UploadError;

/// The IoT Hub REST API version of the two device-facing file upload calls (the version the
/// MQTT username also announces, docs/protocol.md §1.4).
pub(crate) const HUB_API_VERSION: &str = "2021-04-12";

/// `x-ms-version` sent to Azure Storage: the version of the SAS tokens the emulator issues
/// (docs/file-upload.md), accepted by Azure Storage and Azurite, and recent enough for blocks
/// over 100 MiB.
pub(crate) const STORAGE_API_VERSION: &str = "2020-12-06";

/// Azure Storage's limit on the blocks of one block blob.
pub const MAX_BLOCKS: u64 = 50_000;

/// Azure Storage's limit on one block (API versions from 2019-12-12 on): 4000 MiB.
pub const MAX_BLOCK_SIZE: usize = 4000 * 1024 * 1024;

/// The default block size, 4 MiB: small enough to retry cheaply, large enough that a
/// 50,000-block blob holds 195 GiB.
pub const DEFAULT_BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// The largest block blob Azure Storage accepts: 50,000 blocks of 4000 MiB.
pub const MAX_BLOB_SIZE: u64 = MAX_BLOCKS * MAX_BLOCK_SIZE as u64;

/// The block size to use for a source of `total` bytes (when known): the preferred size,
/// grown to the next MiB multiple when `total` would need more than [`MAX_BLOCKS`] blocks.
///
/// # Errors
///
/// [`UploadError::TooLarge`] when `total` exceeds [`MAX_BLOB_SIZE`].
pub(crate) fn block_size(preferred: usize, total: Option<u64>) -> Result<usize, UploadError> {
    let preferred = preferred.clamp(1, MAX_BLOCK_SIZE);
    let Some(total) = total else {
        return Ok(preferred);
    };
    if total > MAX_BLOB_SIZE {
        return Err(UploadError::TooLarge {
            size: total,
            limit: MAX_BLOB_SIZE,
        });
    }
    if total.div_ceil(preferred as u64) <= MAX_BLOCKS {
        return Ok(preferred);
    }
    const MIB: u64 = 1024 * 1024;
    let needed = total.div_ceil(MAX_BLOCKS).div_ceil(MIB) * MIB;
    // invariant: needed <= MAX_BLOCK_SIZE because total <= MAX_BLOB_SIZE, and
    // MAX_BLOCK_SIZE is a MiB multiple.
    Ok(usize::try_from(needed)
        .unwrap_or(MAX_BLOCK_SIZE)
        .min(MAX_BLOCK_SIZE))
}

/// The id of block `index`: Base64 of a fixed-width text, since every block id of a blob must
/// have the same length (Azure Storage "Put Block").
pub(crate) fn block_id(index: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("block-{index:010}"))
}

/// The Put Block List body committing `count` blocks in order.
pub(crate) fn block_list_xml(count: u32) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for index in 0..count {
        // Base64 has no XML-special characters.
        let _ = write!(xml, "<Latest>{}</Latest>", block_id(index));
    }
    xml.push_str("</BlockList>");
    xml
}

/// The hub's answer to `POST /devices/{id}/files`: where to write and with which SAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SasUri {
    /// Names this upload in the notification.
    pub(crate) correlation_id: String,
    /// Storage host, possibly with a port and a path prefix (Azurite's path-style
    /// `127.0.0.1:10000/devstoreaccount1`).
    pub(crate) host_name: String,
    pub(crate) container_name: String,
    /// The full blob name, `{deviceId}/{name}` on IoT Hub.
    pub(crate) blob_name: String,
    /// The SAS query, without its leading `?`.
    pub(crate) sas_token: String,
}

impl SasUri {
    /// Reads the hub's JSON answer.
    ///
    /// # Errors
    ///
    /// [`UploadError::InvalidHubResponse`] when it is not JSON or misses a field.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, UploadError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|_| UploadError::InvalidHubResponse {
                reason: "the SAS URI answer is not JSON",
            })?;
        let field = |name: &'static str| -> Result<String, UploadError> {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(UploadError::InvalidHubResponse {
                    reason: "the SAS URI answer misses a field",
                })
        };
        let sas_token = field("sasToken")?;
        Ok(Self {
            correlation_id: field("correlationId")?,
            host_name: field("hostName")?,
            container_name: field("containerName")?,
            blob_name: field("blobName")?,
            sas_token: sas_token.trim_start_matches('?').to_owned(),
        })
    }

    /// The blob's URL without the SAS: `{scheme}://{hostName}/{container}/{blob}`, each blob
    /// path segment percent-encoded (`/` separates virtual directories and stays).
    pub(crate) fn blob_url(&self, scheme: &str) -> String {
        let mut url = format!(
            "{scheme}://{}/{}/",
            self.host_name.trim_end_matches('/'),
            percent::encode(&self.container_name)
        );
        for (i, segment) in self.blob_name.split('/').enumerate() {
            if i > 0 {
                url.push('/');
            }
            let _ = write!(url, "{}", percent::encode(segment));
        }
        url
    }

    /// The URL of Put Block number `index`.
    pub(crate) fn put_block_url(&self, scheme: &str, index: u32) -> String {
        format!(
            "{}?{}&comp=block&blockid={}",
            self.blob_url(scheme),
            self.sas_token,
            percent::encode(&block_id(index))
        )
    }

    /// The URL of Put Block List.
    pub(crate) fn put_block_list_url(&self, scheme: &str) -> String {
        format!(
            "{}?{}&comp=blocklist",
            self.blob_url(scheme),
            self.sas_token
        )
    }
}

/// The path of the hub's device-facing file upload resource, relative to the hub's root:
/// `devices/{id}/files` or `devices/{id}/modules/{module}/files`, ids percent-encoded.
pub(crate) fn files_path(device_id: &str, module_id: Option<&str>) -> String {
    match module_id {
        Some(module) => format!(
            "/devices/{}/modules/{}/files",
            percent::encode(device_id),
            percent::encode(module)
        ),
        None => format!("/devices/{}/files", percent::encode(device_id)),
    }
}

/// The body of `POST /devices/{id}/files`.
pub(crate) fn sas_request_body(blob_name: &str) -> Value {
    json!({ "blobName": blob_name })
}

/// The body of `POST /devices/{id}/files/notifications`.
pub(crate) fn notification_body(
    correlation_id: &str,
    success: bool,
    status: u16,
    description: &str,
) -> Value {
    json!({
        "correlationId": correlation_id,
        "isSuccess": success,
        "statusCode": status,
        "statusDescription": description,
    })
}

/// Checks a blob name as the hub will: not empty, at most 1024 characters, no empty path
/// segment and no control characters (Azure Storage's naming rules).
///
/// # Errors
///
/// [`crate::Error::InvalidInput`] naming `blob_name`.
pub(crate) fn check_blob_name(name: &str) -> Result<(), crate::Error> {
    let invalid = |reason| crate::Error::InvalidInput {
        field: "blob_name",
        reason,
    };
    if name.is_empty() {
        return Err(invalid("is empty"));
    }
    if name.chars().count() > 1024 {
        return Err(invalid("is longer than 1024 characters"));
    }
    if name.split('/').any(str::is_empty) {
        return Err(invalid("has an empty path segment"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("contains a control character"));
    }
    Ok(())
}

/// Whether a storage or hub answer with this status may succeed if sent again unchanged:
/// timeouts, throttling and server trouble (Azure Storage's retry guidance). A 403 (an expired
/// or wrong SAS) or a 404 never will.
pub(crate) fn status_is_retriable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// How often, and after which delays, one request is tried again.
///
/// ```
/// use std::time::Duration;
/// use iothub_device::RetryPolicy;
///
/// let policy = RetryPolicy::new(3, Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(policy.delay(0), Some(Duration::from_millis(100)));
/// assert_eq!(policy.delay(1), Some(Duration::from_millis(200)));
/// assert_eq!(policy.delay(2), None); // three tries in all
/// assert_eq!(RetryPolicy::none().delay(0), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    backoff: iothub_proto::Backoff,
}

impl RetryPolicy {
    /// At most `attempts` tries in all (at least one), waiting `min` doubling up to `max`
    /// between them.
    pub fn new(attempts: u32, min: Duration, max: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            backoff: iothub_proto::Backoff::new(min, max),
        }
    }

    /// One try, no retry.
    pub fn none() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The wait before retry number `retry` (0 for the first), or `None` when the tries are
    /// used up.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        (retry.saturating_add(1) < self.attempts).then(|| self.backoff.delay(retry, 0))
    }

    /// The number of tries in all.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl Default for RetryPolicy {
    /// Four tries, 1 s doubling to 8 s between them.
    fn default() -> Self {
        Self::new(4, Duration::from_secs(1), Duration::from_secs(8))
    }
}

/// The error code Azure Storage names in `x-ms-error-code` (for example
/// `AuthenticationFailed` for an expired SAS), if any.
pub(crate) fn storage_error_code(header: Option<&str>, body: &[u8]) -> Option<String> {
    if let Some(code) = header.filter(|c| !c.is_empty()) {
        return Some(code.to_owned());
    }
    // The XML error body: <Error><Code>…</Code>…
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].to_owned())
}
