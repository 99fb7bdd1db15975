//! Connection strings are untrusted input (CLI arguments, environment, files).
//! Invariants: parsing never panics; every accepted string has a non-empty host and a
//! credential consistent with its fields; re-assembling the parsed fields parses to the same.
#![no_main]

use iothub_proto::connection_string::{ConnectionString, Credential};
use iothub_proto::sas::ParsedSasToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(cs) = ConnectionString::parse(text) else {
        return;
    };

    assert!(!cs.host_name().is_empty());
    assert_eq!(
        cs.dial_host(),
        cs.gateway_host_name().unwrap_or(cs.host_name())
    );
    match cs.credential() {
        Credential::DeviceKey { .. } => {
            assert!(cs.device_id().is_some() && cs.module_id().is_none())
        }
        Credential::ModuleKey { .. } => {
            assert!(cs.device_id().is_some() && cs.module_id().is_some())
        }
        Credential::DevicePolicyKey { .. } => {
            assert!(cs.device_id().is_some() && cs.policy_name().is_some())
        }
        Credential::ServicePolicyKey { .. } => {
            assert!(cs.device_id().is_none() && cs.policy_name().is_some())
        }
        Credential::Token { token } => assert!(ParsedSasToken::parse(token).is_ok()),
        Credential::X509 => assert!(cs.device_id().is_some()),
        _ => {}
    }

    // Re-assemble from the parsed fields in canonical order: it must parse to the same thing.
    let mut again = format!("HostName={}", cs.host_name());
    for (name, value) in [
        ("DeviceId", cs.device_id()),
        ("ModuleId", cs.module_id()),
        ("SharedAccessKeyName", cs.policy_name()),
        ("SharedAccessKey", cs.shared_access_key()),
        ("GatewayHostName", cs.gateway_host_name()),
    ] {
        if let Some(value) = value {
            again.push_str(&format!(";{name}={value}"));
        }
    }
    match cs.credential() {
        Credential::Token { token } => again.push_str(&format!(";SharedAccessSignature={token}")),
        Credential::X509 => again.push_str(";x509=true"),
        _ => {}
    }
    assert_eq!(ConnectionString::parse(&again), Ok(cs), "{again}");
});
