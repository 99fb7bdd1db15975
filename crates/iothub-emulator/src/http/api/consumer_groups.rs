//! `GET/PUT/DELETE /eventHub/consumerGroups[/{name}]` (this emulator's own extension,
//! docs/rest-api.md): the consumer groups of the Event Hub-compatible endpoint
//!. A real hub manages them through Azure Resource Manager; here they are
//! service routes authorised by `ServiceConnect`, the right that reads events.
//!
//! - `GET /eventHub/consumerGroups`: `[{"name":"$Default"},…]`;
//! - `PUT /eventHub/consumerGroups/{name}`: creates it, 200 `{"name":…}`; 400 for an invalid
//!   name, 409 when it exists;
//! - `DELETE /eventHub/consumerGroups/{name}`: 204; 404 when it does not exist, 400 for
//!   `$Default`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, ApiState, Permission, Route};
use crate::hub::consumer_groups::ConsumerGroupError;

pub(crate) fn routes() -> Vec<Route> {
    let service = Some(Permission::ServiceConnect);
    vec![
        Route::new(Method::GET, "/eventHub/consumerGroups", service, list),
        Route::new(
            Method::PUT,
            "/eventHub/consumerGroups/{id}",
            service,
            create,
        ),
        Route::new(
            Method::DELETE,
            "/eventHub/consumerGroups/{id}",
            service,
            delete,
        ),
    ]
}

async fn list(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let names = s.hub.consumer_groups().await?;
    Ok(Json(Value::Array(
        names
            .into_iter()
            .map(|name| json!({ "name": name }))
            .collect(),
    )))
}

async fn create(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.hub.create_consumer_group(&name).await?;
    Ok(Json(json!({ "name": name })))
}

async fn delete(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.hub.delete_consumer_group(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<ConsumerGroupError> for ApiError {
    fn from(e: ConsumerGroupError) -> Self {
        // Every refusal is logged with its reason (names are not secrets).
        match &e {
            ConsumerGroupError::Store(_) => {}
            refusal => tracing::info!(reason = %refusal, "consumer group request refused"),
        }
        match e {
            ConsumerGroupError::InvalidName { .. } | ConsumerGroupError::DefaultCannotBeDeleted => {
                Self::bad_request(e.to_string())
            }
            ConsumerGroupError::AlreadyExists(_) => {
                Self::new(StatusCode::CONFLICT, 409_000, e.to_string())
            }
            ConsumerGroupError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, 404_000, e.to_string())
            }
            ConsumerGroupError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_their_statuses() {
        let status = |e| ApiError::from(e).status;
        assert_eq!(
            status(ConsumerGroupError::DefaultCannotBeDeleted),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(ConsumerGroupError::AlreadyExists("a".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(ConsumerGroupError::NotFound("a".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(ConsumerGroupError::InvalidName {
                name: "-".into(),
                reason: "r"
            }),
            StatusCode::BAD_REQUEST
        );
    }
}
