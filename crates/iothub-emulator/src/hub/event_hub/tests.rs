use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::hub::event_log::EventFilter;
use crate::hub::{HubOptions, ManualClock};
use crate::store::Store;
use crate::store::events::TelemetryEvent;

fn event(device: &str, n: usize) -> TelemetryEvent {
    TelemetryEvent {
        seq: 0,
        partition: 0,
        partition_seq: 0,
        device_id: device.into(),
        module_id: None,
        enqueued_ms: 0,
        system_properties: Default::default(),
        application_properties: Default::default(),
        body: bytes::Bytes::from(n.to_string()),
    }
}

fn hub_with(partitions: u32, clock: Arc<ManualClock>) -> Hub {
    Hub::with_options(
        Store::open_in_memory().unwrap(),
        HubOptions {
            partitions,
            clock,
            ..HubOptions::default()
        },
    )
}

fn body(e: &TelemetryEvent) -> usize {
    std::str::from_utf8(&e.body).unwrap().parse().unwrap()
}

#[test]
fn partition_of_is_fnv1a_and_pinned() {
    // Pinned: these values are part of every data dir's format and must never change.
    assert_eq!(partition_for("", u32::MAX), 0x811c_9dc5);
    assert_eq!(partition_for("a", u32::MAX), 0xe40c_292c);
    assert_eq!(partition_for("device-1", 4), 1);
    assert_eq!(partition_for("thermostat", 4), 0);
    assert_eq!(partition_for("ünïcode", 4), 3);
    assert_eq!(partition_for("d1", 4), 2);
    assert_eq!(partition_for("d2", 32), 19);
    assert_eq!(partition_for("odd", 128), 94);
    assert_eq!(partition_for("x", 0), 0);
}

#[tokio::test]
async fn appended_events_get_their_device_partition_and_contiguous_numbers() {
    let hub = hub_with(4, Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH)));
    let mut live = hub.live_feed();
    // d1 → 2, d2 → 3, d3 → 0.
    for (n, d) in ["d1", "d2", "d1", "d3", "d1"].into_iter().enumerate() {
        hub.append_telemetry(event(d, n)).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        let e = live.recv().await.unwrap();
        got.push((e.device_id.clone(), e.partition, e.partition_seq));
    }
    let want = [
        ("d1", 2, 0),
        ("d2", 3, 0),
        ("d1", 2, 1),
        ("d3", 0, 0),
        ("d1", 2, 2),
    ];
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1, g.2), w);
    }
    let logged = hub
        .read_events(0, &EventFilter::default(), 10)
        .await
        .unwrap()
        .events;
    let from_log: Vec<_> = logged
        .iter()
        .map(|e| (e.device_id.clone(), e.partition, e.partition_seq))
        .collect();
    assert_eq!(from_log, got, "the log and the live feed agree");
}

#[tokio::test]
async fn partition_info_of_an_empty_then_filled_then_purged_partition() {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
    ));
    let hub = hub_with(4, clock.clone());
    let empty = hub.partition_info(2).await.unwrap();
    assert_eq!(
        empty,
        PartitionInfo {
            partition: 2,
            begin_sequence_number: 0,
            last_enqueued_sequence_number: -1,
            last_enqueued_offset: -1,
            last_enqueued_time_ms: 0,
            is_empty: true,
        }
    );
    let mut e = event("d1", 0);
    e.enqueued_ms = 1_000_000;
    hub.append_telemetry(event("d2", 9)).await.unwrap();
    let first = hub.append_telemetry(e.clone()).await.unwrap();
    e.enqueued_ms = 1_000_500;
    let second = hub.append_telemetry(e).await.unwrap();
    let info = hub.partition_info(2).await.unwrap();
    assert_eq!(info.begin_sequence_number, 0);
    assert_eq!(info.last_enqueued_sequence_number, 1);
    assert_eq!(info.last_enqueued_offset, second);
    assert_eq!(info.last_enqueued_time_ms, 1_000_500);
    assert!(!info.is_empty);
    assert!(first < second);
    // Retention drops the first event: the partition now begins at 1.
    clock.advance(Duration::from_millis(250));
    hub.apply_retention(Duration::from_millis(1)).await.unwrap();
    let info = hub.partition_info(2).await.unwrap();
    assert_eq!(info.begin_sequence_number, 1);
    assert!(!info.is_empty);
    clock.advance(Duration::from_secs(10));
    hub.apply_retention(Duration::from_millis(1)).await.unwrap();
    let info = hub.partition_info(2).await.unwrap();
    assert_eq!(
        (
            info.begin_sequence_number,
            info.last_enqueued_sequence_number,
            info.is_empty
        ),
        (2, 1, true)
    );
    assert!(matches!(
        hub.partition_info(4).await,
        Err(StoreError::UnknownPartition {
            partition: 4,
            count: 4
        })
    ));
}

/// Reads partition `p` from `position` through a follower, `n` events.
async fn read_from(hub: &Hub, p: u32, position: EventPosition, n: usize) -> Vec<usize> {
    let after = hub.partition_start(p, position).await.unwrap();
    let mut follower = hub.follow_events(
        Some(after),
        EventFilter {
            partition: Some(p),
            ..EventFilter::default()
        },
    );
    let mut out = Vec::new();
    for _ in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("an event")
            .unwrap();
        assert_eq!(e.partition, p);
        out.push(body(&e));
    }
    out
}

#[tokio::test]
async fn every_start_position_reads_from_the_right_event() {
    let hub = hub_with(4, Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH)));
    // d1 (partition 2) gets events 0, 2, 4, 6 at times 0, 20, 40, 60; d2 the odd ones.
    let mut offsets = Vec::new();
    for n in 0..8 {
        let mut e = event(if n % 2 == 0 { "d1" } else { "d2" }, n);
        e.enqueued_ms = i64::try_from(n).unwrap() * 10;
        offsets.push(hub.append_telemetry(e).await.unwrap());
    }
    use EventPosition as P;
    assert_eq!(read_from(&hub, 2, P::Start, 4).await, vec![0, 2, 4, 6]);
    let off = |n: usize, inclusive| P::Offset {
        offset: offsets[n],
        inclusive,
    };
    assert_eq!(read_from(&hub, 2, off(2, true), 3).await, vec![2, 4, 6]);
    assert_eq!(read_from(&hub, 2, off(2, false), 2).await, vec![4, 6]);
    assert_eq!(
        read_from(
            &hub,
            2,
            P::Offset {
                offset: -1,
                inclusive: false
            },
            1
        )
        .await,
        vec![0]
    );
    let seq = |sequence_number, inclusive| P::SequenceNumber {
        sequence_number,
        inclusive,
    };
    assert_eq!(read_from(&hub, 2, seq(1, true), 3).await, vec![2, 4, 6]);
    assert_eq!(read_from(&hub, 2, seq(1, false), 2).await, vec![4, 6]);
    assert_eq!(read_from(&hub, 3, seq(0, true), 4).await, vec![1, 3, 5, 7]);
    let at = |unix_ms, inclusive| P::EnqueuedTime { unix_ms, inclusive };
    assert_eq!(read_from(&hub, 2, at(40, true), 2).await, vec![4, 6]);
    assert_eq!(read_from(&hub, 2, at(40, false), 1).await, vec![6]);
    assert_eq!(read_from(&hub, 2, at(41, true), 1).await, vec![6]);

    // Latest, and positions past the end: only what comes next.
    for position in [P::Latest, seq(99, true), at(1_000, true)] {
        let after = hub.partition_start(2, position).await.unwrap();
        assert_eq!(after, offsets[7], "{position:?}");
    }
    let after = hub.partition_start(2, P::Latest).await.unwrap();
    let mut follower = hub.follow_events(
        Some(after),
        EventFilter {
            partition: Some(2),
            ..EventFilter::default()
        },
    );
    hub.append_telemetry(event("d2", 100)).await.unwrap();
    hub.append_telemetry(event("d1", 101)).await.unwrap();
    let e = follower.next().await.unwrap();
    assert_eq!((body(&e), e.partition_seq), (101, 4));
    assert!(matches!(
        hub.partition_start(9, P::Start).await,
        Err(StoreError::UnknownPartition { .. })
    ));
}

#[tokio::test]
async fn a_sparse_partition_is_read_in_bounded_windows_without_gaps() {
    let hub = hub_with(4, Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH)));
    // More rows than one scan window, almost all in another partition.
    let total = usize::try_from(crate::store::events::PARTITION_SCAN_WINDOW).unwrap() + 2_700;
    let batch: Vec<_> = (0..total)
        .map(|n| event(if n % 1000 == 999 { "d1" } else { "d2" }, n))
        .collect();
    hub.append_telemetry_batch(batch).await.unwrap();
    let want: Vec<usize> = (0..total).filter(|n| n % 1000 == 999).collect();
    let got = read_from(&hub, 2, EventPosition::Start, want.len()).await;
    assert_eq!(got, want);
    let range = hub
        .read_events(
            0,
            &EventFilter {
                partition: Some(2),
                ..EventFilter::default()
            },
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(range.events.len(), want.len());
    assert_eq!(
        range.next,
        i64::try_from(total).unwrap(),
        "scanned to the end"
    );
}

#[tokio::test]
async fn open_refuses_another_partition_count_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let options = |partitions| HubOptions {
        partitions,
        ..HubOptions::default()
    };
    let first_seq;
    {
        let hub = Hub::open(Store::open(&path).unwrap(), options(8))
            .await
            .unwrap();
        assert!(hub.event_hub_created_ms() > 0);
        hub.append_telemetry(event("d1", 0)).await.unwrap();
        first_seq = hub.append_telemetry(event("d1", 1)).await.unwrap();
    }
    let err = Hub::open(Store::open(&path).unwrap(), options(4))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::PartitionCount {
            stored: 8,
            requested: 4
        }
    ));
    assert!(err.to_string().contains("created with 8 partitions"));
    // The same count: numbering continues where it was.
    let hub = Hub::open(Store::open(&path).unwrap(), options(8))
        .await
        .unwrap();
    let p = hub.partition_of("d1");
    let info = hub.partition_info(p).await.unwrap();
    assert_eq!(info.last_enqueued_sequence_number, 1);
    assert_eq!(info.last_enqueued_offset, first_seq);
    let mut live = hub.live_feed();
    hub.append_telemetry(event("d1", 2)).await.unwrap();
    assert_eq!(live.recv().await.unwrap().partition_seq, 2);
}

fn device_ids() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "d", "e", "f", "g"]).prop_map(str::to_owned),
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn per_partition_numbers_are_contiguous_and_partitions_stable(
        devices in device_ids(),
        partitions in 1u32..9,
        split in 1usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let events = rt.block_on(async {
            let hub = hub_with(partitions, Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH)));
            // Appended in batches of `split`, mixing devices (and partitions) in a batch.
            for (i, chunk) in devices.chunks(split).enumerate() {
                let batch = chunk.iter().enumerate().map(|(j, d)| event(d, i * 100 + j)).collect();
                hub.append_telemetry_batch(batch).await.unwrap();
            }
            hub.read_events(0, &EventFilter::default(), 1_000).await.unwrap().events
        });
        prop_assert_eq!(events.len(), devices.len());
        let mut next = vec![0i64; partitions as usize];
        for e in &events {
            prop_assert_eq!(e.partition, partition_for(&e.device_id, partitions));
            prop_assert!(e.partition < partitions);
            prop_assert_eq!(e.partition_seq, next[e.partition as usize]);
            next[e.partition as usize] += 1;
        }
    }

    #[test]
    fn partition_for_is_a_pure_function_of_the_id(id in ".{0,40}", partitions in 1u32..=128) {
        let p = partition_for(&id, partitions);
        prop_assert!(p < partitions);
        prop_assert_eq!(p, partition_for(&id.clone(), partitions));
    }
}
