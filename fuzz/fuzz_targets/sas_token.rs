//! SAS tokens arrive as the MQTT CONNECT password: untrusted.
//! Invariants: parse and verify never panic; a parsed token re-assembled from its raw fields
//! parses identically; a token we sign for arbitrary resource/policy text parses back and
//! verifies, and fails once its expiry (with skew) has passed.
#![no_main]

use iothub_proto::sas::{
    HmacSha256Signer, ParsedSasToken, ResourceUri, SasToken, VerifyError, VerifyRequest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    // invariant: a fixed, valid 32-byte key.
    let signer = HmacSha256Signer::from_bytes(&[7u8; 32]).expect("valid key");

    // 1. Arbitrary text as a received password.
    if let Ok(token) = ParsedSasToken::parse(text) {
        let request = VerifyRequest {
            resource: "h/devices/d",
            policy: None,
            now: 1_700_000_000,
            max_skew: 300,
        };
        let _ = token.verify(&request, &signer);
        let _ = token.covers(text);
        let mut again = format!(
            "SharedAccessSignature sr={}&sig={}&se={}",
            token.resource_raw(),
            token.signature().raw(),
            token.expiry_raw()
        );
        if let Some(policy) = token.policy() {
            again.push_str(&format!("&skn={}", policy.raw()));
        }
        assert_eq!(ParsedSasToken::parse(&again), Ok(token));
    }

    // 2. Arbitrary text as the resource and policy of a token we mint.
    let (resource, policy) = match text.split_once('\u{0}') {
        Some((resource, policy)) if !policy.is_empty() => (resource, Some(policy)),
        _ => (text, None),
    };
    if resource.is_empty() {
        return;
    }
    let expiry = 1_700_000_000;
    let minted = SasToken::sign(ResourceUri::raw(resource), expiry, policy, &signer)
        .expect("hmac signs")
        .to_string();
    let token = ParsedSasToken::parse(&minted).expect("a minted token parses");
    assert_eq!(token.expiry(), expiry);
    assert!(token.resource().eq_str(resource));
    assert!(token.covers(resource));
    let mut request = VerifyRequest {
        resource,
        policy,
        now: expiry,
        max_skew: 300,
    };
    assert_eq!(token.verify(&request, &signer), Ok(()));
    request.now = expiry + 301;
    assert_eq!(token.verify(&request, &signer), Err(VerifyError::Expired));
});
