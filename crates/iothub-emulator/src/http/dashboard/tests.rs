//! The dashboard's routes over loopback HTTP, beside the real REST API: the page and its
//! assets, and the session endpoint's token working (and its refusals).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::store::Store;

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The dashboard merged into the API router, as the emulator serves it; `connect_info`
/// false serves it without peer addresses (a mis-wired server).
async fn serve(connect_info: bool) -> (SocketAddr, Hub) {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|tx| crate::hub::registry::ensure_policies(tx))
        .await
        .unwrap();
    let hub = Hub::new(store, vec!["localhost".into(), "myhub.example".into()]);
    let app = crate::http::api::router(hub.clone()).merge(router(hub.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    if connect_info {
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
    } else {
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    (addr, hub)
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    call(addr, "GET", path, headers, "").await
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn serves_the_page_and_its_assets_with_a_strict_content_security_policy() {
    let (addr, _hub) = serve(true).await;
    for path in ["/", "/dashboard", "/dashboard/"] {
        let r = get(addr, path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(
            r.body
                .contains(r#"<script src="/dashboard/app.js" defer></script>"#)
        );
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
    }
    let js = get(addr, "/dashboard/app.js", &[]).await;
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.body.contains("/dashboard/session"));
    let chart = get(addr, "/dashboard/chart.js", &[]).await;
    assert_eq!(chart.status, 200);
    assert!(chart.body.contains("function drawTelemetryChart"));
    let css = get(addr, "/dashboard/style.css", &[]).await;
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    // The API's own fallback still answers unknown paths in the hubs' error shape.
    let missing = get(addr, "/dashboard/nope.js", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("errorCode"));
}

#[tokio::test]
async fn a_loopback_session_token_is_accepted_by_the_rest_api_for_every_right() {
    let (addr, hub) = serve(true).await;
    let r = get(
        addr,
        "/dashboard/session",
        &[("Sec-Fetch-Site", "same-origin")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let session: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(session["hostName"], "localhost");
    assert_eq!(session["policy"], "iothubowner");
    let expires = session["expiresAt"].as_u64().unwrap();
    let now = hub.now_unix_secs();
    assert!(expires > now + SESSION_TTL_SECS - 5 && expires <= now + SESSION_TTL_SECS + 1);
    let token = session["token"].as_str().unwrap();
    assert!(token.starts_with("SharedAccessSignature sr=localhost&sig="));
    assert!(token.ends_with("&skn=iothubowner"));

    // The REST API verifies it like any service token: registry write, then service connect.
    let created = call(
        addr,
        "PUT",
        "/devices/dash1",
        &[("Authorization", token)],
        r#"{"deviceId":"dash1"}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let events = get(addr, "/events?limit=1", &[("Authorization", token)]).await;
    assert_eq!(events.status, 200, "{}", events.body);
    let listed = get(addr, "/devices", &[("Authorization", token)]).await;
    assert!(listed.body.contains("\"dash1\""));
    // A tampered token is refused, so the check above was a real verification.
    let forged = token.replace("sig=", "sig=A");
    let refused = get(addr, "/devices", &[("Authorization", &forged)]).await;
    assert_eq!(refused.status, 401);
    drop(hub);
}

#[tokio::test]
async fn refuses_a_session_for_a_foreign_host_header_or_a_cross_site_fetch() {
    let (addr, _hub) = serve(true).await;
    let rebinding = get(addr, "/dashboard/session", &[("Host", "evil.example:8080")]).await;
    assert_eq!(rebinding.status, 403);
    assert!(!rebinding.body.contains("SharedAccessSignature"));
    let cross = get(
        addr,
        "/dashboard/session",
        &[("Sec-Fetch-Site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, 403);
    // The hub's own host names are fine.
    let own = get(
        addr,
        "/dashboard/session",
        &[("Host", "myhub.example:8080")],
    )
    .await;
    assert_eq!(own.status, 200);
}

#[tokio::test]
async fn refuses_a_session_when_the_server_cannot_see_the_peer_address() {
    let (addr, _hub) = serve(false).await;
    let r = get(addr, "/dashboard/session", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("peer address"));
}

#[test]
fn only_loopback_peers_with_a_known_host_get_a_session() {
    let names = vec!["localhost".to_string(), "hub.lan".to_string()];
    let v4 = |ip: [u8; 4]| Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 5000));
    let v6 = |ip: Ipv6Addr| Some(SocketAddr::new(IpAddr::V6(ip), 5000));
    assert!(session_allowed(v4([127, 0, 0, 1]), Some("localhost:8080"), None, &names).is_ok());
    assert!(session_allowed(v4([127, 0, 0, 2]), Some("127.0.0.1"), Some("none"), &names).is_ok());
    assert!(session_allowed(v6(Ipv6Addr::LOCALHOST), Some("[::1]:8080"), None, &names).is_ok());
    let mapped = Ipv4Addr::LOCALHOST.to_ipv6_mapped();
    assert!(session_allowed(v6(mapped), Some("hub.lan:8080"), None, &names).is_ok());
    // Another machine on the network, even naming the hub.
    assert!(session_allowed(v4([192, 168, 1, 7]), Some("hub.lan:8080"), None, &names).is_err());
    assert!(
        session_allowed(
            v6("fe80::1".parse().unwrap()),
            Some("localhost"),
            None,
            &names
        )
        .is_err()
    );
    // DNS rebinding: loopback peer, foreign name.
    assert!(session_allowed(v4([127, 0, 0, 1]), Some("attacker.example"), None, &names).is_err());
    assert!(session_allowed(v4([127, 0, 0, 1]), None, None, &names).is_err());
    assert!(
        session_allowed(
            v4([127, 0, 0, 1]),
            Some("localhost"),
            Some("same-site"),
            &names
        )
        .is_err()
    );
    assert!(session_allowed(None, Some("localhost"), None, &names).is_err());
}

#[test]
fn host_names_lose_their_port_and_brackets() {
    assert_eq!(host_name("localhost:8080"), "localhost");
    assert_eq!(host_name("localhost"), "localhost");
    assert_eq!(host_name("[::1]:8080"), "::1");
    assert_eq!(host_name("[::1]"), "::1");
}
