//! The cloud-to-device message `iothub hub c2d` sends on `/messages/devicebound`
//! (docs/amqp.md "Cloud-to-device"): `to` = `/devices/{id}/messages/devicebound`, a
//! `message-id`, the `iothub-ack` application property, the user's properties, the text as one
//! data section.

use anyhow::{Context, bail};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Data, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Timestamp};

/// The node C2D messages are sent to.
pub(crate) const DEVICEBOUND: &str = "/messages/devicebound";

/// The feedback a C2D message asks for (`iothub-ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    None,
    Positive,
    Negative,
    Full,
}

impl Ack {
    /// Parses `--ack`.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "none" => Self::None,
            "positive" => Self::Positive,
            "negative" => Self::Negative,
            "full" => Self::Full,
            _ => bail!("--ack must be none, positive, negative or full, not {text:?}"),
        })
    }

    /// The property value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Positive => "positive",
            Self::Negative => "negative",
            Self::Full => "full",
        }
    }
}

/// What the user asked to send.
#[derive(Debug, Clone, Default)]
pub(crate) struct C2dRequest {
    pub(crate) device: String,
    pub(crate) body: Vec<u8>,
    pub(crate) message_id: String,
    pub(crate) correlation_id: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) ack: Option<Ack>,
    /// Time to live; the message expires this many seconds after `now_ms`.
    pub(crate) ttl_secs: Option<u64>,
    /// `key=value` pairs, in order.
    pub(crate) properties: Vec<(String, String)>,
}

/// Splits `key=value` property flags.
pub(crate) fn parse_properties(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("property {p:?} is not key=value"))?;
            if k.is_empty() {
                bail!("property {p:?} has an empty key");
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The `to` address of a device's C2D queue, the id percent-encoded as on the REST API
/// (docs/amqp.md "Cloud-to-device").
pub(crate) fn to_address(device: &str) -> String {
    format!(
        "/devices/{}/messages/devicebound",
        iothub_proto::percent::encode(device)
    )
}

/// Builds the message; `now_ms` anchors the time to live.
pub(crate) fn c2d_message(req: &C2dRequest, now_ms: i64) -> anyhow::Result<Message<Data>> {
    let mut properties = Properties::builder()
        .to(to_address(&req.device))
        .message_id(MessageId::String(req.message_id.clone()))
        .build();
    properties.correlation_id = req.correlation_id.clone().map(MessageId::String);
    properties.content_type = req.content_type.clone().map(Symbol::from);
    properties.content_encoding = req.content_encoding.clone().map(Symbol::from);
    if let Some(ttl) = req.ttl_secs {
        let ttl_ms = i64::try_from(ttl.saturating_mul(1000)).context("--ttl is too large")?;
        let expiry = now_ms.checked_add(ttl_ms).context("--ttl is too large")?;
        properties.absolute_expiry_time = Some(Timestamp::from_milliseconds(expiry));
    }
    let mut application = ApplicationProperties::builder();
    for (k, v) in &req.properties {
        application = application.insert(k.clone(), v.clone());
    }
    if let Some(ack) = req.ack {
        application = application.insert("iothub-ack", ack.as_str());
    }
    Ok(Message::builder()
        .properties(properties)
        .application_properties(application.build())
        .data(Binary::from(req.body.clone()))
        .build())
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::primitives::SimpleValue;
    use proptest::prelude::*;

    use super::*;

    fn request() -> C2dRequest {
        C2dRequest {
            device: "dev1".into(),
            body: b"hello".to_vec(),
            message_id: "m1".into(),
            correlation_id: Some("c1".into()),
            content_type: Some("text/plain".into()),
            content_encoding: Some("utf-8".into()),
            ack: Some(Ack::Full),
            ttl_secs: Some(60),
            properties: vec![("color".into(), "red".into())],
        }
    }

    #[test]
    fn builds_the_devicebound_message() {
        let m = c2d_message(&request(), 1_000).unwrap();
        let p = m.properties.unwrap();
        assert_eq!(p.to.as_deref(), Some("/devices/dev1/messages/devicebound"));
        assert_eq!(p.message_id, Some(MessageId::String("m1".into())));
        assert_eq!(p.correlation_id, Some(MessageId::String("c1".into())));
        assert_eq!(p.content_type, Some(Symbol::from("text/plain")));
        assert_eq!(p.content_encoding, Some(Symbol::from("utf-8")));
        assert_eq!(
            p.absolute_expiry_time,
            Some(Timestamp::from_milliseconds(61_000))
        );
        let a = m.application_properties.unwrap().0;
        assert_eq!(a.get("color"), Some(&SimpleValue::String("red".into())));
        assert_eq!(
            a.get("iothub-ack"),
            Some(&SimpleValue::String("full".into()))
        );
        assert_eq!(&m.body.0[..], b"hello");
    }

    #[test]
    fn minimal_messages_carry_no_optional_fields() {
        let req = C2dRequest {
            device: "d".into(),
            message_id: "x".into(),
            ..C2dRequest::default()
        };
        let m = c2d_message(&req, 0).unwrap();
        let p = m.properties.unwrap();
        assert!(p.correlation_id.is_none() && p.absolute_expiry_time.is_none());
        assert!(m.application_properties.unwrap().0.is_empty());
        assert!(
            c2d_message(
                &C2dRequest {
                    ttl_secs: Some(u64::MAX),
                    ..req
                },
                0
            )
            .is_err()
        );
    }

    #[test]
    fn device_ids_are_percent_encoded_in_to() {
        assert_eq!(
            to_address("a b/c"),
            "/devices/a%20b%2Fc/messages/devicebound"
        );
    }

    #[test]
    fn acks_and_properties_parse() {
        assert_eq!(Ack::parse("FULL").unwrap(), Ack::Full);
        assert!(Ack::parse("all").is_err());
        assert_eq!(
            parse_properties(&["a=b=c".into()]).unwrap(),
            [("a".to_owned(), "b=c".to_owned())]
        );
        assert!(parse_properties(&["novalue".into()]).is_err());
        assert!(parse_properties(&["=v".into()]).is_err());
    }

    proptest! {
        #[test]
        fn any_device_and_properties_build(device in ".{1,40}", k in "[a-z]{1,10}", v in ".{0,20}", body in proptest::collection::vec(any::<u8>(), 0..100)) {
            let req = C2dRequest { device: device.clone(), body, message_id: "m".into(), properties: vec![(k, v)], ..C2dRequest::default() };
            let m = c2d_message(&req, 0).unwrap();
            prop_assert_eq!(m.properties.unwrap().to, Some(to_address(&device)));
        }
    }
}
