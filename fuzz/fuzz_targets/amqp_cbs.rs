//! Request/reply nodes of the AMQP adapter (iothub-emulator `amqp::cbs`, `amqp::management`)
//! on arbitrary bytes decoded as an AMQP message: the decoder and both parsers never panic,
//! a parsed put-token has a token, and a reply built from the request's id encodes.
#![no_main]

use fe2o3_amqp::types::messaging::Message;
use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::primitives::Value;
use iothub_emulator::amqp::cbs::{cbs_reply, parse_cbs_request};
use iothub_emulator::amqp::management::{correlation_of, error_reply, parse_management_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Deserializable(msg)) = serde_amqp::from_slice::<Deserializable<Message<Value>>>(data)
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
