//! `ApiError`: every REST failure, answered in the real hubs' error shape (docs/protocol.md §10
//! "Error body shape"):
//! `{"Message":"{\"errorCode\":404001,\"trackingId\":…,\"message\":…,\"timestampUtc\":…}","ExceptionMessage":""}`.
//!
//! The inner object is itself a JSON *string* inside `Message`, exactly as IoT Hub sends it;
//! the numeric `errorCode` is also sent as the `iothub-errorcode` header (by name where IoT
//! Hub has one). Details of 5xx failures are logged, never sent.

use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::hub::HubError;
use crate::hub::c2d::C2dError;
use crate::hub::methods::MethodError;
use crate::hub::registry::RegistryError;
use crate::hub::twin::TwinError;
use crate::store::StoreError;
use crate::timestamp::iso8601_millis;

/// A REST failure: HTTP status, IoT Hub error code, message and optional `info`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: u32,
    pub(crate) message: String,
    pub(crate) info: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            info: None,
        }
    }

    /// 400 `400004 ArgumentInvalid`: a malformed body, query or header.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400_004, message)
    }

    /// 401 `401002 IotHubUnauthorizedAccess`.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 401_002, message)
    }

    /// 404 `404001 DeviceNotFound` (or `404010 ModuleNotFound` for a module).
    pub(crate) fn not_found(device_id: &str, module_id: Option<&str>) -> Self {
        match module_id {
            Some(m) => Self::new(
                StatusCode::NOT_FOUND,
                404_010,
                format!("Module {m} on device {device_id} not found"),
            ),
            None => Self::new(
                StatusCode::NOT_FOUND,
                404_001,
                format!("Device {device_id} not found"),
            ),
        }
    }

    /// 409 `409001 DeviceAlreadyExists` / `409301 ModuleAlreadyExistsOnDevice`.
    pub(crate) fn already_exists(device_id: &str, module_id: Option<&str>) -> Self {
        match module_id {
            Some(m) => Self::new(
                StatusCode::CONFLICT,
                409_301,
                format!("Module {m} already exists on device {device_id}"),
            ),
            None => Self::new(
                StatusCode::CONFLICT,
                409_001,
                format!("Device {device_id} already exists"),
            ),
        }
    }

    /// 412 `412002 PreconditionFailed`: the `If-Match` ETag is stale.
    pub(crate) fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            412_002,
            "Precondition failed: the ETag does not match",
        )
    }

    /// 500 `500001 ServerError`; the cause is logged here and not sent.
    pub(crate) fn internal(cause: &dyn std::fmt::Debug) -> Self {
        tracing::error!(?cause, "REST request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            500_001,
            "Internal server error",
        )
    }

    /// The JSON body as IoT Hub writes it.
    pub(crate) fn body(&self) -> Value {
        let mut inner = json!({
            "errorCode": self.code,
            "trackingId": crate::hub::ids::uuid_v4().replace('-', "").to_ascii_uppercase(),
            "message": self.message,
            "timestampUtc": iso8601_millis(SystemTime::now()),
        });
        if let Some(info) = &self.info {
            inner["info"] = info.clone();
        }
        json!({ "Message": inner.to_string(), "ExceptionMessage": "" })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Ok(v) = HeaderValue::from_str(error_name(self.code)) {
            response.headers_mut().insert("iothub-errorcode", v);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::InvalidId => Self::bad_request("Invalid device or module id"),
            RegistryError::InvalidKey => Self::bad_request("Invalid symmetric key: must be base64"),
            RegistryError::AlreadyExists => {
                Self::new(StatusCode::CONFLICT, 409_001, "Identity already exists")
            }
            RegistryError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, 404_001, "Device not found")
            }
            other => Self::internal(&other),
        }
    }
}

impl From<TwinError> for ApiError {
    fn from(e: TwinError) -> Self {
        match e {
            TwinError::PreconditionFailed => Self::precondition_failed(),
            TwinError::Rejected(why) => Self::bad_request(format!("Invalid twin: {why}")),
            other => Self::internal(&other),
        }
    }
}

impl From<C2dError> for ApiError {
    fn from(e: C2dError) -> Self {
        let (status, code) = e.status_and_code();
        if status >= 500 {
            return Self::internal(&e);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let message = match e {
            C2dError::QueueFull => "Device maximum queue depth exceeded".to_owned(),
            other => other.to_string(),
        };
        Self::new(status, code, message)
    }
}

impl From<MethodError> for ApiError {
    fn from(e: MethodError) -> Self {
        let (status, code) = e.status_and_code();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = Self::new(status, code, e.to_string());
        // docs/protocol.md §7: the 404103 body carries the connect timeout in `info`.
        if matches!(e, MethodError::DeviceNotOnline) {
            error.info = Some(json!({ "timeout": "00:00:00" }));
        }
        error
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::C2d(e) => e.into(),
            HubError::Twin(e) => e.into(),
            HubError::Store(e) => e.into(),
            HubError::NotFound(who) => Self::not_found(&who.device_id, who.module_id.as_deref()),
            HubError::AlreadyExists(who) => {
                Self::already_exists(&who.device_id, who.module_id.as_deref())
            }
            HubError::PreconditionFailed => Self::precondition_failed(),
            HubError::Registry(e) => e.into(),
            HubError::Method(e) => e.into(),
        }
    }
}

/// IoT Hub's names for the error codes this API sends (the `iothub-errorcode` header).
fn error_name(code: u32) -> &'static str {
    match code {
        400_000 => "GenericBadRequest",
        400_004 => "ArgumentInvalid",
        400_022 => "InvalidStorageEndpoint",
        401_002 => "IotHubUnauthorizedAccess",
        403_004 => "DeviceMaximumQueueDepthExceeded",
        403_006 => "DeviceMaximumActiveFileUploadLimitExceeded",
        404_000 => "GenericNotFound",
        404_001 => "DeviceNotFound",
        404_010 => "ModuleNotFound",
        404_103 => "DeviceNotOnline",
        405_000 => "GenericMethodNotAllowed",
        409_000 => "GenericConflict",
        409_001 => "DeviceAlreadyExists",
        409_301 => "ModuleAlreadyExistsOnDevice",
        412_002 => "PreconditionFailed",
        413_000 => "GenericRequestEntityTooLarge",
        413_001 => "MessageTooLarge",
        415_000 => "GenericUnsupportedMediaType",
        504_101 => "GatewayTimeout",
        _ => "ServerError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_nests_the_error_object_as_a_json_string() {
        let body = ApiError::not_found("d1", None).body();
        assert_eq!(body["ExceptionMessage"], "");
        let inner: Value = serde_json::from_str(body["Message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["errorCode"], 404_001);
        assert_eq!(inner["message"], "Device d1 not found");
        assert_eq!(inner["trackingId"].as_str().unwrap().len(), 32);
        assert!(inner["timestampUtc"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn device_not_online_carries_the_timeout_info() {
        let e = ApiError::from(MethodError::DeviceNotOnline);
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let inner: Value = serde_json::from_str(e.body()["Message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["errorCode"], 404_103);
        assert_eq!(inner["message"], "Timed out waiting for device to connect.");
        assert_eq!(inner["info"]["timeout"], "00:00:00");
    }

    #[test]
    fn method_timeout_is_a_504() {
        let e = ApiError::from(MethodError::Timeout);
        assert_eq!((e.status, e.code), (StatusCode::GATEWAY_TIMEOUT, 504_101));
    }

    #[test]
    fn full_c2d_queue_is_403004() {
        let e = ApiError::from(C2dError::QueueFull);
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, 403_004));
        assert_eq!(error_name(e.code), "DeviceMaximumQueueDepthExceeded");
    }
}
