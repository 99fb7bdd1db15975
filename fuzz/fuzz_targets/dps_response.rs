//! DPS responses (topic + JSON) driven through the registration state machine.
//!
//! Input: up to 8 steps separated by NUL. Each step is `head\nbody`; a head that is a number
//! becomes a response to the request in flight (`$dps/registrations/res/{head}/?$rid={rid}`,
//! plus `&retry-after=` from the body's first byte when odd), anything else is used as the topic.
#![no_main]

use iothub_proto::Instant;
use iothub_proto::provisioning::{Registration, RegistrationEvent};
use iothub_proto::topic::HubIncoming;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reg = Registration::new("fuzz-device", Some(r#"{"modelId":"dtmi:x;1"}"#));
    let mut now = Instant::from_millis(0);
    reg.start(now);
    let mut buf = [0u8; 512];
    let mut rid = String::new();
    let mut finished = false;

    for step in data.split(|&b| b == 0).take(8) {
        // every transmit is a well-formed DPS request
        if let Some(tx) = reg
            .poll_transmit(&mut buf)
            .expect("512 bytes hold any request")
        {
            assert!(!finished, "no transmit after the outcome");
            match HubIncoming::parse(tx.topic) {
                Ok(HubIncoming::DpsRegister(r)) => rid = r.request_id().to_string(),
                Ok(HubIncoming::DpsPoll(p)) => rid = p.request_id().to_string(),
                other => panic!("unexpected transmit {other:?}"),
            }
        }
        let split = step.iter().position(|&b| b == b'\n').unwrap_or(step.len());
        let (head, body) = (&step[..split], step.get(split + 1..).unwrap_or(&[]));
        let Ok(head) = core::str::from_utf8(head) else {
            continue;
        };
        let topic = if head.bytes().all(|b| b.is_ascii_digit()) && !head.is_empty() {
            match body.first() {
                Some(b) if b % 2 == 1 => format!(
                    "$dps/registrations/res/{head}/?$rid={rid}&retry-after={}",
                    b / 2
                ),
                _ => format!("$dps/registrations/res/{head}/?$rid={rid}"),
            }
        } else {
            head.to_string()
        };
        let _ = reg.handle_publish(&topic, body, now);

        if let Some(event) = reg.poll_event() {
            assert!(!finished, "outcome reported once");
            if let RegistrationEvent::Assigned {
                assigned_hub,
                device_id,
            } = event
            {
                assert!(!assigned_hub.is_empty() && !device_id.is_empty());
            }
            finished = true;
        }
        if finished {
            assert_eq!(reg.poll_timeout(), None);
        }
        match reg.poll_timeout() {
            Some(wake) => {
                assert!(!finished);
                now = wake.max(now);
                reg.handle_timeout(now);
            }
            None => now = now + core::time::Duration::from_secs(1),
        }
        if reg.poll_event().is_some() {
            assert!(!finished, "outcome reported once");
            finished = true;
        }
    }
});
