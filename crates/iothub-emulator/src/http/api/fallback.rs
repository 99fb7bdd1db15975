//! Every error the API answers in the hubs' error shape, including the ones axum produces
//! before a handler runs: a body over the size limit (413), a path that is not valid
//! percent-encoding (400), a method the route does not serve (405), a wrong content type
//! (415). A response of 400 or more without an `iothub-errorcode` header is one of those: its
//! plain-text reason becomes the message of an [`ApiError`] (docs/rest-api.md "Errors").

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The most of a framework error's plain-text reason that is kept as the message.
const MAX_REASON: usize = 1024;

/// Middleware (`axum::middleware::map_response`): rewrites framework errors into the hubs'
/// shape; every other response passes through untouched.
pub(crate) async fn iot_hub_error_shape(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 || response.headers().contains_key("iothub-errorcode") {
        return response;
    }
    let (_, body) = response.into_parts();
    let reason = axum::body::to_bytes(body, MAX_REASON)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let reason = if reason.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_owned()
    } else {
        reason
    };
    ApiError::new(status, generic_code(status), reason).into_response()
}

/// IoT Hub's error code for a framework-level failure of `status`.
fn generic_code(status: StatusCode) -> u32 {
    match status.as_u16() {
        // A malformed request line, path or header is an invalid argument, as elsewhere.
        400 => 400_004,
        404 => 404_000,
        405 => 405_000,
        413 => 413_000,
        415 => 415_000,
        s if s >= 500 => 500_001,
        // Any other client error keeps its status with the generic bad-request code.
        _ => 400_000,
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde_json::Value;

    use super::*;

    /// A framework-style plain-text response.
    fn plain(status: StatusCode, text: &'static str) -> Response {
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = status;
        r
    }

    async fn shaped_parts(response: Response) -> (StatusCode, String, Value) {
        let status = response.status();
        let name = response.headers()["iothub-errorcode"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let outer: Value = serde_json::from_slice(&body).unwrap();
        let inner = serde_json::from_str(outer["Message"].as_str().unwrap()).unwrap();
        (status, name, inner)
    }

    #[tokio::test]
    async fn plain_text_errors_get_the_hub_shape_and_header() {
        let shaped = iot_hub_error_shape(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit exceeded",
        ))
        .await;
        let (status, name, inner) = shaped_parts(shaped).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(name, "GenericRequestEntityTooLarge");
        assert_eq!(inner["errorCode"], 413_000);
        assert_eq!(inner["message"], "length limit exceeded");

        let (_, name, inner) =
            shaped_parts(iot_hub_error_shape(plain(StatusCode::METHOD_NOT_ALLOWED, "")).await)
                .await;
        assert_eq!(name, "GenericMethodNotAllowed");
        assert_eq!(inner["message"], "Method Not Allowed");
    }

    #[tokio::test]
    async fn hub_errors_and_successes_pass_through() {
        let ok = iot_hub_error_shape(plain(StatusCode::OK, "fine")).await;
        assert!(!ok.headers().contains_key("iothub-errorcode"));
        let hub = ApiError::not_found("d", None).into_response();
        let (_, name, inner) = shaped_parts(iot_hub_error_shape(hub).await).await;
        assert_eq!(
            (name.as_str(), inner["errorCode"].as_u64()),
            ("DeviceNotFound", Some(404_001))
        );
    }
}
