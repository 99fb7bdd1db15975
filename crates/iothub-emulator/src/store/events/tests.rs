use proptest::prelude::*;

use super::*;

/// A log with every migration of the event tables applied.
fn log() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(SCHEMA_STAMPS).unwrap();
    c.execute_batch(SCHEMA_PARTITIONS).unwrap();
    c
}

fn event(t: i64) -> TelemetryEvent {
    TelemetryEvent {
        seq: 0,
        partition: 0,
        partition_seq: 0,
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
    for (n, (got, mut want)) in back.into_iter().zip(sent).enumerate() {
        want.seq = got.seq;
        want.partition_seq = i64::try_from(n).unwrap();
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
    c.execute_batch(SCHEMA_PARTITIONS).unwrap();
    // The old row gets its partition and sequence number when the count is first fixed.
    c.execute_batch(crate::store::registry::SCHEMA).unwrap();
    fix_partitions(&c, 4, 0, |_| 0).unwrap();
    let new = stamped("d1", "sas", 7_001);
    append(&c, &new).unwrap();
    let back = read_all(&c);
    assert_eq!(back.len(), 2);
    for (n, (got, mut want)) in back.into_iter().zip([old, new]).enumerate() {
        want.seq = got.seq;
        want.partition_seq = i64::try_from(n).unwrap();
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
            partition: 0,
            partition_seq: 0,
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
        prop_assert_eq!(got, TelemetryEvent { seq, partition_seq: 0, ..e });
    }
}

/// `event(t)` of `device` in `partition`, encoded.
fn row(device: &str, partition: u32, t: i64) -> EncodedEvent {
    let mut e = event(t);
    e.device_id = device.into();
    EncodedEvent::encode(&e).unwrap().in_partition(partition)
}

#[test]
fn partition_numbers_continue_across_batches_and_counters_follow() {
    let c = log();
    let a = insert_all(&c, &[row("a", 1, 10), row("b", 0, 11), row("a", 1, 12)]).unwrap();
    let b = insert_all(&c, &[row("b", 0, 13), row("a", 1, 14)]).unwrap();
    let numbers: Vec<i64> = a.iter().chain(&b).map(|x| x.partition_seq).collect();
    assert_eq!(numbers, vec![0, 0, 1, 1, 2]);
    let one = partition_counters(&c, 1).unwrap();
    assert_eq!(
        one,
        PartitionCounters {
            next_seq: 3,
            begin_seq: 0,
            last_offset: b[1].seq,
            last_enqueued_ms: 14
        }
    );
    assert_eq!(partition_counters(&c, 2).unwrap().last_offset, -1);
    let read = read_range(&c, 0, Some(1), 10).unwrap();
    assert_eq!(
        read.events
            .iter()
            .map(|e| e.partition_seq)
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(read.events.iter().all(|e| e.partition == 1));
    assert_eq!((read.next, read.more), (b[1].seq, false));
}

#[test]
fn a_failed_batch_leaves_the_counters_as_they_were() {
    let c = log();
    insert_all(&c, &[row("a", 1, 10)]).unwrap();
    c.execute_batch("SAVEPOINT job").unwrap();
    insert_all(&c, &[row("a", 1, 11), row("a", 1, 12)]).unwrap();
    c.execute_batch("ROLLBACK TO job; RELEASE job").unwrap();
    let again = insert_all(&c, &[row("a", 1, 13)]).unwrap();
    assert_eq!(again[0].partition_seq, 1);
}

#[test]
fn retention_moves_each_partitions_beginning() {
    let c = log();
    insert_all(
        &c,
        &[
            row("a", 0, 10),
            row("b", 1, 20),
            row("a", 0, 30),
            row("b", 1, 40),
        ],
    )
    .unwrap();
    assert_eq!(purge_before(&c, 25).unwrap(), 2);
    assert_eq!(partition_counters(&c, 0).unwrap().begin_seq, 1);
    assert_eq!(partition_counters(&c, 1).unwrap().begin_seq, 1);
    assert_eq!(purge_before(&c, 35).unwrap(), 1);
    assert_eq!(partition_counters(&c, 0).unwrap().begin_seq, 2);
    assert_eq!(partition_counters(&c, 1).unwrap().begin_seq, 1);
}

#[test]
fn positions_within_a_partition() {
    let c = log();
    let at = insert_all(
        &c,
        &[
            row("a", 0, 10),
            row("b", 1, 20),
            row("a", 0, 30),
            row("a", 0, 40),
        ],
    )
    .unwrap();
    let seq = PartitionKey::SequenceNumber;
    assert_eq!(
        partition_position(&c, 0, seq, 1).unwrap(),
        Some(at[2].seq - 1)
    );
    assert_eq!(partition_position(&c, 0, seq, 3).unwrap(), None);
    let time = PartitionKey::EnqueuedMs;
    assert_eq!(
        partition_position(&c, 0, time, 11).unwrap(),
        Some(at[2].seq - 1)
    );
    assert_eq!(
        partition_position(&c, 1, time, 0).unwrap(),
        Some(at[1].seq - 1)
    );
    assert_eq!(partition_position(&c, 2, time, 0).unwrap(), None);
    assert_eq!(last_seq(&c).unwrap(), at[3].seq);
    assert_eq!(first_seq(&c).unwrap(), Some(at[0].seq));
}

#[test]
fn fixing_the_partition_count_assigns_old_rows_and_refuses_another_count() {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(crate::store::registry::SCHEMA).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(SCHEMA_STAMPS).unwrap();
    for (d, t) in [("a", 1), ("b", 2), ("a", 3)] {
        let mut e = event(t);
        e.device_id = d.into();
        let r = EncodedEvent::encode(&e).unwrap();
        // Written as before partitions: no partition columns yet.
        c.execute(
            "INSERT INTO events (device_id, module_id, enqueued_ms, system_properties,
                 application_properties, body) VALUES (?1, NULL, ?2, ?3, ?4, ?5)",
            params![
                r.device_id,
                r.enqueued_ms,
                r.system_properties,
                r.application_properties,
                r.body.as_ref()
            ],
        )
        .unwrap();
    }
    c.execute_batch(SCHEMA_PARTITIONS).unwrap();
    let part = |d: &str| if d == "a" { 3 } else { 0 };
    assert_eq!(fix_partitions(&c, 4, 77, part).unwrap(), 77);
    let got: Vec<(u32, i64)> = read_all(&c)
        .iter()
        .map(|e| (e.partition, e.partition_seq))
        .collect();
    assert_eq!(got, vec![(3, 0), (0, 0), (3, 1)]);
    assert_eq!(partition_counters(&c, 3).unwrap().next_seq, 2);
    // Again with the same count: nothing changes, the creation time stays.
    assert_eq!(fix_partitions(&c, 4, 99, part).unwrap(), 77);
    let next = insert_all(&c, &[row("a", 3, 4)]).unwrap();
    assert_eq!(next[0].partition_seq, 2);
    assert!(matches!(
        fix_partitions(&c, 8, 99, part),
        Err(StoreError::PartitionCount {
            stored: 4,
            requested: 8
        })
    ));
}

#[test]
fn a_route_source_is_stored_in_its_column_and_reads_back() {
    let c = log();
    let mut e = event(5);
    e.system_properties
        .insert("iothub-message-source".into(), "twinChangeEvents".into());
    append(&c, &e).unwrap();
    let own: String = c
        .query_row("SELECT system_properties FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(!own.contains("twinChangeEvents"), "{own}");
    let got = read_all(&c).remove(0);
    assert_eq!(
        got.system_properties["iothub-message-source"],
        "twinChangeEvents"
    );
}

#[test]
fn partition_numbers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    for round in 0..2 {
        let store = crate::store::Store::open(&path).unwrap();
        let at = store
            .call_blocking(|tx| insert_all(tx, &[row("a", 2, 1), row("a", 2, 2)]))
            .unwrap();
        assert_eq!(
            at.iter().map(|a| a.partition_seq).collect::<Vec<_>>(),
            vec![round * 2, round * 2 + 1]
        );
    }
}

proptest! {
    /// Batches of any size (written as multi-row statements of several sizes) land where
    /// `insert_all` says: each row at the `seq` it returns, in order, partition numbers
    /// without gaps, the counters at the batch's last row, also after retention purged the
    /// oldest rows.
    #[test]
    fn batches_of_any_size_land_where_insert_all_says(
        batches in prop::collection::vec(prop::collection::vec(0u32..4, 0..150), 1..5),
        purge_after in 0usize..5,
    ) {
        let c = log();
        let mut t = 0;
        let mut expected_next = [0i64; 4];
        let mut last_seq = 0;
        for (b, partitions) in batches.iter().enumerate() {
            let rows: Vec<_> = partitions.iter().map(|&p| { t += 1; row("d", p, t) }).collect();
            let appended = insert_all(&c, &rows).unwrap();
            prop_assert_eq!(appended.len(), rows.len());
            for (i, (a, &p)) in appended.iter().zip(partitions).enumerate() {
                let (stored_p, stored_ps, stored_t): (u32, i64, i64) = c
                    .query_row(
                        "SELECT partition_id, partition_seq, enqueued_ms FROM events WHERE seq = ?1",
                        [a.seq],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .unwrap();
                prop_assert_eq!((stored_p, stored_ps, stored_t), (p, a.partition_seq, t - (rows.len() - 1 - i) as i64));
                prop_assert_eq!(a.partition_seq, expected_next[p as usize]);
                expected_next[p as usize] += 1;
                // Never a reused offset, even after every row was purged.
                prop_assert_eq!(a.seq, last_seq + 1);
                last_seq = a.seq;
            }
            for p in 0..4u32 {
                let counters = partition_counters(&c, p).unwrap();
                prop_assert_eq!(counters.next_seq, expected_next[p as usize]);
                if let Some(i) = partitions.iter().rposition(|&q| q == p) {
                    prop_assert_eq!(counters.last_offset, appended[i].seq);
                }
            }
            if b == purge_after {
                c.execute("DELETE FROM events", []).unwrap();
            }
        }
    }
}
