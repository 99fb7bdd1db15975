//! File upload over HTTPS (docs/file-upload.md, docs/rest-api.md "File upload"):
//!
//! - `POST /devices/{id}/files` (and `/devices/{id}/modules/{mid}/files`), device SAS in
//!   `Authorization`, body `{"blobName": "…"}`: 200 with `{correlationId, hostName,
//!   containerName, blobName, sasToken}` as IoT Hub's "Create File Upload Sas Uri";
//! - `POST /devices/{id}/files/notifications` (and the module form), body
//!   `{correlationId, isSuccess, statusCode, statusDescription}`: 204, as IoT Hub's "Update
//!   File Upload Status";
//! - `GET /devices/{id}/files` — **our extension**, service token with RegistryRead: the
//!   device's uploads, newest first, each with a read-only `downloadUrl`.
//!
//! The device routes are anonymous in the route table: the device's own SAS token is checked
//! by the hub ([`crate::hub::Hub::authenticate_device_request`]), as at CONNECT.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, ApiState, Permission, Route};
use crate::hub::auth::Identity;
use crate::hub::file_upload::{self, FileUploadError};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/devices/{id}/files", None, device_sas),
        Route::new(
            Method::POST,
            "/devices/{id}/modules/{mid}/files",
            None,
            module_sas,
        ),
        Route::new(
            Method::POST,
            "/devices/{id}/files/notifications",
            None,
            device_notification,
        ),
        Route::new(
            Method::POST,
            "/devices/{id}/modules/{mid}/files/notifications",
            None,
            module_notification,
        ),
        Route::new(
            Method::GET,
            "/devices/{id}/files",
            Some(Permission::RegistryRead),
            list,
        ),
    ]
}

impl From<FileUploadError> for ApiError {
    fn from(e: FileUploadError) -> Self {
        match e {
            // The reason is in the hub's log; the caller learns only that it was refused, as
            // at CONNECT.
            FileUploadError::Refused(_) => Self::unauthorized("Unauthorized"),
            FileUploadError::NoStorage => Self::new(
                StatusCode::BAD_REQUEST,
                400_022,
                "File upload is not configured: the hub has no storage account",
            ),
            FileUploadError::TooManyUploads { .. } => {
                Self::new(StatusCode::FORBIDDEN, 403_006, e.to_string())
            }
            FileUploadError::Store(e) => e.into(),
            other => Self::bad_request(other.to_string()),
        }
    }
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The host (and port) the device reached the hub at: where the built-in blob endpoint is.
fn reached_host(s: &ApiState, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .map_or_else(|| s.hub.host().to_owned(), str::to_owned)
}

async fn sas(
    s: &ApiState,
    identity: Identity,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    // Credentials before the body: a stranger learns nothing from a malformed one.
    let auth = authorization(headers);
    s.hub
        .authenticate_device_request(&identity, auth.as_deref())
        .await?;
    let name = file_upload::parse_sas_request(body).inspect_err(|reason| {
        tracing::info!(identity = %identity, %reason, "file upload request refused");
    })?;
    let host = reached_host(s, headers);
    let sas = s
        .hub
        .create_file_upload(&identity, auth.as_deref(), &name, &host)
        .await?;
    Ok(Json(sas.to_json()))
}

async fn notification(
    s: &ApiState,
    identity: Identity,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<StatusCode, ApiError> {
    let auth = authorization(headers);
    s.hub
        .authenticate_device_request(&identity, auth.as_deref())
        .await?;
    let outcome = file_upload::parse_outcome(body).inspect_err(|reason| {
        tracing::info!(identity = %identity, %reason, "file upload notification refused");
    })?;
    s.hub
        .complete_file_upload(&identity, auth.as_deref(), outcome)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn device(id: String) -> Identity {
    Identity {
        device_id: id,
        module_id: None,
    }
}

fn module((id, mid): (String, String)) -> Identity {
    Identity {
        device_id: id,
        module_id: Some(mid),
    }
}

async fn device_sas(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    sas(&s, device(id), &headers, &body).await
}

async fn module_sas(
    State(s): State<ApiState>,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    sas(&s, module(ids), &headers, &body).await
}

async fn device_notification(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    notification(&s, device(id), &headers, &body).await
}

async fn module_notification(
    State(s): State<ApiState>,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    notification(&s, module(ids), &headers, &body).await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    top: Option<usize>,
}

async fn list(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let uploads = s
        .hub
        .list_file_uploads(&id, q.top.unwrap_or(100).clamp(1, 1000))
        .await?;
    let views = uploads
        .iter()
        .map(|u| {
            let mut v = u.to_json();
            v["downloadUrl"] = s.hub.file_download_url(u).map_or(Value::Null, Value::from);
            v
        })
        .collect();
    Ok(Json(Value::Array(views)))
}
