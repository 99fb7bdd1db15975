//! Twins: `GET/PATCH/PUT /twins/{id}` and `/twins/{id}/modules/{mid}` (docs/protocol.md §10
//! "Twins"). The merge/replace, ETag and desired-notification logic is the hub's
//! ([`crate::hub::Hub::write_twin`]); a changed desired section is pushed to a connected,
//! subscribed device there. Unknown identities are 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use serde_json::Value;

use super::body::{if_match, json_object};
use super::identity;
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::auth::Identity;
use crate::hub::twin;
use crate::hub::twin_ops::{ServiceTwin, TwinWrite};

pub(crate) fn routes() -> Vec<Route> {
    let service = Some(Permission::ServiceConnect);
    vec![
        Route::new(Method::GET, "/twins/{id}", service, get_device),
        Route::new(Method::PATCH, "/twins/{id}", service, patch_device),
        Route::new(Method::PUT, "/twins/{id}", service, put_device),
        Route::new(
            Method::GET,
            "/twins/{id}/modules/{mid}",
            service,
            get_module,
        ),
        Route::new(
            Method::PATCH,
            "/twins/{id}/modules/{mid}",
            service,
            patch_module,
        ),
        Route::new(
            Method::PUT,
            "/twins/{id}/modules/{mid}",
            service,
            put_module,
        ),
    ]
}

async fn get_device(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(
        &s,
        Identity {
            device_id: id,
            module_id: None,
        },
    )
    .await
}

async fn get_module(
    State(s): State<ApiState>,
    Path((id, mid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    read(
        &s,
        Identity {
            device_id: id,
            module_id: Some(mid),
        },
    )
    .await
}

async fn patch_device(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change(
        &s,
        Identity {
            device_id: id,
            module_id: None,
        },
        &headers,
        &body,
        false,
    )
    .await
}

async fn put_device(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change(
        &s,
        Identity {
            device_id: id,
            module_id: None,
        },
        &headers,
        &body,
        true,
    )
    .await
}

async fn patch_module(
    State(s): State<ApiState>,
    Path((id, mid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change(
        &s,
        Identity {
            device_id: id,
            module_id: Some(mid),
        },
        &headers,
        &body,
        false,
    )
    .await
}

async fn put_module(
    State(s): State<ApiState>,
    Path((id, mid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change(
        &s,
        Identity {
            device_id: id,
            module_id: Some(mid),
        },
        &headers,
        &body,
        true,
    )
    .await
}

/// The twin's service view (identity facts + document).
async fn read(s: &ApiState, who: Identity) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.hub.read_twin(&who).await?)))
}

/// `PATCH` (merge) or `PUT` (replace); malformed bodies are 400 before anything changes.
async fn change(
    s: &ApiState,
    who: Identity,
    headers: &HeaderMap,
    body: &[u8],
    replace: bool,
) -> Result<Json<Value>, ApiError> {
    let body = Value::Object(json_object(body)?);
    let how = if replace {
        TwinWrite::Replace
    } else {
        TwinWrite::Merge
    };
    let written = s.hub.write_twin(&who, body, if_match(headers), how).await?;
    Ok(Json(view(&written)))
}

fn view(t: &ServiceTwin) -> Value {
    twin::service_view(&t.document, &identity::twin_identity(&t.identity))
}
