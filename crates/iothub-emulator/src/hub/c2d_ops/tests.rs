use super::*;
use crate::hub::c2d::{AckMode, FeedbackStatus};
use crate::hub::registry_ops::IdentityChange;
use crate::store::Store;

fn hub() -> Hub {
    Hub::new(Store::open_in_memory().unwrap(), vec!["localhost".into()])
}

fn device(id: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: None,
    }
}

#[tokio::test]
async fn an_unregistered_identity_gets_no_message_and_has_no_queue() {
    let hub = hub();
    let e = hub
        .send_c2d_to_registered(&device("ghost"), OutgoingMessage::default())
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::NotFound(who) if who == device("ghost")));
    assert!(matches!(
        hub.purge_c2d(&device("ghost")).await.unwrap_err(),
        HubError::NotFound(_)
    ));
}

#[tokio::test]
async fn purge_empties_the_queue_and_leaves_feedback_for_those_that_asked() {
    let hub = hub();
    let who = device("d1");
    hub.put_identity(&who, IdentityChange::default(), None)
        .await
        .unwrap();
    for ack in [AckMode::Full, AckMode::None] {
        let message = OutgoingMessage {
            message_id: Some(format!("{ack:?}")),
            ack,
            ..OutgoingMessage::default()
        };
        hub.send_c2d_to_registered(&who, message).await.unwrap();
    }
    assert_eq!(hub.get_identity(&who).await.unwrap().c2d_depth, 2);
    assert_eq!(hub.purge_c2d(&who).await.unwrap(), 2);
    assert_eq!(hub.get_identity(&who).await.unwrap().c2d_depth, 0);
    assert_eq!(hub.purge_c2d(&who).await.unwrap(), 0);
    let feedback = hub.take_c2d_feedback(10).await.unwrap();
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0].original_message_id, "Full");
    assert_eq!(feedback[0].status_code, FeedbackStatus::Purged.as_str());
    // Taking removes them.
    assert!(hub.take_c2d_feedback(10).await.unwrap().is_empty());
}
