//! Feedback records (docs/amqp.md "Feedback and file notifications"): messages on
//! `/messages/servicebound/feedback` whose body is a JSON array of `{originalMessageId,
//! enqueuedTimeUtc, statusCode, description, deviceId, deviceGenerationId}`.

use anyhow::{Context, bail};
use fe2o3_amqp::types::messaging::{Body, Message};
use fe2o3_amqp::types::primitives::Value;
use serde_json::Value as Json;

/// The node feedback is received from.
pub(crate) const FEEDBACK: &str = "/messages/servicebound/feedback";

/// The bytes of a feedback message's body (one or more data sections; some stacks send the
/// JSON as an amqp-value string or binary).
pub(crate) fn body_bytes(message: &Message<Body<Value>>) -> anyhow::Result<Vec<u8>> {
    Ok(match &message.body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(v) => match &v.0 {
            Value::String(s) => s.clone().into_bytes(),
            Value::Binary(b) => b.to_vec(),
            other => bail!("a feedback body is not JSON text: {other:?}"),
        },
        _ => bail!("a feedback message has no body"),
    })
}

/// The record for `message_id` in a feedback batch, if there is one.
pub(crate) fn record_for(body: &[u8], message_id: &str) -> anyhow::Result<Option<Json>> {
    let records: Json = serde_json::from_slice(body).context("a feedback body is not JSON")?;
    let Json::Array(records) = records else {
        bail!("a feedback body is not a JSON array");
    };
    Ok(records
        .into_iter()
        .find(|r| r["originalMessageId"].as_str() == Some(message_id)))
}

/// One line of text for a record: `Success: dev1 (m1) at 2026-…: description`.
pub(crate) fn describe(record: &Json) -> String {
    let text = |k: &str| record[k].as_str().unwrap_or("?").to_owned();
    let mut line = format!(
        "{}: {} ({}) at {}",
        text("statusCode"),
        text("deviceId"),
        text("originalMessageId"),
        text("enqueuedTimeUtc")
    );
    if let Some(d) = record["description"].as_str().filter(|d| !d.is_empty()) {
        line.push_str(": ");
        line.push_str(d);
    }
    line
}

/// Whether the record says the device completed the message.
pub(crate) fn is_success(record: &Json) -> bool {
    record["statusCode"].as_str() == Some("Success")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const BATCH: &str = r#"[
        {"originalMessageId":"a","enqueuedTimeUtc":"2026-12-07T00:00:00Z","statusCode":"Rejected","description":"Message rejected","deviceId":"d1","deviceGenerationId":"1"},
        {"originalMessageId":"m1","enqueuedTimeUtc":"2026-12-07T00:00:01Z","statusCode":"Success","description":"Success","deviceId":"d1","deviceGenerationId":"1"}]"#;

    #[test]
    fn finds_the_record_of_a_message() {
        let r = record_for(BATCH.as_bytes(), "m1").unwrap().unwrap();
        assert!(is_success(&r));
        assert_eq!(
            describe(&r),
            "Success: d1 (m1) at 2026-12-07T00:00:01Z: Success"
        );
        assert!(!is_success(
            &record_for(BATCH.as_bytes(), "a").unwrap().unwrap()
        ));
        assert_eq!(record_for(BATCH.as_bytes(), "zz").unwrap(), None);
        assert!(record_for(b"{}", "m1").is_err());
        assert!(record_for(b"nope", "m1").is_err());
        assert_eq!(describe(&json!({})), "?: ? (?) at ?");
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = record_for(&body, "m1");
        }
    }
}
