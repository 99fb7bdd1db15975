use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde_json::{Value, json};

use super::*;

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(sql::SCHEMA).unwrap();
    conn
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn body(reply: &TwinReply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn fresh_device_reported_patch_then_get_matches_the_seed_expected_output() {
    // docs/protocol.md §6 "Real trace" (Microsoft's mosquitto twin sample).
    let conn = db();
    let patch =
        handle_reported_patch(&conn, "dev1", None, br#"{"temperature": 32}"#, at(0)).unwrap();
    assert_eq!(
        patch,
        TwinReply {
            status: 204,
            version: Some(2),
            body: Vec::new()
        }
    );
    let get = handle_get(&conn, "dev1", None, at(1)).unwrap();
    assert_eq!(get.status, 200);
    assert_eq!(
        String::from_utf8(get.body).unwrap(),
        r#"{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}"#
    );
}

#[test]
fn each_reported_patch_bumps_reported_and_twin_versions() {
    let conn = db();
    for expected in 2..=4 {
        let r = handle_reported_patch(&conn, "dev1", None, br#"{"n":1}"#, at(0)).unwrap();
        assert_eq!(r.version, Some(expected));
    }
    let doc = read(&conn, "dev1", None, at(0)).unwrap();
    assert_eq!(
        (doc.reported.version, doc.desired.version, doc.version),
        (4, 1, 4)
    );
}

#[test]
fn rejected_patches_answer_400_and_change_nothing() {
    let conn = db();
    handle_reported_patch(&conn, "dev1", None, br#"{"keep":1}"#, at(0)).unwrap();
    let before = read(&conn, "dev1", None, at(0)).unwrap();
    let deep = (0..12).fold("1".to_owned(), |inner, i| format!("{{\"k{i}\":{inner}}}"));
    let big = format!(
        "{{\"a\":\"{0}\",\"b\":\"{0}\",\"c\":\"{0}\",\"d\":\"{0}\",\"e\":\"{0}\",\"f\":\"{0}\",\"g\":\"{0}\",\"h\":\"{0}\",\"i\":\"{0}\"}}",
        "x".repeat(4000)
    );
    let long_string = format!("{{\"s\":\"{}\"}}", "x".repeat(4097));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"{not json".to_vec()),
        ("array", b"[1,2]".to_vec()),
        ("empty body", Vec::new()),
        ("dollar key", br#"{"$version":5}"#.to_vec()),
        (
            "dotted key, valid sibling first",
            br#"{"aaa":1,"b.c":2}"#.to_vec(),
        ),
        ("space key nested", br#"{"ok":{"has space":1}}"#.to_vec()),
        ("too deep", deep.into_bytes()),
        ("too large", big.into_bytes()),
        ("long string", long_string.into_bytes()),
        (
            "integer out of range",
            br#"{"n":4503599627370496}"#.to_vec(),
        ),
    ];
    for (name, patch) in cases {
        let reply = handle_reported_patch(&conn, "dev1", None, &patch, at(5)).unwrap();
        assert_eq!(reply.status, 400, "{name}");
        assert_eq!(reply.version, None, "{name}");
        assert_eq!(body(&reply)["errorCode"], 400_004, "{name}");
        assert_eq!(
            read(&conn, "dev1", None, at(5)).unwrap(),
            before,
            "{name} changed the twin"
        );
    }
}

#[test]
fn size_limit_applies_to_the_merged_section() {
    let conn = db();
    let chunk = "x".repeat(4000);
    for key in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let patch = json!({ key: chunk }).to_string();
        assert_eq!(
            handle_reported_patch(&conn, "dev1", None, patch.as_bytes(), at(0))
                .unwrap()
                .status,
            204
        );
    }
    // 8 × 4001 = 32008 bytes stored; one more 4001 goes over 32768.
    let patch = json!({ "i": chunk }).to_string();
    assert_eq!(
        handle_reported_patch(&conn, "dev1", None, patch.as_bytes(), at(0))
            .unwrap()
            .status,
        400
    );
    // deleting one makes room again
    let patch = json!({ "a": null, "i": chunk }).to_string();
    assert_eq!(
        handle_reported_patch(&conn, "dev1", None, patch.as_bytes(), at(0))
            .unwrap()
            .status,
        204
    );
}

#[test]
fn get_hides_tags_and_metadata_from_the_device() {
    let conn = db();
    let body_in = json!({"tags": {"site": "lab"}, "properties": {"desired": {"mode": "eco"}}});
    service_patch(&conn, "dev1", None, &body_in, None, at(0)).unwrap();
    let get = handle_get(&conn, "dev1", None, at(1)).unwrap();
    assert_eq!(
        String::from_utf8(get.body).unwrap(),
        r#"{"desired":{"mode":"eco","$version":2},"reported":{"$version":1}}"#
    );
}

#[test]
fn desired_patch_produces_a_notification_with_the_patch_and_version() {
    let conn = db();
    let first = json!({"properties": {"desired": {"targetTemperature": 21, "fan": {"speed": 2}}}});
    service_patch(&conn, "dev1", None, &first, None, at(0)).unwrap();
    let second =
        json!({"properties": {"desired": {"fan": {"speed": null}, "targetTemperature": 23}}});
    let update = service_patch(&conn, "dev1", None, &second, None, at(1)).unwrap();
    let note = update.notification.unwrap();
    assert_eq!(note.device_id, "dev1");
    assert_eq!(note.module_id, None);
    assert_eq!(note.version, 3);
    let sent: Value = serde_json::from_slice(&note.body).unwrap();
    assert_eq!(
        sent,
        json!({"fan": {"speed": null}, "targetTemperature": 23, "$version": 3})
    );
    assert!(
        String::from_utf8(note.body)
            .unwrap()
            .ends_with(",\"$version\":3}")
    );
    assert_eq!(
        Value::Object(update.twin.desired.properties),
        json!({"fan": {}, "targetTemperature": 23})
    );
}

#[test]
fn tags_only_patch_sends_nothing_to_the_device_but_bumps_the_twin_version() {
    let conn = db();
    let update = service_patch(
        &conn,
        "dev1",
        None,
        &json!({"tags": {"a": {"b": 1}}}),
        None,
        at(0),
    )
    .unwrap();
    assert_eq!(update.notification, None);
    assert_eq!(update.twin.version, 2);
    assert_eq!(update.twin.desired.version, 1);
    let update = service_patch(
        &conn,
        "dev1",
        None,
        &json!({"tags": {"a": {"b": null, "c": 2}}}),
        None,
        at(0),
    )
    .unwrap();
    assert_eq!(Value::Object(update.twin.tags), json!({"a": {"c": 2}}));
}

#[test]
fn if_match_is_checked_against_the_twin_etag() {
    let conn = db();
    let patch = json!({"properties": {"desired": {"x": 1}}});
    let err =
        service_patch(&conn, "dev1", None, &patch, Some("\"AAAAAAAAAAc=\""), at(0)).unwrap_err();
    assert!(matches!(err, TwinError::PreconditionFailed));
    assert_eq!(err.status(), 412);
    for tag in ["\"AAAAAAAAAAE=\"", "AAAAAAAAAAE=", "*"] {
        let conn = db();
        assert!(
            service_patch(&conn, "dev1", None, &patch, Some(tag), at(0)).is_ok(),
            "{tag}"
        );
    }
    let twin = read(&conn, "dev1", None, at(0)).unwrap();
    assert_eq!(twin.version, 1, "the failed precondition wrote nothing");
}

#[test]
fn service_cannot_write_reported_properties_or_break_limits() {
    let conn = db();
    let cases = [
        json!({"properties": {"reported": {"x": 1}}}),
        json!({"properties": {"desired": {"a.b": 1}}}),
        json!({"tags": {"t": "x".repeat(8200)}}),
        json!({"tags": "not an object"}),
        json!([1]),
    ];
    for case in cases {
        let err = service_patch(&conn, "dev1", None, &case, None, at(0)).unwrap_err();
        assert_eq!(err.status(), 400, "{case}");
    }
    // a valid desired part is not applied when the tags part of the same request fails
    let mixed = json!({"tags": {"bad key": 1}, "properties": {"desired": {"ok": 1}}});
    assert!(service_patch(&conn, "dev1", None, &mixed, None, at(0)).is_err());
    assert_eq!(read(&conn, "dev1", None, at(0)).unwrap().desired.version, 1);
}

#[test]
fn replace_swaps_desired_and_tags_and_tells_the_device_what_was_removed() {
    let conn = db();
    let first = json!({"tags": {"old": 1}, "properties": {"desired": {"a": 1, "b": 2}}});
    service_patch(&conn, "dev1", None, &first, None, at(0)).unwrap();
    let put = json!({"tags": {"new": 2}, "properties": {"desired": {"b": 3}}});
    let update = service_replace(&conn, "dev1", None, &put, None, at(1)).unwrap();
    assert_eq!(Value::Object(update.twin.tags.clone()), json!({"new": 2}));
    assert_eq!(
        Value::Object(update.twin.desired.properties.clone()),
        json!({"b": 3})
    );
    let sent: Value = serde_json::from_slice(&update.notification.unwrap().body).unwrap();
    assert_eq!(sent, json!({"a": null, "b": 3, "$version": 3}));
}

#[test]
fn module_twins_are_independent_of_the_device_twin() {
    let conn = db();
    handle_reported_patch(&conn, "dev1", Some("m1"), br#"{"m":1}"#, at(0)).unwrap();
    let update = service_patch(
        &conn,
        "dev1",
        Some("m1"),
        &json!({"properties": {"desired": {"x": 1}}}),
        None,
        at(0),
    )
    .unwrap();
    assert_eq!(
        update.notification.unwrap().module_id.as_deref(),
        Some("m1")
    );
    let device = handle_get(&conn, "dev1", None, at(0)).unwrap();
    assert_eq!(
        device.body,
        br#"{"desired":{"$version":1},"reported":{"$version":1}}"#
    );
    let module = handle_get(&conn, "dev1", Some("m1"), at(0)).unwrap();
    assert_eq!(
        module.body,
        br#"{"desired":{"x":1,"$version":2},"reported":{"m":1,"$version":2}}"#
    );
    delete(&conn, "dev1", None).unwrap();
    let module = handle_get(&conn, "dev1", Some("m1"), at(0)).unwrap();
    assert_eq!(
        module.body,
        br#"{"desired":{"$version":1},"reported":{"$version":1}}"#
    );
}

#[test]
fn service_view_shows_metadata_with_last_updated_times() {
    let conn = db();
    handle_reported_patch(&conn, "dev1", None, br#"{"temperature":32}"#, at(0)).unwrap();
    let update = service_patch(
        &conn,
        "dev1",
        None,
        &json!({"properties": {"desired": {"t": 1}}}),
        None,
        at(60),
    )
    .unwrap();
    let identity = TwinIdentity {
        device_id: "dev1".into(),
        status: "enabled".into(),
        connection_state: "Connected".into(),
        authentication_type: "sas".into(),
        ..Default::default()
    };
    let v = service_view(&update.twin, &identity);
    assert_eq!(v["etag"], "AAAAAAAAAAM=");
    assert_eq!(v["version"], 3);
    assert_eq!(v["status"], "enabled");
    assert_eq!(v["connectionState"], "Connected");
    assert_eq!(v["properties"]["reported"]["temperature"], 32);
    assert_eq!(
        v["properties"]["reported"]["$metadata"]["temperature"]["$lastUpdated"],
        "2027-01-15T08:00:00.000Z"
    );
    assert_eq!(
        v["properties"]["desired"]["$metadata"]["t"]["$lastUpdated"],
        "2027-01-15T08:01:00.000Z"
    );
    assert_eq!(
        v["properties"]["desired"]["$metadata"]["t"]["$lastUpdatedVersion"],
        2
    );
    assert_eq!(v["properties"]["desired"]["$version"], 2);
    assert!(v.get("moduleId").is_none());
}

#[test]
fn a_twin_read_from_the_service_view_can_be_sent_back_with_put() {
    let conn = db();
    handle_reported_patch(&conn, "dev1", None, br#"{"temperature":32}"#, at(0)).unwrap();
    let first = json!({"tags": {"site": "lab"}, "properties": {"desired": {"mode": "eco"}}});
    let update = service_patch(&conn, "dev1", None, &first, None, at(1)).unwrap();
    let mut view = service_view(
        &update.twin,
        &TwinIdentity {
            device_id: "dev1".into(),
            ..Default::default()
        },
    );
    view["properties"]["desired"]["mode"] = json!("boost");
    let etag = view["etag"].as_str().unwrap().to_owned();
    let update = service_replace(&conn, "dev1", None, &view, Some(&etag), at(2)).unwrap();
    assert_eq!(
        Value::Object(update.twin.desired.properties.clone()),
        json!({"mode": "boost"})
    );
    assert_eq!(
        update.twin.reported.properties["temperature"], 32,
        "reported untouched"
    );
    let sent: Value = serde_json::from_slice(&update.notification.unwrap().body).unwrap();
    assert_eq!(sent, json!({"mode": "boost", "$version": 3}));
    // the same body as a PATCH is refused: it names reported properties
    let err = service_patch(&conn, "dev1", None, &view, None, at(3)).unwrap_err();
    assert!(matches!(
        err,
        TwinError::Rejected(TwinRejection::ReadOnlySection)
    ));
}
