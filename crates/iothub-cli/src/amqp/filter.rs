//! Where a partition receiver starts: the source's selector filter (docs/amqp.md "Receiving
//! events"), keyed and described by `apache.org:selector-filter:string`, in the forms the
//! Event Hubs SDKs send.

use anyhow::{Context, bail};
use fe2o3_amqp::types::messaging::Source;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

/// The filter's key and descriptor.
pub(crate) const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";

/// The start position of `hub monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Only events enqueued from now on (`--since`/`--enqueued-time` absent, as `az iot hub
    /// monitor-events`).
    Latest,
    /// After this offset (the emulator's event-log position; `-1`: everything retained).
    AfterOffset(i64),
    /// Enqueued after this instant, Unix milliseconds.
    EnqueuedAfter(i64),
}

impl Start {
    /// From `--since SEQ` (0 or less: everything retained) and `--enqueued-time`.
    pub(crate) fn from_flags(
        since: Option<i64>,
        enqueued_time: Option<&str>,
    ) -> anyhow::Result<Self> {
        match (since, enqueued_time) {
            (Some(_), Some(_)) => bail!("--since and --enqueued-time cannot be combined"),
            (Some(seq), None) => Ok(Self::AfterOffset(if seq <= 0 { -1 } else { seq })),
            (None, Some(text)) => Ok(Self::EnqueuedAfter(parse_enqueued_time(text)?)),
            (None, None) => Ok(Self::Latest),
        }
    }

    /// The selector filter text.
    pub(crate) fn selector(self) -> String {
        match self {
            Self::Latest => "amqp.annotation.x-opt-offset > '@latest'".to_owned(),
            Self::AfterOffset(offset) => format!("amqp.annotation.x-opt-offset > '{offset}'"),
            Self::EnqueuedAfter(ms) => format!("amqp.annotation.x-opt-enqueued-time > '{ms}'"),
        }
    }

    /// The source of a receiver on `address` starting here.
    pub(crate) fn source(self, address: &str) -> Source {
        let value = Described {
            descriptor: Descriptor::Name(Symbol::from(SELECTOR_FILTER)),
            value: Value::String(self.selector()),
        };
        Source::builder()
            .address(address.to_owned())
            .add_to_filter(Symbol::from(SELECTOR_FILTER), value)
            .build()
    }
}

/// `--enqueued-time`: Unix milliseconds (as `az iot hub monitor-events --enqueued-time`) or an
/// ISO 8601 UTC time such as `2026-12-07T10:00:00Z`.
pub(crate) fn parse_enqueued_time(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        if ms < 0 {
            bail!("--enqueued-time must not be negative");
        }
        return Ok(ms);
    }
    let t = iothub_emulator::timestamp::parse_iso8601(text).with_context(|| {
        format!("--enqueued-time {text:?} is neither Unix milliseconds nor an ISO 8601 UTC time")
    })?;
    Ok(iothub_emulator::timestamp::unix_millis(t))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn selectors_take_the_event_hubs_forms() {
        assert_eq!(
            Start::Latest.selector(),
            "amqp.annotation.x-opt-offset > '@latest'"
        );
        assert_eq!(
            Start::AfterOffset(41).selector(),
            "amqp.annotation.x-opt-offset > '41'"
        );
        assert_eq!(
            Start::EnqueuedAfter(1_700_000_000_000).selector(),
            "amqp.annotation.x-opt-enqueued-time > '1700000000000'"
        );
    }

    #[test]
    fn flags_choose_the_start() {
        assert_eq!(Start::from_flags(None, None).unwrap(), Start::Latest);
        assert_eq!(
            Start::from_flags(Some(0), None).unwrap(),
            Start::AfterOffset(-1)
        );
        assert_eq!(
            Start::from_flags(Some(7), None).unwrap(),
            Start::AfterOffset(7)
        );
        assert_eq!(
            Start::from_flags(None, Some("1970-01-01T00:00:01Z")).unwrap(),
            Start::EnqueuedAfter(1000)
        );
        assert_eq!(
            Start::from_flags(None, Some("1234")).unwrap(),
            Start::EnqueuedAfter(1234)
        );
        assert!(Start::from_flags(Some(1), Some("1")).is_err());
        assert!(Start::from_flags(None, Some("yesterday")).is_err());
        assert!(Start::from_flags(None, Some("-5")).is_err());
    }

    #[test]
    fn the_source_carries_the_described_filter() {
        let source =
            Start::AfterOffset(3).source("amqps://h:1/hub/ConsumerGroups/$Default/Partitions/0");
        let filter = source.filter.unwrap();
        let Some(Value::Described(d)) = filter.get(&Symbol::from(SELECTOR_FILTER)) else {
            panic!("no described filter: {filter:?}");
        };
        assert_eq!(
            d.descriptor,
            Descriptor::Name(Symbol::from(SELECTOR_FILTER))
        );
        assert_eq!(
            d.value,
            Value::String("amqp.annotation.x-opt-offset > '3'".into())
        );
    }

    proptest! {
        #[test]
        fn enqueued_time_parsing_never_panics(text in ".{0,40}") {
            let _ = parse_enqueued_time(&text);
        }
    }
}
