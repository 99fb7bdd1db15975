//! `GET /openapi.json`: the OpenAPI 3 description of this API, embedded at build time from
//! `openapi.json` next to this file. A test (`api/tests.rs`) fails when a served route is
//! missing from the document or the document names a route that is not served.

use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use super::Route;

/// The document.
pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::new(Method::GET, "/openapi.json", None, document)]
}

async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
