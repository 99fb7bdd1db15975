//! Checks that refuse a malformed PUBLISH instead of storing an altered copy
//! (the emulator README, "Behaviour"): a topic may not contain U+0000 (MQTT 3.1.1
//! §4.7.3), and every key and value of a telemetry property bag must be well-formed
//! percent-encoding of UTF-8 text. Each returns the reason the connection closes.

use iothub_proto::percent::Decoded;
use iothub_proto::properties::PropertyBag;

/// Why `topic` is refused, if it is.
pub(super) fn topic_problem(topic: &str) -> Option<&'static str> {
    topic.contains('\0').then_some("topic contains U+0000")
}

/// Why the telemetry property bag `raw` (the topic's tail) is refused, if it is.
pub(super) fn property_bag_problem(raw: &str) -> Option<&'static str> {
    let bad = |d: Decoded<'_>| !d.is_well_formed() || d.decode().is_err();
    PropertyBag::parse(raw)
        .iter()
        .any(|(key, value)| bad(key) || value.is_some_and(bad))
        .then_some("malformed property bag (percent-encoding or UTF-8)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_a_topic_is_refused() {
        assert!(topic_problem("devices/d1/messages/events/a=\0").is_some());
        assert!(topic_problem("devices/d1/messages/events/").is_none());
    }

    #[test]
    fn malformed_bags_are_refused_and_good_ones_pass() {
        for good in [
            "",
            "a=b",
            "%24.ct=application%2Fjson&k=v%C3%A9",
            "flag",
            "a=b&",
        ] {
            assert_eq!(property_bag_problem(good), None, "{good}");
        }
        for bad in ["a=%ff", "%ff=v", "a=100%", "a=%zz&b=c", "k=%C3", "%=x"] {
            assert!(property_bag_problem(bad).is_some(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn encoded_pairs_always_pass(pairs in proptest::collection::vec(("\\PC+", "\\PC*"), 0..4)) {
            let raw: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", iothub_proto::percent::encode(k), iothub_proto::percent::encode(v)))
                .collect();
            proptest::prop_assert_eq!(property_bag_problem(&raw.join("&")), None);
        }

        #[test]
        fn never_panics(raw in "\\PC*") {
            let _ = property_bag_problem(&raw);
        }
    }
}
