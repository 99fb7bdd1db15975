//! Registry: `PUT/GET/DELETE /devices/{id}`, `GET /devices` (docs/protocol.md §10 "Registry").
//!
//! Create is a `PUT` without `If-Match` (an existing id gives 409 `409001`); update is a `PUT`
//! with `If-Match: {etag}|*` (stale etag: 412). Omitted keys are generated (a choice,
//! docs/protocol.md §14; real hubs do the same in the portal). Disabling or deleting an
//! identity closes its live connection, as IoT Hub does. These rules are the hub's
//! ([`crate::hub::registry_ops`]); the module variants share these functions.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::body::{if_match, json_object};
use super::identity;
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::auth::Identity;

pub(crate) fn routes() -> Vec<Route> {
    let (read, write) = (
        Some(Permission::RegistryRead),
        Some(Permission::RegistryWrite),
    );
    vec![
        Route::new(Method::GET, "/devices", read, list),
        Route::new(Method::PUT, "/devices/{id}", write, put),
        Route::new(Method::GET, "/devices/{id}", read, get),
        Route::new(Method::DELETE, "/devices/{id}", write, delete),
    ]
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    top: Option<usize>,
}

async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let top = q.top.unwrap_or(1000);
    let devices = s.hub.list_devices(top).await?;
    Ok(Json(Value::Array(
        devices.iter().map(identity::view).collect(),
    )))
}

async fn put(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    put_identity(&s, id, None, &headers, &body).await
}

async fn get(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    get_identity(&s, id, None).await
}

async fn delete(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete_identity(&s, id, None, &headers).await
}

/// `PUT` of a device or module: create, or update with `If-Match`.
pub(crate) async fn put_identity(
    s: &ApiState,
    device: String,
    module: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let change = identity::parse_body(&json_object(body)?, &device, module.as_deref())?;
    let who = Identity {
        device_id: device,
        module_id: module,
    };
    let put = s.hub.put_identity(&who, change, if_match(headers)).await?;
    Ok(Json(identity::view(&put)))
}

/// `GET` of a device or module.
pub(crate) async fn get_identity(
    s: &ApiState,
    device: String,
    module: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let who = Identity {
        device_id: device,
        module_id: module,
    };
    Ok(Json(identity::view(&s.hub.get_identity(&who).await?)))
}

/// `DELETE` of a device (with its modules) or a module: identity, twins and C2D queues go,
/// live connections are closed. 204.
pub(crate) async fn delete_identity(
    s: &ApiState,
    device: String,
    module: Option<String>,
    headers: &HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = Identity {
        device_id: device,
        module_id: module,
    };
    s.hub.delete_identity(&who, if_match(headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}
