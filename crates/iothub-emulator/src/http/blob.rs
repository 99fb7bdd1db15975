//! The built-in blob endpoint (docs/file-upload.md "The built-in blob endpoint"): the Azure
//! Blob Storage operations a device SDK uploads with, served path-style on the emulator's
//! HTTPS and plain HTTP ports under `/{account}/{container}/{blob}` (account
//! [`BUILTIN_ACCOUNT`]), as Azurite serves its development account:
//!
//! - `PUT` (`x-ms-blob-type: BlockBlob`): Put Blob;
//! - `PUT ?comp=block&blockid={id}`: Put Block;
//! - `PUT ?comp=blocklist` with `<BlockList>…</BlockList>`: Put Block List;
//! - `GET` (with `Range`/`x-ms-range` or not), `HEAD`: Get Blob, Get Blob Properties.
//!
//! Every request carries the SAS token the hub signed ([`blob_sas::verify`]); a refusal is
//! answered in Azure Storage's XML error shape with its `x-ms-error-code`, and logged with its
//! reason. The files themselves are [`crate::store::blobs`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::hub::Hub;
use crate::hub::file_upload::blob_sas::{self, BlobAccess, BlobSasRefusal};
use crate::hub::file_upload::{
    BUILTIN_ACCOUNT, FileUploadOptions, FileUploadStorage, StorageAccount,
};
use crate::server::{Config, FileUploadConfig, StartError};
use crate::storage_client::StorageClient;
use crate::store::blobs::{self, BlobProperties, BlobStore, BlobStoreError};
use crate::store::{Store, registry};
use crate::timestamp::from_unix_millis;

/// The settings row holding the built-in account's key, so tokens survive a restart.
const KEY_SETTING: &str = "file_upload_builtin_key";

/// The storage version the endpoint answers as (`x-ms-version`).
const SERVICE_VERSION: &str = blob_sas::VERSION;

/// Largest Put Block List body read.
const MAX_BLOCK_LIST_BYTES: usize = 8 * 1024 * 1024;

/// The hub's file-upload options for `config`: the external account, or the built-in one
/// (its key from the store, generated once; its files under `<data-dir>/blobs/` or in a
/// temporary directory).
pub(crate) async fn file_upload_options(
    config: &Config,
    store: &Store,
) -> Result<FileUploadOptions, StartError> {
    let mut storage_client = None;
    let storage = match &config.file_upload {
        FileUploadConfig::Disabled => FileUploadStorage::None,
        FileUploadConfig::External(text) => {
            storage_client = Some(
                StorageClient::new(config.storage_ca_pem.as_deref())
                    .map_err(StartError::StorageClient)?,
            );
            FileUploadStorage::External(
                StorageAccount::from_connection_string(text)
                    .map_err(StartError::StorageConnectionString)?,
            )
        }
        FileUploadConfig::BuiltIn => {
            let key = store
                .call(|tx| match registry::setting(tx, KEY_SETTING)? {
                    Some(key) => Ok(key),
                    None => {
                        let key = crate::hub::ids::symmetric_key();
                        registry::set_setting(tx, KEY_SETTING, &key)?;
                        Ok(key)
                    }
                })
                .await?;
            let account = StorageAccount::built_in(&key).map_err(|_| {
                StartError::Store(crate::store::StoreError::Corrupt(
                    "the built-in storage key is not base64",
                ))
            })?;
            let blobs = match &config.data_dir {
                Some(dir) => BlobStore::open(&dir.join("blobs")),
                None => BlobStore::temporary(),
            }
            .map_err(StartError::BlobStore)?;
            FileUploadStorage::BuiltIn {
                account,
                blobs: Arc::new(blobs),
            }
        }
    };
    Ok(FileUploadOptions {
        storage,
        container: config.file_upload_container.clone(),
        sas_ttl: config.file_upload_sas_ttl,
        storage_client,
        ..FileUploadOptions::default()
    })
}

/// The endpoint's routes (none when the hub does not use the built-in store). It has no
/// fallback, so it merges beside the API router.
pub(crate) fn router(hub: Hub) -> Router {
    let path = format!("/{BUILTIN_ACCOUNT}/{{container}}/{{*blob}}");
    Router::new()
        .route(&path, get(read).put(write))
        // Bodies are streamed to disk with the store's own limits.
        .layer(DefaultBodyLimit::disable())
        .with_state(hub)
}

/// An Azure Storage error: status, `x-ms-error-code` and the XML body.
struct StorageError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl StorageError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            self.code,
            xml_escape(&self.message)
        );
        let mut response = (self.status, body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        h.insert("x-ms-error-code", HeaderValue::from_static(self.code));
        common_headers(h);
        response
    }
}

impl From<BlobStoreError> for StorageError {
    fn from(e: BlobStoreError) -> Self {
        match e {
            BlobStoreError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestBodyTooLarge",
                format!(
                    "The request body is too large and exceeds the maximum permissible limit ({limit} bytes)."
                ),
            ),
            BlobStoreError::InvalidBlockId => Self::new(
                StatusCode::BAD_REQUEST,
                "InvalidQueryParameterValue",
                "The block id is not base64 or longer than 64 bytes.",
            ),
            BlobStoreError::UnknownBlock(_) | BlobStoreError::InvalidBlockList(_) => {
                Self::new(StatusCode::BAD_REQUEST, "InvalidBlockList", e.to_string())
            }
            BlobStoreError::Body(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "The request body could not be read.",
            ),
            other => {
                tracing::error!(error = ?other, "built-in blob endpoint failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "The server encountered an internal error.",
                )
            }
        }
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `x-ms-request-id`, `x-ms-version` and `Date` on every answer.
fn common_headers(h: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&crate::hub::ids::uuid_v4()) {
        h.insert("x-ms-request-id", v);
    }
    h.insert("x-ms-version", HeaderValue::from_static(SERVICE_VERSION));
    if let Ok(v) = HeaderValue::from_str(&http_date(std::time::SystemTime::now())) {
        h.insert(header::DATE, v);
    }
}

/// RFC 1123 date (`Mon, 07 Dec 2026 03:04:05 GMT`) for `Date` and `Last-Modified`.
fn http_date(t: std::time::SystemTime) -> String {
    let iso = crate::timestamp::iso8601_millis(t);
    // invariant: `iso8601_millis` writes `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    let (y, mo, d) = (&iso[0..4], &iso[5..7], &iso[8..10]);
    let days = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |x| x.as_secs() / 86_400);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][mo.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    format!("{weekday}, {d} {month} {y} {} GMT", &iso[11..19])
}

/// Query parameters that pick the operation (the SAS ones are the verifier's).
#[derive(Default)]
struct Operation {
    comp: Option<String>,
    block_id: Option<String>,
}

fn operation(query: &str) -> Operation {
    let mut op = Operation::default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = iothub_proto::percent::Decoded::new(v)
            .decode()
            .unwrap_or_default();
        match k {
            "comp" => op.comp = Some(v),
            "blockid" => op.block_id = Some(v),
            _ => {}
        }
    }
    op
}

/// The built-in account, or 404 when the hub uses another store.
fn built_in(hub: &Hub) -> Result<(&StorageAccount, &BlobStore), StorageError> {
    hub.built_in_blobs().ok_or_else(|| {
        StorageError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The built-in blob endpoint is off: the hub uses another storage account.",
        )
    })
}

/// Checks the request's SAS token for `needed` on `container/blob`; logs a refusal.
fn authorize(
    hub: &Hub,
    account: &StorageAccount,
    query: &str,
    container: &str,
    blob: &str,
    needed: char,
) -> Result<(), StorageError> {
    let access = BlobAccess {
        container,
        blob,
        needed,
        now: hub.now(),
    };
    blob_sas::verify(query, account, access).map_err(|reason| {
        tracing::info!(container, blob, %reason, "blob request refused");
        match reason {
            BlobSasRefusal::PermissionDenied { .. } => StorageError::new(
                StatusCode::FORBIDDEN,
                "AuthorizationPermissionMismatch",
                format!("This request is not authorized to perform this operation using this permission. {reason}"),
            ),
            other => StorageError::new(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                format!("Server failed to authenticate the request. {other}"),
            ),
        }
    })
}

fn content_type(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned()
}

fn created(props: Option<&BlobProperties>) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    common_headers(h);
    h.insert(
        "x-ms-request-server-encrypted",
        HeaderValue::from_static("false"),
    );
    if let Some(p) = props {
        blob_headers(h, p);
    }
    response
}

fn blob_headers(h: &mut HeaderMap, p: &BlobProperties) {
    if let Ok(v) = HeaderValue::from_str(&p.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(from_unix_millis(p.last_modified_ms))) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

async fn write(
    State(hub): State<Hub>,
    Path((container, blob)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, StorageError> {
    let query = query.unwrap_or_default();
    let (account, blobs) = built_in(&hub)?;
    authorize(&hub, account, &query, &container, &blob, 'w')?;
    let op = operation(&query);
    match op.comp.as_deref() {
        None => {
            let kind = headers.get("x-ms-blob-type").and_then(|v| v.to_str().ok());
            if kind != Some("BlockBlob") {
                return Err(StorageError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidHeaderValue",
                    "x-ms-blob-type must be BlockBlob: the built-in endpoint keeps block blobs only.",
                ));
            }
            let ct = match headers.get("x-ms-blob-content-type") {
                Some(_) => content_type(&headers, "x-ms-blob-content-type"),
                None => content_type(&headers, "content-type"),
            };
            let props = blobs
                .put_blob(&container, &blob, &ct, body.into_data_stream())
                .await?;
            tracing::debug!(container, blob, size = props.size, "blob written");
            Ok(created(Some(&props)))
        }
        Some("block") => {
            let id = op.block_id.ok_or_else(|| {
                StorageError::new(
                    StatusCode::BAD_REQUEST,
                    "MissingRequiredQueryParameter",
                    "Put Block needs blockid.",
                )
            })?;
            blobs
                .put_block(&container, &blob, &id, body.into_data_stream())
                .await?;
            Ok(created(None))
        }
        Some("blocklist") => {
            let bytes = axum::body::to_bytes(body, MAX_BLOCK_LIST_BYTES)
                .await
                .map_err(|_| BlobStoreError::InvalidBlockList("the body is too large"))?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| BlobStoreError::InvalidBlockList("the body is not UTF-8"))?;
            let list = blobs::parse_block_list(text)?;
            let ct = content_type(&headers, "x-ms-blob-content-type");
            let props = blobs.put_block_list(&container, &blob, &ct, &list).await?;
            tracing::debug!(container, blob, size = props.size, "block list committed");
            Ok(created(Some(&props)))
        }
        Some(_) => Err(StorageError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedQueryParameter",
            "The built-in blob endpoint serves Put Blob, Put Block and Put Block List only.",
        )),
    }
}

/// `bytes=a-b`, `bytes=a-` (from `x-ms-range` or `Range`): the first and last byte, or
/// `None` when there is no range or it is not one the endpoint understands (the whole blob
/// is sent then, as Azure does for an unparsable `Range`).
fn range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let text = headers
        .get("x-ms-range")
        .or_else(|| headers.get(header::RANGE))?
        .to_str()
        .ok()?;
    let spec = text.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => size.saturating_sub(1),
        b => b.parse::<u64>().ok()?.min(size.saturating_sub(1)),
    };
    if start >= size || end < start {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

async fn read(
    State(hub): State<Hub>,
    Path((container, blob)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, StorageError> {
    let query = query.unwrap_or_default();
    let (account, blobs) = built_in(&hub)?;
    authorize(&hub, account, &query, &container, &blob, 'r')?;
    if operation(&query).comp.is_some() {
        return Err(StorageError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedQueryParameter",
            "The built-in blob endpoint serves Get Blob and Get Blob Properties only.",
        ));
    }
    let Some((props, mut file)) = blobs.open_blob(&container, &blob).await? else {
        return Err(StorageError::new(
            StatusCode::NOT_FOUND,
            "BlobNotFound",
            "The specified blob does not exist.",
        ));
    };
    let size = props.size;
    let (status, start, len) = match range(&headers, size) {
        None => (StatusCode::OK, 0, size),
        Some(Ok((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Some(Err(())) => {
            let mut e = StorageError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                e.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(e);
        }
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(BlobStoreError::Io)?;
    let stream = futures_util::stream::unfold(file.take(len), |mut reader| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    common_headers(h);
    blob_headers(h, &props);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&props.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{size}",
            start + len.saturating_sub(1)
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_rfc_1123() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_645);
        assert_eq!(http_date(t), "Mon, 30 Nov 2026 01:04:05 GMT");
    }

    #[test]
    fn ranges_are_clamped_or_refused() {
        let mut h = HeaderMap::new();
        assert_eq!(range(&h, 10), None);
        h.insert("x-ms-range", HeaderValue::from_static("bytes=2-100"));
        assert_eq!(range(&h, 10), Some(Ok((2, 9))));
        h.insert("x-ms-range", HeaderValue::from_static("bytes=10-"));
        assert_eq!(range(&h, 10), Some(Err(())));
        h.insert("x-ms-range", HeaderValue::from_static("nonsense"));
        assert_eq!(range(&h, 10), None);
    }
}
