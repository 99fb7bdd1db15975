//! Module identities: `PUT/GET/DELETE /devices/{id}/modules/{mid}`, `GET /devices/{id}/modules`
//! (docs/protocol.md §10 "Modules"); same rules as devices.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use super::devices::{delete_identity, get_identity, put_identity};
use super::identity;
use super::{ApiError, ApiState, Permission, Route};

pub(crate) fn routes() -> Vec<Route> {
    let (read, write) = (
        Some(Permission::RegistryRead),
        Some(Permission::RegistryWrite),
    );
    vec![
        Route::new(Method::GET, "/devices/{id}/modules", read, list),
        Route::new(Method::PUT, "/devices/{id}/modules/{mid}", write, put),
        Route::new(Method::GET, "/devices/{id}/modules/{mid}", read, get),
        Route::new(Method::DELETE, "/devices/{id}/modules/{mid}", write, delete),
    ]
}

async fn list(
    State(s): State<ApiState>,
    Path(device): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let modules = s.hub.list_modules(&device).await?;
    Ok(Json(Value::Array(
        modules.iter().map(identity::view).collect(),
    )))
}

async fn put(
    State(s): State<ApiState>,
    Path((device, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    put_identity(&s, device, Some(module), &headers, &body).await
}

async fn get(
    State(s): State<ApiState>,
    Path((device, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_identity(&s, device, Some(module)).await
}

async fn delete(
    State(s): State<ApiState>,
    Path((device, module)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete_identity(&s, device, Some(module), &headers).await
}
