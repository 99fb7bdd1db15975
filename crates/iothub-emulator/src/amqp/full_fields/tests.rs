use fe2o3_amqp::types::definitions::{AmqpError, Error, Role};
use fe2o3_amqp::types::messaging::{Accepted, DeliveryState};
use fe2o3_amqp::types::performatives::{Close, Detach, Disposition, End, Transfer};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::FieldPadder;

/// An AMQP frame (type 0, channel 3) carrying `performative` and then `payload`.
fn frame(performative: &impl Serialize, payload: &[u8]) -> Vec<u8> {
    let body = serde_amqp::to_vec(performative).expect("encode");
    let size = u32::try_from(8 + body.len() + payload.len()).expect("small");
    let mut f = size.to_be_bytes().to_vec();
    f.extend_from_slice(&[2, 0, 0, 3]);
    f.extend_from_slice(&body);
    f.extend_from_slice(payload);
    f
}

fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut p = FieldPadder::default();
    p.push(bytes);
    p.output().to_vec()
}

/// The field count of the performative list in `frame`, and the frame's declared size.
fn field_count_and_size(frame: &[u8]) -> (usize, usize) {
    let size = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
    let list = &frame[11..];
    let count = match list[0] {
        0xc0 => usize::from(list[2]),
        0xd0 => u32::from_be_bytes(list[5..9].try_into().expect("4 bytes")) as usize,
        0x45 => 0,
        other => panic!("not a list: {other:#x}"),
    };
    (count, size as usize)
}

/// Pads, then checks the count, the size, and that the padded frame decodes to the same
/// performative (a trailing null means the same as a field left out).
fn assert_padded_to<T>(value: &T, full: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let original = frame(value, &[]);
    let out = padded(&original);
    let (count, size) = field_count_and_size(&out);
    assert_eq!(count, full, "{value:?}");
    assert_eq!(size, out.len());
    let decoded: T = serde_amqp::from_slice(&out[8..]).expect("decodes");
    assert_eq!(&decoded, value);
}

#[test]
fn a_disposition_carries_batchable() {
    let d = Disposition {
        role: Role::Receiver,
        first: 7,
        last: None,
        settled: true,
        state: Some(DeliveryState::Accepted(Accepted {})),
        batchable: false,
    };
    assert_padded_to(&d, 6);
}

#[test]
fn a_detach_without_error_carries_a_null_error() {
    let d = Detach {
        handle: 2.into(),
        closed: true,
        error: None,
    };
    assert_padded_to(&d, 3);
}

#[test]
fn end_and_close_without_error_carry_their_one_field() {
    assert_padded_to(&End { error: None }, 1);
    assert_padded_to(&Close { error: None }, 1);
}

#[test]
fn a_frame_that_has_every_field_passes_unchanged() {
    let d = Detach {
        handle: 2.into(),
        closed: true,
        error: Some(Error::new(AmqpError::NotFound, Some("gone".into()), None)),
    };
    let original = frame(&d, &[]);
    assert_eq!(padded(&original), original);
}

#[test]
fn a_transfer_keeps_its_payload_after_the_padded_list() {
    let t = Transfer {
        handle: 1.into(),
        delivery_id: Some(4),
        delivery_tag: Some(vec![1, 2].into()),
        message_format: Some(0),
        settled: Some(false),
        more: false,
        rcv_settle_mode: None,
        state: None,
        resume: false,
        aborted: false,
        batchable: false,
    };
    let payload = b"\x00\x53\x75\xa0\x05hello";
    let out = padded(&frame(&t, payload));
    let (count, size) = field_count_and_size(&out);
    assert_eq!((count, size), (11, out.len()));
    assert!(out.ends_with(payload));
}

#[test]
fn headers_empty_frames_and_unknown_frames_pass_unchanged() {
    let mut stream = b"AMQP\x03\x01\x00\x00".to_vec();
    stream.extend_from_slice(&[0, 0, 0, 8, 2, 0, 0, 0]); // heartbeat: an empty frame
    stream.extend_from_slice(&[0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x77, 0x45]); // not a performative
    assert_eq!(padded(&stream), stream);
}

#[test]
fn bytes_that_are_not_frames_pass_through_from_there_on() {
    let mut stream = frame(&End { error: None }, &[]);
    let good = padded(&stream);
    stream.extend_from_slice(&[0, 0, 0, 3, 9, 9, 9]);
    let mut p = FieldPadder::default();
    p.push(&stream);
    p.push(b"anything");
    let mut expected = good;
    expected.extend_from_slice(&[0, 0, 0, 3, 9, 9, 9]);
    expected.extend_from_slice(b"anything");
    assert_eq!(p.output(), expected.as_slice());
}

#[test]
fn a_sasl_outcome_carries_additional_data() {
    // sasl-outcome (code ok) with one field, in a SASL frame (type 1).
    let f = [
        0, 0, 0, 15, 2, 1, 0, 0, 0x00, 0x53, 0x44, 0xc0, 2, 1, 0x50, 0,
    ];
    let f = &f[..15];
    let out = padded(f);
    assert_eq!(
        out,
        [
            0, 0, 0, 16, 2, 1, 0, 0, 0x00, 0x53, 0x44, 0xc0, 3, 2, 0x50, 0x40
        ]
    );
}

fn sample_stream() -> Vec<u8> {
    let mut s = b"AMQP\x00\x01\x00\x00".to_vec();
    s.extend(frame(&End { error: None }, &[]));
    s.extend(frame(
        &Detach {
            handle: 9.into(),
            closed: false,
            error: None,
        },
        &[],
    ));
    s.extend(frame(&Close { error: None }, &[]));
    s
}

proptest! {
    /// However the writes are split, the output is the same.
    #[test]
    fn the_output_does_not_depend_on_how_writes_are_split(cuts in proptest::collection::vec(0usize..200, 0..8)) {
        let stream = sample_stream();
        let whole = padded(&stream);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut p = FieldPadder::default();
        let mut from = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            p.push(&stream[from..cut]);
            from = cut;
        }
        prop_assert_eq!(p.output(), whole.as_slice());
    }

    /// Any bytes: no panic, and nothing is lost: what is not output yet is held as the
    /// start of an incomplete frame.
    #[test]
    fn any_bytes_are_passed_on(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut p = FieldPadder::default();
        p.push(&bytes);
        prop_assert!(p.output().len() + p.partial.len() >= bytes.len());
        prop_assert!(bytes.ends_with(&p.partial));
        let n = p.output().len();
        p.consume(n);
        prop_assert!(p.output().is_empty());
    }
}
