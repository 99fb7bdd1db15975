//! File upload to the blob storage behind the hub: [`DeviceClient::upload_file`] and
//! [`DeviceClient::upload_path`].
//!
//! The flow is IoT Hub's (docs/file-upload.md): the device asks the hub over HTTPS for a SAS
//! URI of blob `{deviceId}/{name}` (`POST /devices/{id}/files`), writes the file to the storage
//! as a block blob (Put Block for each block, then one Put Block List that makes the blob
//! visible at once), and tells the hub the outcome (`POST /devices/{id}/files/notifications`).
//! Once the hub handed out a SAS URI, every failure is notified as one, so the hub never
//! reports an upload complete whose blob was not committed.
//!
//! What to send and how to read the answers is sans-IO in `upload/plan.rs`; this file only
//! moves bytes (reqwest over the crate's own rustls configuration, `tls.rs`).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::driver::LoginSource;
use crate::{ConfigError, DeviceClient, Error, HubRequest, StorageOperation, UploadEndpoint};
use crate::{UploadError, tls};

mod plan;
#[cfg(test)]
mod tests;

pub(crate) use plan::status_is_retriable;
pub use plan::{DEFAULT_BLOCK_SIZE, MAX_BLOB_SIZE, MAX_BLOCK_SIZE, MAX_BLOCKS, RetryPolicy};
use plan::{SasUri, block_list_xml, block_size, check_blob_name, files_path};

/// Sent as `User-Agent` on the hub and storage requests.
const USER_AGENT: &str = concat!("iothub-device-rs/", env!("CARGO_PKG_VERSION"));

/// A progress callback; see [`UploadOptions::on_progress`].
type ProgressFn = Arc<dyn Fn(&UploadProgress) + Send + Sync>;

/// How one upload runs: block size, retries, timeouts, progress.
///
/// ```
/// use std::time::Duration;
/// use iothub_device::{RetryPolicy, UploadOptions};
///
/// let options = UploadOptions::new()
///     .block_size(8 * 1024 * 1024)
///     .retry(RetryPolicy::new(5, Duration::from_millis(500), Duration::from_secs(10)))
///     .content_type("application/gzip")
///     .on_progress(|p| eprintln!("{} of {:?} bytes", p.bytes_sent, p.total));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct UploadOptions {
    block_size: usize,
    retry: RetryPolicy,
    request_timeout: Duration,
    content_type: Option<String>,
    storage_plain_http: bool,
    size_hint: Option<u64>,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("block_size", &self.block_size)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("content_type", &self.content_type)
            .field("storage_plain_http", &self.storage_plain_http)
            .field("size_hint", &self.size_hint)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl UploadOptions {
    /// 4 MiB blocks, [`RetryPolicy::default`] for each request, 120 s per request.
    pub fn new() -> Self {
        Self {
            block_size: DEFAULT_BLOCK_SIZE,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
            content_type: None,
            storage_plain_http: false,
            size_hint: None,
            progress: None,
        }
    }

    /// The size of each block (default 4 MiB, at most [`MAX_BLOCK_SIZE`]). A source whose
    /// size is known and would need more than [`MAX_BLOCKS`] blocks gets larger blocks.
    /// Memory held by an upload is about one block.
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes.clamp(1, MAX_BLOCK_SIZE);
        self
    }

    /// How each request (the SAS URI request, each block, the commit, the notification) is
    /// retried after a network failure or a retriable status (408, 429, 5xx). A refusal such
    /// as 403 for an expired SAS is never retried.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The longest one request may take, body included (default 120 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The blob's `Content-Type` (`x-ms-blob-content-type`), for example `image/jpeg`.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_owned());
        self
    }

    /// Speaks plain HTTP to the storage instead of HTTPS. Only for a local storage emulator
    /// such as Azurite on its default HTTP port: Azure Storage accounts used by IoT Hub
    /// require HTTPS. A client with [`ClientOptions::plain_tcp`](crate::ClientOptions::plain_tcp)
    /// always does (the emulator's development port serves its built-in blob endpoint too).
    pub fn storage_plain_http(mut self, on: bool) -> Self {
        self.storage_plain_http = on;
        self
    }

    /// The source's size, when known: it sizes the blocks, fails a too-large source before
    /// anything is sent, and is [`UploadProgress::total`]. [`DeviceClient::upload_path`]
    /// sets it from the file.
    pub fn size_hint(mut self, bytes: u64) -> Self {
        self.size_hint = Some(bytes);
        self
    }

    /// Called after the SAS URI was obtained and after every block the storage accepted.
    pub fn on_progress(
        mut self,
        callback: impl Fn(&UploadProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(callback));
        self
    }

    fn report(&self, progress: &UploadProgress) {
        if let Some(callback) = &self.progress {
            callback(progress);
        }
    }
}

/// How far an upload got, passed to [`UploadOptions::on_progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadProgress {
    /// Bytes the storage accepted so far.
    pub bytes_sent: u64,
    /// The source's size when known ([`UploadOptions::size_hint`]).
    pub total: Option<u64>,
    /// Blocks the storage accepted so far.
    pub blocks_sent: u32,
    /// Requests sent again after a retriable failure so far.
    pub retries: u32,
}

/// A completed upload: the blob is committed and the hub was told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Uploaded {
    /// The hub's correlation id of this upload.
    pub correlation_id: String,
    /// The blob's full name in its container (`{deviceId}/{name}` on IoT Hub).
    pub blob_name: String,
    /// The container.
    pub container_name: String,
    /// The blob's URL, without the SAS.
    pub blob_url: String,
    /// Bytes uploaded.
    pub size: u64,
    /// Blocks committed.
    pub blocks: u32,
    /// Requests sent again after a retriable failure.
    pub retries: u32,
}

/// What an upload needs from [`ClientOptions`](crate::ClientOptions), kept until the first
/// upload builds its HTTP clients.
pub(crate) struct UploadConfig {
    /// The host dialled (the gateway when there is one) and the HTTPS port.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    pub(crate) extra_ca_pem: Vec<Vec<u8>>,
    /// The X.509 client certificate and key (PEM): the hub authenticates HTTPS requests by
    /// the TLS client certificate instead of a SAS `Authorization` header.
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) proxy: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) device_id: String,
    pub(crate) module_id: Option<String>,
    pub(crate) login: Arc<dyn LoginSource>,
}

/// The HTTP side of a [`DeviceClient`]: its configuration and, after the first upload, its
/// HTTP clients.
pub(crate) struct Uploader {
    config: UploadConfig,
    clients: OnceLock<HttpClients>,
}

struct HttpClients {
    /// Carries the X.509 identity, if any.
    hub: reqwest::Client,
    /// Never presents a client certificate: the storage authorizes by the SAS alone.
    storage: reqwest::Client,
}

impl Uploader {
    pub(crate) fn new(config: UploadConfig) -> Self {
        Self {
            config,
            clients: OnceLock::new(),
        }
    }

    fn clients(&self) -> Result<&HttpClients, Error> {
        if let Some(clients) = self.clients.get() {
            return Ok(clients);
        }
        let built = HttpClients {
            hub: self.http_client(true)?,
            storage: self.http_client(false)?,
        };
        // A concurrent first upload may have won; either client is as good.
        let _ = self.clients.set(built);
        // invariant: set just above, by this call or a concurrent one.
        #[allow(clippy::unwrap_used)]
        Ok(self.clients.get().unwrap())
    }

    fn http_client(&self, hub: bool) -> Result<reqwest::Client, Error> {
        let identity = self
            .config
            .identity
            .as_ref()
            .filter(|_| hub)
            .map(|(cert, key)| (cert.as_slice(), key.as_slice()));
        let tls = tls::client_config(&self.config.extra_ca_pem, identity)?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .user_agent(USER_AGENT)
            .connect_timeout(self.config.connect_timeout);
        builder = match &self.config.proxy {
            Some(proxy) => {
                builder.proxy(reqwest::Proxy::all(format!("http://{proxy}")).map_err(|_| {
                    Error::InvalidInput {
                        field: "http_proxy",
                        reason: "is not a host:port",
                    }
                })?)
            }
            // Only the proxy the options name: never one from the environment.
            None => builder.no_proxy(),
        };
        builder
            .build()
            .map_err(|e| ConfigError::Http(Arc::new(e)).into())
    }

    fn hub_url(&self, suffix: &str) -> String {
        let scheme = if self.config.tls { "https" } else { "http" };
        format!(
            "{scheme}://{}:{}{}{suffix}?api-version={}",
            self.config.host,
            self.config.port,
            files_path(&self.config.device_id, self.config.module_id.as_deref()),
            plan::HUB_API_VERSION
        )
    }

    /// One hub request (`POST …/files` or `…/files/notifications`) with the retry policy.
    async fn hub_post(
        &self,
        request: HubRequest,
        body: serde_json::Value,
        options: &UploadOptions,
        retries: &mut u32,
    ) -> Result<Bytes, Error> {
        let clients = self.clients()?;
        let url = self.hub_url(match request {
            HubRequest::SasUri => "",
            HubRequest::Notification => "/notifications",
        });
        let body = Bytes::from(body.to_string());
        let (url, body) = (&url, &body);
        retry(options, retries, || async move {
            // A fresh token for every try: a retry after a long backoff must not carry an
            // expired one.
            let mut http = clients
                .hub
                .post(url.as_str())
                .timeout(options.request_timeout)
                .header("content-type", "application/json; charset=utf-8")
                .body(body.clone());
            if let Some(token) = self
                .config
                .login
                .login()
                .map_err(Error::Credentials)?
                .password
            {
                http = http.header("authorization", token);
            }
            let response = http
                .send()
                .await
                .map_err(|e| network(UploadEndpoint::Hub, e))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| network(UploadEndpoint::Hub, e))?;
            if status.is_success() {
                Ok(bytes)
            } else {
                Err(UploadError::HubRefused {
                    request,
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                }
                .into())
            }
        })
        .await
    }

    /// One storage request (a block, or the commit) with the retry policy.
    async fn storage_put(
        &self,
        url: &str,
        operation: StorageOperation,
        body: Bytes,
        options: &UploadOptions,
        retries: &mut u32,
    ) -> Result<(), Error> {
        let clients = self.clients()?;
        let body = &body;
        retry(options, retries, || async move {
            let mut http = clients
                .storage
                .put(url)
                .timeout(options.request_timeout)
                .header("x-ms-version", plan::STORAGE_API_VERSION)
                .body(body.clone());
            if operation == StorageOperation::PutBlockList {
                http = http.header("content-type", "application/xml; charset=utf-8");
                if let Some(content_type) = &options.content_type {
                    http = http.header("x-ms-blob-content-type", content_type);
                }
            }
            let response = http
                .send()
                .await
                .map_err(|e| network(UploadEndpoint::Storage, e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let header = response
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.unwrap_or_default();
            Err(UploadError::StorageRefused {
                operation,
                status: status.as_u16(),
                code: plan::storage_error_code(header.as_deref(), &body),
            }
            .into())
        })
        .await
    }

    /// The whole upload; see [`DeviceClient::upload_file`].
    async fn upload<R: AsyncRead + Unpin>(
        &self,
        blob_name: &str,
        mut source: R,
        options: &UploadOptions,
    ) -> Result<Uploaded, Error> {
        check_blob_name(blob_name)?;
        let block_size = block_size(options.block_size, options.size_hint)?;
        let mut retries = 0;
        let answer = self
            .hub_post(
                HubRequest::SasUri,
                plan::sas_request_body(blob_name),
                options,
                &mut retries,
            )
            .await?;
        let sas = SasUri::parse(&answer)?;
        // A hub reached over plain HTTP is the emulator's development port, whose answer names
        // its own blob endpoint on that same port (docs/file-upload.md).
        let scheme = if options.storage_plain_http || !self.config.tls {
            "http"
        } else {
            "https"
        };
        let mut progress = UploadProgress {
            bytes_sent: 0,
            total: options.size_hint,
            blocks_sent: 0,
            retries,
        };
        options.report(&progress);
        let outcome = self
            .write_blob(
                &sas,
                scheme,
                block_size,
                &mut source,
                options,
                &mut progress,
            )
            .await;
        let mut retries = progress.retries;
        match outcome {
            Ok(()) => {
                let description = format!(
                    "uploaded {} bytes in {} blocks",
                    progress.bytes_sent, progress.blocks_sent
                );
                self.hub_post(
                    HubRequest::Notification,
                    plan::notification_body(&sas.correlation_id, true, 200, &description),
                    options,
                    &mut retries,
                )
                .await?;
                Ok(Uploaded {
                    blob_url: sas.blob_url(scheme),
                    correlation_id: sas.correlation_id,
                    blob_name: sas.blob_name,
                    container_name: sas.container_name,
                    size: progress.bytes_sent,
                    blocks: progress.blocks_sent,
                    retries,
                })
            }
            Err(error) => {
                // The storage's status when it refused; otherwise 500, as the SDKs report a
                // failure that has no status of its own.
                let status = error.status().unwrap_or(500);
                let description = error_chain(&error);
                tracing::warn!(
                    correlation_id = %sas.correlation_id,
                    status,
                    "file upload failed, notifying the hub: {description}"
                );
                if let Err(notify) = self
                    .hub_post(
                        HubRequest::Notification,
                        plan::notification_body(&sas.correlation_id, false, status, &description),
                        options,
                        &mut retries,
                    )
                    .await
                {
                    // The hub expires the correlation on its own; the upload's error is the
                    // one the caller needs.
                    tracing::warn!(
                        correlation_id = %sas.correlation_id,
                        "could not notify the hub of the failed upload: {}",
                        error_chain(&notify)
                    );
                }
                Err(error)
            }
        }
    }

    /// Put Block for each block of `source`, then Put Block List.
    async fn write_blob<R: AsyncRead + Unpin>(
        &self,
        sas: &SasUri,
        scheme: &str,
        block_size: usize,
        source: &mut R,
        options: &UploadOptions,
        progress: &mut UploadProgress,
    ) -> Result<(), Error> {
        let mut index: u32 = 0;
        loop {
            let block = read_block(source, block_size).await?;
            if block.is_empty() {
                break;
            }
            let size = progress.bytes_sent + block.len() as u64;
            if u64::from(index) >= MAX_BLOCKS || size > MAX_BLOB_SIZE {
                return Err(UploadError::TooLarge {
                    size,
                    limit: MAX_BLOB_SIZE,
                }
                .into());
            }
            let len = block.len() as u64;
            self.storage_put(
                &sas.put_block_url(scheme, index),
                StorageOperation::PutBlock { index },
                block,
                options,
                &mut progress.retries,
            )
            .await?;
            index += 1;
            progress.bytes_sent += len;
            progress.blocks_sent = index;
            options.report(progress);
        }
        self.storage_put(
            &sas.put_block_list_url(scheme),
            StorageOperation::PutBlockList,
            Bytes::from(block_list_xml(index)),
            options,
            &mut progress.retries,
        )
        .await
    }
}

/// Reads up to `size` bytes: a short block only at the end of the source.
async fn read_block<R: AsyncRead + Unpin>(source: &mut R, size: usize) -> Result<Bytes, Error> {
    let mut block = BytesMut::with_capacity(size);
    while block.len() < size {
        let want = size - block.len();
        let read = (&mut *source)
            .take(want as u64)
            .read_buf(&mut block)
            .await
            .map_err(|e| UploadError::Source(Arc::new(e)))?;
        if read == 0 {
            break;
        }
    }
    Ok(block.freeze())
}

/// Runs `attempt` until it succeeds, fails for good, or the policy's tries are used up.
async fn retry<T, F, Fut>(
    options: &UploadOptions,
    retries: &mut u32,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Error::Upload(e)) if e.is_retriable() => match options.retry.delay(retry) {
                Some(delay) => {
                    tracing::debug!(retry, ?delay, "retrying after: {}", error_chain(&e));
                    retry += 1;
                    *retries += 1;
                    tokio::time::sleep(delay).await;
                }
                None => return Err(Error::Upload(e)),
            },
            Err(e) => return Err(e),
        }
    }
}

fn network(endpoint: UploadEndpoint, e: reqwest::Error) -> Error {
    // reqwest's error names the URL, which carries the SAS: drop it.
    Error::Upload(UploadError::Network {
        endpoint,
        source: Arc::new(e.without_url()),
    })
}

/// The error and its causes on one line (no secret reaches them: URLs are stripped).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

impl DeviceClient {
    /// Uploads everything `source` yields to blob `blob_name` of the storage account linked
    /// to the hub (IoT Hub names it `{deviceId}/{blob_name}`), in blocks, and tells the hub the
    /// outcome, which a service learns from its file upload notifications.
    ///
    /// The upload goes over HTTPS to the hub ([`ClientOptions::https_port`](crate::ClientOptions::https_port))
    /// with the client's credentials (a SAS token minted from its key, or its X.509
    /// certificate) and then to the storage with the SAS the hub handed out. Each block and
    /// request is retried per [`UploadOptions::retry`]; once the SAS was obtained, any failure
    /// is notified to the hub as a failed upload before this returns it, and the blob is only
    /// committed (made visible) by the last request, so a broken upload never leaves a
    /// half-written blob reported as complete. It does not use the MQTT connection.
    ///
    /// ```no_run
    /// use iothub_device::{DeviceClient, UploadOptions};
    ///
    /// # async fn run(client: DeviceClient) -> Result<(), iothub_device::Error> {
    /// let data: &[u8] = b"log line 1\nlog line 2\n";
    /// let uploaded = client
    ///     .upload_file("logs/today.txt", data, UploadOptions::new().size_hint(data.len() as u64))
    ///     .await?;
    /// println!("{} bytes at {}", uploaded.size, uploaded.blob_url);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Upload`] with [`UploadError::HubRefused`] (the hub refused the SAS URI or the
    /// notification), [`UploadError::StorageRefused`] (an expired SAS: 403),
    /// [`UploadError::Network`], [`UploadError::Source`] (reading `source` failed),
    /// [`UploadError::TooLarge`]; [`Error::InvalidInput`] for an unusable blob name;
    /// [`Error::Credentials`] when no token can be minted; [`Error::Config`] when the TLS
    /// configuration is unusable.
    pub async fn upload_file<R>(
        &self,
        blob_name: &str,
        source: R,
        options: UploadOptions,
    ) -> Result<Uploaded, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.upload.upload(blob_name, source, &options).await
    }

    /// Uploads the file at `path` as [`DeviceClient::upload_file`] does, with its size as
    /// [`UploadOptions::size_hint`].
    ///
    /// ```no_run
    /// # async fn run(client: iothub_device::DeviceClient) -> Result<(), iothub_device::Error> {
    /// use iothub_device::UploadOptions;
    ///
    /// let options = UploadOptions::new().on_progress(|p| {
    ///     eprintln!("{}/{} bytes", p.bytes_sent, p.total.unwrap_or(0));
    /// });
    /// client.upload_path("camera/frame-0001.jpg", "/var/lib/camera/frame-0001.jpg".as_ref(), options).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`DeviceClient::upload_file`]; [`UploadError::Source`] when the file cannot be
    /// opened (before the hub is asked for anything).
    pub async fn upload_path(
        &self,
        blob_name: &str,
        path: &Path,
        options: UploadOptions,
    ) -> Result<Uploaded, Error> {
        let source = |e: std::io::Error| Error::Upload(UploadError::Source(Arc::new(e)));
        let file = tokio::fs::File::open(path).await.map_err(source)?;
        let size = file.metadata().await.map_err(source)?.len();
        let options = options.size_hint(size);
        self.upload_file(blob_name, file, options).await
    }
}
