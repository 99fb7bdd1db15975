//! What a link's source or target address names (docs/amqp.md "Addresses").
//!
//! Clients write addresses in several forms for the same node: the full URI
//! (`amqps://{host}[:port]/{path}`, also `amqp://` and `sb://`) or the bare path, with or
//! without a leading `/`. The fixed segments are matched case-insensitively, because the
//! documentation and the SDKs disagree on case (`messages/serviceBound/feedback` next to
//! `messages/servicebound/feedback`); names chosen by the user (event hub, consumer group,
//! partition) keep their spelling.

use std::fmt;

/// The node a link attaches to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkAddress {
    /// `$cbs`: the claims-based-security request/reply node (token put).
    Cbs,
    /// `$management` (also `{eventhub}/$management`): the Event Hubs metadata node.
    Management,
    /// `{eventhub}/ConsumerGroups/{group}/Partitions/{partition}`: a partition of the
    /// Event Hub-compatible endpoint.
    EventHubPartition {
        /// The event hub's name, as written.
        event_hub: String,
        /// The consumer group, as written (`$Default` always exists).
        consumer_group: String,
        /// The partition id, as written.
        partition: String,
    },
    /// `messages/events[/...]` on the IoT Hub host: answered with a redirect to the Event
    /// Hub-compatible endpoint (docs/amqp.md "Redirect").
    HubEvents {
        /// What follows `messages/events`, with its leading `/` (empty when nothing follows),
        /// e.g. `/$management` or `/ConsumerGroups/$Default/Partitions/0`.
        tail: String,
    },
    /// `messages/devicebound`: the service sends cloud-to-device messages here.
    DeviceBound,
    /// `messages/servicebound/feedback`: C2D delivery feedback for the service.
    Feedback,
    /// `messages/servicebound/filenotifications`: file upload notifications.
    FileNotifications,
}

/// Why an address names no node of this hub.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address is empty (or only a scheme and host).
    #[error("the address is empty")]
    Empty,
    /// A URI without a host (`amqps:///x`), or with a scheme other than `amqps`, `amqp`, `sb`.
    #[error("malformed address URI: {0}")]
    MalformedUri(String),
    /// An empty path segment (`a//b`) in an Event Hub partition path.
    #[error("empty segment in address path {0}")]
    EmptySegment(String),
    /// The path names no node this hub serves.
    #[error("no node at address path {0}")]
    UnknownNode(String),
}

/// Schemes accepted in front of an address (compared case-insensitively).
const SCHEMES: [&str; 3] = ["amqps", "amqp", "sb"];

/// Parses a link address into the node it names.
///
/// # Errors
/// [`AddressError`] when the address is empty, malformed or names no node.
///
/// # Example
/// ```
/// use iothub_emulator::amqp::address::{parse_link_address, LinkAddress};
/// assert_eq!(parse_link_address("$cbs"), Ok(LinkAddress::Cbs));
/// assert_eq!(
///     parse_link_address("amqps://h.azure-devices.net/messages/serviceBound/feedback"),
///     Ok(LinkAddress::Feedback)
/// );
/// assert_eq!(
///     parse_link_address("amqps://eh.servicebus.windows.net:5671/hub1/ConsumerGroups/$Default/Partitions/3"),
///     Ok(LinkAddress::EventHubPartition {
///         event_hub: "hub1".into(),
///         consumer_group: "$Default".into(),
///         partition: "3".into(),
///     })
/// );
/// assert_eq!(
///     parse_link_address("/messages/events/$management"),
///     Ok(LinkAddress::HubEvents { tail: "/$management".into() })
/// );
/// ```
pub fn parse_link_address(address: &str) -> Result<LinkAddress, AddressError> {
    let path = path_of(address)?;
    // A leading `/` and trailing ones are optional (some clients add either).
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Err(AddressError::Empty);
    }
    let segments: Vec<&str> = path.split('/').collect();
    let is = |i: usize, fixed: &str| {
        segments
            .get(i)
            .is_some_and(|s| s.eq_ignore_ascii_case(fixed))
    };
    let unknown = || AddressError::UnknownNode(path.to_owned());
    match segments.len() {
        1 if is(0, "$cbs") => return Ok(LinkAddress::Cbs),
        1 if is(0, "$management") => return Ok(LinkAddress::Management),
        // `{eventhub}/$management`: where a client that followed the redirect of
        // `messages/events/$management` attaches.
        2 if is(1, "$management") && !is(0, "messages") => {
            if segments[0].is_empty() {
                return Err(AddressError::EmptySegment(path.to_owned()));
            }
            return Ok(LinkAddress::Management);
        }
        _ => {}
    }
    if is(0, "messages") {
        return match segments.len() {
            _ if is(1, "events") => {
                // The tail is the rest of the path as written, after `messages/events`.
                let head = "messages/events".len();
                Ok(LinkAddress::HubEvents {
                    tail: path.get(head..).unwrap_or_default().to_owned(),
                })
            }
            2 if is(1, "devicebound") => Ok(LinkAddress::DeviceBound),
            3 if is(1, "servicebound") && is(2, "feedback") => Ok(LinkAddress::Feedback),
            3 if is(1, "servicebound") && is(2, "filenotifications") => {
                Ok(LinkAddress::FileNotifications)
            }
            _ => Err(unknown()),
        };
    }
    if segments.len() == 5 && is(1, "ConsumerGroups") && is(3, "Partitions") {
        if segments.iter().any(|s| s.is_empty()) {
            return Err(AddressError::EmptySegment(path.to_owned()));
        }
        return Ok(LinkAddress::EventHubPartition {
            event_hub: segments[0].to_owned(),
            consumer_group: segments[2].to_owned(),
            partition: segments[4].to_owned(),
        });
    }
    Err(unknown())
}

/// The path part of an address: after `scheme://host[:port]` in the URI form, else all of it.
///
/// The URI form is recognised by a scheme (`[A-Za-z][A-Za-z0-9+.-]*`) followed by `://`
/// before any `/`; only the schemes clients use are accepted.
fn path_of(address: &str) -> Result<&str, AddressError> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return Ok(address);
    };
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    if !is_scheme {
        return Ok(address);
    }
    if !SCHEMES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(scheme))
    {
        return Err(AddressError::MalformedUri(address.to_owned()));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(AddressError::MalformedUri(address.to_owned()));
    }
    Ok(path)
}

/// The address a redirect of `messages/events{tail}` points to:
/// `amqps://{eh_host}:{port}/{event_hub}{tail}` (docs/amqp.md "Redirect").
///
/// The port is always written, because the clients' parsers look for `:{digits}/` before
/// the event hub name.
///
/// # Example
/// ```
/// use iothub_emulator::amqp::address::redirect_address;
/// assert_eq!(
///     redirect_address("localhost", 5671, "hub1", "/$management"),
///     "amqps://localhost:5671/hub1/$management"
/// );
/// ```
#[must_use]
pub fn redirect_address(eh_host: &str, port: u16, event_hub: &str, tail: &str) -> String {
    format!("amqps://{eh_host}:{port}/{event_hub}{tail}")
}

impl fmt::Display for LinkAddress {
    /// The canonical bare path of the node (what a log line names).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cbs => f.write_str("$cbs"),
            Self::Management => f.write_str("$management"),
            Self::EventHubPartition {
                event_hub,
                consumer_group,
                partition,
            } => write!(
                f,
                "{event_hub}/ConsumerGroups/{consumer_group}/Partitions/{partition}"
            ),
            Self::HubEvents { tail } => write!(f, "messages/events{tail}"),
            Self::DeviceBound => f.write_str("messages/devicebound"),
            Self::Feedback => f.write_str("messages/servicebound/feedback"),
            Self::FileNotifications => f.write_str("messages/servicebound/filenotifications"),
        }
    }
}

#[cfg(test)]
mod tests;
