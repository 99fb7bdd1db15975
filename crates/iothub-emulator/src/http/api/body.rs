//! Request parsing shared by the resources: JSON bodies (malformed → 400 before anything is
//! applied) and `If-Match` ETags.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::ApiError;

/// Parses a JSON body; anything else is 400 `400004`.
pub(crate) fn json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON body: {e}")))
}

/// Parses a JSON object body; anything else is 400 `400004`.
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match json(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request("The body must be a JSON object")),
    }
}

/// The `If-Match` header without quotes or a weak `W/` prefix (`*` is kept as is).
pub(crate) fn if_match(headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get(axum::http::header::IF_MATCH)?
        .to_str()
        .ok()?
        .trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    Some(raw.trim_matches('"').to_owned()).filter(|s| !s.is_empty())
}

/// An optional string field; present but not a string (or null) is 400.
pub(crate) fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn if_match_strips_quotes_and_weak_prefix() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h), None);
        h.insert("if-match", HeaderValue::from_static("W/\"AAAAAAAAAAE=\""));
        assert_eq!(if_match(&h).as_deref(), Some("AAAAAAAAAAE="));
        h.insert("if-match", HeaderValue::from_static("*"));
        assert_eq!(if_match(&h).as_deref(), Some("*"));
    }

    #[test]
    fn non_objects_are_rejected_with_400() {
        assert_eq!(json_object(b"[1]").unwrap_err().code, 400_004);
        assert_eq!(
            json_object(b"{").unwrap_err().status,
            axum::http::StatusCode::BAD_REQUEST
        );
        assert!(json_object(b"{\"a\":1}").is_ok());
    }
}
