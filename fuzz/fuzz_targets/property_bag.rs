//! Property-bag parser: never panics; decoded pairs re-encode and parse back equal.
#![no_main]

use std::fmt::Write;

use iothub_proto::properties::{PropertyBag, PropertyWriter, SystemProperty};
use libfuzzer_sys::fuzz_target;

/// Percent-encodes arbitrary bytes keeping RFC 3986 unreserved characters.
fn encode_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

type Pairs = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn decoded(bag: PropertyBag<'_>) -> Pairs {
    bag.iter()
        .map(|(k, v)| (k.bytes().collect(), v.map(|v| v.bytes().collect())))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = core::str::from_utf8(data) else {
        return;
    };
    let bag = PropertyBag::parse(raw);
    let pairs = decoded(bag);

    // lookups and display never panic
    for property in SystemProperty::ALL {
        let _ = bag.system(property).map(|v| v.to_string());
    }
    let _ = bag.application().count();
    if let Some((key, _)) = bag.iter().next() {
        if let Ok(key) = String::from_utf8(key.bytes().collect()) {
            assert!(bag.get(&key).is_some());
        }
    }

    // well-formedness never panics, and the canonical re-encoding below is always well formed
    let _ = bag.iter().all(|(k, v)| k.is_well_formed() && v.is_none_or(|v| v.is_well_formed()));

    // canonical re-encoding parses back to the same decoded pairs
    let mut text = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            text.push('&');
        }
        text.push_str(&encode_bytes(key));
        if let Some(value) = value {
            text.push('=');
            text.push_str(&encode_bytes(value));
        }
    }
    // empty keys vanish when re-parsed only if the pair was empty, which iteration skips
    assert_eq!(decoded(PropertyBag::parse(&text)), pairs, "{raw} -> {text}");
    assert!(
        PropertyBag::parse(&text)
            .iter()
            .all(|(k, v)| k.is_well_formed() && v.is_none_or(|v| v.is_well_formed())),
        "{text}"
    );

    // the writer agrees for UTF-8, non-null application properties
    let strings: Option<Vec<(String, String)>> = pairs
        .iter()
        .map(|(k, v)| {
            Some((
                String::from_utf8(k.clone()).ok()?,
                String::from_utf8(v.clone()?).ok()?,
            ))
        })
        .collect();
    if let Some(strings) = strings {
        let refs: Vec<(&str, &str)> = strings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let written = PropertyWriter::new().application(&refs).to_string();
        assert_eq!(
            decoded(PropertyBag::parse(&written)),
            pairs,
            "{raw} -> {written}"
        );
    }
});
