//! Direct methods: `POST /twins/{id}/methods` and `/twins/{id}/modules/{mid}/methods`
//! (docs/protocol.md §7 "Service side"): 200 `{"status":…,"payload":…}`, 404 `404103` when the
//! device is not connected and subscribed within `connectTimeoutInSeconds`, 504 `504101`
//! after `responseTimeoutInSeconds`. An identity missing from the registry is 404 `404001`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use bytes::Bytes;
use serde_json::Value;

use super::body::json;
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::auth::Identity;
use crate::hub::methods::MethodCall;

pub(crate) fn routes() -> Vec<Route> {
    let service = Some(Permission::ServiceConnect);
    vec![
        Route::new(Method::POST, "/twins/{id}/methods", service, device),
        Route::new(
            Method::POST,
            "/twins/{id}/modules/{mid}/methods",
            service,
            module,
        ),
    ]
}

async fn device(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    invoke(
        &s,
        Identity {
            device_id: id,
            module_id: None,
        },
        &body,
    )
    .await
}

async fn module(
    State(s): State<ApiState>,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    invoke(
        &s,
        Identity {
            device_id: id,
            module_id: Some(mid),
        },
        &body,
    )
    .await
}

async fn invoke(s: &ApiState, who: Identity, body: &[u8]) -> Result<Json<Value>, ApiError> {
    let call = MethodCall::from_json(&json(body)?)?;
    let result = s.hub.call_registered_method(&who, call).await?;
    Ok(Json(result.to_json()))
}
