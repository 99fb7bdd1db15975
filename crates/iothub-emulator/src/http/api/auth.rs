//! Service authentication: `Authorization: SharedAccessSignature sr={host}&sig=…&se=…&skn={policy}`
//! (docs/protocol.md §10). The decision — signature against the named shared access policy's
//! primary or secondary key, expiry, the policy's rights — is the hub's
//! ([`crate::hub::service_auth`]); this layer reads the header and answers a refusal with 401.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::{ApiError, ApiState};
pub(crate) use crate::hub::service_auth::ServiceRight as Permission;
use crate::hub::service_auth::{ServiceAuthError, ServiceAuthRefusal};

/// Middleware: answers 401 unless the request carries a valid service token granting `needed`.
pub(crate) async fn require(
    State((state, needed)): State<(ApiState, Permission)>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The hub logs a refusal; the span adds who asked, and for what.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let span = tracing::info_span!(
        "rest",
        peer = peer.as_deref().unwrap_or("unknown"),
        method = %request.method(),
        path = request.uri().path(),
    );
    let decision = state
        .hub
        .authorize_service(header.as_deref(), needed, request.uri().path())
        .instrument(span)
        .await;
    match decision {
        Ok(_) => next.run(request).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

impl From<ServiceAuthError> for ApiError {
    /// 401 with the message this API has always sent for each reason.
    fn from(e: ServiceAuthError) -> Self {
        let refusal = match e {
            ServiceAuthError::Refused(refusal) => refusal,
            ServiceAuthError::Store(e) => return e.into(),
        };
        Self::unauthorized(match refusal {
            ServiceAuthRefusal::MissingToken => "Missing Authorization header".to_owned(),
            ServiceAuthRefusal::MalformedToken => "Malformed SharedAccessSignature".to_owned(),
            ServiceAuthRefusal::NoPolicy => "A service token needs a policy (skn)".to_owned(),
            ServiceAuthRefusal::MalformedResource => "Malformed token resource".to_owned(),
            ServiceAuthRefusal::ForeignResource { resource } => {
                format!("Token resource {resource} is not this hub")
            }
            ServiceAuthRefusal::UnknownPolicy { policy } => {
                format!("Unknown shared access policy {policy}")
            }
            ServiceAuthRefusal::NotGranted { policy, needed } => {
                format!("Policy {policy} does not grant {}", needed.as_str())
            }
            ServiceAuthRefusal::Expired { .. } => "SAS token expired".to_owned(),
            // Signature and scope failures, and any reason added later.
            _ => "SAS token signature or scope is invalid".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn each_refusal_is_a_401_with_the_message_the_api_has_always_sent() {
        let policy = || "service".to_owned();
        let cases = [
            (
                ServiceAuthRefusal::MissingToken,
                "Missing Authorization header",
            ),
            (
                ServiceAuthRefusal::MalformedToken,
                "Malformed SharedAccessSignature",
            ),
            (
                ServiceAuthRefusal::NoPolicy,
                "A service token needs a policy (skn)",
            ),
            (
                ServiceAuthRefusal::MalformedResource,
                "Malformed token resource",
            ),
            (
                ServiceAuthRefusal::ForeignResource {
                    resource: "other".into(),
                },
                "Token resource other is not this hub",
            ),
            (
                ServiceAuthRefusal::UnknownPolicy { policy: policy() },
                "Unknown shared access policy service",
            ),
            (
                ServiceAuthRefusal::NotGranted {
                    policy: policy(),
                    needed: Permission::RegistryWrite,
                },
                "Policy service does not grant RegistryWrite",
            ),
            (
                ServiceAuthRefusal::Expired {
                    policy: policy(),
                    expired_at: "2027-01-15T08:00:00.000Z".into(),
                    skew_secs: 300,
                },
                "SAS token expired",
            ),
            (
                ServiceAuthRefusal::SignatureMismatch { policy: policy() },
                "SAS token signature or scope is invalid",
            ),
            (
                ServiceAuthRefusal::OutOfScope { policy: policy() },
                "SAS token signature or scope is invalid",
            ),
        ];
        for (refusal, message) in cases {
            let e = ApiError::from(ServiceAuthError::Refused(refusal));
            assert_eq!(
                (e.status, e.code, e.message.as_str()),
                (StatusCode::UNAUTHORIZED, 401_002, message)
            );
        }
    }
}
