//! Service authentication: `Authorization: SharedAccessSignature sr={host}&sig=…&se=…&skn={policy}`
//! (PROTOCOL.md §10), verified with `iothub-proto` over the raw `sr` against the named shared
//! access policy's primary or secondary key, then authorised by the policy's rights.
//!
//! Rights (IoT Hub's permission model): `RegistryRead` reads the registry, `RegistryWrite`
//! reads and writes it, `ServiceConnect` covers twins, methods, C2D, feedback and events,
//! `DeviceConnect` alone grants nothing here. `iothubowner` has all of them.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, VerifyError, VerifyRequest};

use super::{ApiError, ApiState};
use crate::hub::auth::MAX_SKEW_SECS;
use crate::hub::{Hub, audience};
use crate::store::registry;

/// The policy right an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permission {
    /// Read identities (`RegistryRead` or `RegistryWrite`).
    RegistryRead,
    /// Create, update, delete identities (`RegistryWrite`).
    RegistryWrite,
    /// Twins, methods, C2D, feedback, events (`ServiceConnect`).
    ServiceConnect,
}

impl Permission {
    /// The right's name, as policies list it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::RegistryRead => "RegistryRead",
            Self::RegistryWrite => "RegistryWrite",
            Self::ServiceConnect => "ServiceConnect",
        }
    }

    /// Whether a policy's comma-separated `rights` grant this permission.
    pub(crate) fn granted_by(self, rights: &str) -> bool {
        let has = |name: &str| {
            rights
                .split(',')
                .any(|r| r.trim().eq_ignore_ascii_case(name))
        };
        match self {
            Self::RegistryRead => has("RegistryRead") || has("RegistryWrite"),
            Self::RegistryWrite => has("RegistryWrite"),
            Self::ServiceConnect => has("ServiceConnect"),
        }
    }
}

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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = request.uri().path().to_owned();
    match authorize(&state.hub, header.as_deref(), &path, needed, now).await {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Checks `header` (the `Authorization` value) for a request on `path` at Unix time `now`:
/// the token's `sr` must cover the resource the path names ([`audience::request_resource`]).
pub(crate) async fn authorize(
    hub: &Hub,
    header: Option<&str>,
    path: &str,
    needed: Permission,
    now: u64,
) -> Result<(), ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized("Missing Authorization header"))?;
    let token = ParsedSasToken::parse(header.trim())
        .map_err(|_| ApiError::unauthorized("Malformed SharedAccessSignature"))?;
    let policy = token
        .policy()
        .and_then(|p| p.decode().ok())
        .ok_or_else(|| ApiError::unauthorized("A service token needs a policy (skn)"))?;
    let resource = token
        .resource()
        .decode()
        .map_err(|_| ApiError::unauthorized("Malformed token resource"))?;
    let Some(host) = audience::hub_alias(hub.names(), &resource) else {
        return Err(ApiError::unauthorized(format!(
            "Token resource {resource} is not this hub"
        )));
    };
    let requested = audience::request_resource(host, path);
    let name = policy.clone();
    let record = hub
        .store()
        .call(move |tx| registry::policy(tx, &name))
        .await?
        .ok_or_else(|| ApiError::unauthorized(format!("Unknown shared access policy {policy}")))?;
    let request = VerifyRequest {
        resource: &requested,
        policy: Some(&record.name),
        now,
        max_skew: MAX_SKEW_SECS,
    };
    let mut outcome = Err(VerifyError::SignatureMismatch);
    for key in [&record.primary_key, &record.secondary_key] {
        let Ok(signer) = HmacSha256Signer::from_base64(key) else {
            continue;
        };
        outcome = token.verify(&request, &signer);
        if outcome.is_ok() {
            break;
        }
    }
    match outcome {
        Ok(()) if needed.granted_by(&record.rights) => Ok(()),
        Ok(()) => Err(ApiError::unauthorized(format!(
            "Policy {} does not grant {}",
            record.name,
            needed.as_str()
        ))),
        Err(VerifyError::Expired) => Err(ApiError::unauthorized("SAS token expired")),
        Err(_) => Err(ApiError::unauthorized(
            "SAS token signature or scope is invalid",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_write_implies_registry_read_but_not_service_connect() {
        assert!(Permission::RegistryRead.granted_by("RegistryWrite"));
        assert!(Permission::RegistryWrite.granted_by("RegistryWrite,ServiceConnect,DeviceConnect"));
        assert!(!Permission::ServiceConnect.granted_by("RegistryWrite"));
        assert!(!Permission::RegistryWrite.granted_by("RegistryRead"));
        assert!(!Permission::ServiceConnect.granted_by("DeviceConnect"));
    }
}
