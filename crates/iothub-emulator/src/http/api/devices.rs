//! Registry: `PUT/GET/DELETE /devices/{id}`, `GET /devices` (PROTOCOL.md §10 "Registry").
//!
//! Create is a `PUT` without `If-Match` (an existing id gives 409 `409001`); update is a `PUT`
//! with `If-Match: {etag}|*` (stale etag: 412). Omitted keys are generated (UNCONFIRMED in the
//! REST text; real hubs do the same in the portal). Disabling or deleting an identity closes
//! its live connection, as IoT Hub does. The module variants share these functions.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::body::{if_match, json_object};
use super::identity::{self, Facts, IdentityBody};
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::c2d;
use crate::hub::registry::{self as reg, NewIdentity};
use crate::hub::twin;
use crate::store::registry::{self, IdentityRecord, Status};
use crate::timestamp::unix_millis;

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
    let rows = s
        .hub
        .store()
        .call(move |tx| {
            let mut out = Vec::new();
            for r in registry::list(tx)?
                .into_iter()
                .filter(|r| r.module_id.is_none())
                .take(top)
            {
                let depth = c2d_depth(tx, &r);
                out.push((r, depth));
            }
            Ok(out)
        })
        .await?;
    let devices = rows
        .iter()
        .map(|(r, depth)| identity::view(r, &Facts::of(&s.hub, r, *depth)));
    Ok(Json(Value::Array(devices.collect())))
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
    let parsed = IdentityBody::parse(&json_object(body)?, &device, module.as_deref())?;
    identity::check_keys(&parsed)?;
    let condition = if_match(headers);
    let (record, depth) = s
        .hub
        .store()
        .call(move |tx| {
            Ok(match registry::find(tx, &device, module.as_deref())? {
                None if condition.as_deref().is_some_and(|c| c != "*") => {
                    Err(ApiError::not_found(&device, module.as_deref()))
                }
                None => create(tx, device, module, parsed).map(|r| (r, 0)),
                Some(_) if condition.is_none() => {
                    Err(ApiError::already_exists(&device, module.as_deref()))
                }
                Some(r) if !identity::matches(&r, condition.as_deref()) => {
                    Err(ApiError::precondition_failed())
                }
                Some(mut r) => {
                    identity::update(tx, &mut r, parsed)?;
                    let depth = c2d_depth(tx, &r);
                    Ok((r, depth))
                }
            })
        })
        .await??;
    if record.status == Status::Disabled {
        s.hub.close_connection(&identity::identity_of(&record));
    }
    Ok(Json(identity::view(
        &record,
        &Facts::of(&s.hub, &record, depth),
    )))
}

/// `GET` of a device or module.
pub(crate) async fn get_identity(
    s: &ApiState,
    device: String,
    module: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let (record, depth) = s
        .hub
        .store()
        .call(move |tx| {
            Ok(match registry::find(tx, &device, module.as_deref())? {
                None => Err(ApiError::not_found(&device, module.as_deref())),
                Some(r) => {
                    let depth = c2d_depth(tx, &r);
                    Ok((r, depth))
                }
            })
        })
        .await??;
    Ok(Json(identity::view(
        &record,
        &Facts::of(&s.hub, &record, depth),
    )))
}

/// `DELETE` of a device (with its modules) or a module: identity, twins and C2D queues go,
/// live connections are closed. 204.
pub(crate) async fn delete_identity(
    s: &ApiState,
    device: String,
    module: Option<String>,
    headers: &HeaderMap,
) -> Result<StatusCode, ApiError> {
    let condition = if_match(headers);
    let removed = s
        .hub
        .store()
        .call(move |tx| {
            let Some(record) = registry::find(tx, &device, module.as_deref())? else {
                return Ok(Err(ApiError::not_found(&device, module.as_deref())));
            };
            if !identity::matches(&record, condition.as_deref()) {
                return Ok(Err(ApiError::precondition_failed()));
            }
            let mut removed: Vec<IdentityRecord> = match &module {
                Some(_) => vec![record],
                None => registry::list(tx)?
                    .into_iter()
                    .filter(|r| r.device_id == device)
                    .collect(),
            };
            removed.sort_by(|a, b| a.module_id.cmp(&b.module_id));
            registry::delete(tx, &device, module.as_deref())?;
            if twin::delete(tx, &device, module.as_deref()).is_err() {
                return Err(crate::store::StoreError::Corrupt("twin delete failed"));
            }
            for r in &removed {
                if c2d::purge(tx, &r.device_id, r.module_id.as_deref(), SystemTime::now()).is_err()
                {
                    return Err(crate::store::StoreError::Corrupt("c2d purge failed"));
                }
            }
            Ok(Ok(removed))
        })
        .await??;
    for r in &removed {
        s.hub.close_connection(&identity::identity_of(r));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an identity from a parsed `PUT` body.
fn create(
    tx: &rusqlite::Connection,
    device_id: String,
    module_id: Option<String>,
    body: IdentityBody,
) -> Result<IdentityRecord, ApiError> {
    let mut new = NewIdentity {
        device_id,
        module_id,
        disabled: body.status == Some(Status::Disabled),
        ..NewIdentity::default()
    };
    match &body.credentials {
        Some(identity::Credentials::Sas {
            primary_key,
            secondary_key,
        }) => {
            new.primary_key.clone_from(primary_key);
            new.secondary_key.clone_from(secondary_key);
        }
        Some(identity::Credentials::SelfSigned {
            primary_thumbprint, ..
        }) => {
            new.x509_thumbprint = Some(primary_thumbprint.clone());
        }
        None => {}
    }
    let (device, module) = (new.device_id.clone(), new.module_id.clone());
    let mut record = reg::create(tx, new, unix_millis(SystemTime::now())).map_err(|e| match e {
        reg::RegistryError::NotFound => ApiError::not_found(&device, None),
        reg::RegistryError::AlreadyExists => ApiError::already_exists(&device, module.as_deref()),
        other => other.into(),
    })?;
    // The secondary thumbprint is not part of `NewIdentity`; set it in place.
    if let Some(identity::Credentials::SelfSigned {
        secondary_thumbprint: Some(_),
        ..
    }) = &body.credentials
    {
        identity::update(tx, &mut record, body)?;
    }
    Ok(record)
}

/// The identity's waiting C2D messages; 0 if the queue cannot be read (a view detail).
pub(crate) fn c2d_depth(tx: &rusqlite::Connection, r: &IdentityRecord) -> usize {
    c2d::queue_depth(tx, &r.device_id, r.module_id.as_deref(), SystemTime::now()).unwrap_or(0)
}
