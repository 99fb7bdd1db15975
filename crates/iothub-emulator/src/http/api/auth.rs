//! Service authentication: `Authorization: SharedAccessSignature sr={host}&sig=…&se=…&skn={policy}`
//! (PROTOCOL.md §10). The decision — signature against the named shared access policy's
//! primary or secondary key, expiry, the policy's rights — is the hub's
//! ([`crate::hub::service_auth`]); this layer reads the header and answers a refusal with 401.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    match state.hub.authorize_service(header.as_deref(), needed).await {
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
