//! Cloud-to-device messages (docs/protocol.md §10 "C2D"):
//!
//! - `POST /messages/devicebound` — **our extension** (real hubs take C2D over AMQP): a JSON
//!   body `{"deviceId", "moduleId"?, "payload" (string: sent as is; other JSON: serialised) |
//!   "payloadBase64", "properties"?: {k: v}, "messageId"?, "correlationId"?, "userId"?,
//!   "contentType"?, "contentEncoding"?, "expiryTimeUtc"? (ISO-8601) | "ttlSeconds"?,
//!   "ack"?: none|positive|negative|full}` → 200 `{"messageId", "cloudToDeviceMessageCount"}`;
//! - `POST /devices/{id}/messages/deviceBound` — the undocumented form the deprecated Rust SDK
//!   used: raw body, application properties as `iothub-app-{name}` headers, system ones as
//!   `iothub-messageid`, `iothub-correlationid`, `iothub-userid`, `iothub-ack`,
//!   `iothub-expiry`, `content-type`, `content-encoding` → 204;
//! - `DELETE /devices/{id}/commands` — purge → `{"totalMessagesPurged", "deviceId", "moduleId"}`;
//! - `GET /messages/serviceBound/feedback` — **our extension**: takes (removes) up to `max`
//!   (default 64) feedback records, in IoT Hub's feedback JSON shape.
//!
//! Queue rules (50 per device, 64 KB, TTL, delivery count) are the C2D domain's; the handlers
//! call the hub's C2D operations ([`crate::hub::Hub::send_c2d_to_registered`] and its
//! neighbours).

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::{json_object, opt_str};
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::auth::Identity;
use crate::hub::c2d::{self, AckMode, OutgoingMessage};
use crate::timestamp::parse_iso8601;

pub(crate) fn routes() -> Vec<Route> {
    let service = Some(Permission::ServiceConnect);
    vec![
        Route::new(Method::POST, "/messages/devicebound", service, send_json),
        Route::new(
            Method::POST,
            "/devices/{id}/messages/deviceBound",
            service,
            send_raw,
        ),
        Route::new(Method::DELETE, "/devices/{id}/commands", service, purge),
        Route::new(
            Method::GET,
            "/messages/serviceBound/feedback",
            service,
            feedback,
        ),
    ]
}

async fn send_json(State(s): State<ApiState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let map = json_object(&body)?;
    let device_id =
        opt_str(&map, "deviceId")?.ok_or_else(|| ApiError::bad_request("deviceId is required"))?;
    let who = Identity {
        device_id: device_id.to_owned(),
        module_id: opt_str(&map, "moduleId")?.map(str::to_owned),
    };
    let message = message_from_json(&map, s.hub.now())?;
    let enqueued = s.hub.send_c2d_to_registered(&who, message).await?;
    Ok(Json(
        json!({ "messageId": enqueued.message_id, "cloudToDeviceMessageCount": enqueued.queue_depth }),
    ))
}

async fn send_raw(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let message = message_from_headers(&headers, body.to_vec())?;
    let who = Identity {
        device_id: id,
        module_id: None,
    };
    s.hub.send_c2d_to_registered(&who, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let who = Identity {
        device_id: id,
        module_id: None,
    };
    let purged = s.hub.purge_c2d(&who).await?;
    Ok(Json(
        json!({ "totalMessagesPurged": purged, "deviceId": who.device_id, "moduleId": null }),
    ))
}

#[derive(Debug, Deserialize)]
struct FeedbackQuery {
    max: Option<usize>,
}

async fn feedback(
    State(s): State<ApiState>,
    Query(q): Query<FeedbackQuery>,
) -> Result<Json<Value>, ApiError> {
    let max = q.max.unwrap_or(64).clamp(1, 1000);
    let records = s.hub.take_c2d_feedback(max).await?;
    Ok(Json(Value::Array(
        records.iter().map(c2d::FeedbackRecord::to_json).collect(),
    )))
}

/// The JSON extension body as a message; every malformed field is a 400.
fn message_from_json(
    map: &Map<String, Value>,
    now: SystemTime,
) -> Result<OutgoingMessage, ApiError> {
    let body = match (map.get("payload"), opt_str(map, "payloadBase64")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give payload or payloadBase64, not both",
            ));
        }
        (None | Some(Value::Null), None) => Vec::new(),
        (Some(Value::String(s)), None) => s.clone().into_bytes(),
        (Some(other), None) => other.to_string().into_bytes(),
        (None, Some(b64)) => STANDARD
            .decode(b64)
            .map_err(|_| ApiError::bad_request("payloadBase64 is not base64"))?,
    };
    let properties = match map.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(props)) => props
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                _ => Err(ApiError::bad_request(format!(
                    "property {k} must be a string, number or boolean"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::bad_request("properties must be an object")),
    };
    let expiry = match (opt_str(map, "expiryTimeUtc")?, map.get("ttlSeconds")) {
        (Some(t), _) => Some(
            parse_iso8601(t)
                .ok_or_else(|| ApiError::bad_request("expiryTimeUtc is not ISO-8601 UTC"))?,
        ),
        (None, None | Some(Value::Null)) => None,
        (None, Some(ttl)) => {
            let secs = ttl
                .as_u64()
                .ok_or_else(|| ApiError::bad_request("ttlSeconds must be a positive integer"))?;
            Some(now + Duration::from_secs(secs))
        }
    };
    Ok(OutgoingMessage {
        body,
        message_id: opt_str(map, "messageId")?.map(str::to_owned),
        correlation_id: opt_str(map, "correlationId")?.map(str::to_owned),
        user_id: opt_str(map, "userId")?.map(str::to_owned),
        content_type: opt_str(map, "contentType")?.map(str::to_owned),
        content_encoding: opt_str(map, "contentEncoding")?.map(str::to_owned),
        ack: ack(opt_str(map, "ack")?)?,
        expiry,
        properties,
    })
}

/// The undocumented header form as a message.
fn message_from_headers(headers: &HeaderMap, body: Vec<u8>) -> Result<OutgoingMessage, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut properties: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix("iothub-app-")?;
            Some((key.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    properties.sort();
    let expiry = match header("iothub-expiry") {
        None => None,
        Some(t) => Some(
            parse_iso8601(&t)
                .ok_or_else(|| ApiError::bad_request("iothub-expiry is not ISO-8601 UTC"))?,
        ),
    };
    Ok(OutgoingMessage {
        body,
        message_id: header("iothub-messageid"),
        correlation_id: header("iothub-correlationid"),
        user_id: header("iothub-userid"),
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
        ack: ack(header("iothub-ack").as_deref())?,
        expiry,
        properties,
    })
}

fn ack(text: Option<&str>) -> Result<AckMode, ApiError> {
    match text {
        None => Ok(AckMode::None),
        Some(t) => AckMode::parse(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "ack must be none, positive, negative or full, not {t}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::timestamp::iso8601_millis;

    #[test]
    fn iso8601_round_trips_through_the_hub_formatter() {
        let t = parse_iso8601("2026-11-27T23:04:05.678Z").unwrap();
        assert_eq!(iso8601_millis(t), "2026-11-27T23:04:05.678Z");
        assert_eq!(
            iso8601_millis(parse_iso8601("2000-02-29T00:00:00Z").unwrap()),
            "2000-02-29T00:00:00.000Z"
        );
        assert!(parse_iso8601("2026-13-01T00:00:00Z").is_none());
        assert!(parse_iso8601("yesterday").is_none());
    }

    #[test]
    fn json_body_maps_every_field() {
        let now = SystemTime::UNIX_EPOCH;
        let body = json!({"deviceId": "d1", "payload": {"on": true}, "properties": {"k": "v", "n": 1},
            "messageId": "m1", "correlationId": "c1", "contentType": "application/json", "ack": "full", "ttlSeconds": 60});
        let m = message_from_json(body.as_object().unwrap(), now).unwrap();
        assert_eq!(m.body, br#"{"on":true}"#);
        assert_eq!(
            m.properties,
            vec![("k".into(), "v".into()), ("n".into(), "1".into())]
        );
        assert_eq!(m.ack, AckMode::Full);
        assert_eq!(m.expiry, Some(now + Duration::from_secs(60)));
        assert_eq!(
            (m.message_id.as_deref(), m.correlation_id.as_deref()),
            (Some("m1"), Some("c1"))
        );
    }

    #[test]
    fn json_body_rejects_bad_ack_and_properties() {
        let bad_ack = json!({"deviceId": "d1", "ack": "sometimes"});
        assert!(message_from_json(bad_ack.as_object().unwrap(), SystemTime::now()).is_err());
        let bad_props = json!({"deviceId": "d1", "properties": {"k": [1]}});
        assert!(message_from_json(bad_props.as_object().unwrap(), SystemTime::now()).is_err());
    }

    #[test]
    fn header_form_reads_app_properties_and_system_headers() {
        let mut h = HeaderMap::new();
        h.insert("iothub-app-color", HeaderValue::from_static("red"));
        h.insert("iothub-messageid", HeaderValue::from_static("m9"));
        h.insert("iothub-ack", HeaderValue::from_static("positive"));
        let m = message_from_headers(&h, b"x".to_vec()).unwrap();
        assert_eq!(m.properties, vec![("color".into(), "red".into())]);
        assert_eq!(m.message_id.as_deref(), Some("m9"));
        assert_eq!(m.ack, AckMode::Positive);
    }
}
