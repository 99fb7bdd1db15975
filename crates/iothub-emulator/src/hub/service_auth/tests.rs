use std::sync::Arc;

use super::*;
use crate::hub::{HubOptions, ManualClock};
use crate::store::Store;
use crate::store::registry::Policy;

const KEY: &str = "c2VydmljZS1rZXktZm9yLXRlc3Rz";
const OTHER_KEY: &str = "YW5vdGhlci1rZXk=";
const START: u64 = 1_800_000_000;

async fn hub() -> (Hub, Arc<ManualClock>) {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|tx| {
            crate::hub::registry::ensure_policies(tx)?;
            for (name, rights) in [("service", "ServiceConnect"), ("reader", "RegistryRead")] {
                registry_store::put_policy(
                    tx,
                    &Policy {
                        name: name.into(),
                        primary_key: OTHER_KEY.into(),
                        secondary_key: KEY.into(),
                        rights: rights.into(),
                    },
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(START),
    ));
    let options = HubOptions {
        names: vec!["localhost".into(), "myhub.example".into()],
        clock: clock.clone(),
        ..HubOptions::default()
    };
    (Hub::with_options(store, options), clock)
}

fn token(resource: &str, policy: Option<&str>, key: &str, expiry: u64) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    SasToken::sign(ResourceUri::raw(resource), expiry, policy, &signer)
        .unwrap()
        .to_string()
}

async fn refusal(hub: &Hub, token: Option<&str>, needed: ServiceRight) -> ServiceAuthRefusal {
    match hub.authorize_service(token, needed, "/devices").await {
        Err(ServiceAuthError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_signed_with_either_key_is_accepted_for_the_rights_its_policy_grants() {
    let (hub, _) = hub().await;
    for key in [OTHER_KEY, KEY] {
        let t = token("localhost", Some("service"), key, START + 60);
        let principal = hub
            .authorize_service(Some(&t), ServiceRight::ServiceConnect, "/devices")
            .await
            .unwrap();
        assert_eq!(principal.policy, "service");
    }
    // A host name with a port and a path still names this hub.
    let t = token(
        "MyHub.example:8443/devices",
        Some("reader"),
        KEY,
        START + 60,
    );
    hub.authorize_service(Some(&t), ServiceRight::RegistryRead, "/devices")
        .await
        .unwrap();
    assert_eq!(
        refusal(&hub, Some(&t), ServiceRight::RegistryWrite).await,
        ServiceAuthRefusal::NotGranted {
            policy: "reader".into(),
            needed: ServiceRight::RegistryWrite
        }
    );
}

#[tokio::test]
async fn each_refusal_names_its_rule() {
    let (hub, _) = hub().await;
    let right = ServiceRight::ServiceConnect;
    assert_eq!(
        refusal(&hub, None, right).await,
        ServiceAuthRefusal::MissingToken
    );
    assert_eq!(
        refusal(&hub, Some("Bearer abc"), right).await,
        ServiceAuthRefusal::MalformedToken
    );
    let device_token = token("localhost/devices/d1", None, KEY, START + 60);
    assert_eq!(
        refusal(&hub, Some(&device_token), right).await,
        ServiceAuthRefusal::NoPolicy
    );
    let foreign = token("otherhub.example", Some("service"), KEY, START + 60);
    assert_eq!(
        refusal(&hub, Some(&foreign), right).await,
        ServiceAuthRefusal::ForeignResource {
            resource: "otherhub.example".into()
        }
    );
    let unknown = token("localhost", Some("nobody"), KEY, START + 60);
    assert_eq!(
        refusal(&hub, Some(&unknown), right).await,
        ServiceAuthRefusal::UnknownPolicy {
            policy: "nobody".into()
        }
    );
    let wrong_key = token("localhost", Some("service"), "d3Jvbmc=", START + 60);
    assert_eq!(
        refusal(&hub, Some(&wrong_key), right).await,
        ServiceAuthRefusal::SignatureMismatch {
            policy: "service".into()
        }
    );
}

#[tokio::test]
async fn a_scope_covers_paths_below_it_in_any_case() {
    let (hub, _) = hub().await;
    let right = ServiceRight::ServiceConnect;
    // azure-eventhub signs the consumer group in lower case and attaches to it capitalised.
    let t = token(
        "sb://localhost/hub/consumergroups/$Default",
        Some("service"),
        KEY,
        START + 60,
    );
    hub.authorize_service(Some(&t), right, "/hub/ConsumerGroups/$Default/Partitions/0")
        .await
        .unwrap();
    for outside in [
        "/hub/ConsumerGroups/other",
        "/hub",
        "/hub/ConsumerGroups/$DefaultX",
    ] {
        match hub.authorize_service(Some(&t), right, outside).await {
            Err(ServiceAuthError::Refused(ServiceAuthRefusal::OutOfScope { policy })) => {
                assert_eq!(policy, "service");
            }
            other => panic!("{outside}: expected out of scope, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn expiry_follows_the_hub_clock_with_the_skew_allowance() {
    let (hub, clock) = hub().await;
    let t = token("localhost", Some("service"), KEY, START + 60);
    let right = ServiceRight::ServiceConnect;
    clock.advance(Duration::from_secs(60 + MAX_SKEW_SECS));
    hub.authorize_service(Some(&t), right, "/devices")
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let refused = refusal(&hub, Some(&t), right).await;
    assert_eq!(
        refused,
        ServiceAuthRefusal::Expired {
            policy: "service".into(),
            expired_at: iso8601_millis(SystemTime::UNIX_EPOCH + Duration::from_secs(START + 60)),
            skew_secs: MAX_SKEW_SECS,
        }
    );
}

#[tokio::test]
async fn refusals_never_carry_the_signature_or_a_key() {
    let (hub, _) = hub().await;
    let right = ServiceRight::RegistryWrite;
    let mut texts = Vec::new();
    for t in [
        token("localhost", Some("service"), "d3Jvbmc=", START + 60),
        token("localhost", Some("service"), KEY, START - 3600),
        token("localhost", Some("service"), KEY, START + 60),
    ] {
        let reason = refusal(&hub, Some(&t), right).await.to_string();
        let sig = t.split("sig=").nth(1).unwrap().split('&').next().unwrap();
        assert!(!reason.contains(sig), "{reason}");
        texts.push(reason);
    }
    for text in &texts {
        assert!(!text.contains(KEY) && !text.contains(OTHER_KEY), "{text}");
    }
}

#[tokio::test]
async fn a_signed_session_token_is_accepted_until_it_expires() {
    let (hub, clock) = hub().await;
    let signed = hub
        .sign_service_token("iothubowner", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(signed.expires_unix_secs, START + 600);
    assert!(
        signed
            .token
            .starts_with("SharedAccessSignature sr=localhost&sig=")
    );
    for right in [
        ServiceRight::RegistryRead,
        ServiceRight::RegistryWrite,
        ServiceRight::ServiceConnect,
    ] {
        hub.authorize_service(Some(&signed.token), right, "/devices")
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(600 + MAX_SKEW_SECS + 1));
    assert!(matches!(
        refusal(&hub, Some(&signed.token), ServiceRight::RegistryRead).await,
        ServiceAuthRefusal::Expired { .. }
    ));
    assert!(matches!(
        hub.sign_service_token("nobody", Duration::from_secs(1))
            .await
            .unwrap_err(),
        ServiceTokenError::UnknownPolicy(p) if p == "nobody"
    ));
}

#[test]
fn registry_write_implies_registry_read_but_not_service_connect() {
    assert!(ServiceRight::RegistryRead.granted_by("RegistryWrite"));
    assert!(ServiceRight::RegistryWrite.granted_by("RegistryWrite,ServiceConnect,DeviceConnect"));
    assert!(!ServiceRight::ServiceConnect.granted_by("RegistryWrite"));
    assert!(!ServiceRight::RegistryWrite.granted_by("RegistryRead"));
    assert!(!ServiceRight::ServiceConnect.granted_by("DeviceConnect"));
}
