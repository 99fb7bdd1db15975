use super::*;

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
        vec![Action::Inbound {
            ack: Some(1),
            inbound: Inbound::Telemetry {
                properties: "a=1".into(),
                body: Bytes::from_static(b"x"),
                retain: false
            }
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
    assert_eq!(s.feed_qos(Feeds::C2D), Some(QoS::AtLeastOnce));
    assert_eq!(s.feed_qos(Feeds::METHODS), Some(QoS::AtMostOnce));
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
    assert_eq!(s.subscriptions().len(), 5);
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
    let restored = Some(vec![Subscription {
        filter: "#".into(),
        feeds: Feeds::DEVICE_ALL,
        qos: QoS::AtLeastOnce,
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
    assert_eq!(s.feed_qos(Feeds::C2D), Some(QoS::AtLeastOnce));
}

#[test]
fn clean_session_ignores_stored_subscriptions() {
    let now = t0();
    let mut s = Session::new(now);
    s.handle_packet(connect("dev1", 60, true), now);
    let restored = Some(vec![Subscription {
        filter: "#".into(),
        feeds: Feeds::DEVICE_ALL,
        qos: QoS::AtLeastOnce,
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
    assert!(s.subscriptions().is_empty());
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
        vec![Action::Inbound {
            ack: None,
            inbound: Inbound::TwinGet { rid: "1".into() }
        }]
    );
    let out = s.handle_packet(
        publish("$iothub/methods/res/200/?$rid=ab", QoS::AtLeastOnce, b"{}"),
        now,
    );
    assert!(matches!(
        &out[0],
        Action::Inbound {
            inbound: Inbound::MethodResponse { status: 200, .. },
            ..
        }
    ));
}
