//! Twin document limits (docs/protocol.md §6 "Limits", Microsoft Learn
//! `iot-hub-devguide-device-twins` "Tags and properties format" and "Device twin size").
//!
//! Patches are checked twice: [`check_patch`] validates keys and leaf values of the patch
//! itself, and [`check_section`] validates the merged result (depth and size), so a patch
//! that would push a section over a limit is rejected before anything is written.

use serde_json::{Map, Value};

use super::TwinRejection;

/// Longest key, in UTF-8 bytes ("≤1 KB").
pub(super) const MAX_KEY_BYTES: usize = 1024;
/// Longest string value, in UTF-8 bytes ("strings ≤4 KB").
pub(super) const MAX_STRING_BYTES: usize = 4096;
/// Deepest object nesting below a section root ("depth ≤10").
pub(super) const MAX_DEPTH: usize = 10;
/// Largest desired or reported section ("32 KB each").
pub(super) const MAX_PROPERTIES_BYTES: usize = 32 * 1024;
/// Largest tags section ("tags 8 KB").
pub(super) const MAX_TAGS_BYTES: usize = 8 * 1024;
/// Smallest integer a twin may hold.
pub(super) const MIN_INTEGER: i64 = -4_503_599_627_370_496;
/// Largest integer a twin may hold.
pub(super) const MAX_INTEGER: i64 = 4_503_599_627_370_495;

/// Checks every key and leaf value of a patch (or replacement) object.
pub(super) fn check_patch(patch: &Map<String, Value>) -> Result<(), TwinRejection> {
    for (key, value) in patch {
        check_key(key)?;
        check_value(value)?;
    }
    Ok(())
}

/// Checks a merged section against the depth and size limits.
pub(super) fn check_section(
    section: &Map<String, Value>,
    max_bytes: usize,
) -> Result<(), TwinRejection> {
    let depth = section.values().map(depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(TwinRejection::TooDeep);
    }
    let size: usize = section.iter().map(|(k, v)| k.len() + size(v)).sum();
    if size > max_bytes {
        return Err(TwinRejection::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    Ok(())
}

/// Keys: UTF-8, ≤1 KB, no C0/C1 control characters, no `.`, `$` or space.
fn check_key(key: &str) -> Result<(), TwinRejection> {
    let forbidden = |c: char| c == '.' || c == '$' || c == ' ' || c.is_control();
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(forbidden) {
        return Err(TwinRejection::InvalidKey);
    }
    Ok(())
}

fn check_value(value: &Value) -> Result<(), TwinRejection> {
    match value {
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(TwinRejection::StringTooLong),
        Value::Number(n) => check_number(n),
        Value::Object(map) => check_patch(map),
        Value::Array(items) => items.iter().try_for_each(check_value),
        _ => Ok(()),
    }
}

fn check_number(n: &serde_json::Number) -> Result<(), TwinRejection> {
    let in_range = if let Some(i) = n.as_i64() {
        (MIN_INTEGER..=MAX_INTEGER).contains(&i)
    } else {
        // A u64 above i64::MAX is an integer out of range; floats are accepted as they are.
        n.as_u64().is_none()
    };
    if in_range {
        Ok(())
    } else {
        Err(TwinRejection::IntegerOutOfRange)
    }
}

/// Object nesting of a value: a scalar is 0, an object is one more than its deepest member.
/// Arrays are transparent: objects inside them count at the array's level.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Size as the twin documentation counts it: key and string lengths in bytes, numbers 8,
/// booleans 4, containers the sum of their members.
fn size(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 4,
        Value::Number(_) => 8,
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(size).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + size(v)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(v: Value) -> Result<(), TwinRejection> {
        let Value::Object(map) = v else {
            panic!("not an object")
        };
        check_patch(&map)
    }

    fn section(v: Value) -> Result<(), TwinRejection> {
        let Value::Object(map) = v else {
            panic!("not an object")
        };
        check_section(&map, MAX_PROPERTIES_BYTES)
    }

    /// Builds `{"k1":{"k2":...{"kN": leaf}}}`.
    fn nested(levels: usize, leaf: Value) -> Value {
        (1..=levels)
            .rev()
            .fold(leaf, |inner, i| json!({ format!("k{i}"): inner }))
    }

    #[test]
    fn key_rules_follow_the_twin_documentation() {
        let table = [
            ("temperature", true),
            ("with_underscore-and-dash", true),
            ("ünïcödé", true),
            ("has.dot", false),
            ("$version", false),
            ("has space", false),
            ("tab\there", false),
            ("c1\u{85}control", false),
            ("", false),
        ];
        for (key, ok) in table {
            assert_eq!(patch(json!({ key: 1 })).is_ok(), ok, "{key:?}");
            assert_eq!(
                patch(json!({ "outer": { key: 1 } })).is_ok(),
                ok,
                "nested {key:?}"
            );
        }
        assert!(patch(json!({ "a".repeat(1024): 1 })).is_ok());
        assert_eq!(
            patch(json!({ "a".repeat(1025): 1 })),
            Err(TwinRejection::InvalidKey)
        );
    }

    #[test]
    fn strings_are_limited_to_four_kilobytes() {
        assert!(patch(json!({ "s": "x".repeat(4096) })).is_ok());
        assert_eq!(
            patch(json!({ "s": "x".repeat(4097) })),
            Err(TwinRejection::StringTooLong)
        );
        assert_eq!(
            patch(json!({ "a": ["x".repeat(4097)] })),
            Err(TwinRejection::StringTooLong)
        );
    }

    #[test]
    fn integers_outside_the_documented_range_are_rejected() {
        assert!(patch(json!({ "n": MAX_INTEGER, "m": MIN_INTEGER, "f": 1.5e300 })).is_ok());
        assert_eq!(
            patch(json!({ "n": MAX_INTEGER + 1 })),
            Err(TwinRejection::IntegerOutOfRange)
        );
        assert_eq!(
            patch(json!({ "n": MIN_INTEGER - 1 })),
            Err(TwinRejection::IntegerOutOfRange)
        );
        assert_eq!(
            patch(json!({ "n": u64::MAX })),
            Err(TwinRejection::IntegerOutOfRange)
        );
    }

    #[test]
    fn ten_levels_of_objects_are_allowed_and_eleven_are_not() {
        // The documentation's valid example: desired.one.two...ten.property = "value".
        assert!(section(nested(11, json!("value"))).is_ok());
        assert_eq!(
            section(nested(12, json!("value"))),
            Err(TwinRejection::TooDeep)
        );
        assert_eq!(section(nested(11, json!({}))), Err(TwinRejection::TooDeep));
        assert_eq!(
            section(json!({"a": [nested(11, json!(1))]})),
            Err(TwinRejection::TooDeep)
        );
    }

    #[test]
    fn size_counts_keys_strings_and_fixed_widths_for_numbers_and_booleans() {
        let v = json!({ "ab": "xyz", "n": 1, "b": true, "o": { "k": [1, "zz"] } });
        // ab+xyz = 5, n+8 = 9, b+4 = 5, o + (k + 8 + 2) = 12
        assert_eq!(size(&v), 31);
        let at_limit = json!({ "k": "x".repeat(4000) });
        let mut big = Map::new();
        for i in 0..8 {
            // each member: key (2 bytes) + 4000 = 4002; 8 members = 32016 <= 32768
            big.insert(format!("k{i}"), at_limit["k"].clone());
        }
        assert!(check_section(&big, MAX_PROPERTIES_BYTES).is_ok());
        big.insert("k8".into(), json!("x".repeat(1000)));
        assert!(matches!(
            check_section(&big, MAX_PROPERTIES_BYTES),
            Err(TwinRejection::TooLarge {
                size: 33018,
                limit: 32768
            })
        ));
        assert!(matches!(
            check_section(&big, MAX_TAGS_BYTES),
            Err(TwinRejection::TooLarge { .. })
        ));
    }
}
