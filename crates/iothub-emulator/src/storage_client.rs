//! The hub's client of an external Blob Storage account (docs/file-upload.md, "Storage"): when a
//! device reports a completed upload, IoT Hub reads the blob's properties to put its size in
//! the file upload notification (`blobSizeInBytes`). This does the same with Get Blob
//! Properties: `HEAD https://{account host}/{container}/{blob}` with a read-only SAS token the
//! hub signs with the account key for one minute.
//!
//! TLS trusts the public web roots (an Azure account) plus, optionally, a CA the user names
//! (`--storage-ca`, for Azurite with its own certificate), with the workspace's one crypto
//! provider, ring.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::CONTENT_LENGTH;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::hub::file_upload::{StorageAccount, blob_sas, blob_uri};

/// The storage REST version the requests ask for (the one the hub's SAS tokens are signed for).
const STORAGE_VERSION: &str = "2020-12-06";
/// A size read is one small request: a storage that does not answer within this is down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The read token's lifetime: long enough for one request on a skewed clock.
const READ_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Reads blob properties from external storage accounts.
#[derive(Clone, Debug)]
pub struct StorageClient {
    http: reqwest::Client,
}

/// Why a [`StorageClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageClientError {
    /// The extra CA is not a PEM certificate rustls accepts.
    #[error("the storage CA is not a usable PEM certificate")]
    Ca(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP client could not be set up.
    #[error("the storage HTTP client could not be built")]
    Http(#[source] reqwest::Error),
}

/// Why a blob's size could not be read. Never holds the SAS token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobSizeError {
    /// No answer: connection refused, TLS failure, timeout.
    #[error("the storage account could not be reached")]
    Unreachable(#[source] reqwest::Error),
    /// An answer other than 200 (`x-ms-error-code` when the storage gave one).
    #[error("the storage account answered {status} {code}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Azure Storage's error code, or empty.
        code: String,
    },
    /// A 200 without a numeric `Content-Length`.
    #[error("the storage account's answer has no Content-Length")]
    NoLength,
}

impl StorageClient {
    /// A client trusting the public web roots and, when given, every certificate in
    /// `extra_ca_pem`.
    ///
    /// ```
    /// let client = iothub_emulator::storage_client::StorageClient::new(None).unwrap();
    /// # drop(client);
    /// ```
    ///
    /// # Errors
    /// [`StorageClientError::Ca`] for a PEM without a usable certificate.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Self, StorageClientError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageClientError::Ca(Box::new(e)))?;
            if certs.is_empty() {
                return Err(StorageClientError::Ca("no certificate in the PEM".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| StorageClientError::Ca(Box::new(e)))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StorageClientError::Ca(Box::new(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(REQUEST_TIMEOUT)
            // Only the account's own host: never a proxy from the environment.
            .no_proxy()
            .build()
            .map_err(StorageClientError::Http)?;
        Ok(Self { http })
    }

    /// The size of `container/blob` in `account` (Get Blob Properties), signing a read token
    /// valid from `now`.
    ///
    /// # Errors
    /// [`BlobSizeError`]: unreachable, refused (with the storage's status and error code), or
    /// an answer without a length.
    pub async fn blob_size(
        &self,
        account: &StorageAccount,
        container: &str,
        blob: &str,
        now: SystemTime,
    ) -> Result<u64, BlobSizeError> {
        let token = blob_sas::sign(account, container, blob, "r", now + READ_TOKEN_LIFETIME);
        let url = format!("{}?{token}", blob_uri(&account.host_name, container, blob));
        let response = self
            .http
            .head(url)
            .header("x-ms-version", STORAGE_VERSION)
            .send()
            .await
            // The URL holds the token: keep the error's kind, not its URL.
            .map_err(|e| BlobSizeError::Unreachable(e.without_url()))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let code = response
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(BlobSizeError::Refused {
                status: status.as_u16(),
                code,
            });
        }
        response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or(BlobSizeError::NoLength)
    }
}
