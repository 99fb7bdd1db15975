use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use super::*;

const L: C2dLimits = C2dLimits::DEFAULT;

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(sql::SCHEMA).unwrap();
    conn
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn msg(mid: &str, ack: AckMode) -> OutgoingMessage {
    OutgoingMessage {
        body: mid.as_bytes().to_vec(),
        message_id: Some(mid.into()),
        ack,
        ..Default::default()
    }
}

fn statuses(conn: &Connection) -> Vec<(String, String)> {
    take_feedback(conn, 100)
        .unwrap()
        .into_iter()
        .map(|f| (f.original_message_id, f.status_code))
        .collect()
}

#[test]
fn delivery_carries_every_field_the_sender_set() {
    let conn = db();
    let m = OutgoingMessage {
        body: b"hello world".to_vec(),
        message_id: Some("m-1".into()),
        correlation_id: Some("c-9".into()),
        user_id: Some("svc".into()),
        content_type: Some("text/plain".into()),
        content_encoding: Some("utf-8".into()),
        ack: AckMode::Full,
        properties: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        ..Default::default()
    };
    enqueue(&conn, "dev3", Some("m1"), m, &L, at(0)).unwrap();
    let d = next_deliveries(&conn, "dev3", Some("m1"), 10, &L, at(0)).unwrap();
    let got = &d[0].message;
    assert_eq!(got.to, "/devices/dev3/modules/m1/messages/devicebound");
    assert_eq!(
        (got.device_id.as_str(), got.module_id.as_deref()),
        ("dev3", Some("m1"))
    );
    assert_eq!(got.message_id, "m-1");
    assert_eq!(got.correlation_id.as_deref(), Some("c-9"));
    assert_eq!(got.user_id.as_deref(), Some("svc"));
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(got.ack, AckMode::Full);
    assert_eq!(
        got.properties,
        [("b".into(), "2".into()), ("a".into(), "1".into())]
    );
    assert_eq!(&got.body[..], b"hello world");
    assert_eq!(got.delivery_count, 1);
    assert!(!d[0].redelivery);
}

#[test]
fn generated_message_ids_are_uuids() {
    let conn = db();
    let out = enqueue(&conn, "d", None, OutgoingMessage::default(), &L, at(0)).unwrap();
    assert_eq!(out.message_id.len(), 36);
    assert_eq!(out.queue_depth, 1);
}

#[test]
fn the_fifty_first_message_is_refused_with_403004() {
    let conn = db();
    for i in 0..50 {
        enqueue(
            &conn,
            "d",
            None,
            msg(&format!("m{i}"), AckMode::None),
            &L,
            at(0),
        )
        .unwrap();
    }
    let err = enqueue(&conn, "d", None, msg("m50", AckMode::None), &L, at(0)).unwrap_err();
    assert!(matches!(err, C2dError::QueueFull));
    assert_eq!(err.status_and_code(), (403, 403_004));
    // other identities have their own queue
    enqueue(
        &conn,
        "d",
        Some("m"),
        msg("other", AckMode::None),
        &L,
        at(0),
    )
    .unwrap();
    // completing one makes room
    let d = next_deliveries(&conn, "d", None, 1, &L, at(0)).unwrap();
    assert!(complete(&conn, d[0].lock_token, at(0)).unwrap());
    enqueue(&conn, "d", None, msg("m50", AckMode::None), &L, at(0)).unwrap();
}

#[test]
fn messages_over_64_kilobytes_are_refused() {
    let conn = db();
    let ok = OutgoingMessage {
        body: vec![0; 64 * 1024],
        ..Default::default()
    };
    enqueue(&conn, "d", None, ok, &L, at(0)).unwrap();
    let big = OutgoingMessage {
        body: vec![0; 64 * 1024 - 2],
        properties: vec![("ab".into(), "c".into())],
        ..Default::default()
    };
    let err = enqueue(&conn, "d", None, big, &L, at(0)).unwrap_err();
    assert!(matches!(
        err,
        C2dError::MessageTooLarge {
            size: 65537,
            limit: 65536
        }
    ));
}

#[test]
fn messages_are_delivered_in_order_and_locked_until_completed() {
    let conn = db();
    for mid in ["a", "b", "c"] {
        enqueue(&conn, "d", None, msg(mid, AckMode::Positive), &L, at(0)).unwrap();
    }
    let first = next_deliveries(&conn, "d", None, 2, &L, at(1)).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|d| d.message.message_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    // locked messages are not handed out twice while the lock holds
    let more = next_deliveries(&conn, "d", None, 10, &L, at(2)).unwrap();
    assert_eq!(
        more.iter()
            .map(|d| d.message.message_id.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    assert!(
        next_deliveries(&conn, "d", None, 10, &L, at(3))
            .unwrap()
            .is_empty()
    );
    // PUBACKs in order complete them
    for d in first.iter().chain(&more) {
        assert!(complete(&conn, d.lock_token, at(4)).unwrap());
    }
    assert!(
        !complete(&conn, first[0].lock_token, at(4)).unwrap(),
        "second PUBACK is a no-op"
    );
    assert_eq!(queue_depth(&conn, "d", None, at(4)).unwrap(), 0);
    assert_eq!(
        statuses(&conn),
        [
            ("a".into(), "Success".into()),
            ("b".into(), "Success".into()),
            ("c".into(), "Success".into())
        ]
    );
}

#[test]
fn uncompleted_messages_are_redelivered_with_dup_after_a_reconnect() {
    let conn = db();
    enqueue(&conn, "d", None, msg("a", AckMode::None), &L, at(0)).unwrap();
    let first = next_deliveries(&conn, "d", None, 10, &L, at(0)).unwrap();
    assert!(!first[0].redelivery);
    assert_eq!(release(&conn, "d", None).unwrap(), 1);
    let again = next_deliveries(&conn, "d", None, 10, &L, at(1)).unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].redelivery);
    assert_eq!(again[0].lock_token, first[0].lock_token);
}

#[test]
fn an_expired_lock_makes_the_message_deliverable_again() {
    let conn = db();
    enqueue(&conn, "d", None, msg("a", AckMode::None), &L, at(0)).unwrap();
    assert_eq!(
        next_deliveries(&conn, "d", None, 10, &L, at(0))
            .unwrap()
            .len(),
        1
    );
    assert!(
        next_deliveries(&conn, "d", None, 10, &L, at(59))
            .unwrap()
            .is_empty()
    );
    let again = next_deliveries(&conn, "d", None, 10, &L, at(60)).unwrap();
    assert!(again[0].redelivery);
}

#[test]
fn the_eleventh_delivery_dead_letters_the_message_with_feedback() {
    let conn = db();
    enqueue(&conn, "d", None, msg("a", AckMode::Negative), &L, at(0)).unwrap();
    for i in 0..10 {
        let d = next_deliveries(&conn, "d", None, 10, &L, at(i)).unwrap();
        assert_eq!(d.len(), 1, "delivery {}", i + 1);
        release(&conn, "d", None).unwrap();
    }
    assert!(
        next_deliveries(&conn, "d", None, 10, &L, at(20))
            .unwrap()
            .is_empty()
    );
    assert_eq!(queue_depth(&conn, "d", None, at(20)).unwrap(), 0);
    assert_eq!(
        statuses(&conn),
        [("a".into(), "DeliveryCountExceeded".into())]
    );
}

#[test]
fn expired_messages_are_dead_lettered_and_reported_when_asked() {
    let conn = db();
    enqueue(
        &conn,
        "d",
        None,
        msg("default-ttl", AckMode::Full),
        &L,
        at(0),
    )
    .unwrap();
    let short = OutgoingMessage {
        expiry: Some(at(10)),
        ..msg("short", AckMode::Negative)
    };
    enqueue(&conn, "d", None, short, &L, at(0)).unwrap();
    enqueue(
        &conn,
        "d",
        None,
        OutgoingMessage {
            expiry: Some(at(10)),
            ..msg("quiet", AckMode::Positive)
        },
        &L,
        at(0),
    )
    .unwrap();
    assert_eq!(queue_depth(&conn, "d", None, at(9)).unwrap(), 3);
    assert_eq!(queue_depth(&conn, "d", None, at(10)).unwrap(), 1);
    let d = next_deliveries(&conn, "d", None, 10, &L, at(10)).unwrap();
    assert_eq!(
        d.iter()
            .map(|d| d.message.message_id.as_str())
            .collect::<Vec<_>>(),
        ["default-ttl"]
    );
    assert_eq!(statuses(&conn), [("short".into(), "Expired".into())]);
    // the default TTL is one hour
    release(&conn, "d", None).unwrap();
    assert_eq!(expire_due(&conn, at(3599)).unwrap(), 0);
    assert_eq!(expire_due(&conn, at(3600)).unwrap(), 1);
    let records = take_feedback(&conn, 10).unwrap();
    assert_eq!(records.len(), 1);
    let json = records[0].to_json();
    assert_eq!(json["statusCode"], "Expired");
    assert_eq!(json["originalMessageId"], "default-ttl");
    assert_eq!(json["deviceId"], "d");
    assert_eq!(json["enqueuedTimeUtc"], "2027-01-15T08:00:00.000Z");
    assert_eq!(json["description"], "Message Expired");
}

#[test]
fn a_completed_message_that_expired_meanwhile_is_not_completed_twice() {
    let conn = db();
    let m = OutgoingMessage {
        expiry: Some(at(5)),
        ..msg("a", AckMode::Full)
    };
    enqueue(&conn, "d", None, m, &L, at(0)).unwrap();
    let d = next_deliveries(&conn, "d", None, 1, &L, at(0)).unwrap();
    expire_due(&conn, at(6)).unwrap();
    assert!(!complete(&conn, d[0].lock_token, at(7)).unwrap());
    assert_eq!(statuses(&conn), [("a".into(), "Expired".into())]);
}

#[test]
fn purge_empties_one_queue_and_reports_purged() {
    let conn = db();
    enqueue(&conn, "d", None, msg("a", AckMode::Full), &L, at(0)).unwrap();
    enqueue(&conn, "d", None, msg("b", AckMode::Positive), &L, at(0)).unwrap();
    enqueue(&conn, "e", None, msg("c", AckMode::Full), &L, at(0)).unwrap();
    assert_eq!(purge(&conn, "d", None, at(1)).unwrap(), 2);
    assert_eq!(queue_depth(&conn, "d", None, at(1)).unwrap(), 0);
    assert_eq!(queue_depth(&conn, "e", None, at(1)).unwrap(), 1);
    assert_eq!(statuses(&conn), [("a".into(), "Purged".into())]);
}

#[test]
fn queues_survive_a_reopened_database() {
    let dir = std::env::temp_dir().join(format!("iothub-c2d-{}", ids::uuid_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql::SCHEMA).unwrap();
        enqueue(&conn, "d", None, msg("a", AckMode::None), &L, at(0)).unwrap();
        next_deliveries(&conn, "d", None, 1, &L, at(0)).unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    release(&conn, "d", None).unwrap();
    let d = next_deliveries(&conn, "d", None, 1, &L, at(1)).unwrap();
    assert_eq!(
        (d[0].message.message_id.as_str(), d[0].redelivery),
        ("a", true)
    );
    drop(conn);
    std::fs::remove_dir_all(dir).unwrap();
}
