use bytes::Bytes;

use super::*;
use crate::mqtt::topics::MAX_D2C;
use rumqttc::mqttbytes::v4::PubAck;

fn t0() -> Instant {
    Instant::now()
}

fn connect(client_id: &str, keep_alive: u16, clean: bool) -> Packet {
    let mut c = Connect::new(client_id);
    c.keep_alive = keep_alive;
    c.clean_session = clean;
    Packet::Connect(c)
}

fn device(id: &str) -> Principal {
    Principal::Device {
        device_id: id.into(),
        module_id: None,
    }
}

/// A session connected as `dev1` with keep-alive 60 s.
fn connected(now: Instant) -> Session {
    let mut s = Session::new(now);
    assert!(matches!(
        s.handle_packet(connect("dev1", 60, true), now)[0],
        Action::Authenticate(_)
    ));
    let out = s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored: None,
            expires: None,
        },
        now,
    );
    assert_eq!(
        out,
        vec![Action::Send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false
        )))]
    );
    s
}

fn publish(topic: &str, qos: QoS, payload: &[u8]) -> Packet {
    let mut p = Publish::new(topic, qos, payload.to_vec());
    p.pkid = u16::from(qos != QoS::AtMostOnce);
    Packet::Publish(p)
}

fn closes(out: &[Action]) -> bool {
    matches!(out.last(), Some(Action::Close { .. }))
}

#[test]
fn first_packet_other_than_connect_closes() {
    let now = t0();
    let mut s = Session::new(now);
    assert!(closes(&s.handle_packet(Packet::PingReq, now)));
}

#[test]
fn second_connect_closes() {
    let now = t0();
    let mut s = connected(now);
    assert!(closes(&s.handle_packet(connect("dev1", 60, true), now)));
}

#[test]
fn refused_connect_sends_connack_code_then_closes() {
    let now = t0();
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 60, true), now);
    let out = s.handle_auth(AuthResult::Refused(ConnectReturnCode::NotAuthorized), now);
    assert_eq!(
        out[0],
        Action::Send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::NotAuthorized,
            false
        )))
    );
    assert!(closes(&out));
}

#[test]
fn qos_2_publish_closes() {
    let now = t0();
    let mut s = connected(now);
    assert!(closes(&s.handle_packet(
        publish("devices/dev1/messages/events/", QoS::ExactlyOnce, b"x"),
        now
    )));
}

#[test]
fn telemetry_on_own_topic_is_accepted_with_its_ack() {
    let now = t0();
    let mut s = connected(now);
    let out = s.handle_packet(
        publish("devices/dev1/messages/events/a=1", QoS::AtLeastOnce, b"x"),
        now,
    );
    assert_eq!(
        out,
        vec![Action::Telemetry {
            ack: Some(1),
            properties: "a=1".into(),
            body: Bytes::from_static(b"x"),
            retain: false
        }]
    );
}

#[test]
fn telemetry_for_another_device_closes() {
    let now = t0();
    let mut s = connected(now);
    assert!(closes(&s.handle_packet(
        publish("devices/dev2/messages/events/", QoS::AtLeastOnce, b"x"),
        now
    )));
}

#[test]
fn unknown_topic_closes() {
    let now = t0();
    let mut s = connected(now);
    assert!(closes(&s.handle_packet(
        publish("some/broker/topic", QoS::AtMostOnce, b"x"),
        now
    )));
}

#[test]
fn d2c_over_256_kb_closes() {
    let now = t0();
    let mut s = connected(now);
    let big = vec![b'a'; MAX_D2C + 1];
    assert!(closes(&s.handle_packet(
        publish("devices/dev1/messages/events/", QoS::AtLeastOnce, &big),
        now
    )));
    let mut s = connected(now);
    let fits = vec![b'a'; MAX_D2C];
    assert!(!closes(&s.handle_packet(
        publish("devices/dev1/messages/events/", QoS::AtLeastOnce, &fits),
        now
    )));
}

#[test]
fn suback_grants_at_most_qos_1_and_broad_filters_map_to_c2d() {
    let now = t0();
    let mut s = connected(now);
    let mut sub = Subscribe::new("devices/dev1/messages/#", QoS::ExactlyOnce);
    sub.pkid = 7;
    sub.add("#".into(), QoS::AtMostOnce);
    let out = s.handle_packet(Packet::Subscribe(sub), now);
    assert_eq!(
        out[0],
        Action::Send(Packet::SubAck(SubAck::new(
            7,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::AtMostOnce)
            ]
        )))
    );
    assert_eq!(s.granted_qos(Interests::C2D), Some(QoS::AtLeastOnce));
    assert_eq!(s.granted_qos(Interests::METHODS), Some(QoS::AtMostOnce));
}

#[test]
fn subscribing_to_another_devices_topic_closes() {
    let now = t0();
    let mut s = connected(now);
    let sub = Subscribe::new("devices/dev2/messages/devicebound/#", QoS::AtLeastOnce);
    assert!(closes(&s.handle_packet(Packet::Subscribe(sub), now)));
}

#[test]
fn sixth_subscription_is_refused() {
    let now = t0();
    let mut s = connected(now);
    let filters = [
        "devices/dev1/messages/devicebound/#",
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/#",
        "#",
        "devices/+/messages/devicebound/#",
    ];
    let mut sub = Subscribe::new(filters[0], QoS::AtLeastOnce);
    for f in &filters[1..] {
        sub.add((*f).into(), QoS::AtLeastOnce);
    }
    let out = s.handle_packet(Packet::Subscribe(sub), now);
    let Action::Send(Packet::SubAck(ack)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        ack.return_codes[4],
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert_eq!(ack.return_codes[5], SubscribeReasonCode::Failure);
    assert_eq!(s.subscriptions.len(), 5);
}

#[test]
fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let now = t0();
    let mut s = connected(now);
    assert!(s.handle_timeout(now + Duration::from_secs(89)).is_empty());
    assert_eq!(s.poll_timeout(), now + Duration::from_secs(90));
    assert!(closes(&s.handle_timeout(now + Duration::from_secs(90))));
}

#[test]
fn keep_alive_is_capped_at_1767_seconds() {
    assert_eq!(keep_alive_timeout(1200), KEEP_ALIVE_CAP);
    assert_eq!(keep_alive_timeout(0), KEEP_ALIVE_CAP);
    assert_eq!(keep_alive_timeout(240), Duration::from_secs(360));
}

#[test]
fn connection_closes_when_the_token_expires() {
    let now = t0();
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 600, true), now);
    let expires = Some(now + Duration::from_secs(10));
    s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored: None,
            expires,
        },
        now,
    );
    assert_eq!(s.poll_timeout(), now + Duration::from_secs(10));
    assert!(closes(&s.handle_timeout(now + Duration::from_secs(10))));
}

#[test]
fn persistent_session_restores_subscriptions_and_sets_session_present() {
    let now = t0();
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 60, false), now);
    let restored = Some(vec![StoredSubscription {
        filter: "#".into(),
        qos: 1,
    }]);
    let out = s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored,
            expires: None,
        },
        now,
    );
    assert_eq!(
        out[0],
        Action::Send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            true
        )))
    );
    assert_eq!(s.granted_qos(Interests::C2D), Some(QoS::AtLeastOnce));
}

#[test]
fn clean_session_ignores_stored_subscriptions() {
    let now = t0();
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 60, true), now);
    let restored = Some(vec![StoredSubscription {
        filter: "#".into(),
        qos: 1,
    }]);
    let out = s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored,
            expires: None,
        },
        now,
    );
    assert_eq!(
        out[0],
        Action::Send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false
        )))
    );
    assert!(s.subscriptions.is_empty());
}

#[test]
fn will_is_kept_only_for_the_own_telemetry_topic_and_dropped_on_disconnect() {
    let now = t0();
    let mut s = Session::new(now);
    let mut c = Connect::new("dev1");
    c.last_will = Some(LastWill::new(
        "devices/dev1/messages/events/",
        "bye",
        QoS::AtLeastOnce,
        false,
    ));
    s.handle_packet(Packet::Connect(c), now);
    s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored: None,
            expires: None,
        },
        now,
    );
    assert_eq!(
        s.handle_timeout(now + KEEP_ALIVE_CAP),
        vec![Action::Close {
            reason: "keep-alive timeout",
            will: true
        }]
    );

    let mut s = Session::new(now);
    let mut c = Connect::new("dev1");
    c.last_will = Some(LastWill::new(
        "devices/dev2/messages/events/",
        "bye",
        QoS::AtLeastOnce,
        false,
    ));
    s.handle_packet(Packet::Connect(c), now);
    s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored: None,
            expires: None,
        },
        now,
    );
    assert!(s.take_will().is_none());
}

#[test]
fn twin_and_method_topics_are_classified() {
    let now = t0();
    let mut s = connected(now);
    let out = s.handle_packet(
        publish("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, b" "),
        now,
    );
    assert_eq!(
        out,
        vec![Action::Request {
            ack: None,
            request: DeviceRequest::TwinGet {
                request_id: "1".into()
            }
        }]
    );
    let out = s.handle_packet(
        publish("$iothub/methods/res/200/?$rid=ab", QoS::AtLeastOnce, b"{}"),
        now,
    );
    assert!(matches!(
        &out[0],
        Action::Request {
            request: DeviceRequest::MethodResponse { status: 200, .. },
            ..
        }
    ));
}

fn subscribe(s: &mut Session, filter: &str, qos: QoS, now: Instant) -> Vec<Action> {
    s.handle_packet(Packet::Subscribe(Subscribe::new(filter, qos)), now)
}

fn c2d(lock_token: i64, redelivery: bool) -> ToDevice {
    use crate::hub::c2d::{AckMode, C2dDelivery, C2dMessage};
    ToDevice::C2d(Box::new(C2dDelivery {
        lock_token,
        redelivery,
        message: C2dMessage {
            device_id: "dev1".into(),
            module_id: None,
            message_id: format!("m{lock_token}"),
            to: "/devices/dev1/messages/devicebound".into(),
            content_encoding: None,
            content_type: None,
            correlation_id: None,
            user_id: None,
            ack: AckMode::None,
            properties: Vec::new(),
            body: Bytes::from_static(b"hi"),
            enqueued_ms: 0,
            expiry_ms: 0,
            delivery_count: 1,
        },
    }))
}

fn sent_publish(actions: &[Action]) -> &Publish {
    match actions.first() {
        Some(Action::Send(Packet::Publish(p))) => p,
        other => panic!("expected a publish, got {other:?}"),
    }
}

#[test]
fn hub_messages_nobody_subscribed_to_are_not_sent() {
    let now = t0();
    let mut s = connected(now);
    assert!(s.handle_to_device(c2d(1, false)).is_empty());
    let patch = ToDevice::DesiredPatch {
        version: 2,
        body: Bytes::from_static(b"{}"),
    };
    assert!(s.handle_to_device(patch).is_empty());
}

#[test]
fn c2d_at_qos_1_is_completed_by_the_devices_puback() {
    let now = t0();
    let mut s = connected(now);
    subscribe(
        &mut s,
        "devices/dev1/messages/devicebound/#",
        QoS::AtLeastOnce,
        now,
    );
    let out = s.handle_to_device(c2d(41, false));
    let publish = sent_publish(&out).clone();
    assert_eq!((publish.qos, publish.dup), (QoS::AtLeastOnce, false));
    assert_eq!(out.len(), 1, "nothing is complete before the PUBACK");
    let second = sent_publish(&s.handle_to_device(c2d(42, true))).clone();
    assert_ne!(publish.pkid, second.pkid);
    assert!(second.dup, "a redelivery carries DUP at QoS 1");
    assert_eq!(
        s.handle_packet(Packet::PubAck(PubAck::new(second.pkid)), now),
        vec![Action::C2dDelivered(42)]
    );
    assert_eq!(
        s.handle_packet(Packet::PubAck(PubAck::new(publish.pkid)), now),
        vec![Action::C2dDelivered(41)]
    );
    // A PUBACK for nothing in flight completes nothing.
    assert!(
        s.handle_packet(Packet::PubAck(PubAck::new(publish.pkid)), now)
            .is_empty()
    );
}

#[test]
fn c2d_to_a_qos_0_subscription_goes_out_at_qos_0_and_is_complete_once_sent() {
    let now = t0();
    let mut s = connected(now);
    subscribe(
        &mut s,
        "devices/dev1/messages/devicebound/#",
        QoS::AtMostOnce,
        now,
    );
    let out = s.handle_to_device(c2d(7, true));
    let publish = sent_publish(&out);
    assert_eq!((publish.qos, publish.dup), (QoS::AtMostOnce, false));
    assert_eq!(out[1], Action::C2dDelivered(7));
}

#[test]
fn packet_ids_skip_those_still_in_flight_and_wrap_after_65535() {
    let now = t0();
    let mut s = connected(now);
    subscribe(&mut s, "#", QoS::AtLeastOnce, now);
    let first = sent_publish(&s.handle_to_device(c2d(1, false))).pkid;
    assert_eq!(first, 1);
    s.last_pkid = u16::MAX - 1;
    assert_eq!(
        sent_publish(&s.handle_to_device(c2d(2, false))).pkid,
        u16::MAX
    );
    // 1 is still in flight: the next id after the wrap is 2.
    assert_eq!(sent_publish(&s.handle_to_device(c2d(3, false))).pkid, 2);
}

#[test]
fn the_hub_closing_a_connection_closes_it_without_the_will() {
    let now = t0();
    let mut s = connected(now);
    let out = s.handle_to_device(ToDevice::Close(crate::hub::CloseReason::TakenOver));
    assert!(matches!(out[..], [Action::Close { will: false, .. }]));
}

#[test]
fn subscribing_with_clean_session_0_asks_to_store_the_session() {
    let now = t0();
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 60, false), now);
    let accepted = AuthResult::Accepted {
        principal: device("dev1"),
        restored: None,
        expires: None,
    };
    s.handle_auth(accepted, now);
    let out = subscribe(&mut s, "$iothub/methods/POST/#", QoS::AtMostOnce, now);
    assert_eq!(
        out[1],
        Action::Subscribed {
            interests: Interests::METHODS,
            save: Some(vec![StoredSubscription {
                filter: "$iothub/methods/POST/#".into(),
                qos: 0
            }])
        }
    );
    let mut clean = connected(now);
    let out = subscribe(&mut clean, "$iothub/methods/POST/#", QoS::AtMostOnce, now);
    assert_eq!(
        out[1],
        Action::Subscribed {
            interests: Interests::METHODS,
            save: None
        }
    );
}

#[test]
fn connect_must_arrive_within_30_seconds() {
    let now = t0();
    let mut s = Session::new(now);
    assert_eq!(s.poll_timeout(), now + CONNECT_TIMEOUT);
    assert!(s.handle_timeout(now + Duration::from_secs(29)).is_empty());
    assert_eq!(
        s.handle_timeout(now + Duration::from_secs(30)),
        vec![Action::Close {
            reason: "no CONNECT in time",
            will: false
        }]
    );
    assert!(
        s.handle_timeout(now + Duration::from_secs(31)).is_empty(),
        "closed once"
    );

    // A CONNECT in time: from then on the keep-alive deadline counts (60 s x 1.5 here).
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 60, true), now + Duration::from_secs(29));
    s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored: None,
            expires: None,
        },
        now + Duration::from_secs(29),
    );
    assert_eq!(s.poll_timeout(), now + Duration::from_secs(29 + 90));
    assert!(s.handle_timeout(now + Duration::from_secs(30)).is_empty());
}

#[test]
fn every_packet_from_the_device_pushes_the_keep_alive_deadline() {
    let now = t0();
    let mut s = connected(now);
    let ping_at = now + Duration::from_secs(80);
    assert_eq!(
        s.handle_packet(Packet::PingReq, ping_at),
        vec![Action::Send(Packet::PingResp)]
    );
    assert_eq!(s.poll_timeout(), ping_at + Duration::from_secs(90));
    assert!(s.handle_timeout(now + Duration::from_secs(169)).is_empty());
    let publish_at = now + Duration::from_secs(169);
    s.handle_packet(
        publish("devices/dev1/messages/events/", QoS::AtMostOnce, b"{}"),
        publish_at,
    );
    assert!(
        s.handle_timeout(ping_at + Duration::from_secs(90))
            .is_empty()
    );
    assert_eq!(
        s.handle_timeout(publish_at + Duration::from_secs(90)),
        vec![Action::Close {
            reason: "keep-alive timeout",
            will: false
        }]
    );
}

#[test]
fn token_expiry_closes_the_connection_and_publishes_the_will() {
    let now = t0();
    let mut s = Session::new(now);
    let mut c = Connect::new("dev1");
    c.keep_alive = 600;
    c.last_will = Some(LastWill::new(
        "devices/dev1/messages/events/",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    s.handle_packet(Packet::Connect(c), now);
    s.handle_auth(
        AuthResult::Accepted {
            principal: device("dev1"),
            restored: None,
            expires: Some(now + Duration::from_secs(10)),
        },
        now,
    );
    // Activity does not extend a token.
    s.handle_packet(Packet::PingReq, now + Duration::from_secs(9));
    assert_eq!(s.poll_timeout(), now + Duration::from_secs(10));
    assert_eq!(
        s.handle_timeout(now + Duration::from_secs(10)),
        vec![Action::Close {
            reason: "token expired",
            will: true
        }]
    );
    let will = s
        .take_will()
        .expect("the Will is published on an expiry close");
    assert_eq!(will.topic, "devices/dev1/messages/events/");
    assert_eq!(will.message, Bytes::from_static(b"gone"));
}
