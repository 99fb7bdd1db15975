//! File upload on the hub (docs/file-upload.md): a device's two requests — a SAS URI for a
//! blob, then the outcome — authenticated with the device's own credentials, the uploads a
//! service lists, and the queue of file upload notifications the AMQP adapter drains
//! (`/messages/serviceBound/filenotifications`) and the REST event stream follows.
//!
//! The notification queue is in the store, written in the transaction that records the
//! upload's outcome, so a restarted hub still holds the notifications nobody took. Only
//! successful uploads notify, as on a real hub with notifications on.

use tokio::sync::{broadcast, watch};

use super::Hub;
use super::auth::{self, ConnectCredentials, Identity};
use super::file_upload::{
    self, FileNotification, FileUpload, FileUploadError, FileUploadOptions, FileUploadStorage,
    SasUri, StorageAccount, UploadOutcome,
};
use super::handle::HubError;
use crate::store::blobs::BlobStore;
use crate::store::file_uploads;
use crate::timestamp::unix_millis;

/// Capacity of the live feed of notifications (the SSE stream); a slow reader lags.
const NOTIFICATION_FEED_CAPACITY: usize = 256;

/// The hub's file-upload state: its options, and the signals of the notification queue (the
/// queue itself is in the store).
#[derive(Debug)]
pub(super) struct FileUploads {
    options: FileUploadOptions,
    changed: watch::Sender<u64>,
    feed: broadcast::Sender<FileNotification>,
}

impl FileUploads {
    pub(super) fn new(options: FileUploadOptions) -> Self {
        Self {
            options,
            changed: watch::channel(0).0,
            feed: broadcast::channel(NOTIFICATION_FEED_CAPACITY).0,
        }
    }

    /// Announces a notification the store has queued.
    fn queued(&self, notification: FileNotification) {
        // Nobody following is fine.
        let _ = self.feed.send(notification);
        self.bump();
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Hub {
    /// How file upload is set up.
    #[must_use]
    pub fn file_upload_options(&self) -> &FileUploadOptions {
        &self.inner.file_uploads.options
    }

    /// The built-in blob endpoint's account and store, when the hub uses it.
    #[must_use]
    pub fn built_in_blobs(&self) -> Option<(&StorageAccount, &BlobStore)> {
        match &self.inner.file_uploads.options.storage {
            FileUploadStorage::BuiltIn { account, blobs } => Some((account, blobs.as_ref())),
            _ => None,
        }
    }

    /// Authenticates a device's HTTPS request: `authorization` (the `Authorization` header)
    /// must be a SAS token for `identity`, checked as at CONNECT ([`auth::authenticate`]).
    /// A refusal is logged with its reason.
    ///
    /// # Errors
    /// [`FileUploadError::Refused`] or [`FileUploadError::Store`].
    pub async fn authenticate_device_request(
        &self,
        identity: &Identity,
        authorization: Option<&str>,
    ) -> Result<Identity, FileUploadError> {
        let names = self.inner.names.clone();
        let client_id = identity.client_id();
        // The request names the identity in its path; the username form lets one
        // authentication path serve MQTT and HTTPS alike.
        let username = format!("{}/{client_id}/?api-version=2021-04-12", self.host());
        let password = authorization.map(str::to_owned);
        let now = self.now_unix_secs();
        let outcome = self
            .inner
            .store
            .call(move |tx| {
                let creds = ConnectCredentials {
                    client_id: &client_id,
                    username: Some(&username),
                    password: password.as_deref(),
                    thumbprints: None,
                };
                auth::authenticate(tx, &names, creds, now)
            })
            .await?;
        match outcome {
            Ok(authed) => Ok(authed.identity),
            Err(reason) => {
                tracing::info!(identity = %identity, %reason, "file upload request refused");
                Err(FileUploadError::Refused(reason))
            }
        }
    }

    /// `POST /devices/{id}/files`: authenticates the device and hands out a SAS URI for
    /// `{deviceId}/{blob_name}`. `reached_host` is the host (and port) the device reached the
    /// hub at: the built-in blob endpoint is served there.
    ///
    /// # Errors
    /// [`FileUploadError`]: refused credentials, no storage, bad name, too many uploads.
    pub async fn create_file_upload(
        &self,
        identity: &Identity,
        authorization: Option<&str>,
        blob_name: &str,
        reached_host: &str,
    ) -> Result<SasUri, FileUploadError> {
        let identity = self
            .authenticate_device_request(identity, authorization)
            .await?;
        let options = self.inner.file_uploads.options.clone();
        let (account, host_name) = match &options.storage {
            FileUploadStorage::None => {
                tracing::info!(identity = %identity, "file upload refused: no storage configured");
                return Err(FileUploadError::NoStorage);
            }
            FileUploadStorage::BuiltIn { account, .. } => (
                account.clone(),
                format!("{reached_host}/{}", file_upload::BUILTIN_ACCOUNT),
            ),
            FileUploadStorage::External(account) => (account.clone(), account.host_name.clone()),
        };
        let name = blob_name.to_owned();
        let now = self.now();
        let who = identity.clone();
        let created = self
            .inner
            .store
            .call(move |tx| {
                Ok(file_upload::create(
                    tx, &who, &name, &account, &host_name, &options, now,
                ))
            })
            .await?;
        match &created {
            Ok(sas) => tracing::info!(
                identity = %identity,
                blob = %sas.blob_name,
                correlation_id = %sas.correlation_id,
                "file upload started"
            ),
            Err(reason) => tracing::info!(identity = %identity, %reason, "file upload refused"),
        }
        created
    }

    /// `POST /devices/{id}/files/notifications`: authenticates the device and records the
    /// outcome of its upload; a success queues a [`FileNotification`] (with the blob's size
    /// when the built-in endpoint holds it).
    ///
    /// # Errors
    /// [`FileUploadError`]: refused credentials, unknown, completed or expired correlation.
    pub async fn complete_file_upload(
        &self,
        identity: &Identity,
        authorization: Option<&str>,
        outcome: UploadOutcome,
    ) -> Result<FileUpload, FileUploadError> {
        let identity = self
            .authenticate_device_request(identity, authorization)
            .await?;
        let now = self.now();
        // A failed upload has no blob to measure (and its storage may be the reason it failed).
        let size = if outcome.is_success {
            self.uploaded_blob_size(&identity, &outcome.correlation_id)
                .await?
        } else {
            None
        };
        let who = identity.clone();
        let reported = outcome.clone();
        let finished = self
            .inner
            .store
            .call(move |tx| Ok(file_upload::finish(tx, &who, &reported, size, now)))
            .await?;
        match finished {
            Ok((stored, notification)) => {
                tracing::info!(
                    identity = %identity,
                    correlation_id = %outcome.correlation_id,
                    success = outcome.is_success,
                    status = outcome.status_code,
                    "file upload finished"
                );
                if let Some(n) = notification {
                    self.inner.file_uploads.queued(n);
                }
                Ok(FileUpload::at(stored, unix_millis(now)))
            }
            Err(reason) => {
                tracing::info!(identity = %identity, %reason, "file upload notification refused");
                Err(reason)
            }
        }
    }

    /// The size of the blob behind the device's correlation as its storage reports it, for
    /// the notification: read before the transaction, since file system and network calls
    /// have no place on the database thread. `None` when there is no such upload (the
    /// transaction then refuses it) or the storage cannot say; that is logged, and the
    /// notification says 0 bytes.
    async fn uploaded_blob_size(
        &self,
        identity: &Identity,
        correlation_id: &str,
    ) -> Result<Option<u64>, FileUploadError> {
        let options = &self.inner.file_uploads.options;
        if matches!(options.storage, FileUploadStorage::None) {
            return Ok(None);
        }
        let id = correlation_id.to_owned();
        let upload = self
            .inner
            .store
            .call(move |tx| file_uploads::find(tx, &id))
            .await?;
        let Some(upload) = upload.filter(|u| u.device_id == identity.device_id) else {
            return Ok(None);
        };
        Ok(match (&options.storage, &options.storage_client) {
            (FileUploadStorage::BuiltIn { blobs, .. }, _) => {
                blobs.size(&upload.container, &upload.blob_name).await
            }
            (FileUploadStorage::External(account), Some(client)) => {
                match client
                    .blob_size(account, &upload.container, &upload.blob_name, self.now())
                    .await
                {
                    Ok(size) => Some(size),
                    Err(reason) => {
                        tracing::warn!(
                            identity = %identity,
                            correlation_id,
                            blob = %upload.blob_name,
                            reason = %reason,
                            // reqwest's error without its URL, which held the read token.
                            cause = ?std::error::Error::source(&reason),
                            "the uploaded blob's size could not be read from the storage account: the notification says 0 bytes"
                        );
                        None
                    }
                }
            }
            _ => None,
        })
    }

    /// The device's uploads (its modules' included), newest first, at most `limit`.
    ///
    /// # Errors
    /// [`HubError::Store`].
    pub async fn list_file_uploads(
        &self,
        device_id: &str,
        limit: usize,
    ) -> Result<Vec<FileUpload>, HubError> {
        let device_id = device_id.to_owned();
        let now_ms = unix_millis(self.now());
        let rows = self
            .inner
            .store
            .call(move |tx| file_uploads::list(tx, &device_id, limit))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| FileUpload::at(r, now_ms))
            .collect())
    }

    /// A read-only SAS URL of an upload's blob valid for the SAS lifetime (the dashboard's
    /// download link); `None` without storage.
    #[must_use]
    pub fn file_download_url(&self, upload: &FileUpload) -> Option<String> {
        let options = &self.inner.file_uploads.options;
        let account = match &options.storage {
            FileUploadStorage::None => return None,
            FileUploadStorage::BuiltIn { account, .. } | FileUploadStorage::External(account) => {
                account
            }
        };
        let token = file_upload::blob_sas::sign(
            account,
            &upload.stored.container,
            &upload.stored.blob_name,
            "r",
            self.now() + options.sas_ttl,
        );
        Some(format!("{}?{token}", upload.blob_uri()))
    }

    /// Takes up to `max` file upload notifications, oldest first (they leave the queue).
    ///
    /// # Errors
    /// [`HubError::Store`].
    pub async fn take_file_notifications(
        &self,
        max: usize,
    ) -> Result<Vec<FileNotification>, HubError> {
        let taken = self
            .inner
            .store
            .call(move |tx| file_uploads::take_notifications(tx, max))
            .await?;
        Ok(taken
            .into_iter()
            .map(FileNotification::from_stored)
            .collect())
    }

    /// Puts notifications taken earlier back at the front of the queue, in their order (a
    /// peek-lock that was released or a link that closed before settling).
    ///
    /// # Errors
    /// [`HubError::Store`].
    pub async fn return_file_notifications(
        &self,
        notifications: Vec<FileNotification>,
    ) -> Result<(), HubError> {
        if notifications.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = notifications
            .iter()
            .map(FileNotification::to_stored)
            .collect();
        self.inner
            .store
            .call(move |tx| file_uploads::return_notifications(tx, &rows))
            .await?;
        self.inner.file_uploads.bump();
        Ok(())
    }

    /// A receiver whose value is bumped on every new (or returned) notification, so a link
    /// can wait for one without polling.
    #[must_use]
    pub fn file_notifications_changed(&self) -> watch::Receiver<u64> {
        self.inner.file_uploads.changed.subscribe()
    }

    /// Every notification from now on, as it is queued (the REST event stream); a reader
    /// that falls behind sees `Lagged`. Reading the feed takes nothing from the queue.
    #[must_use]
    pub fn follow_file_notifications(&self) -> broadcast::Receiver<FileNotification> {
        self.inner.file_uploads.feed.subscribe()
    }
}
