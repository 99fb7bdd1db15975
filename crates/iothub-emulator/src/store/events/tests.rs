use proptest::prelude::*;

use super::*;

/// A log with every migration of the event tables applied.
fn log() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(SCHEMA_STAMPS).unwrap();
    c
}

fn event(t: i64) -> TelemetryEvent {
    TelemetryEvent {
        seq: 0,
        device_id: "d1".into(),
        module_id: None,
        enqueued_ms: t,
        system_properties: [("message-id".to_string(), "m".to_string())].into(),
        application_properties: [("flag".to_string(), None)].into(),
        body: Bytes::from_static(b"{}"),
    }
}

/// What `hub::telemetry::stamp` writes for a device with a model id.
fn stamped(device: &str, method: &str, t: i64) -> TelemetryEvent {
    let mut e = event(t);
    e.device_id = device.into();
    for (k, v) in [
        ("iothub-connection-device-id", device.to_string()),
        ("iothub-connection-auth-method", method.to_string()),
        ("iothub-connection-auth-generation-id", "638".to_string()),
        ("iothub-enqueuedtime", iso8601_millis(from_unix_millis(t))),
        ("iothub-message-source", "Telemetry".to_string()),
        ("dt-dataschema", "dtmi:com:example:Thermostat;1".to_string()),
    ] {
        e.system_properties.insert(k.to_string(), v);
    }
    e
}

fn read_all(c: &Connection) -> Vec<TelemetryEvent> {
    read_after(c, 0, 1000).unwrap()
}

#[test]
fn appended_events_read_back_in_order_with_properties() {
    let c = log();
    let a = append(&c, &event(10)).unwrap();
    let b = append(&c, &event(20)).unwrap();
    assert!(b > a);
    let all = read_all(&c);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].seq, b);
    assert_eq!(all[0].application_properties.get("flag"), Some(&None));
    assert_eq!(read_after(&c, a, 10).unwrap().len(), 1);
}

#[test]
fn a_stamped_message_stores_only_what_the_device_sent_and_reads_back_whole() {
    let c = log();
    let sent = [
        stamped("d1", "sas", 1_000),
        stamped("d1", "sas", 1_001),
        stamped("d2", "x509", 1_002),
    ];
    let rows: Vec<_> = sent
        .iter()
        .map(|e| EncodedEvent::encode(e).unwrap())
        .collect();
    insert_all(&c, &rows).unwrap();
    let own: Vec<String> = c
        .prepare("SELECT system_properties FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(own, vec![r#"{"message-id":"m"}"#; 3]);
    let stamps: i64 = c
        .query_row("SELECT count(*) FROM event_stamps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stamps, 2, "one stamp per distinct connection stamp");
    let back = read_all(&c);
    for (got, mut want) in back.into_iter().zip(sent) {
        want.seq = got.seq;
        assert_eq!(got, want);
    }
}

#[test]
fn a_stamped_value_that_differs_from_its_derivation_stays_in_the_row() {
    let c = log();
    let mut e = stamped("d1", "sas", 5_000);
    e.system_properties
        .insert("iothub-enqueuedtime".into(), "not the row's time".into());
    e.module_id = Some("m1".into());
    append(&c, &e).unwrap();
    let got = read_all(&c).remove(0);
    assert_eq!(
        got.system_properties["iothub-enqueuedtime"],
        "not the row's time"
    );
    assert_eq!(got.system_properties["iothub-connection-module-id"], "m1");
}

#[test]
fn rows_written_before_the_stamp_migration_read_back_unchanged() {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    let old = stamped("d1", "sas", 7_000);
    c.execute(
        "INSERT INTO events (device_id, module_id, enqueued_ms, system_properties,
             application_properties, body) VALUES (?1, NULL, ?2, ?3, ?4, ?5)",
        params![
            old.device_id,
            old.enqueued_ms,
            serde_json::to_string(&old.system_properties).unwrap(),
            serde_json::to_string(&old.application_properties).unwrap(),
            old.body.as_ref()
        ],
    )
    .unwrap();
    c.execute_batch(SCHEMA_STAMPS).unwrap();
    let new = stamped("d1", "sas", 7_001);
    append(&c, &new).unwrap();
    let back = read_all(&c);
    assert_eq!(back.len(), 2);
    for (got, mut want) in back.into_iter().zip([old, new]) {
        want.seq = got.seq;
        assert_eq!(got, want);
    }
}

#[test]
fn retention_purges_only_older_events() {
    let c = log();
    append(&c, &event(10)).unwrap();
    append(&c, &event(20)).unwrap();
    assert_eq!(purge_before(&c, 15).unwrap(), 1);
    assert_eq!(count(&c).unwrap(), 1);
    assert_eq!(read_all(&c)[0].enqueued_ms, 20);
}

#[test]
fn retention_purges_everything_older_and_nothing_newer() {
    let c = log();
    for t in [10, 20, 30] {
        append(&c, &event(t)).unwrap();
    }
    assert_eq!(purge_before(&c, 5).unwrap(), 0);
    assert_eq!(purge_before(&c, 31).unwrap(), 3);
    assert_eq!(count(&c).unwrap(), 0);
    assert_eq!(purge_before(&c, 100).unwrap(), 0, "an empty log");
    // AUTOINCREMENT: a purged log never hands out an old seq again.
    let next = append(&c, &event(40)).unwrap();
    assert_eq!(next, 4);
}

/// A property value: either what the row implies for `key` or anything else.
fn system_properties(
    device: &'static str,
    module: Option<&'static str>,
    t: i64,
) -> impl Strategy<Value = BTreeMap<String, String>> {
    let derived = Derived::of(device, module, t);
    let keys = [
        "iothub-connection-device-id",
        "iothub-connection-module-id",
        "iothub-enqueuedtime",
        "iothub-message-source",
    ];
    let implied: Vec<(String, String)> = keys
        .iter()
        .filter_map(|k| derived.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect();
    (
        prop::collection::btree_map("[a-z$.-]{1,12}", ".{0,8}", 0..4),
        prop::collection::btree_map(
            prop::sample::select(CONNECTION_STAMPED.to_vec()).prop_map(str::to_owned),
            ".{0,8}",
            0..3,
        ),
        prop::collection::vec(any::<bool>(), implied.len()),
        ".{0,6}",
    )
        .prop_map(move |(other, stamped, keep_implied, odd)| {
            let mut map = other;
            map.extend(stamped);
            // Every stamped message carries the derivable keys; some with an odd value.
            for ((k, v), keep) in implied.iter().zip(keep_implied) {
                map.insert(k.clone(), if keep { v.clone() } else { odd.clone() });
            }
            map
        })
}

/// An event as the hub stamps them, with random device-sent properties mixed in.
fn any_event() -> impl Strategy<Value = TelemetryEvent> {
    (prop::option::of(Just("m1")), 0i64..4_102_444_800_000)
        .prop_flat_map(|(module, t)| {
            (
                Just(module),
                Just(t),
                system_properties("dev", module, t),
                prop::collection::btree_map("[a-z]{1,6}", prop::option::of(".{0,6}"), 0..3),
                prop::collection::vec(any::<u8>(), 0..16),
            )
        })
        .prop_map(|(module, t, system, app, body)| TelemetryEvent {
            seq: 0,
            device_id: "dev".into(),
            module_id: module.map(str::to_owned),
            enqueued_ms: t,
            system_properties: system,
            application_properties: app,
            body: Bytes::from(body),
        })
}

proptest! {
    #[test]
    fn every_event_reads_back_exactly_as_appended(e in any_event()) {
        let c = log();
        let seq = append(&c, &e).unwrap();
        let got = read_all(&c).remove(0);
        prop_assert_eq!(got, TelemetryEvent { seq, ..e });
    }
}
