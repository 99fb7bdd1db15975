//! Property tests of the JSON scanner: it never panics, agrees with a full parser on what is
//! JSON, and finds every member of generated objects.

extern crate std;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use proptest::prelude::*;

use super::{DpsBody, JsonKind, JsonValue, desired_version, twin_versions};

/// JSON text built from generated parts: `(text, kind)`.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1.0e9f64..1.0e9).prop_map(|x| format!("{x:e}")),
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec(("[a-zA-Z$_]{0,6}", inner), 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{} : {v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{ {} }}", members.join(" ,\n"))
            }),
        ]
    })
}

/// Bytes drawn mostly from JSON's own alphabet, so that near-JSON is common.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(b"{}[]\",:0123456789-+.eEtrufalsn \n\\".to_vec()),
            any::<u8>(),
        ],
        0..64,
    )
}

/// Like [`json_ish`] without backslashes (see the agreement test).
fn json_without_escapes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        proptest::sample::select(
            b"{}[]\",:0123456789-+.eEtrufalsn \n\t\r\x0c\x01\xc3\xa9\xff".to_vec(),
        ),
        0..48,
    )
}

fn walk(value: JsonValue<'_>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let _ = (
        value.kind(),
        value.as_u64(),
        value.as_bool(),
        value.is_null(),
    );
    if let Some(text) = value.as_text() {
        let mut buf = [0u8; 64];
        if let Ok(unescaped) = text.unescape_into(&mut buf) {
            assert!(text.eq_str(unescaped));
            assert_eq!(text.to_string(), unescaped);
        }
    }
    for (key, member) in value.members() {
        let _ = key.to_string();
        walk(member, budget);
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop_oneof![json_ish(), proptest::collection::vec(any::<u8>(), 0..64)]) {
        let _ = desired_version(&bytes);
        let _ = twin_versions(&bytes);
        let _ = DpsBody::parse(&bytes);
        if let Ok(value) = JsonValue::parse(&bytes) {
            walk(value, &mut 64);
        }
    }

    #[test]
    fn agrees_with_a_full_parser_on_what_is_json(bytes in json_without_escapes()) {
        // Escapes are checked lazily (on unescaping), as serde-json-core did, so the inputs
        // here hold no backslashes.
        let ours = JsonValue::parse(&bytes).is_ok();
        let full = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok();
        prop_assert_eq!(ours, full, "{:?}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn generated_values_parse_and_keep_their_text(text in json_value()) {
        let value = JsonValue::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(value.raw(), text.trim());
        walk(value, &mut 256);
    }

    #[test]
    fn finds_every_member_of_generated_objects(
        members in proptest::collection::btree_map("[a-zA-Z$_ \"\\\\]{0,8}", json_value(), 0..8),
        spacing in "[ \n\t\r]{0,2}",
    ) {
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{spacing}{}{spacing}:{spacing}{v}{spacing}", serde_json::to_string(k).unwrap()))
            .collect();
        let text = format!("{spacing}{{{}}}{spacing}", body.join(","));
        let object = JsonValue::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(object.kind(), JsonKind::Object);
        prop_assert_eq!(object.members().count(), members.len());
        for (key, value) in &members {
            let found = object.get(key).unwrap();
            prop_assert_eq!(found.raw(), value.as_str());
            prop_assert_eq!(object.path(&[key.as_str()]), Some(found));
        }
        prop_assert_eq!(object.get("not a generated key!"), None);
    }

    #[test]
    fn unescapes_what_a_full_encoder_escaped(text in "\\PC{0,16}", ascii_only in any::<bool>()) {
        // serde_json escapes quotes, backslashes and control characters; escape the rest of
        // the non-ASCII characters as \u (with surrogate pairs) half of the time.
        let mut json = serde_json::to_string(&text).unwrap();
        if ascii_only {
            json = json
                .chars()
                .map(|c| if c.is_ascii() { c.to_string() } else {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04X}")).collect()
                })
                .collect();
        }
        let value = JsonValue::parse(json.as_bytes()).unwrap();
        let content = value.as_text().unwrap();
        let mut buf = [0u8; 128];
        prop_assert_eq!(content.unescape_into(&mut buf), Ok(text.as_str()));
        prop_assert!(content.eq_str(&text));
        prop_assert_eq!(content.to_string(), text);
    }
}
