//! Property tests of the merge-patch rules against an independent RFC 7386 reference, and of
//! the `$metadata` tree staying in step with the properties.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::document::Section;

/// A JSON value of bounded depth with few distinct keys, so patches often hit existing keys.
fn value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object(depth: u32) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-d]", value(depth), 0..4).prop_map(|m| m.into_iter().collect())
}

/// RFC 7386 MergePatch, written from the RFC's pseudo-code.
fn reference_merge(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = reference_merge(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// Every object node's non-`$` keys equal the metadata node's non-`$` keys, and every
/// metadata node carries `$lastUpdated`.
fn metadata_mirrors(props: &Map<String, Value>, meta: &Map<String, Value>) -> bool {
    if !meta.get("$lastUpdated").is_some_and(Value::is_string) {
        return false;
    }
    let meta_keys: Vec<&String> = meta.keys().filter(|k| !k.starts_with('$')).collect();
    let prop_keys: Vec<&String> = props.keys().collect();
    if meta_keys != prop_keys {
        return false;
    }
    props.iter().all(|(k, v)| match (v, meta.get(k)) {
        (Value::Object(p), Some(Value::Object(m))) => metadata_mirrors(p, m),
        (_, Some(Value::Object(m))) => {
            m.keys().all(|k| k.starts_with('$')) && m.contains_key("$lastUpdated")
        }
        _ => false,
    })
}

proptest! {
    #[test]
    fn merge_matches_rfc_7386_and_metadata_stays_in_step(
        first in object(3),
        patches in prop::collection::vec(object(3), 1..4),
    ) {
        let mut section = Section::new_for_tests();
        section.merge(&first, "2026-01-01T00:00:00.000Z");
        let mut expected = reference_merge(&Value::Object(Map::new()), &Value::Object(first));
        for patch in &patches {
            section.merge(patch, "2026-01-01T00:00:01.000Z");
            expected = reference_merge(&expected, &Value::Object(patch.clone()));
        }
        prop_assert_eq!(Value::Object(section.properties.clone()), expected);
        prop_assert!(metadata_mirrors(&section.properties, &section.metadata));
        prop_assert_eq!(section.version, 2 + patches.len() as u64);
    }
}
