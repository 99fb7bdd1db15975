//! The IoT-Hub-compatible service REST API (docs/rest-api.md; docs/protocol.md §7 "Service side",
//! §10), served on the HTTPS port next to `/$iothub/websocket` and on the plain HTTP port.
//!
//! One file per resource (registry `devices`/`modules`, `twins`, `methods`, C2D `messages`,
//! telemetry `events`, `query`), plus `auth` (service SAS and policy rights), `error` (the
//! hubs' error body) and `openapi` (the served document). Handlers are thin: the twin, C2D,
//! method and registry logic lives in [`crate::hub`].
//!
//! Every route is declared once, as a [`Route`] in a resource's `routes()`; the router is built
//! from that table, and a test compares the table with `openapi.json`.

mod auth;
mod body;
mod connection_events;
mod devices;
mod enrollments;
mod error;
mod events;
mod fallback;
mod file_upload;
mod identity;
mod messages;
mod methods;
mod modules;
mod openapi;
mod query;
mod twins;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter};
use tokio::sync::watch;

pub(crate) use self::auth::Permission;
pub(crate) use self::error::ApiError;
use crate::hub::Hub;

/// What every handler sees; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    pub(crate) hub: Hub,
    /// Becomes `true` when the emulator stops: never-ending responses (SSE) end then, so
    /// graceful shutdown does not wait for them forever. `None`: never.
    pub(crate) shutdown: Option<watch::Receiver<bool>>,
}

/// One served operation: method, path (axum and OpenAPI share the `{param}` syntax), the
/// policy right it needs (`None` = anonymous) and its handler.
pub(crate) struct Route {
    // Read by the OpenAPI conformance test; the handler already carries the method filter.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) permission: Option<Permission>,
    handler: MethodRouter<ApiState>,
}

impl Route {
    /// A route answering `method` on `path` with `handler` after checking `permission`.
    pub(crate) fn new<H, T>(
        method: Method,
        path: &'static str,
        permission: Option<Permission>,
        handler: H,
    ) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        // invariant: only the standard methods below are used in the route tables, and each
        // has a MethodFilter.
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        Self {
            method,
            path,
            permission,
            handler: axum::routing::on(filter, handler),
        }
    }
}

/// Every route of the API, in documentation order.
pub(crate) fn routes() -> Vec<Route> {
    let mut all = Vec::new();
    all.extend(devices::routes());
    all.extend(connection_events::routes());
    all.extend(modules::routes());
    all.extend(query::routes());
    all.extend(twins::routes());
    all.extend(methods::routes());
    all.extend(messages::routes());
    all.extend(events::routes());
    all.extend(enrollments::routes());
    all.extend(file_upload::routes());
    all.extend(openapi::routes());
    all
}

/// The API router for `hub` (the same hub the device transports use, so method responses
/// reach the waiting REST caller). Its event streams never end on their own; a server with
/// graceful shutdown uses [`router_with_shutdown`].
#[cfg(test)]
pub(crate) fn router(hub: Hub) -> Router {
    build(hub, None)
}

/// [`router`] whose event streams end when `shutdown` becomes `true` (or its sender is
/// dropped), so graceful shutdown does not wait for them forever.
pub(crate) fn router_with_shutdown(hub: Hub, shutdown: watch::Receiver<bool>) -> Router {
    build(hub, Some(shutdown))
}

fn build(hub: Hub, shutdown: Option<watch::Receiver<bool>>) -> Router {
    let state = ApiState { hub, shutdown };
    let mut router = Router::new();
    for route in routes() {
        let handler = match route.permission {
            Some(needed) => route.handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), needed),
                auth::require,
            )),
            None => route.handler,
        };
        router = router.route(route.path, handler);
    }
    router
        .fallback(not_found)
        .layer(middleware::map_response(fallback::iot_hub_error_shape))
        .with_state(state)
}

/// Unknown paths: 404 in the hubs' error shape.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        404_000,
        format!("No route for {}", uri.path()),
    )
}

#[cfg(test)]
mod tests;
