//! The hub's answer to a receiver on `messages/events`: a closing DETACH with
//! `amqp:link:redirect` whose `info` map says where the Event Hub-compatible endpoint is
//! (docs/amqp.md "Redirect"): `hostname`, `port`, `address` =
//! `amqps://{eh-host}:{port}/{eventhub}/…`.

use fe2o3_amqp::types::definitions::{self, ErrorCondition, Fields, LinkError};
use fe2o3_amqp::types::primitives::{Symbol, Value};

/// Where events are read from, as a redirect names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    /// The Event Hub host (SNI, OPEN hostname, token audience).
    pub(crate) hostname: String,
    /// Its AMQPS port.
    pub(crate) port: u16,
    /// The full address the redirect names.
    pub(crate) address: String,
    /// The Event Hub name: the first path segment of `address`.
    pub(crate) event_hub: String,
}

/// Why a detach is not a usable redirect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RedirectError {
    /// The error is some other refusal: its description says why.
    #[error("the hub refused the events link: {condition}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    NotARedirect {
        /// The AMQP error condition.
        condition: String,
        /// The hub's description.
        description: Option<String>,
    },
    /// A redirect without the named field, or with one of the wrong type.
    #[error("the hub's redirect has no usable `{0}`")]
    Missing(&'static str),
    /// The address names no Event Hub.
    #[error("the hub's redirect address `{0}` names no Event Hub")]
    NoEventHub(String),
}

/// Reads a redirect out of the error the hub detached the link with.
pub(crate) fn parse_redirect(error: &definitions::Error) -> Result<Redirect, RedirectError> {
    if error.condition != ErrorCondition::LinkError(LinkError::Redirect) {
        return Err(RedirectError::NotARedirect {
            condition: condition_name(&error.condition),
            description: error.description.clone(),
        });
    }
    let empty = Fields::new();
    let info = error.info.as_deref().unwrap_or(&empty);
    let text = |key: &'static str| match info.get(&Symbol::from(key)) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Symbol(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let address = text("address").ok_or(RedirectError::Missing("address"))?;
    let hostname = text("hostname")
        .or_else(|| host_of(&address).map(str::to_owned))
        .ok_or(RedirectError::Missing("hostname"))?;
    let port = match info.get(&Symbol::from("port")) {
        None | Some(Value::Null) => super::endpoint::AMQPS_PORT,
        Some(v) => port_of(v).ok_or(RedirectError::Missing("port"))?,
    };
    let event_hub =
        event_hub_of(&address).ok_or_else(|| RedirectError::NoEventHub(address.clone()))?;
    Ok(Redirect {
        hostname,
        port,
        address,
        event_hub,
    })
}

/// The text of an error condition, e.g. `amqp:unauthorized-access`.
pub(crate) fn condition_name(condition: &ErrorCondition) -> String {
    let symbol = match condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e),
        ErrorCondition::ConnectionError(e) => Symbol::from(e),
        ErrorCondition::SessionError(e) => Symbol::from(e),
        ErrorCondition::LinkError(e) => Symbol::from(e),
        ErrorCondition::Custom(s) => s.clone(),
        // Only with fe2o3's `transaction` feature.
        #[allow(unreachable_patterns)]
        other => return format!("{other:?}"),
    };
    symbol.as_str().to_owned()
}

fn port_of(v: &Value) -> Option<u16> {
    let n: i64 = match v {
        Value::Ushort(p) => i64::from(*p),
        Value::Uint(p) => i64::from(*p),
        Value::Ulong(p) => i64::try_from(*p).ok()?,
        Value::Short(p) => i64::from(*p),
        Value::Int(p) => i64::from(*p),
        Value::Long(p) => *p,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// `amqps://host:port/path` → the part after the scheme, before the first `/`, without port.
fn host_of(address: &str) -> Option<&str> {
    let rest = address.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

/// The first path segment of the address: the Event Hub name (the .NET SDK reads the same
/// segment, `:\d+/(?<eventHubName>.*)/$management`).
pub(crate) fn event_hub_of(address: &str) -> Option<String> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => address.trim_start_matches('/'),
    };
    let name = path.split('/').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::definitions::AmqpError;
    use proptest::prelude::*;

    use super::*;

    fn redirect_error(info: &[(&str, Value)]) -> definitions::Error {
        let mut fields = Fields::new();
        for (k, v) in info {
            fields.insert(Symbol::from(*k), v.clone());
        }
        definitions::Error::new(
            LinkError::Redirect,
            Some("go there".to_owned()),
            Some(fields),
        )
    }

    #[test]
    fn reads_host_port_address_and_event_hub() {
        let e = redirect_error(&[
            ("hostname", Value::String("ihsuprod.servicebus.windows.net".into())),
            ("network-host", Value::String("ihsuprod.servicebus.windows.net".into())),
            ("port", Value::Int(5671)),
            (
                "address",
                Value::String("amqps://ihsuprod.servicebus.windows.net:5671/iothub-ehub-h-123/ConsumerGroups/$Default/Partitions/0".into()),
            ),
        ]);
        let r = parse_redirect(&e).unwrap();
        assert_eq!(r.hostname, "ihsuprod.servicebus.windows.net");
        assert_eq!(r.port, 5671);
        assert_eq!(r.event_hub, "iothub-ehub-h-123");
    }

    #[test]
    fn falls_back_to_the_address_host_and_the_default_port() {
        let e = redirect_error(&[(
            "address",
            Value::String("amqps://127.0.0.1:41234/hub/$management".into()),
        )]);
        let r = parse_redirect(&e).unwrap();
        assert_eq!(
            (r.hostname.as_str(), r.port, r.event_hub.as_str()),
            ("127.0.0.1", 5671, "hub")
        );
    }

    #[test]
    fn other_refusals_and_broken_redirects_are_errors() {
        let e = definitions::Error::new(
            AmqpError::UnauthorizedAccess,
            Some("bad key".to_owned()),
            None,
        );
        let err = parse_redirect(&e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the hub refused the events link: amqp:unauthorized-access: bad key"
        );
        assert_eq!(
            parse_redirect(&redirect_error(&[])),
            Err(RedirectError::Missing("address"))
        );
        let e = redirect_error(&[("address", Value::String("amqps://h:1/".into()))]);
        assert!(matches!(
            parse_redirect(&e),
            Err(RedirectError::NoEventHub(_))
        ));
        let e = redirect_error(&[
            ("address", Value::String("amqps://h:1/x".into())),
            ("port", Value::Long(70000)),
        ]);
        assert_eq!(parse_redirect(&e), Err(RedirectError::Missing("port")));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_info(address in ".{0,80}", host in proptest::option::of(".{0,20}"), port in any::<i64>()) {
            let mut info = vec![("address", Value::String(address)), ("port", Value::Long(port))];
            if let Some(h) = host { info.push(("hostname", Value::String(h))); }
            let _ = parse_redirect(&redirect_error(&info));
        }

        #[test]
        fn the_event_hub_is_the_first_path_segment(name in "[a-zA-Z0-9._-]{1,30}", port in 1u16.., tail in "(/[a-zA-Z0-9$]{1,10}){0,4}") {
            let address = format!("amqps://h.example:{port}/{name}{tail}");
            prop_assert_eq!(event_hub_of(&address), Some(name));
        }
    }
}
