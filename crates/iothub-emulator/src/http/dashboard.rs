//! The web dashboard (docs/dashboard.md) on the plain HTTP port, beside the REST API: static
//! assets compiled into the binary (no build step, no CDN) and a session endpoint that hands
//! the page a short-lived service token.
//!
//! Routes: `GET /` and `GET /dashboard` (the page), `GET /dashboard/app.js`,
//! `GET /dashboard/chart.js`, `GET /dashboard/style.css`, `GET /dashboard/session`.
//!
//! # How the page authenticates
//!
//! The page is a plain client of the REST API ([`super::api`]): every call carries an
//! `Authorization: SharedAccessSignature …&skn=iothubowner` header, like any service SDK. It
//! gets that token from `GET /dashboard/session`, which signs one with the `iothubowner`
//! primary key, valid for [`SESSION_TTL_SECS`], and answers **only** when:
//!
//! - the TCP peer is a loopback address (someone on the emulator's own machine — the same
//!   trust as reading the data dir's `endpoints.json`, which holds the owner connection
//!   string anyway);
//! - the `Host` header names loopback or one of the hub's host names, so a page on a foreign
//!   domain re-pointed at 127.0.0.1 (DNS rebinding) is refused;
//! - the browser does not report a cross-site request (`Sec-Fetch-Site`).
//!
//! Other web pages cannot read the answer: nothing here sends CORS headers, so the browser's
//! same-origin policy keeps the token inside the dashboard's origin. The token is never put
//! in a URL, a cookie or storage; answers carry `Cache-Control: no-store`, and every page
//! carries a strict Content-Security-Policy (own scripts only, no framing).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::hub::Hub;

/// Lifetime of a dashboard token; the page asks for a new one before it runs out.
pub(crate) const SESSION_TTL_SECS: u64 = 600;

/// The policy the dashboard acts as (all rights: registry read/write and service connect).
const OWNER_POLICY: &str = "iothubowner";

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const CHART_JS: &str = include_str!("../../assets/chart.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// Only the page's own scripts, styles and API; nothing inline, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes for `hub`. It has no fallback, so it merges into the API router.
pub(crate) fn router(hub: Hub) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/app.js", get(app_js))
        .route("/dashboard/chart.js", get(chart_js))
        .route("/dashboard/style.css", get(style_css))
        .route("/dashboard/session", get(session))
        .with_state(hub)
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn chart_js() -> Response {
    asset("text/javascript; charset=utf-8", CHART_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// A static asset with the security headers. `no-cache`: a browser revalidates, so a new
/// emulator binary never runs with an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    response
}

fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `GET /dashboard/session`: `{"hostName", "policy", "token", "expiresAt"}` for a loopback
/// caller (see the module docs), else 403 with `{"message"}`.
async fn session(State(hub): State<Hub>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = session_allowed(
        peer,
        text(header::HOST),
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        hub.names(),
    );
    let mut response = match verdict {
        Ok(()) => match mint(&hub).await {
            Ok(body) => Json(body).into_response(),
            Err(message) => {
                tracing::warn!(%message, "dashboard session: cannot sign a token");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "message": message })),
                )
                    .into_response()
            }
        },
        Err(message) => {
            (StatusCode::FORBIDDEN, Json(json!({ "message": message }))).into_response()
        }
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(h);
    response
}

/// Whether a session may be handed out; `Err` says why not, for the page to show.
fn session_allowed(
    peer: Option<SocketAddr>,
    host: Option<&str>,
    fetch_site: Option<&str>,
    names: &[String],
) -> Result<(), &'static str> {
    // No peer address means the server was wired without connect info: fail closed.
    let peer = peer.ok_or("the emulator cannot tell who is asking (no peer address)")?;
    let loopback = match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if !loopback {
        return Err(
            "the dashboard signs in only on the emulator's own machine; open it there \
             (http://localhost:<http port>/) or use the REST API with a service connection string",
        );
    }
    let host = host.map(host_name).ok_or("missing Host header")?;
    let known = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(host))
        || names.iter().any(|n| n.eq_ignore_ascii_case(host));
    if !known {
        return Err("the Host header names neither loopback nor this hub");
    }
    if let Some(site) = fetch_site
        && !matches!(site, "same-origin" | "none")
    {
        return Err("cross-site requests get no session");
    }
    Ok(())
}

/// The host part of a `Host` header: without the port, IPv6 without brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Signs a hub-scoped `iothubowner` token valid for [`SESSION_TTL_SECS`] from the hub's time.
async fn mint(hub: &Hub) -> Result<serde_json::Value, String> {
    let signed = hub
        .sign_service_token(OWNER_POLICY, Duration::from_secs(SESSION_TTL_SECS))
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "hostName": hub.host(),
        "policy": OWNER_POLICY,
        "token": signed.token,
        "expiresAt": signed.expires_unix_secs,
    }))
}

#[cfg(test)]
mod tests;
