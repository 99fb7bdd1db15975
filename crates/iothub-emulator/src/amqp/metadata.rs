//! Answers on the `$management` node (docs/amqp.md "Event Hub metadata"): the Event Hub's
//! properties (name, creation time, partition ids) and a partition's (first and last
//! sequence numbers, last offset and time, emptiness), as `azure-eventhub`'s
//! `get_eventhub_properties` / `get_partition_properties` and the az CLI read them.

use fe2o3_amqp::types::messaging::{AmqpValue, Message};
use fe2o3_amqp::types::primitives::Value;

use super::authorize::authorize_link;
use super::connection::ConnState;
use super::context::AmqpContext;
use super::management::{
    EventHubProperties, ManagementRequest, PartitionProperties, error_reply, eventhub_reply,
    parse_management_request, partition_reply,
};
use crate::hub::service_auth::ServiceRight;

/// Answers one `$management` request.
pub(crate) async fn answer(
    ctx: &AmqpContext,
    state: &ConnState,
    request: &Message<Value>,
) -> Message<AmqpValue<Value>> {
    let correlation = request
        .properties
        .as_ref()
        .and_then(|p| p.message_id.clone());
    let refuse = |status: i32, why: String| {
        tracing::info!(transport = state.peer.transport, peer = %state.peer, status, "$management request refused: {why}");
        error_reply(correlation.clone(), status, &why)
    };
    let parsed = match parse_management_request(request) {
        Ok(r) => r,
        Err(e) => return refuse(400, e.to_string()),
    };
    let name = match &parsed {
        ManagementRequest::EventHub { name } | ManagementRequest::Partition { name, .. } => name,
    };
    if !name.eq_ignore_ascii_case(&ctx.endpoint.name) {
        return refuse(
            404,
            format!(
                "there is no Event Hub `{name}` (this one is `{}`)",
                ctx.endpoint.name
            ),
        );
    }
    // The management node of the Event Hub: a token for the Event Hub covers it (azure-eventhub
    // signs `sb://{host}/{eventhub}`), and so does one for the node itself, which is what
    // @azure/event-hubs signs (`sb://{host}/{eventhub}/$management`).
    if let Err(why) = authorize_link(
        ctx,
        state,
        ServiceRight::ServiceConnect,
        &format!("/{name}/$management"),
    )
    .await
    {
        return refuse(401, why);
    }
    match parsed {
        ManagementRequest::EventHub { .. } => eventhub_reply(
            correlation,
            &EventHubProperties {
                name: ctx.endpoint.name.clone(),
                created_at_ms: ctx.endpoint.created_at_ms,
                partition_ids: (0..ctx.hub.partition_count())
                    .map(|p| p.to_string())
                    .collect(),
            },
        ),
        ManagementRequest::Partition { partition, .. } => {
            let Some(index) = partition_index(&partition, ctx.hub.partition_count()) else {
                return refuse(
                    404,
                    format!(
                        "there is no partition `{partition}` (partitions are 0 to {})",
                        ctx.hub.partition_count() - 1
                    ),
                );
            };
            match ctx.hub.partition_info(index).await {
                Ok(info) => partition_reply(
                    correlation,
                    &PartitionProperties {
                        name: ctx.endpoint.name.clone(),
                        partition,
                        begin_sequence_number: info.begin_sequence_number,
                        last_enqueued_sequence_number: info.last_enqueued_sequence_number,
                        last_enqueued_offset: info.last_enqueued_offset.to_string(),
                        last_enqueued_time_ms: info.last_enqueued_time_ms,
                        is_partition_empty: info.is_empty,
                    },
                ),
                Err(e) => {
                    tracing::warn!("partition properties could not be read: {e}");
                    error_reply(correlation, 500, "the event log could not be read")
                }
            }
        }
    }
}

/// The partition index a partition id names, if it is one of `0..count` written plainly.
pub(crate) fn partition_index(id: &str, count: u32) -> Option<u32> {
    if id.is_empty()
        || id.len() > 3
        || !id.bytes().all(|b| b.is_ascii_digit())
        || (id.len() > 1 && id.starts_with('0'))
    {
        return None;
    }
    id.parse().ok().filter(|p| *p < count)
}

#[cfg(test)]
mod tests {
    use super::partition_index;

    #[test]
    fn partition_ids_are_plain_indexes() {
        assert_eq!(partition_index("0", 4), Some(0));
        assert_eq!(partition_index("3", 4), Some(3));
        for bad in ["4", "-1", "01", "", "1a", " 1", "9999"] {
            assert_eq!(partition_index(bad, 4), None, "{bad}");
        }
    }
}
