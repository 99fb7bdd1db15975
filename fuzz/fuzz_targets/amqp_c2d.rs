//! Service C2D message mapping (iothub-emulator `amqp::c2d_message`): arbitrary `to`
//! strings, ids, application properties and bodies never panic, and an accepted message is
//! within the size limit and names a non-empty device.
#![no_main]

use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Batch, Body, Data, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Timestamp, Value};
use iothub_emulator::amqp::c2d_message::c2d_from_message;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn id(u: &mut Unstructured<'_>) -> Result<Option<MessageId>> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => None,
        1 => Some(MessageId::Ulong(u.arbitrary()?)),
        2 => Some(MessageId::Uuid(u.arbitrary::<[u8; 16]>()?.into())),
        3 => Some(MessageId::Binary(Binary::from(u.arbitrary::<Vec<u8>>()?))),
        _ => Some(MessageId::String(u.arbitrary()?)),
    })
}

fn simple(u: &mut Unstructured<'_>) -> Result<SimpleValue> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => SimpleValue::Null,
        1 => SimpleValue::Bool(u.arbitrary()?),
        2 => SimpleValue::Int(u.arbitrary()?),
        3 => SimpleValue::Ulong(u.arbitrary()?),
        4 => SimpleValue::Timestamp(Timestamp::from_milliseconds(u.arbitrary()?)),
        5 => SimpleValue::Binary(u.arbitrary::<Vec<u8>>()?.into()),
        6 => SimpleValue::Symbol(Symbol::from(u.arbitrary::<String>()?)),
        _ => SimpleValue::String(u.arbitrary()?),
    })
}

fn message(u: &mut Unstructured<'_>) -> Result<Message<Body<Value>>> {
    let to: Option<String> = if u.arbitrary()? {
        Some(u.arbitrary()?)
    } else {
        // Mostly well-formed addresses with arbitrary ids, to reach the rest of the mapping.
        let device: String = u.arbitrary()?;
        let module: Option<String> = u.arbitrary()?;
        Some(match module {
            Some(m) => format!("/devices/{device}/modules/{m}/messages/devicebound"),
            None => format!("/devices/{device}/messages/devicebound"),
        })
    };
    let mut application = ApplicationProperties::default();
    for _ in 0..u.int_in_range(0..=4u8)? {
        let key = if u.arbitrary()? {
            "iothub-ack".to_owned()
        } else {
            u.arbitrary()?
        };
        application.insert(key, simple(u)?);
    }
    let body = match u.int_in_range(0..=4u8)? {
        0 => Body::Empty,
        1 => Body::Value(AmqpValue(Value::String(u.arbitrary()?))),
        2 => Body::Value(AmqpValue(Value::Binary(u.arbitrary::<Vec<u8>>()?.into()))),
        3 => Body::Value(AmqpValue(Value::Long(u.arbitrary()?))),
        _ => {
            let sections: Vec<Vec<u8>> = u.arbitrary()?;
            Body::Data(Batch::new(
                sections
                    .into_iter()
                    .map(|s| Data(Binary::from(s)))
                    .collect::<Vec<_>>(),
            ))
        }
    };
    let properties = Properties {
        to,
        message_id: id(u)?,
        correlation_id: id(u)?,
        user_id: if u.arbitrary()? {
            Some(Binary::from(u.arbitrary::<Vec<u8>>()?))
        } else {
            None
        },
        content_type: u.arbitrary::<Option<String>>()?.map(Symbol::from),
        absolute_expiry_time: u
            .arbitrary::<Option<i64>>()?
            .map(Timestamp::from_milliseconds),
        ..Properties::default()
    };
    Ok(Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: Some(application),
        body,
        footer: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(msg) = message(&mut u) else {
        return;
    };
    let limit = u.int_in_range(0..=1024usize).unwrap_or(64);
    match c2d_from_message(msg, limit) {
        Ok((who, out)) => {
            assert!(!who.device_id.is_empty());
            assert!(who.module_id.as_ref().is_none_or(|m| !m.is_empty()));
            assert!(out.body.len() <= limit);
        }
        Err(refusal) => {
            let _ = refusal.condition();
        }
    }
});
