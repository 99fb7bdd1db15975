//! Messages the hub sends the service on `messages/servicebound/feedback` and
//! `messages/servicebound/filenotifications` (docs/amqp.md "Feedback").
//!
//! Both carry JSON in one data section and say what it is in `content-type`, the value the
//! service SDKs check (`application/vnd.microsoft.iothub.feedback.json`,
//! `application/vnd.microsoft.iothub.filenotification.json`). Feedback also names the hub
//! in `user-id` (binary), as IoT Hub does.

use fe2o3_amqp::types::messaging::{Data, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{Binary, Symbol};
use serde_json::Value;

use crate::hub::c2d::FeedbackRecord;

/// `content-type` of a feedback batch.
pub const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// `content-type` of a file upload notification.
pub const FILE_NOTIFICATION_CONTENT_TYPE: &str =
    "application/vnd.microsoft.iothub.filenotification.json";

/// A batch of feedback records: body the JSON array of [`FeedbackRecord::to_json`],
/// `content-type` [`FEEDBACK_CONTENT_TYPE`], `content-encoding` `utf-8`, `user-id` the hub
/// name.
///
/// # Example
/// ```
/// use std::time::UNIX_EPOCH;
/// use iothub_emulator::amqp::feedback_message::feedback_message;
/// use iothub_emulator::hub::c2d::FeedbackRecord;
/// let record = FeedbackRecord {
///     original_message_id: "m1".into(),
///     device_id: "d1".into(),
///     module_id: None,
///     status_code: "Success".into(),
///     description: "Success".into(),
///     enqueued_time: UNIX_EPOCH,
/// };
/// let msg = feedback_message(&[record], "myhub");
/// let body: serde_json::Value = serde_json::from_slice(msg.body.0.as_slice()).unwrap();
/// assert_eq!(body[0]["originalMessageId"], "m1");
/// ```
#[must_use]
pub fn feedback_message(records: &[FeedbackRecord], hub_name: &str) -> Message<Data> {
    let body = Value::Array(records.iter().map(FeedbackRecord::to_json).collect());
    let properties = Properties {
        user_id: Some(Binary::from(hub_name.as_bytes().to_vec())),
        ..json_properties(FEEDBACK_CONTENT_TYPE)
    };
    json_message(&body, properties)
}

/// A file upload notification (`deviceId`, `blobUri`, `blobName`, `lastUpdatedTime`,
/// `blobSizeInBytes`, `enqueuedTimeUtc`): body `json`, `content-type`
/// [`FILE_NOTIFICATION_CONTENT_TYPE`], `content-encoding` `utf-8`.
///
/// # Example
/// ```
/// use iothub_emulator::amqp::feedback_message::{file_notification_message, FILE_NOTIFICATION_CONTENT_TYPE};
/// let msg = file_notification_message(&serde_json::json!({"deviceId": "d1", "blobName": "d1/a.txt"}));
/// assert_eq!(msg.properties.unwrap().content_type.unwrap().as_str(), FILE_NOTIFICATION_CONTENT_TYPE);
/// ```
#[must_use]
pub fn file_notification_message(json: &Value) -> Message<Data> {
    json_message(json, json_properties(FILE_NOTIFICATION_CONTENT_TYPE))
}

/// Properties of a JSON message of `content_type`; no `message-id` (the service SDKs do not
/// read it; [`with_message_id`] sets one).
fn json_properties(content_type: &str) -> Properties {
    Properties {
        content_type: Some(Symbol::from(content_type)),
        content_encoding: Some(Symbol::from("utf-8")),
        ..Properties::default()
    }
}

fn json_message(body: &Value, properties: Properties) -> Message<Data> {
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: None,
        body: Data(Binary::from(body.to_string().into_bytes())),
        footer: None,
    }
}

/// Sets `message-id` on a message built here (the lead's link task may number them).
#[must_use]
pub fn with_message_id(mut msg: Message<Data>, id: MessageId) -> Message<Data> {
    msg.properties
        .get_or_insert_with(Properties::default)
        .message_id = Some(id);
    msg
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};

    use super::*;

    fn record(id: &str, status: &str) -> FeedbackRecord {
        FeedbackRecord {
            original_message_id: id.into(),
            device_id: "dev1".into(),
            module_id: None,
            status_code: status.into(),
            description: status.into(),
            enqueued_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    fn wire(msg: &Message<Data>) -> Message<Data> {
        let bytes = serde_amqp::to_vec(&Serializable(msg)).unwrap();
        let back: Deserializable<Message<Data>> = serde_amqp::from_slice(&bytes).unwrap();
        back.0
    }

    #[test]
    fn a_feedback_batch_is_the_json_array_the_sdks_parse() {
        let msg = wire(&feedback_message(
            &[record("m1", "Success"), record("m2", "Expired")],
            "myhub",
        ));
        let p = msg.properties.unwrap();
        assert_eq!(p.content_type, Some(Symbol::from(FEEDBACK_CONTENT_TYPE)));
        assert_eq!(p.content_encoding, Some(Symbol::from("utf-8")));
        assert_eq!(p.user_id, Some(Binary::from(b"myhub".to_vec())));
        let body: Value = serde_json::from_slice(msg.body.0.as_slice()).unwrap();
        assert_eq!(
            body,
            serde_json::json!([
                {"originalMessageId": "m1", "enqueuedTimeUtc": "2023-11-14T22:13:20.123Z",
                 "statusCode": "Success", "description": "Success", "deviceId": "dev1",
                 "deviceGenerationId": ""},
                {"originalMessageId": "m2", "enqueuedTimeUtc": "2023-11-14T22:13:20.123Z",
                 "statusCode": "Expired", "description": "Expired", "deviceId": "dev1",
                 "deviceGenerationId": ""},
            ])
        );
    }

    #[test]
    fn a_file_notification_keeps_its_json() {
        let json = serde_json::json!({
            "deviceId": "dev1",
            "blobUri": "https://acct.blob.core.windows.net/c/dev1/a.txt",
            "blobName": "dev1/a.txt",
            "lastUpdatedTime": "2026-01-01T00:00:00+00:00",
            "blobSizeInBytes": 12,
            "enqueuedTimeUtc": "2026-01-01T00:00:01+00:00",
        });
        let msg = with_message_id(wire(&file_notification_message(&json)), MessageId::Ulong(1));
        let p = msg.properties.unwrap();
        assert_eq!(
            p.content_type,
            Some(Symbol::from(FILE_NOTIFICATION_CONTENT_TYPE))
        );
        assert_eq!(p.message_id, Some(MessageId::Ulong(1)));
        let body: Value = serde_json::from_slice(msg.body.0.as_slice()).unwrap();
        assert_eq!(body, json);
    }
}
