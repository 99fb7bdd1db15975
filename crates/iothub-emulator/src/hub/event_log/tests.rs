use std::time::{Duration, SystemTime};

use super::*;

fn event(n: usize) -> TelemetryEvent {
    TelemetryEvent {
        seq: 0,
        partition: 0,
        partition_seq: 0,
        device_id: if n.is_multiple_of(2) {
            "even".into()
        } else {
            "odd".into()
        },
        module_id: None,
        enqueued_ms: 0,
        system_properties: Default::default(),
        application_properties: Default::default(),
        body: bytes::Bytes::from(n.to_string()),
    }
}

fn hub() -> Hub {
    Hub::new(
        crate::store::Store::open_in_memory().unwrap(),
        vec!["localhost".into()],
    )
}

fn body_of(e: &TelemetryEvent) -> usize {
    String::from_utf8(e.body.to_vec())
        .unwrap()
        .parse::<usize>()
        .unwrap()
}

fn evens() -> EventFilter {
    EventFilter {
        device_id: Some("even".into()),
        ..EventFilter::default()
    }
}

#[tokio::test]
async fn a_range_read_starts_at_any_sequence_number_and_says_where_to_continue() {
    let hub = hub();
    let mut seqs = Vec::new();
    for n in 0..10 {
        seqs.push(hub.append_telemetry(event(n)).await.unwrap());
    }
    // From the middle of the log: only later events, filtered, at most `limit`.
    let first = hub.read_events(seqs[3], &evens(), 2).await.unwrap();
    let bodies: Vec<usize> = first.events.iter().map(body_of).collect();
    assert_eq!(bodies, vec![4, 6]);
    assert_eq!(first.next, seqs[6]);
    let rest = hub.read_events(first.next, &evens(), 100).await.unwrap();
    assert_eq!(rest.events.iter().map(body_of).collect::<Vec<_>>(), vec![8]);
    // Everything scanned: `next` is the log's end even though the last event did not match.
    assert_eq!(rest.next, seqs[9]);
    let nothing = hub.read_events(rest.next, &evens(), 100).await.unwrap();
    assert!(nothing.events.is_empty());
    assert_eq!(nothing.next, rest.next);
}

#[tokio::test]
async fn a_reader_can_start_at_a_time() {
    let hub = hub();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(hub.event_position_at(start).await.unwrap(), 0, "empty log");
    let mut seqs = Vec::new();
    for n in 0..4 {
        let mut e = event(n);
        e.enqueued_ms = unix_millis(start + Duration::from_secs(n as u64));
        seqs.push(hub.append_telemetry(e).await.unwrap());
    }
    let at = |secs: u64| start + Duration::from_secs(secs) - Duration::from_millis(1);
    let from_two = hub.event_position_at(at(2)).await.unwrap();
    let read = hub
        .read_events(from_two, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(
        read.events.iter().map(body_of).collect::<Vec<_>>(),
        vec![2, 3]
    );
    // Before everything: the whole log; after everything: nothing, but the log's end.
    let first = hub.event_position_at(start).await.unwrap();
    assert_eq!(
        hub.read_events(first, &EventFilter::default(), 10)
            .await
            .unwrap()
            .events
            .len(),
        4
    );
    assert_eq!(hub.event_position_at(at(9)).await.unwrap(), seqs[3]);
}

#[tokio::test]
async fn a_module_filter_keeps_only_that_module() {
    let hub = hub();
    for module in [None, Some("m1"), Some("m2")] {
        let mut e = event(0);
        e.module_id = module.map(str::to_owned);
        hub.append_telemetry(e).await.unwrap();
    }
    let filter = EventFilter {
        device_id: Some("even".into()),
        module_id: Some("m1".into()),
        ..EventFilter::default()
    };
    let read = hub.read_events(0, &filter, 10).await.unwrap();
    assert_eq!(read.events.len(), 1);
    assert_eq!(read.events[0].module_id.as_deref(), Some("m1"));
    assert_eq!(
        hub.read_events(0, &evens(), 10).await.unwrap().events.len(),
        3
    );
}

#[tokio::test]
async fn a_follower_replays_the_log_then_goes_live_without_duplicates() {
    let hub = hub();
    let mut seqs = Vec::new();
    for n in 0..6 {
        seqs.push(hub.append_telemetry(event(n)).await.unwrap());
    }
    let mut follower = hub.follow_events(Some(seqs[1]), evens());
    hub.append_telemetry(event(6)).await.unwrap();
    hub.append_telemetry(event(8)).await.unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < 4 {
        let e = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .unwrap()
            .unwrap();
        bodies.push(body_of(&e));
    }
    // 6 and 8 were both in the log (read after the follower subscribed) and on the feed:
    // each comes once.
    assert_eq!(bodies, vec![2, 4, 6, 8]);
}

#[tokio::test]
async fn a_reader_that_lags_behind_the_live_feed_catches_up_from_the_log_without_gaps() {
    let hub = hub();
    let first = hub.append_telemetry(event(0)).await.unwrap();
    let mut tail = hub.follow_events(None, evens());
    tail.upto = Some(first);
    // More than the feed holds (4096), appended before the reader reads anything.
    let total = 5000;
    for n in 1..=total {
        hub.append_telemetry(event(n)).await.unwrap();
    }
    let mut bodies = Vec::new();
    while bodies.len() < total / 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), tail.next())
            .await
            .unwrap()
            .unwrap();
        bodies.push(body_of(&e));
    }
    let expected: Vec<usize> = (2..=total).step_by(2).collect();
    assert_eq!(bodies, expected, "every even event once, in order");
    // Nothing more (no duplicates from the feed's retained tail).
    hub.append_telemetry(event(total + 2)).await.unwrap();
    let next = tail.next().await.unwrap();
    assert_eq!(&next.body[..], (total + 2).to_string().as_bytes());
}

/// Appends `ns` to the log without publishing them (as a connection whose task has not run
/// yet since the commit); returns them with their sequence numbers.
async fn append_unpublished(
    hub: &Hub,
    ns: std::ops::RangeInclusive<usize>,
) -> Vec<Arc<TelemetryEvent>> {
    let mut events: Vec<TelemetryEvent> = ns.map(event).collect();
    for e in &mut events {
        e.partition = hub.partition_of(&e.device_id);
    }
    let rows = events
        .iter()
        .map(events::EncodedEvent::encode)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let appended = hub.queue_rows(rows).await.unwrap();
    events
        .into_iter()
        .zip(appended)
        .map(|(mut e, at)| {
            e.seq = at.seq;
            e.partition_seq = at.partition_seq;
            Arc::new(e)
        })
        .collect()
}

async fn next_body(follower: &mut EventFollower) -> usize {
    let e = tokio::time::timeout(Duration::from_secs(5), follower.next())
        .await
        .expect("an event within 5 s")
        .unwrap();
    body_of(&e)
}

/// A hub with one event, and a follower after it that has read the log (nothing more) and
/// now waits on the live feed.
async fn hub_with_a_waiting_follower() -> (Hub, EventFollower) {
    let hub = hub();
    let first = hub.append_telemetry(event(0)).await.unwrap();
    let mut follower = hub.follow_events(Some(first), EventFilter::default());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), follower.next())
            .await
            .is_err()
    );
    (hub, follower)
}

#[tokio::test]
async fn events_published_out_of_order_are_passed_on_in_order() {
    let (hub, mut follower) = hub_with_a_waiting_follower().await;
    // Two connections' appends committed together; the second's task publishes first.
    let appended = append_unpublished(&hub, 1..=4).await;
    hub.publish_live([&appended[2], &appended[3]].into_iter().cloned());
    hub.publish_live([&appended[0], &appended[1]].into_iter().cloned());
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(next_body(&mut follower).await);
    }
    assert_eq!(bodies, vec![1, 2, 3, 4], "in seq order, each once");
}

#[tokio::test]
async fn an_event_never_published_and_a_lag_lose_nothing_and_keep_the_order() {
    let (hub, mut follower) = hub_with_a_waiting_follower().await;
    // Event 1 is committed but never published (its publisher went away); event 2 is.
    let appended = append_unpublished(&hub, 1..=2).await;
    hub.publish_live(std::iter::once(appended[1].clone()));
    assert_eq!(next_body(&mut follower).await, 1, "read from the log");
    assert_eq!(next_body(&mut follower).await, 2);
    // Event 3 is published late, after more than the feed holds: the follower lags, and
    // had seen 4 before (held back behind 3): it resumes from 2, not from 4.
    let total = 5000;
    let late = append_unpublished(&hub, 3..=total).await;
    hub.publish_live(std::iter::once(late[1].clone()));
    assert!(
        tokio::time::timeout(Duration::from_millis(1), follower.next())
            .await
            .is_err(),
        "4 is held back for 3"
    );
    hub.publish_live(late[2..].iter().cloned());
    hub.publish_live(std::iter::once(late[0].clone()));
    let mut bodies = Vec::new();
    for _ in 3..=total {
        bodies.push(next_body(&mut follower).await);
    }
    assert_eq!(
        bodies,
        (3..=total).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

#[tokio::test]
async fn retention_deletes_what_is_older_than_the_hubs_time_minus_keep() {
    use std::sync::Arc;

    use crate::hub::{HubOptions, ManualClock};
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let options = HubOptions {
        clock: clock.clone(),
        ..HubOptions::default()
    };
    let hub = Hub::with_options(crate::store::Store::open_in_memory().unwrap(), options);
    let at = |secs: u64| {
        let mut e = event(0);
        e.enqueued_ms = crate::timestamp::unix_millis(start + Duration::from_secs(secs));
        e
    };
    hub.append_telemetry_batch(vec![at(0), at(10), at(20)])
        .await
        .unwrap();
    let keep = Duration::from_secs(3600);
    clock.advance(Duration::from_secs(3600 + 5));
    assert_eq!(
        hub.apply_retention(keep).await.unwrap(),
        1,
        "only the event at 0 s is past"
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        hub.apply_retention(keep).await.unwrap(),
        1,
        "then the one at 10 s"
    );
    let left = hub
        .read_events(0, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(left.events.len(), 1);
}
