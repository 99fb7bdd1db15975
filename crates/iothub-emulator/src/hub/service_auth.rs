//! Service-side authentication: a shared access signature
//! (`SharedAccessSignature sr={host}&sig=…&se=…&skn={policy}`) verified with `iothub-proto`
//! over the raw `sr` against the named shared access policy's primary or secondary key, then
//! authorised by the policy's rights; and the signing of short-lived service tokens (the
//! dashboard's session).
//!
//! Rights (IoT Hub's permission model): `RegistryRead` reads the registry, `RegistryWrite`
//! reads and writes it, `ServiceConnect` covers twins, methods, C2D, feedback and events,
//! `DeviceConnect` alone grants nothing on the service side. `iothubowner` has all of them.
//!
//! A refusal says which rule failed and with which values, never the key, the signature or
//! the token; every refusal is logged at info level.

use std::time::{Duration, SystemTime};

use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, ResourceUri, SasToken, VerifyError};

use super::auth::MAX_SKEW_SECS;
use super::{Hub, audience};
use crate::store::StoreError;
use crate::store::registry as registry_store;
use crate::timestamp::iso8601_millis;

/// A right a service operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceRight {
    /// Read identities (granted by `RegistryRead` or `RegistryWrite`).
    RegistryRead,
    /// Create, update, delete identities (`RegistryWrite`).
    RegistryWrite,
    /// Twins, methods, C2D, feedback, events (`ServiceConnect`).
    ServiceConnect,
}

impl ServiceRight {
    /// The right's name, as policies list it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegistryRead => "RegistryRead",
            Self::RegistryWrite => "RegistryWrite",
            Self::ServiceConnect => "ServiceConnect",
        }
    }

    /// Whether a policy's comma-separated `rights` grant this right.
    ///
    /// ```
    /// use iothub_emulator::hub::service_auth::ServiceRight;
    /// assert!(ServiceRight::RegistryRead.granted_by("RegistryWrite,ServiceConnect"));
    /// assert!(!ServiceRight::ServiceConnect.granted_by("DeviceConnect"));
    /// ```
    #[must_use]
    pub fn granted_by(self, rights: &str) -> bool {
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

impl std::fmt::Display for ServiceRight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a service token was refused: the rule and the values that failed (never a key, a
/// signature or the token itself), so it can be logged and shown as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceAuthRefusal {
    /// No token was presented.
    #[error("no service token was presented")]
    MissingToken,
    /// The token is not a well-formed `SharedAccessSignature`.
    #[error("the token is not a well-formed SharedAccessSignature")]
    MalformedToken,
    /// The token names no shared access policy (`skn`), as a device token does.
    #[error("the token names no shared access policy (skn)")]
    NoPolicy,
    /// The token's resource (`sr`) is not valid percent-encoding.
    #[error("the token's resource (sr) is not valid percent-encoding")]
    MalformedResource,
    /// The token's resource names another host.
    #[error("the token's resource `{resource}` is not this hub")]
    ForeignResource {
        /// The decoded `sr`.
        resource: String,
    },
    /// No policy has the token's `skn`.
    #[error("there is no shared access policy `{policy}`")]
    UnknownPolicy {
        /// The token's `skn`.
        policy: String,
    },
    /// The token expired (beyond the allowed clock skew).
    #[error("the token of policy `{policy}` expired at {expired_at} ({skew_secs} s skew allowed)")]
    Expired {
        /// The policy.
        policy: String,
        /// The token's `se`, as ISO-8601 UTC.
        expired_at: String,
        /// The clock skew allowed.
        skew_secs: u64,
    },
    /// The signature matches neither of the policy's keys.
    #[error("the signature matches neither the primary nor the secondary key of policy `{policy}`")]
    SignatureMismatch {
        /// The policy.
        policy: String,
    },
    /// The token's resource or policy name does not fit what it was signed for.
    #[error("the token's scope does not match policy `{policy}`")]
    OutOfScope {
        /// The policy.
        policy: String,
    },
    /// The policy verified the token but does not grant the right the operation needs.
    #[error("policy `{policy}` does not grant {needed}")]
    NotGranted {
        /// The policy.
        policy: String,
        /// The right the operation needs.
        needed: ServiceRight,
    },
}

/// The outcome of a refused service authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceAuthError {
    /// The token was refused.
    #[error("service token refused: {0}")]
    Refused(#[from] ServiceAuthRefusal),
    /// The policies could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who a verified service token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// The shared access policy whose key verified the token.
    pub policy: String,
}

/// A signed service token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceToken {
    /// The `SharedAccessSignature …` text.
    pub token: String,
    /// When it expires, in Unix seconds.
    pub expires_unix_secs: u64,
}

/// Why a service token could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceTokenError {
    /// No policy has that name.
    #[error("no {0} policy")]
    UnknownPolicy(String),
    /// The policy's primary key is not base64.
    #[error("the {0} key is not base64")]
    BadKey(String),
    /// The token could not be built.
    #[error("signing failed")]
    Signing,
    /// The policies could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Hub {
    /// Verifies a service token (`None`: none was presented) for an operation on
    /// `resource_path` (relative to the hub, e.g. `/devices/d1` or `/messages/events`) at the
    /// hub's time, and checks that its policy grants `needed`. The token's `sr` is a URI-prefix
    /// scope and may name the hub by any of its names ([`super::audience`]). Refusals are
    /// logged at info level with their reason.
    ///
    /// # Errors
    /// [`ServiceAuthError::Refused`] with the reason, or [`ServiceAuthError::Store`].
    pub async fn authorize_service(
        &self,
        token: Option<&str>,
        needed: ServiceRight,
        resource_path: &str,
    ) -> Result<ServicePrincipal, ServiceAuthError> {
        let outcome = self
            .verify_service_token(token, needed, resource_path)
            .await;
        if let Err(ServiceAuthError::Refused(reason)) = &outcome {
            tracing::info!(right = %needed, %reason, "service request refused");
        }
        outcome
    }

    /// [`Hub::authorize_service`] without the log line, for a caller that tries several
    /// tokens for one request and logs the refusal once, when none grants it.
    ///
    /// # Errors
    /// As [`Hub::authorize_service`].
    pub async fn verify_service_token(
        &self,
        token: Option<&str>,
        needed: ServiceRight,
        resource_path: &str,
    ) -> Result<ServicePrincipal, ServiceAuthError> {
        let text = token.ok_or(ServiceAuthRefusal::MissingToken)?;
        let token =
            ParsedSasToken::parse(text.trim()).map_err(|_| ServiceAuthRefusal::MalformedToken)?;
        let policy = token
            .policy()
            .and_then(|p| p.decode().ok())
            .ok_or(ServiceAuthRefusal::NoPolicy)?;
        let resource = token
            .resource()
            .decode()
            .map_err(|_| ServiceAuthRefusal::MalformedResource)?;
        let (scheme, scoped) = audience::split_scheme(&resource);
        let Some(host) = audience::hub_alias(self.names(), scoped) else {
            return Err(ServiceAuthRefusal::ForeignResource { resource }.into());
        };
        // The request is named the way the token names its scope (scheme and host as signed).
        let requested = format!(
            "{scheme}{}",
            audience::request_resource(host, resource_path)
        );
        let name = policy.clone();
        let record = self
            .inner
            .store
            .call(move |tx| registry_store::policy(tx, &name))
            .await?
            .ok_or(ServiceAuthRefusal::UnknownPolicy { policy })?;
        // Verified step by step rather than with `VerifyRequest`: a service token's scope
        // is compared without regard to case, because Event Hubs entity names are
        // case-insensitive and clients spell them either way (docs/amqp.md "Authentication").
        let outcome = if !token.has_policy(Some(&record.name)) {
            Err(VerifyError::PolicyMismatch)
        } else if !token.covers_ignoring_case(&requested) {
            Err(VerifyError::OutOfScope)
        } else if token.is_expired(self.now_unix_secs(), MAX_SKEW_SECS) {
            Err(VerifyError::Expired)
        } else {
            // IoT Hub clients sign with the key's base64-decoded bytes; Event Hubs (Service
            // Bus) clients, reading the Event Hub-compatible connection string, sign with the
            // key's text itself (docs/amqp.md "Authentication"). Both need the same secret.
            let mut signers = [&record.primary_key, &record.secondary_key]
                .into_iter()
                .flat_map(|key| {
                    [
                        HmacSha256Signer::from_base64(key).ok(),
                        HmacSha256Signer::from_bytes(key.as_bytes()).ok(),
                    ]
                })
                .flatten();
            if signers.any(|signer| token.verify_signature(&signer).is_ok()) {
                Ok(())
            } else {
                Err(VerifyError::SignatureMismatch)
            }
        };
        let policy = record.name;
        let refusal = match outcome {
            Ok(()) if needed.granted_by(&record.rights) => {
                return Ok(ServicePrincipal { policy });
            }
            Ok(()) => ServiceAuthRefusal::NotGranted { policy, needed },
            Err(VerifyError::Expired) => ServiceAuthRefusal::Expired {
                policy,
                expired_at: iso8601_millis(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(token.expiry()),
                ),
                skew_secs: MAX_SKEW_SECS,
            },
            Err(VerifyError::OutOfScope | VerifyError::PolicyMismatch) => {
                ServiceAuthRefusal::OutOfScope { policy }
            }
            Err(_) => ServiceAuthRefusal::SignatureMismatch { policy },
        };
        Err(refusal.into())
    }

    /// Signs a hub-scoped token of `policy` with its primary key, valid for `ttl` from the
    /// hub's time.
    ///
    /// # Errors
    /// [`ServiceTokenError`].
    pub async fn sign_service_token(
        &self,
        policy: &str,
        ttl: Duration,
    ) -> Result<ServiceToken, ServiceTokenError> {
        let name = policy.to_owned();
        let record = self
            .inner
            .store
            .call(move |tx| registry_store::policy(tx, &name))
            .await?
            .ok_or_else(|| ServiceTokenError::UnknownPolicy(policy.to_owned()))?;
        let signer = HmacSha256Signer::from_base64(&record.primary_key)
            .map_err(|_| ServiceTokenError::BadKey(policy.to_owned()))?;
        let expires = self.now_unix_secs() + ttl.as_secs();
        let token = SasToken::sign(
            ResourceUri::hub(self.host()),
            expires,
            Some(policy),
            &signer,
        )
        .map_err(|_| ServiceTokenError::Signing)?;
        Ok(ServiceToken {
            token: token.to_string(),
            expires_unix_secs: expires,
        })
    }
}

#[cfg(test)]
mod tests;
