//! Request/reply nodes of the AMQP adapter (iothub-emulator `amqp::cbs`, `amqp::management`):
//! arbitrary application properties, ids and bodies, encoded and decoded by the AMQP codec as
//! a client's message would be, never panic either parser; a parsed put-token has a token,
//! and every reply encodes.
//!
//! Raw bytes are not decoded here: serde_amqp preallocates a declared length (a 2 GB
//! `malloc` from a few input bytes), which libFuzzer reports as out-of-memory; the server
//! bounds a message by the link's max-message-size before decoding it.
#![no_main]

use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use iothub_emulator::amqp::cbs::{cbs_reply, parse_cbs_request};
use iothub_emulator::amqp::management::{correlation_of, error_reply, parse_management_request};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const KEYS: [&str; 6] = [
    "operation",
    "type",
    "name",
    "partition",
    "expiration",
    "security_token",
];
const WORDS: [&str; 6] = [
    "put-token",
    "READ",
    "jwt",
    "servicebus.windows.net:sastoken",
    "com.microsoft:eventhub",
    "com.microsoft:partition",
];

fn simple(u: &mut Unstructured<'_>) -> Result<SimpleValue> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => SimpleValue::Null,
        1 => SimpleValue::Int(u.arbitrary()?),
        2 => SimpleValue::Binary(u.arbitrary::<Vec<u8>>()?.into()),
        3 => SimpleValue::String((*u.choose(&WORDS)?).to_owned()),
        _ => SimpleValue::String(u.arbitrary()?),
    })
}

fn message(u: &mut Unstructured<'_>) -> Result<Message<AmqpValue<Value>>> {
    let mut application = ApplicationProperties::default();
    for _ in 0..u.int_in_range(0..=6u8)? {
        let key = if u.arbitrary()? {
            (*u.choose(&KEYS)?).to_owned()
        } else {
            u.arbitrary()?
        };
        application.insert(key, simple(u)?);
    }
    let body = match u.int_in_range(0..=3u8)? {
        0 => Value::Null,
        1 => Value::Binary(u.arbitrary::<Vec<u8>>()?.into()),
        2 => Value::Long(u.arbitrary()?),
        _ => Value::String(u.arbitrary()?),
    };
    let message_id = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some(MessageId::Ulong(u.arbitrary()?)),
        _ => Some(MessageId::String(u.arbitrary()?)),
    };
    Ok(Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            message_id,
            ..Properties::default()
        }),
        application_properties: Some(application),
        body: AmqpValue(body),
        footer: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(built) = message(&mut Unstructured::new(data)) else {
        return;
    };
    // Through the codec, as the server's receiver would get it.
    let Ok(bytes) = serde_amqp::to_vec(&Serializable(&built)) else {
        return;
    };
    let Ok(Deserializable(msg)) = serde_amqp::from_slice::<Deserializable<Message<Value>>>(&bytes)
    else {
        return;
    };
    match parse_cbs_request(&msg) {
        Ok(request) => {
            assert!(!request.token.trim().is_empty());
            let reply = cbs_reply(request.message_id, 202, "Accepted");
            assert!(serde_amqp::to_vec(&Serializable(&reply)).is_ok());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Err(e) = parse_management_request(&msg) {
        let reply = error_reply(correlation_of(&msg), e.status(), &e.to_string());
        assert!(serde_amqp::to_vec(&Serializable(&reply)).is_ok());
    }
});
