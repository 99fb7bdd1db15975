//! `POST /devices/query` with `{"query":"SELECT * FROM devices …"}` (docs/protocol.md §10
//! "Registry"): answers twins, as IoT Hub does, with `x-ms-item-type: Twin` and paging through
//! `x-ms-max-item-count` / `x-ms-continuation`.
//!
//! The emulator understands a subset of the IoT Hub query language: `SELECT * FROM devices`
//! or `FROM devices.modules`, optionally `WHERE a = b [AND c != d]…` where each left side is
//! a twin path (`deviceId`, `status`, `connectionState`, `tags.site`,
//! `properties.reported.fw`, …) and each right side a `'string'`, number, `true`, `false` or
//! `null`. Anything else is 400.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::body::{json_object, opt_str};
use super::identity;
use super::{ApiError, ApiState, Permission, Route};
use crate::hub::twin;
use crate::hub::twin_ops::IdentityKind;

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::POST,
        "/devices/query",
        Some(Permission::RegistryRead),
        query,
    )]
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
struct Query {
    modules: bool,
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
struct Condition {
    path: Vec<String>,
    equal: bool,
    value: Value,
}

async fn query(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let map = json_object(&body)?;
    let text = opt_str(&map, "query")?.ok_or_else(|| ApiError::bad_request("query is required"))?;
    let parsed =
        parse(text).ok_or_else(|| ApiError::bad_request(format!("Unsupported query: {text}")))?;
    let header_num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
    };
    let page = header_num("x-ms-max-item-count")
        .unwrap_or(100)
        .clamp(1, 10_000);
    let offset = header_num("x-ms-continuation").unwrap_or(0);
    let kind = if parsed.modules {
        IdentityKind::Modules
    } else {
        IdentityKind::Devices
    };
    let twins = s.hub.list_twins(kind).await?;
    let matching: Vec<Value> = twins
        .iter()
        .map(|t| twin::service_view(&t.document, &identity::twin_identity(&t.identity)))
        .filter(|twin| parsed.conditions.iter().all(|c| c.holds(twin)))
        .collect();
    let more = matching.len() > offset + page;
    let items: Vec<Value> = matching.into_iter().skip(offset).take(page).collect();
    let mut response = axum::Json(Value::Array(items)).into_response();
    response
        .headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static("Twin"));
    if more && let Ok(v) = HeaderValue::from_str(&(offset + page).to_string()) {
        response.headers_mut().insert("x-ms-continuation", v);
    }
    Ok(response)
}

impl Condition {
    /// Whether the twin satisfies the condition (a missing path compares as `null`).
    fn holds(&self, twin: &Value) -> bool {
        let at = self.path.iter().try_fold(twin, |at, key| at.get(key));
        (at.unwrap_or(&Value::Null) == &self.value) == self.equal
    }
}

/// Parses the supported subset; `None` for anything else.
fn parse(text: &str) -> Option<Query> {
    let tokens = tokenize(text)?;
    let mut t = tokens.iter().map(String::as_str).peekable();
    let mut keyword = |k: &str| t.next().is_some_and(|w| w.eq_ignore_ascii_case(k));
    if !(keyword("SELECT") && keyword("*") && keyword("FROM")) {
        return None;
    }
    let modules = match t.next()? {
        s if s.eq_ignore_ascii_case("devices") => false,
        s if s.eq_ignore_ascii_case("devices.modules") => true,
        _ => return None,
    };
    let mut conditions = Vec::new();
    match t.next() {
        None => {
            return Some(Query {
                modules,
                conditions,
            });
        }
        Some(w) if w.eq_ignore_ascii_case("WHERE") => {}
        Some(_) => return None,
    }
    loop {
        let path: Vec<String> = t.next()?.split('.').map(str::to_owned).collect();
        if path.iter().any(|p| p.is_empty() || p.starts_with('\'')) {
            return None;
        }
        let equal = match t.next()? {
            "=" => true,
            "!=" | "<>" => false,
            _ => return None,
        };
        let value = literal(t.next()?)?;
        conditions.push(Condition { path, equal, value });
        match t.next() {
            None => {
                return Some(Query {
                    modules,
                    conditions,
                });
            }
            Some(w) if w.eq_ignore_ascii_case("AND") => {}
            Some(_) => return None,
        }
    }
}

fn literal(token: &str) -> Option<Value> {
    if let Some(s) = token.strip_prefix('\'') {
        return Some(Value::String(s.strip_suffix('\'')?.replace("''", "'")));
    }
    match token.to_ascii_lowercase().as_str() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => serde_json::from_str::<serde_json::Number>(token)
            .ok()
            .map(Value::Number),
    }
}

/// Splits into words, operators and `'quoted'` strings (`''` escapes a quote).
fn tokenize(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            let mut s = String::from(chars.next()?);
            loop {
                let c = chars.next()?;
                s.push(c);
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        s.push(chars.next()?);
                    } else {
                        break;
                    }
                }
            }
            out.push(s);
        } else if "=!<>".contains(c) {
            let mut s = String::new();
            while let Some(&c) = chars.peek().filter(|c| "=!<>".contains(**c)) {
                s.push(c);
                chars.next();
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&c) = chars
                .peek()
                .filter(|c| !c.is_whitespace() && !"=!<>'".contains(**c))
            {
                s.push(c);
                chars.next();
            }
            out.push(s);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_select_all_and_where_clauses() {
        assert_eq!(
            parse("SELECT * FROM devices"),
            Some(Query {
                modules: false,
                conditions: vec![]
            })
        );
        let q = parse("select * from devices where deviceId = 'd''1' AND status != 'disabled'")
            .unwrap();
        assert_eq!(q.conditions.len(), 2);
        assert_eq!(q.conditions[0].value, json!("d'1"));
        assert!(!q.conditions[1].equal);
        assert!(
            parse("SELECT * FROM devices.modules WHERE tags.site=7")
                .unwrap()
                .modules
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for q in [
            "SELECT deviceId FROM devices",
            "SELECT * FROM jobs",
            "SELECT * FROM devices WHERE a > 1",
            "SELECT * FROM devices WHERE a = 'x' OR b = 'y'",
            "SELECT * FROM devices WHERE a = 'unterminated",
            "SELECT * FROM devices GROUP BY status",
        ] {
            assert_eq!(parse(q), None, "{q}");
        }
    }

    #[test]
    fn conditions_follow_twin_paths() {
        let twin = json!({"deviceId": "d1", "status": "enabled", "tags": {"site": "lab"}});
        let q =
            parse("SELECT * FROM devices WHERE tags.site = 'lab' AND status = 'enabled'").unwrap();
        assert!(q.conditions.iter().all(|c| c.holds(&twin)));
        let q = parse("SELECT * FROM devices WHERE tags.floor = 2").unwrap();
        assert!(!q.conditions[0].holds(&twin));
        let q = parse("SELECT * FROM devices WHERE tags.floor != 2").unwrap();
        assert!(q.conditions[0].holds(&twin));
    }
}
