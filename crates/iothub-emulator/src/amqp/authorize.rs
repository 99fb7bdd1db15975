//! Who may do what on an AMQP connection (docs/amqp.md "Authentication"): the `$cbs`
//! put-token, the check every link makes against the tokens the connection holds, and the
//! watch that detaches a link when the token that authorised it expires unrenewed.
//!
//! Every service link needs a shared access policy with `ServiceConnect` (`iothubowner`,
//! `service`); the hub verifies each token on its own `sr`, `skn` and `se`
//! ([`Hub::authorize_service`](crate::hub::Hub::authorize_service)), so a token for one Event
//! Hub or one path authorises only what its `sr` covers.

use std::time::Duration;

use fe2o3_amqp::types::messaging::{AmqpValue, Message};
use fe2o3_amqp::types::primitives::Value;
use iothub_proto::sas::ParsedSasToken;
use tokio::sync::watch;

use super::cbs::{cbs_reply, parse_cbs_request};
use super::connection::ConnState;
use super::context::AmqpContext;
use super::tokens::{TokenSource, TokenTable};
use crate::hub::audience::split_scheme;
use crate::hub::auth::MAX_SKEW_SECS;
use crate::hub::service_auth::{ServiceAuthError, ServiceRight};

/// Answers a `$cbs` request: a put-token whose token verifies for its audience with
/// `ServiceConnect` is kept (202); anything else is answered with the reason (400 for a
/// malformed request, 401 for a refused token, 500 when the registry cannot be read).
pub(crate) async fn put_token(
    ctx: &AmqpContext,
    state: &ConnState,
    request: &Message<Value>,
) -> Message<AmqpValue<Value>> {
    let correlation = request
        .properties
        .as_ref()
        .and_then(|p| p.message_id.clone());
    let put = match parse_cbs_request(request) {
        Ok(put) => put,
        Err(e) => {
            tracing::info!(transport = state.peer.transport, peer = %state.peer, "CBS request refused: {e}");
            return cbs_reply(correlation, 400, &e.to_string());
        }
    };
    let path = audience_path(&put.audience);
    match ctx
        .hub
        .authorize_service(Some(&put.token), ServiceRight::ServiceConnect, &path)
        .await
    {
        Ok(principal) => {
            let expires = ParsedSasToken::parse(put.token.trim()).map_or(0, |t| t.expiry());
            tracing::debug!(transport = state.peer.transport, peer = %state.peer, audience = %put.audience, policy = %principal.policy, "CBS token accepted");
            state.tokens.send_modify(|t| {
                t.put(
                    TokenSource::Cbs(put.audience.clone()),
                    put.token.clone(),
                    expires,
                );
            });
            cbs_reply(correlation, 202, "Accepted")
        }
        Err(ServiceAuthError::Refused(reason)) => {
            // The hub logged the refusal with its reason; the audience says which put-token.
            tracing::info!(transport = state.peer.transport, peer = %state.peer, audience = %put.audience, "CBS put-token refused: {reason}");
            cbs_reply(correlation, 401, &reason.to_string())
        }
        Err(e) => {
            tracing::warn!(
                transport = state.peer.transport,
                "CBS put-token failed: {e}"
            );
            cbs_reply(correlation, 500, "the registry could not be read")
        }
    }
}

/// The hub-relative path an audience names: `sb://host/hub` is `/hub`, `https://host` and
/// `host` are the whole hub.
fn audience_path(audience: &str) -> String {
    let (_, rest) = split_scheme(audience);
    rest.find('/')
        .map_or_else(String::new, |i| rest[i..].trim_end_matches('/').to_string())
}

/// Finds a token the connection holds that grants `right` on `resource_path` (relative to
/// the hub, e.g. `/messages/devicebound`); returns where it came from, so the link can watch
/// its expiry. The error says why none did, for the link's refusal.
pub(crate) async fn authorize_link(
    ctx: &AmqpContext,
    state: &ConnState,
    right: ServiceRight,
    resource_path: &str,
) -> Result<TokenSource, String> {
    let held: Vec<(TokenSource, String)> = state
        .tokens
        .borrow()
        .iter()
        .map(|t| (t.source.clone(), t.token.clone()))
        .collect();
    if held.is_empty() {
        return Err(format!(
            "no token authorises `{resource_path}`: put a SAS token on $cbs (or use SASL PLAIN) first"
        ));
    }
    let mut first_refusal = None;
    for (source, token) in held {
        match ctx
            .hub
            .verify_service_token(Some(&token), right, resource_path)
            .await
        {
            Ok(_) => return Ok(source),
            Err(e) => {
                first_refusal.get_or_insert_with(|| format!("{source}: {e}"));
            }
        }
    }
    // Logged once for the request, not once per token the connection holds (a connection
    // with a token per audience would log a refusal for every token but the right one).
    let why = first_refusal.unwrap_or_default();
    tracing::info!(right = %right, reason = %why, "service request refused");
    Err(why)
}

/// How long a link waits before reading the hub's clock again while its token is valid.
const CLOCK_RECHECK: Duration = Duration::from_secs(1);

/// Resolves when the token from `source` has expired (with the hub's clock skew allowance)
/// and was not renewed: the link it authorised must be detached with
/// `amqp:unauthorized-access`.
pub(crate) async fn token_lapsed(
    ctx: &AmqpContext,
    mut tokens: watch::Receiver<TokenTable>,
    source: TokenSource,
) {
    loop {
        let Some(expires) = tokens.borrow_and_update().expiry_of(&source) else {
            return;
        };
        let deadline = expires.saturating_add(MAX_SKEW_SECS);
        let now = ctx.hub.now_unix_secs();
        if deadline <= now {
            return;
        }
        // The deadline is on the hub's clock, which may jump (the host's clock set, a test's
        // manual clock advanced): sleep at most CLOCK_RECHECK before reading it again.
        let wait = Duration::from_secs(deadline - now).min(CLOCK_RECHECK);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = tokens.changed() => if changed.is_err() {
                // The connection is going away; its links end with it.
                std::future::pending::<()>().await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::audience_path;

    #[test]
    fn audience_paths() {
        assert_eq!(audience_path("sb://127.0.0.1/myhub"), "/myhub");
        assert_eq!(audience_path("sb://127.0.0.1/myhub/"), "/myhub");
        assert_eq!(audience_path("https://localhost"), "");
        assert_eq!(audience_path("localhost"), "");
        assert_eq!(
            audience_path("amqps://h:5671/messages/devicebound"),
            "/messages/devicebound"
        );
    }
}
