//! Twins: `GET/PATCH/PUT /twins/{id}` and `/twins/{id}/modules/{mid}` (PROTOCOL.md §10
//! "Twins"). The merge/replace, ETag and desired-notification logic is the twin domain's
//! ([`crate::hub::Hub::patch_twin`]); a changed desired section is pushed to a
//! connected, subscribed device there. Unknown identities are 404 (the domain would create a
//! fresh twin for any id).

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use serde_json::Value;

use super::body::{if_match, json_object};
use super::devices::c2d_depth;
use super::identity::{self, Facts};
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::auth::Identity;
use crate::hub::twin::{self, TwinDocument};
use crate::store::registry::{self, IdentityRecord};

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
    let (record, depth, doc) = s
        .hub
        .store()
        .call(move |tx| {
            let Some(record) = registry::find(tx, &who.device_id, who.module_id.as_deref())? else {
                return Ok(Err(ApiError::not_found(
                    &who.device_id,
                    who.module_id.as_deref(),
                )));
            };
            let doc = twin::read(
                tx,
                &who.device_id,
                who.module_id.as_deref(),
                SystemTime::now(),
            );
            let depth = c2d_depth(tx, &record);
            Ok(doc.map(|d| (record, depth, d)).map_err(ApiError::from))
        })
        .await??;
    Ok(Json(view(s, &record, depth, &doc)))
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
    let record = find(s, &who).await?;
    let update = if replace {
        s.hub.replace_twin(&who, body, if_match(headers)).await?
    } else {
        s.hub.patch_twin(&who, body, if_match(headers)).await?
    };
    let r = record.clone();
    let depth = s.hub.store().call(move |tx| Ok(c2d_depth(tx, &r))).await?;
    Ok(Json(view(s, &record, depth, &update.twin)))
}

async fn find(s: &ApiState, who: &Identity) -> Result<IdentityRecord, ApiError> {
    let who = who.clone();
    s.hub
        .store()
        .call(move |tx| {
            Ok(
                registry::find(tx, &who.device_id, who.module_id.as_deref())?
                    .ok_or_else(|| ApiError::not_found(&who.device_id, who.module_id.as_deref())),
            )
        })
        .await?
}

fn view(s: &ApiState, record: &IdentityRecord, depth: usize, doc: &TwinDocument) -> Value {
    let facts = Facts::of(&s.hub, record, depth);
    twin::service_view(doc, &identity::twin_identity(record, &facts))
}
