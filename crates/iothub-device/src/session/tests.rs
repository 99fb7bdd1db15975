//! Deterministic tests of the session: explicit `now`, no sockets, no sleeps.

use super::*;

fn t0() -> Instant {
    Instant::now()
}

fn config() -> SessionConfig {
    SessionConfig {
        keep_alive: Duration::from_secs(60),
        response_timeout: Duration::from_secs(10),
        ack_timeout: Duration::from_secs(30),
        max_inflight: 2,
        capacity: 4,
    }
}

fn message(id: PublishId) -> OutgoingPublish {
    OutgoingPublish {
        id,
        topic: format!("devices/d/messages/events/n={id}"),
        payload: Bytes::from(format!("body {id}")),
        qos: Qos::AtLeastOnce,
    }
}

fn login() -> ConnectRequest {
    ConnectRequest {
        client_id: "d".into(),
        username: "h/d/?api-version=2021-04-12".into(),
        password: None,
        clean_session: false,
    }
}

fn drain(session: &mut Session, now: Instant) -> Vec<Packet> {
    std::iter::from_fn(|| session.poll_transmit(now)).collect()
}

fn events(session: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn connect(session: &mut Session, now: Instant, session_present: bool) -> Vec<Packet> {
    session.start_connection(login(), now);
    let sent = drain(session, now);
    assert!(matches!(sent[0], Packet::Connect(_)));
    session.handle_packet(
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, session_present)),
        now,
    );
    drain(session, now)
}

fn published(packets: &[Packet]) -> Vec<(u16, bool, String)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.pkid, p.dup, p.topic.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn publishes_accepted_offline_go_out_after_connack() {
    let now = t0();
    let mut s = Session::new(config());
    s.publish(message(1)).unwrap();
    assert!(drain(&mut s, now).is_empty());
    let sent = connect(&mut s, now, false);
    assert_eq!(published(&sent).len(), 1);
}

#[test]
fn reports_delivery_only_after_puback() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    s.publish(message(7)).unwrap();
    let sent = drain(&mut s, now);
    let pkid = published(&sent)[0].0;
    assert!(events(&mut s).is_empty(), "nothing delivered before PUBACK");
    s.handle_packet(Packet::PubAck(PubAck::new(pkid.wrapping_add(100))), now);
    assert!(
        events(&mut s).is_empty(),
        "an unrelated PUBACK delivers nothing"
    );
    s.handle_packet(Packet::PubAck(PubAck::new(pkid)), now);
    assert_eq!(events(&mut s), vec![SessionEvent::Delivered(7)]);
    assert!(s.is_drained());
}

#[test]
fn resends_unacknowledged_publishes_with_same_packet_id_and_dup_after_reconnect() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    s.publish(message(1)).unwrap();
    s.publish(message(2)).unwrap();
    s.publish(message(3)).unwrap(); // window is 2: waits in the queue
    let first = published(&drain(&mut s, now));
    assert_eq!(first.len(), 2);
    s.handle_packet(Packet::PubAck(PubAck::new(first[0].0)), now);
    s.handle_connection_lost();

    let again = published(&connect(&mut s, now, true));
    // message 2 first (same id, DUP), then message 3 (new, no DUP)
    assert_eq!(again[0], (first[1].0, true, first[1].2.clone()));
    assert!(!again[1].1);
    assert!(again[1].2.ends_with("n=3"));
    assert_ne!(again[1].0, first[1].0);
}

#[test]
fn refuses_publishes_beyond_capacity() {
    let mut s = Session::new(config());
    for id in 0..4 {
        s.publish(message(id)).unwrap();
    }
    assert_eq!(s.publish(message(9)), Err(Full { capacity: 4 }));
    assert_eq!(s.len(), 4);
}

#[test]
fn restores_subscriptions_and_holds_publishes_until_suback() {
    let now = t0();
    let mut s = Session::new(config());
    s.subscribe("$iothub/twin/res/#");
    s.subscribe("$iothub/methods/POST/#");
    s.subscribe("$iothub/twin/res/#");
    s.publish(message(1)).unwrap();
    for _ in 0..2 {
        let sent = connect(&mut s, now, false);
        let Packet::Subscribe(sub) = &sent[0] else {
            panic!("expected SUBSCRIBE first, got {sent:?}");
        };
        let filters: Vec<_> = sub.filters.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(filters, ["$iothub/twin/res/#", "$iothub/methods/POST/#"]);
        assert!(published(&sent).is_empty(), "publish waits for SUBACK");
        s.handle_packet(
            Packet::SubAck(rumqttc::mqttbytes::v4::SubAck::new(
                sub.pkid,
                vec![SubscribeReasonCode::Success(QoS::AtLeastOnce); 2],
            )),
            now,
        );
        assert_eq!(published(&drain(&mut s, now)).len(), 1);
        assert!(events(&mut s).contains(&SessionEvent::Subscribed));
        s.handle_connection_lost();
    }
}

#[test]
fn reports_refused_subscription() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    s.subscribe("not/allowed");
    let Some(Packet::Subscribe(sub)) = s.poll_transmit(now) else {
        panic!("expected SUBSCRIBE");
    };
    s.handle_packet(
        Packet::SubAck(rumqttc::mqttbytes::v4::SubAck::new(
            sub.pkid,
            vec![SubscribeReasonCode::Failure],
        )),
        now,
    );
    assert!(events(&mut s).contains(&SessionEvent::SubscribeRefused("not/allowed".into())));
}

fn incoming(pkid: u16) -> Packet {
    let mut p = Publish::new("devices/d/messages/devicebound/", QoS::AtLeastOnce, vec![1]);
    p.pkid = pkid;
    Packet::Publish(p)
}

fn tokens(session: &mut Session) -> Vec<AckToken> {
    events(session)
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Publish { ack, .. } => ack,
            _ => None,
        })
        .collect()
}

fn pubacks(packets: &[Packet]) -> Vec<u16> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::PubAck(a) => Some(a.pkid),
            _ => None,
        })
        .collect()
}

#[test]
fn acknowledges_incoming_publishes_only_when_released_and_in_arrival_order() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    s.handle_packet(incoming(10), now);
    s.handle_packet(incoming(11), now);
    let t = tokens(&mut s);
    assert!(
        drain(&mut s, now).is_empty(),
        "no PUBACK before the app took it"
    );
    s.ack(t[1]);
    assert!(pubacks(&drain(&mut s, now)).is_empty(), "11 waits for 10");
    s.ack(t[0]);
    assert_eq!(pubacks(&drain(&mut s, now)), [10, 11]);
}

#[test]
fn drops_duplicate_of_an_unacknowledged_incoming_publish() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    s.handle_packet(incoming(5), now);
    s.handle_packet(incoming(5), now);
    assert_eq!(tokens(&mut s).len(), 1);
}

#[test]
fn ignores_acknowledgement_from_a_previous_connection() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    s.handle_packet(incoming(5), now);
    let t = tokens(&mut s);
    s.handle_connection_lost();
    connect(&mut s, now, true);
    s.ack(t[0]);
    assert!(pubacks(&drain(&mut s, now)).is_empty());
}

#[test]
fn reports_refused_connack_and_sends_nothing() {
    let now = t0();
    let mut s = Session::new(config());
    s.publish(message(1)).unwrap();
    s.start_connection(login(), now);
    drain(&mut s, now);
    s.handle_packet(
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::NotAuthorized, false)),
        now,
    );
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Refused(ConnectRefusal::NotAuthorized)]
    );
    assert!(drain(&mut s, now).is_empty());
    assert!(!s.is_connected());
    assert_eq!(s.len(), 1, "the message is kept for the next connection");
}

#[test]
fn times_out_waiting_for_connack() {
    let now = t0();
    let mut s = Session::new(config());
    s.start_connection(login(), now);
    drain(&mut s, now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(9));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::ConnectionLost(LostReason::ConnAckTimeout)]
    );
}

#[test]
fn pings_after_keep_alive_silence_and_declares_link_dead_without_pingresp() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    let due = now + Duration::from_secs(60);
    assert_eq!(s.poll_timeout(), Some(due));
    s.handle_timeout(due);
    assert_eq!(drain(&mut s, due), [Packet::PingReq]);
    // answered: the next ping is a keep-alive later
    s.handle_packet(Packet::PingResp, due);
    assert_eq!(s.poll_timeout(), Some(due + Duration::from_secs(60)));
    // unanswered: dead after the response timeout
    let due2 = due + Duration::from_secs(60);
    s.handle_timeout(due2);
    drain(&mut s, due2);
    s.handle_timeout(due2 + Duration::from_secs(10));
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::ConnectionLost(LostReason::PingTimeout)]
    );
}

#[test]
fn declares_link_dead_when_the_hub_withholds_puback() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    s.publish(message(1)).unwrap();
    drain(&mut s, now);
    let deadline = now + Duration::from_secs(30);
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(deadline);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::ConnectionLost(LostReason::AckTimeout)]
    );
    assert_eq!(s.len(), 1, "still held for re-sending");
}

#[test]
fn cancels_only_publishes_not_yet_sent() {
    let now = t0();
    let mut s = Session::new(config());
    s.publish(message(1)).unwrap();
    assert!(s.cancel(1));
    s.publish(message(2)).unwrap();
    connect(&mut s, now, false);
    assert!(!s.cancel(2));
}

#[test]
fn quality_zero_publish_is_delivered_once_written() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    events(&mut s);
    let mut m = message(3);
    m.qos = Qos::AtMostOnce;
    s.publish(m).unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::Delivered(3)]);
    assert_eq!(published(&drain(&mut s, now))[0].0, 0);
}

#[test]
fn draining_sends_nothing_new_until_the_next_connection() {
    let now = t0();
    let mut s = Session::new(config());
    connect(&mut s, now, false);
    s.publish(message(1)).unwrap();
    let pkid = published(&drain(&mut s, now))[0].0;
    s.drain();
    s.publish(message(2)).unwrap();
    assert!(
        published(&drain(&mut s, now)).is_empty(),
        "held while draining"
    );
    assert!(!s.is_quiet());
    s.handle_packet(Packet::PubAck(PubAck::new(pkid)), now);
    assert!(s.is_quiet());
    assert!(published(&drain(&mut s, now)).is_empty());
    s.handle_connection_lost();
    let sent = published(&connect(&mut s, now, true));
    assert_eq!(sent.len(), 1, "message 2 goes out on the next connection");
    assert!(!sent[0].1, "it was never written, so no DUP");
}
