//! DPS enrollments (emulator extension, docs/rest-api.md "DPS enrollments"): individual
//! enrollments at `/enrollments/{id}` and enrollment groups at `/enrollmentGroups/{id}`, in
//! the DPS service API's JSON shape. Real DPS serves these on its own host with its own
//! policies; the emulator serves them next to the registry with the registry rights, so that
//! `iothub hub enrollment …` works through the API while an emulator owns the database.
//!
//! `PUT` without `If-Match` creates (an existing id gives 409); `PUT` with `If-Match` (any
//! value) updates `provisioningStatus`. Omitted keys are generated.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::body::{if_match, json_object, opt_str};
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::provisioning::{self as dps, DpsError, Enrollment, EnrollmentKind};
use crate::timestamp::iso8601_millis;

pub(crate) fn routes() -> Vec<Route> {
    let (read, write) = (
        Some(Permission::RegistryRead),
        Some(Permission::RegistryWrite),
    );
    vec![
        Route::new(Method::GET, "/enrollments", read, list_individual),
        Route::new(Method::PUT, "/enrollments/{id}", write, put_individual),
        Route::new(Method::GET, "/enrollments/{id}", read, get_individual),
        Route::new(
            Method::DELETE,
            "/enrollments/{id}",
            write,
            delete_individual,
        ),
        Route::new(Method::GET, "/enrollmentGroups", read, list_group),
        Route::new(Method::PUT, "/enrollmentGroups/{id}", write, put_group),
        Route::new(Method::GET, "/enrollmentGroups/{id}", read, get_group),
        Route::new(
            Method::DELETE,
            "/enrollmentGroups/{id}",
            write,
            delete_group,
        ),
    ]
}

const INDIVIDUAL: EnrollmentKind = EnrollmentKind::Individual;
const GROUP: EnrollmentKind = EnrollmentKind::Group;

async fn list_individual(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    list(&s, INDIVIDUAL).await
}
async fn list_group(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    list(&s, GROUP).await
}
async fn get_individual(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get(&s, INDIVIDUAL, id).await
}
async fn get_group(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get(&s, GROUP, id).await
}
async fn delete_individual(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&s, INDIVIDUAL, id).await
}
async fn delete_group(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&s, GROUP, id).await
}
async fn put_individual(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    put(&s, INDIVIDUAL, id, &headers, &body).await
}
async fn put_group(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    put(&s, GROUP, id, &headers, &body).await
}

async fn list(s: &ApiState, kind: EnrollmentKind) -> Result<Json<Value>, ApiError> {
    let (scope, all) = s
        .hub
        .store()
        .call(move |tx| Ok((dps::id_scope(tx), dps::enrollments(tx, kind))))
        .await?;
    let scope = scope.map_err(dps_error)?;
    let all = all.map_err(dps_error)?;
    let host = s.hub.host();
    Ok(Json(Value::Array(
        all.iter().map(|e| view(kind, e, &scope, host)).collect(),
    )))
}

async fn get(s: &ApiState, kind: EnrollmentKind, id: String) -> Result<Json<Value>, ApiError> {
    let (scope, found) = s
        .hub
        .store()
        .call(move |tx| Ok((dps::id_scope(tx), dps::enrollment(tx, kind, &id))))
        .await?;
    let scope = scope.map_err(dps_error)?;
    match found.map_err(dps_error)? {
        Some(e) => Ok(Json(view(kind, &e, &scope, s.hub.host()))),
        None => Err(dps_error(DpsError::NotFound)),
    }
}

async fn delete(s: &ApiState, kind: EnrollmentKind, id: String) -> Result<StatusCode, ApiError> {
    s.hub
        .store()
        .call(move |tx| Ok(dps::delete_enrollment(tx, kind, &id)))
        .await?
        .map_err(dps_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put(
    s: &ApiState,
    kind: EnrollmentKind,
    id: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let body = json_object(body)?;
    let enabled = match opt_str(&body, "provisioningStatus")? {
        None | Some("enabled") => true,
        Some("disabled") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "provisioningStatus must be enabled or disabled, not {other}"
            )));
        }
    };
    let keys = body
        .get("attestation")
        .and_then(|a| a.get("symmetricKey"))
        .cloned()
        .unwrap_or(Value::Null);
    let key = |name: &str| keys.get(name).and_then(Value::as_str).map(str::to_owned);
    let (primary, secondary) = (key("primaryKey"), key("secondaryKey"));
    let update = if_match(headers).is_some();
    let (scope, done) = s
        .hub
        .store()
        .call(move |tx| {
            let now = SystemTime::now();
            let done = if update {
                dps::set_enrollment_enabled(tx, kind, &id, enabled, now)
            } else {
                dps::create_enrollment(tx, kind, &id, primary.as_deref(), secondary.as_deref(), now)
                    .and_then(|_| match enabled {
                        true => Ok(()),
                        false => dps::set_enrollment_enabled(tx, kind, &id, false, now),
                    })
            };
            let done = done.and_then(|()| dps::enrollment(tx, kind, &id));
            Ok((dps::id_scope(tx), done))
        })
        .await?;
    let scope = scope.map_err(dps_error)?;
    match done.map_err(dps_error)? {
        Some(e) => Ok(Json(view(kind, &e, &scope, s.hub.host()))),
        None => Err(dps_error(DpsError::NotFound)),
    }
}

/// An enrollment in the DPS service API's field names.
fn view(kind: EnrollmentKind, e: &Enrollment, scope: &str, host: &str) -> Value {
    let id_field = match kind {
        EnrollmentKind::Individual => "registrationId",
        EnrollmentKind::Group => "enrollmentGroupId",
    };
    json!({
        id_field: e.id,
        "idScope": scope,
        "provisioningHost": host,
        "attestation": {
            "type": "symmetricKey",
            "symmetricKey": { "primaryKey": e.primary_key, "secondaryKey": e.secondary_key },
        },
        "provisioningStatus": if e.enabled { "enabled" } else { "disabled" },
        "createdDateTimeUtc": iso8601_millis(e.created),
        "lastUpdatedDateTimeUtc": iso8601_millis(e.updated),
    })
}

fn dps_error(e: DpsError) -> ApiError {
    match e {
        DpsError::AlreadyExists => {
            ApiError::new(StatusCode::CONFLICT, 409_000, "Enrollment already exists")
        }
        DpsError::NotFound => ApiError::new(StatusCode::NOT_FOUND, 404_000, "Enrollment not found"),
        DpsError::InvalidId => ApiError::bad_request(
            "Invalid id: 1-128 ASCII letters, digits and - . _ :, starting and ending with a letter or digit",
        ),
        DpsError::InvalidKey => {
            ApiError::bad_request("Invalid key: base64 of 16 to 64 bytes expected")
        }
        other => ApiError::internal(&other),
    }
}
