//! The stored twin document: tags, desired and reported sections with their `$metadata`
//! trees and versions, and the merge-patch rules (docs/protocol.md §6 "Patch semantics" and
//! "Versioning").
//!
//! Metadata is kept in the exact shape the service API shows it: every node carries
//! `$lastUpdated` (ISO-8601, ms, `Z`), desired nodes also `$lastUpdatedVersion` (the desired
//! `$version` that last wrote them). Property names can never start with `$` (key rules), so
//! metadata keys and property names never collide.

use serde_json::{Map, Value, json};

use super::TwinRejection;

/// One twin: tags (service-only), desired and reported properties, and the twin version.
#[derive(Clone, Debug, PartialEq)]
pub struct TwinDocument {
    /// Service-only tags; never visible to the device.
    pub tags: Map<String, Value>,
    /// Desired properties, written by the service.
    pub desired: Section,
    /// Reported properties, written by the device.
    pub reported: Section,
    /// Whole-twin version: bumped by every change to tags, desired or reported.
    pub version: u64,
}

/// A desired or reported properties section.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// The properties, without `$version` and `$metadata`.
    pub properties: Map<String, Value>,
    /// The section's `$version` (starts at 1, one more per accepted patch).
    pub version: u64,
    /// The `$metadata` tree, in its service-API shape.
    pub metadata: Map<String, Value>,
    /// Whether nodes carry `$lastUpdatedVersion` (desired only).
    tracks_version: bool,
}

impl TwinDocument {
    /// A fresh twin as a new identity gets it: both sections empty at `$version` 1,
    /// twin `version` 1 (matches the documented trace, docs/protocol.md §6: the first reported
    /// patch answers `$version=2`).
    pub fn new(now_iso: &str) -> Self {
        Self {
            tags: Map::new(),
            desired: Section::new(true, now_iso),
            reported: Section::new(false, now_iso),
            version: 1,
        }
    }

    /// Serializes the document for storage.
    pub fn to_stored(&self) -> String {
        json!({
            "version": self.version,
            "tags": self.tags,
            "desired": self.desired.to_stored(),
            "reported": self.reported.to_stored(),
        })
        .to_string()
    }

    /// Parses a document written by [`TwinDocument::to_stored`]; `None` when it is corrupt.
    pub fn from_stored(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        Some(Self {
            version: v.get("version")?.as_u64()?,
            tags: v.get("tags")?.as_object()?.clone(),
            desired: Section::from_stored(v.get("desired")?, true)?,
            reported: Section::from_stored(v.get("reported")?, false)?,
        })
    }

    /// The whole-twin ETag: base64 of the big-endian 64-bit `version`, as real hubs show it
    /// (`AAAAAAAAAAc=` for version 7). Returned without the surrounding HTTP quotes.
    pub fn etag(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.version.to_be_bytes())
    }
}

impl Section {
    fn new(tracks_version: bool, now_iso: &str) -> Self {
        let mut metadata = Map::new();
        stamp(&mut metadata, now_iso, tracks_version.then_some(1));
        Self {
            properties: Map::new(),
            version: 1,
            metadata,
            tracks_version,
        }
    }

    /// An empty reported-style section for property tests.
    #[cfg(test)]
    pub(super) fn new_for_tests() -> Self {
        Self::new(false, "2026-01-01T00:00:00.000Z")
    }

    /// Applies a merge patch: members add or replace, `null` deletes, objects merge
    /// recursively. Bumps `$version` and stamps metadata on every touched node.
    ///
    /// The caller validates the patch first; this cannot fail.
    pub fn merge(&mut self, patch: &Map<String, Value>, now_iso: &str) {
        self.version += 1;
        let version = self.tracks_version.then_some(self.version);
        merge_into(
            &mut self.properties,
            &mut self.metadata,
            patch,
            now_iso,
            version,
        );
    }

    /// Replaces all properties (service `PUT`), bumping `$version` and restamping every node.
    /// Returns the equivalent patch (new content plus `null` for every removed top-level key),
    /// which is what a connected device is sent.
    pub fn replace(
        &mut self,
        properties: &Map<String, Value>,
        now_iso: &str,
    ) -> Map<String, Value> {
        let mut patch = properties.clone();
        for key in self.properties.keys() {
            if !properties.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
        self.version += 1;
        let version = self.tracks_version.then_some(self.version);
        self.properties = Map::new();
        self.metadata = Map::new();
        merge_into(
            &mut self.properties,
            &mut self.metadata,
            properties,
            now_iso,
            version,
        );
        patch
    }

    /// The section as a device sees it: properties plus `"$version"` last, as in the documented
    /// trace (docs/protocol.md §6) `{"temperature":32,"$version":2}`.
    pub fn to_device_json(&self) -> String {
        object_with_trailer(&self.properties, &[("$version", json!(self.version))])
    }

    /// The section as the service API shows it: properties, `$metadata` and `$version`.
    pub fn to_service_value(&self) -> Value {
        let mut out = self.properties.clone();
        out.insert("$metadata".into(), Value::Object(self.metadata.clone()));
        out.insert("$version".into(), json!(self.version));
        Value::Object(out)
    }

    fn to_stored(&self) -> Value {
        json!({ "properties": self.properties, "version": self.version, "metadata": self.metadata })
    }

    fn from_stored(v: &Value, tracks_version: bool) -> Option<Self> {
        Some(Self {
            properties: v.get("properties")?.as_object()?.clone(),
            version: v.get("version")?.as_u64()?,
            metadata: v.get("metadata")?.as_object()?.clone(),
            tracks_version,
        })
    }
}

/// Merges `patch` into `target` (RFC 7386 style) and keeps `meta` in step.
fn merge_into(
    target: &mut Map<String, Value>,
    meta: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    now_iso: &str,
    version: Option<u64>,
) {
    stamp(meta, now_iso, version);
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
                meta.remove(key);
            }
            Value::Object(inner) => {
                if !matches!(target.get(key), Some(Value::Object(_))) {
                    target.insert(key.clone(), Value::Object(Map::new()));
                    meta.insert(key.clone(), Value::Object(Map::new()));
                }
                if !matches!(meta.get(key), Some(Value::Object(_))) {
                    meta.insert(key.clone(), Value::Object(Map::new()));
                }
                if let (Some(Value::Object(t)), Some(Value::Object(m))) =
                    (target.get_mut(key), meta.get_mut(key))
                {
                    merge_into(t, m, inner, now_iso, version);
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
                let mut m = Map::new();
                stamp(&mut m, now_iso, version);
                meta.insert(key.clone(), Value::Object(m));
            }
        }
    }
}

fn stamp(meta: &mut Map<String, Value>, now_iso: &str, version: Option<u64>) {
    meta.insert("$lastUpdated".into(), json!(now_iso));
    if let Some(v) = version {
        meta.insert("$lastUpdatedVersion".into(), json!(v));
    }
}

/// `{...members, trailer...}` with the trailer keys after the members, whatever the map's
/// own ordering.
pub(super) fn object_with_trailer(
    members: &Map<String, Value>,
    trailer: &[(&str, Value)],
) -> String {
    let mut out = String::from("{");
    let all = members
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .chain(trailer.iter().map(|(k, v)| (*k, v)));
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.to_owned()).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// Rejects a section object that is not a JSON object.
pub(super) fn as_object(value: &Value) -> Result<&Map<String, Value>, TwinRejection> {
    value.as_object().ok_or(TwinRejection::NotAnObject)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00.000Z";
    const T1: &str = "2026-01-01T00:00:01.000Z";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fresh_twin_matches_the_seed_trace_shapes() {
        let doc = TwinDocument::new(T0);
        assert_eq!(doc.desired.to_device_json(), r#"{"$version":1}"#);
        assert_eq!(doc.reported.to_device_json(), r#"{"$version":1}"#);
        assert_eq!(doc.version, 1);
        assert_eq!(doc.etag(), "AAAAAAAAAAE=");
    }

    #[test]
    fn etag_is_base64_of_the_big_endian_version() {
        let mut doc = TwinDocument::new(T0);
        doc.version = 7;
        assert_eq!(doc.etag(), "AAAAAAAAAAc=");
    }

    #[test]
    fn merge_adds_replaces_deletes_and_recurses() {
        let mut s = Section::new(false, T0);
        s.merge(
            &obj(json!({"a": 1, "b": {"x": 1, "y": 2}, "c": "keep"})),
            T0,
        );
        s.merge(
            &obj(json!({"a": null, "b": {"y": null, "z": 3}, "d": [1, null]})),
            T1,
        );
        assert_eq!(
            Value::Object(s.properties.clone()),
            json!({"b": {"x": 1, "z": 3}, "c": "keep", "d": [1, null]})
        );
        assert_eq!(s.version, 3);
        // untouched leaf keeps its stamp, touched parents and leaves get the new one
        assert_eq!(s.metadata["c"]["$lastUpdated"], T0);
        assert_eq!(s.metadata["b"]["x"]["$lastUpdated"], T0);
        assert_eq!(s.metadata["b"]["z"]["$lastUpdated"], T1);
        assert_eq!(s.metadata["b"]["$lastUpdated"], T1);
        assert_eq!(s.metadata["$lastUpdated"], T1);
        assert!(s.metadata.get("a").is_none());
        assert!(s.metadata["b"].get("y").is_none());
    }

    #[test]
    fn nulls_inside_a_new_object_are_not_stored() {
        let mut s = Section::new(false, T0);
        s.merge(&obj(json!({"o": {"gone": null, "kept": true}})), T1);
        assert_eq!(Value::Object(s.properties), json!({"o": {"kept": true}}));
    }

    #[test]
    fn scalar_replaced_by_object_and_back() {
        let mut s = Section::new(false, T0);
        s.merge(&obj(json!({"v": 1})), T0);
        s.merge(&obj(json!({"v": {"inner": 2}})), T1);
        assert_eq!(s.properties["v"], json!({"inner": 2}));
        assert_eq!(s.metadata["v"]["inner"]["$lastUpdated"], T1);
        s.merge(&obj(json!({"v": "flat"})), T1);
        assert_eq!(s.properties["v"], json!("flat"));
        assert!(s.metadata["v"].get("inner").is_none());
    }

    #[test]
    fn desired_metadata_records_the_version_that_wrote_each_node() {
        let mut s = Section::new(true, T0);
        assert_eq!(s.metadata["$lastUpdatedVersion"], 1);
        s.merge(&obj(json!({"a": {"b": 1}})), T1);
        s.merge(&obj(json!({"c": 2})), T1);
        assert_eq!(s.metadata["a"]["b"]["$lastUpdatedVersion"], 2);
        assert_eq!(s.metadata["c"]["$lastUpdatedVersion"], 3);
        assert_eq!(s.metadata["$lastUpdatedVersion"], 3);
    }

    #[test]
    fn replace_returns_a_patch_that_deletes_removed_keys() {
        let mut s = Section::new(true, T0);
        s.merge(&obj(json!({"old": 1, "same": 2})), T0);
        let patch = s.replace(&obj(json!({"same": 3, "new": 4})), T1);
        assert_eq!(
            Value::Object(patch),
            json!({"old": null, "same": 3, "new": 4})
        );
        assert_eq!(
            Value::Object(s.properties.clone()),
            json!({"same": 3, "new": 4})
        );
        assert_eq!(s.version, 3);
        assert!(s.metadata.get("old").is_none());
    }

    #[test]
    fn stored_form_round_trips() {
        let mut doc = TwinDocument::new(T0);
        doc.tags.insert("site".into(), json!("lab"));
        doc.reported.merge(&obj(json!({"t": 1})), T1);
        doc.desired.merge(&obj(json!({"d": {"e": 2}})), T1);
        doc.version = 3;
        assert_eq!(TwinDocument::from_stored(&doc.to_stored()), Some(doc));
        assert_eq!(TwinDocument::from_stored("{\"version\":1}"), None);
    }

    #[test]
    fn service_view_carries_metadata_and_version() {
        let mut s = Section::new(true, T0);
        s.merge(&obj(json!({"x": 1})), T1);
        let v = s.to_service_value();
        assert_eq!(v["x"], 1);
        assert_eq!(v["$version"], 2);
        assert_eq!(v["$metadata"]["x"]["$lastUpdated"], T1);
    }
}
