//! `GET /devices/{id}/connectionEvents` (this emulator's own extension, docs/rest-api.md): the
//! device's last connects, disconnects and refusals, oldest first, with the reason each
//! connection closed or was refused. The dashboard shows them beside the device.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use serde_json::Value;

use super::{ApiState, Permission, Route};

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/devices/{id}/connectionEvents",
        Some(Permission::RegistryRead),
        list,
    )]
}

async fn list(State(s): State<ApiState>, Path(id): Path<String>) -> Json<Value> {
    let events = s.hub.connection_events(&id);
    Json(Value::Array(events.iter().map(|e| e.to_json()).collect()))
}
