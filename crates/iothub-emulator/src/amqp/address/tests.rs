use proptest::prelude::*;

use super::*;

fn partition(eh: &str, group: &str, p: &str) -> LinkAddress {
    LinkAddress::EventHubPartition {
        event_hub: eh.into(),
        consumer_group: group.into(),
        partition: p.into(),
    }
}

#[test]
fn every_form_of_every_node_parses() {
    let cases = [
        ("$cbs", LinkAddress::Cbs),
        ("/$cbs", LinkAddress::Cbs),
        ("amqps://h.azure-devices.net/$cbs", LinkAddress::Cbs),
        ("$management", LinkAddress::Management),
        ("amqps://eh:5671/hub1/$management", LinkAddress::Management),
        ("hub1/$management", LinkAddress::Management),
        (
            "amqps://h.azure-devices.net/messages/events/$management",
            LinkAddress::HubEvents {
                tail: "/$management".into(),
            },
        ),
        (
            "amqps://h:5671/messages/events/ConsumerGroups/$Default/Partitions/0",
            LinkAddress::HubEvents {
                tail: "/ConsumerGroups/$Default/Partitions/0".into(),
            },
        ),
        (
            "messages/events",
            LinkAddress::HubEvents { tail: "".into() },
        ),
        (
            "/Messages/Events/",
            LinkAddress::HubEvents { tail: "".into() },
        ),
        ("/messages/devicebound", LinkAddress::DeviceBound),
        (
            "amqps://h.azure-devices.net/messages/devicebound",
            LinkAddress::DeviceBound,
        ),
        ("AMQP://h/messages/deviceBound", LinkAddress::DeviceBound),
        ("/messages/servicebound/feedback", LinkAddress::Feedback),
        ("messages/serviceBound/feedback", LinkAddress::Feedback),
        (
            "sb://h/messages/serviceBound/filenotifications",
            LinkAddress::FileNotifications,
        ),
        (
            "amqps://eh.servicebus.windows.net/hub1/ConsumerGroups/$Default/Partitions/0",
            partition("hub1", "$Default", "0"),
        ),
        (
            "hub1/consumergroups/g1/partitions/12",
            partition("hub1", "g1", "12"),
        ),
        (
            "/Hub-1/ConsumerGroups/$default/Partitions/3/",
            partition("Hub-1", "$default", "3"),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_link_address(text), Ok(want), "{text}");
    }
}

#[test]
fn names_no_node_and_malformed_are_refused_precisely() {
    assert_eq!(parse_link_address(""), Err(AddressError::Empty));
    assert_eq!(parse_link_address("/"), Err(AddressError::Empty));
    assert_eq!(parse_link_address("amqps://h"), Err(AddressError::Empty));
    assert_eq!(parse_link_address("amqps://h/"), Err(AddressError::Empty));
    assert!(matches!(
        parse_link_address("amqps:///$cbs"),
        Err(AddressError::MalformedUri(_))
    ));
    assert!(matches!(
        parse_link_address("http://h/$cbs"),
        Err(AddressError::MalformedUri(_))
    ));
    assert!(matches!(
        parse_link_address("hub1//g/Partitions/0"),
        Err(AddressError::UnknownNode(_))
    ));
    assert!(matches!(
        parse_link_address("hub1/ConsumerGroups//Partitions/0"),
        Err(AddressError::EmptySegment(_))
    ));
    assert!(matches!(
        parse_link_address("/$management/x"),
        Err(AddressError::UnknownNode(_))
    ));
    for unknown in [
        "messages",
        "messages/devicebound/x",
        "messages/servicebound",
        "messages/servicebound/other",
        "devices/d1/messages/events",
        "hub1/ConsumerGroups/g/Partitions",
        "hub1/ConsumerGroups/g/Partitions/0/x",
    ] {
        assert_eq!(
            parse_link_address(unknown),
            Err(AddressError::UnknownNode(unknown.to_owned())),
            "{unknown}"
        );
    }
}

/// The .NET client's `:\d+\/(?<eventHubName>.*)\/\$management` (greedy), by hand.
fn dotnet_event_hub_name(address: &str) -> Option<&str> {
    let (_, after_colon) = address.rsplit_once("amqps://")?.1.split_once(':')?;
    let digits = after_colon.find('/')?;
    if digits == 0 || !after_colon[..digits].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    after_colon[digits + 1..].strip_suffix("/$management")
}

/// The Python sample's `:\d+\/.*/ConsumerGroups` matches.
fn python_sample_matches(address: &str) -> bool {
    let Some((_, after_colon)) = address
        .strip_prefix("amqps://")
        .and_then(|a| a.split_once(':'))
    else {
        return false;
    };
    let Some(slash) = after_colon.find('/') else {
        return false;
    };
    slash > 0
        && after_colon[..slash].bytes().all(|b| b.is_ascii_digit())
        && after_colon[slash..].contains("/ConsumerGroups")
}

#[test]
fn the_redirect_address_reads_back_in_the_three_client_parsers() {
    let management = redirect_address("eh.localhost", 5671, "iothub-ehub-h1", "/$management");
    assert_eq!(
        management,
        "amqps://eh.localhost:5671/iothub-ehub-h1/$management"
    );
    // .NET (Azure IoT Explorer, the .NET samples).
    assert_eq!(dotnet_event_hub_name(&management), Some("iothub-ehub-h1"));
    // az CLI: splits on `/`, the event hub name is the fourth part.
    assert_eq!(management.split('/').nth(3), Some("iothub-ehub-h1"));
    // The Python sample.
    let consumer = redirect_address(
        "eh.localhost",
        15671,
        "iothub-ehub-h1",
        "/ConsumerGroups/$Default/Partitions/0",
    );
    assert!(python_sample_matches(&consumer), "{consumer}");
    assert_eq!(consumer.split('/').nth(3), Some("iothub-ehub-h1"));
    // What it points to parses as the Event Hub side of the same request.
    assert_eq!(parse_link_address(&management), Ok(LinkAddress::Management));
    assert_eq!(
        parse_link_address(&consumer),
        Ok(partition("iothub-ehub-h1", "$Default", "0"))
    );
}

#[test]
fn display_is_the_canonical_bare_path_and_parses_back() {
    for a in [
        LinkAddress::Cbs,
        LinkAddress::Management,
        partition("eh", "$Default", "1"),
        LinkAddress::HubEvents {
            tail: "/$management".into(),
        },
        LinkAddress::DeviceBound,
        LinkAddress::Feedback,
        LinkAddress::FileNotifications,
    ] {
        assert_eq!(parse_link_address(&a.to_string()), Ok(a.clone()), "{a}");
    }
}

/// A user-chosen name segment: no `/`, not empty.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9$._-]{1,20}"
}

/// `word` with each ASCII letter's case chosen at random.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("/".to_owned()),
        "(amqps|AMQP|sb)://[a-z0-9.-]{1,20}(:[0-9]{1,5})?/",
    ]
}

proptest! {
    #[test]
    fn partition_paths_parse_in_every_form(
        prefix in prefix(),
        eh in name(),
        group in name(),
        p in name(),
        cg in any_case("consumergroups"),
        ps in any_case("partitions"),
    ) {
        prop_assume!(!eh.eq_ignore_ascii_case("messages"));
        let address = format!("{prefix}{eh}/{cg}/{group}/{ps}/{p}");
        prop_assert_eq!(parse_link_address(&address), Ok(partition(&eh, &group, &p)));
    }

    #[test]
    fn hub_events_keep_their_tail(prefix in prefix(), tail in "(/[A-Za-z0-9$]{1,10}){0,4}") {
        let address = format!("{prefix}messages/events{tail}");
        prop_assert_eq!(parse_link_address(&address), Ok(LinkAddress::HubEvents { tail }));
    }

    #[test]
    fn never_panics(address in "\\PC{0,80}") {
        let _ = parse_link_address(&address);
    }
}
