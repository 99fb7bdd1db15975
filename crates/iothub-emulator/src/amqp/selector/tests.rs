use fe2o3_amqp::types::messaging::FilterSet;
use proptest::prelude::*;
use serde_amqp::described::Described;

use super::*;

#[test]
fn every_client_spelling_parses() {
    let cases = [
        ("amqp.annotation.x-opt-offset > '-1'", EventPosition::Start),
        ("amqp.annotation.x-opt-offset >= '-1'", EventPosition::Start),
        (
            "amqp.annotation.x-opt-offset > '@latest'",
            EventPosition::Latest,
        ),
        (
            "amqp.annotation.x-opt-offset > '4096'",
            EventPosition::Offset {
                offset: 4096,
                inclusive: false,
            },
        ),
        (
            "amqp.annotation.x-opt-offset >= '0'",
            EventPosition::Offset {
                offset: 0,
                inclusive: true,
            },
        ),
        (
            "amqp.annotation.x-opt-sequence-number > '17'",
            EventPosition::SequenceNumber {
                sequence_number: 17,
                inclusive: false,
            },
        ),
        (
            "amqp.annotation.x-opt-enqueued-time >= '1712345678901'",
            EventPosition::EnqueuedTime {
                unix_ms: 1_712_345_678_901,
                inclusive: true,
            },
        ),
        // az CLI monitor-events.
        (
            "amqp.annotation.x-opt-enqueuedtimeutc > 1712345678901",
            EventPosition::EnqueuedTime {
                unix_ms: 1_712_345_678_901,
                inclusive: false,
            },
        ),
        // Whitespace and case variations.
        (
            "  AMQP.Annotation.X-Opt-Offset>'5'  ",
            EventPosition::Offset {
                offset: 5,
                inclusive: false,
            },
        ),
        (
            "amqp.annotation.x-opt-sequence-number\t>=\t\"9\"",
            EventPosition::SequenceNumber {
                sequence_number: 9,
                inclusive: true,
            },
        ),
        (
            "amqp.annotation.x-opt-offset >'@LATEST'",
            EventPosition::Latest,
        ),
        (
            "amqp.annotation.x-opt-sequence-number > -1",
            EventPosition::SequenceNumber {
                sequence_number: -1,
                inclusive: false,
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_selector(text), Ok(want), "{text}");
    }
}

#[test]
fn anything_else_is_refused_with_its_reason() {
    use SelectorError as E;
    let cases: [(&str, SelectorError); 14] = [
        ("", E::NotAnAnnotation(String::new())),
        (
            "x-opt-offset > '1'",
            E::NotAnAnnotation("x-opt-offset > '1'".into()),
        ),
        (
            "amqp.annotation.x-opt-partition-key > 'a'",
            E::UnknownAnnotation("x-opt-partition-key".into()),
        ),
        (
            "amqp.annotation.x-opt-offset < '1'",
            E::UnsupportedOperator("<".into()),
        ),
        (
            "amqp.annotation.x-opt-offset = '1'",
            E::UnsupportedOperator("=".into()),
        ),
        (
            "amqp.annotation.x-opt-offset '1'",
            E::UnsupportedOperator(String::new()),
        ),
        (
            "amqp.annotation.x-opt-offset >> '1'",
            E::UnsupportedOperator(">>".into()),
        ),
        ("amqp.annotation.x-opt-offset >", E::MissingValue),
        ("amqp.annotation.x-opt-offset > '1", E::UnterminatedQuote),
        (
            "amqp.annotation.x-opt-offset > '1' AND 1=1",
            E::TrailingText("AND 1=1".into()),
        ),
        (
            "amqp.annotation.x-opt-offset > 1 2",
            E::TrailingText("2".into()),
        ),
        (
            "amqp.annotation.x-opt-offset > '-2'",
            E::BadValue {
                annotation: "x-opt-offset",
                value: "-2".into(),
            },
        ),
        (
            "amqp.annotation.x-opt-sequence-number > '@latest'",
            E::BadValue {
                annotation: "x-opt-sequence-number",
                value: "@latest".into(),
            },
        ),
        (
            "amqp.annotation.x-opt-enqueued-time > '2024-01-01T00:00:00Z'",
            E::BadValue {
                annotation: "x-opt-enqueued-time",
                value: "2024-01-01T00:00:00Z".into(),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_selector(text), Err(want), "{text}");
    }
}

fn selector_set(value: Value) -> FilterSet {
    let mut set = FilterSet::new();
    set.insert(Symbol::from("com.example:other"), Value::Bool(true));
    set.insert(Symbol::from(SELECTOR_FILTER), value);
    set
}

#[test]
fn the_filter_set_entry_is_found_by_key_or_descriptor() {
    let text = Value::String("amqp.annotation.x-opt-sequence-number > '3'".into());
    let want = Ok(EventPosition::SequenceNumber {
        sequence_number: 3,
        inclusive: false,
    });
    // Legacy form: the key, a bare string.
    assert_eq!(start_filter_of(Some(&selector_set(text.clone()))), want);
    // azure-eventhub: key and descriptor name.
    let (key, described) = selector_filter_entry(&want.clone().unwrap());
    let mut set = FilterSet::new();
    set.insert(key, described);
    assert_eq!(start_filter_of(Some(&set)), want);
    // Described by code, under another key.
    let mut set = FilterSet::new();
    set.insert(
        Symbol::from("selector"),
        Value::Described(Box::new(Described {
            descriptor: Descriptor::Code(SELECTOR_FILTER_CODE),
            value: text,
        })),
    );
    assert_eq!(start_filter_of(Some(&set)), want);
    // No selector, a null one, an empty set: the start.
    assert_eq!(start_filter_of(None), Ok(EventPosition::Start));
    assert_eq!(
        start_filter_of(Some(&FilterSet::new())),
        Ok(EventPosition::Start)
    );
    assert_eq!(
        start_filter_of(Some(&selector_set(Value::Null))),
        Ok(EventPosition::Start)
    );
    // A selector that is not a string, or does not parse.
    assert_eq!(
        start_filter_of(Some(&selector_set(Value::Long(5)))),
        Err(SelectorError::NotAString)
    );
    assert!(matches!(
        start_filter_of(Some(&selector_set(Value::String("1 = 1".into())))),
        Err(SelectorError::NotAnAnnotation(_))
    ));
}

#[test]
fn a_filter_set_survives_the_wire() {
    let (key, value) = selector_filter_entry(&EventPosition::EnqueuedTime {
        unix_ms: 1_700_000_000_000,
        inclusive: true,
    });
    let mut set = FilterSet::new();
    set.insert(key, value);
    let bytes = serde_amqp::to_vec(&set).unwrap();
    let back: FilterSet = serde_amqp::from_slice(&bytes).unwrap();
    assert_eq!(
        start_filter_of(Some(&back)),
        Ok(EventPosition::EnqueuedTime {
            unix_ms: 1_700_000_000_000,
            inclusive: true
        })
    );
}

fn any_filter() -> impl Strategy<Value = EventPosition> {
    prop_oneof![
        Just(EventPosition::Start),
        Just(EventPosition::Latest),
        (0..i64::MAX, any::<bool>())
            .prop_map(|(offset, inclusive)| EventPosition::Offset { offset, inclusive }),
        (any::<i64>(), any::<bool>()).prop_map(|(sequence_number, inclusive)| {
            EventPosition::SequenceNumber {
                sequence_number,
                inclusive,
            }
        }),
        (any::<i64>(), any::<bool>())
            .prop_map(|(unix_ms, inclusive)| EventPosition::EnqueuedTime { unix_ms, inclusive }),
    ]
}

proptest! {
    #[test]
    fn format_then_parse_is_identity(filter in any_filter()) {
        prop_assert_eq!(parse_selector(&selector_text(&filter)), Ok(filter));
    }

    #[test]
    fn spacing_and_quoting_do_not_matter(
        filter in any_filter(),
        before in "[ \t]{0,3}",
        after in "[ \t]{0,3}",
        quote in prop_oneof![Just(""), Just("'"), Just("\"")],
    ) {
        let canonical = selector_text(&filter);
        let (head, value) = canonical.rsplit_once(' ').unwrap();
        let (name, op) = head.rsplit_once(' ').unwrap();
        let value = value.trim_matches('\'');
        let text = format!("{name}{before}{op}{after}{quote}{value}{quote}");
        prop_assert_eq!(parse_selector(&text), Ok(filter));
    }

    #[test]
    fn never_panics(text in "\\PC{0,60}") {
        let _ = parse_selector(&text);
        let _ = parse_selector(&format!("amqp.annotation.x-opt-offset {text}"));
    }
}
