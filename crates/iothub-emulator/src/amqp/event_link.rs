//! A receiver on the Event Hub-compatible endpoint (docs/amqp.md "Receiving events"):
//! `{eventhub}/ConsumerGroups/{group}/Partitions/{id}`, started where its selector filter says,
//! reading the hub's durable event log and then its live feed, paced by the client's credit.
//!
//! The link never holds more than one event in memory: it asks the hub's follower for the
//! next event only once the previous one was handed to the link, and the follower reads the
//! log when it falls behind the live feed, so a slow or stalled consumer neither slows ingest
//! nor loses an event within retention, nor grows the emulator's memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fe2o3_amqp::acceptor::ListenerSessionHandle;
use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::definitions::{self, AmqpError, ErrorCondition, LinkError};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use tokio::task::JoinSet;

use super::authorize::{authorize_link, token_lapsed};
use super::connection::ConnState;
use super::context::AmqpContext;
use super::epochs::{EpochGuard, PartitionKey};
use super::event_message::{event_message, runtime_metric};
use super::metadata::partition_index;
use super::refuse::refuse;
use super::routing::accept_sender;
use super::selector::start_filter_of;
use super::tokens::TokenSource;
use crate::hub::event_hub::PartitionInfo;
use crate::hub::event_log::{EventFilter, EventFollower};
use crate::hub::service_auth::ServiceRight;
use crate::timestamp::unix_millis;

/// The link property a client sets to hold a partition exclusively (docs/amqp.md "Epochs").
pub(super) const EPOCH_PROPERTY: &str = "com.microsoft:epoch";
/// The capability that asks for the partition's last-enqueued figures on every event.
pub(super) const RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";
/// How stale the runtime-metric figures may be (they cost a log read).
const METRIC_REFRESH: Duration = Duration::from_millis(200);

/// What a receiver's address names.
#[derive(Debug)]
pub(crate) struct PartitionTarget {
    pub(crate) event_hub: String,
    pub(crate) consumer_group: String,
    pub(crate) partition: String,
}

/// Checks and attaches a partition receiver, then reads events to it in its own task.
pub(crate) async fn open(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    target: PartitionTarget,
    ctx: &Arc<AmqpContext>,
    state: &Arc<ConnState>,
    links: &mut JoinSet<()>,
) {
    let hub = &ctx.hub;
    let PartitionTarget {
        event_hub,
        consumer_group,
        partition,
    } = target;
    if !event_hub.eq_ignore_ascii_case(&ctx.endpoint.name) {
        let why = format!(
            "there is no Event Hub `{event_hub}` here (this hub's is `{}`)",
            ctx.endpoint.name
        );
        return refuse(attach, session, state, AmqpError::NotFound, why, None).await;
    }
    let Some(index) = partition_index(&partition, hub.partition_count()) else {
        let why = format!(
            "there is no partition `{partition}` (partitions are 0 to {})",
            hub.partition_count() - 1
        );
        return refuse(attach, session, state, AmqpError::NotFound, why, None).await;
    };
    let path = format!("/{event_hub}/ConsumerGroups/{consumer_group}/Partitions/{partition}");
    let source = match authorize_link(ctx, state, ServiceRight::ServiceConnect, &path).await {
        Ok(source) => source,
        Err(why) => {
            return refuse(
                attach,
                session,
                state,
                AmqpError::UnauthorizedAccess,
                why,
                None,
            )
            .await;
        }
    };
    match hub.has_consumer_group(&consumer_group).await {
        Ok(true) => {}
        Ok(false) => {
            let why = format!(
                "there is no consumer group `{consumer_group}` (create it with `iothub hub consumer-group create`)"
            );
            return refuse(attach, session, state, AmqpError::NotFound, why, None).await;
        }
        Err(e) => {
            let why = format!("the consumer groups could not be read: {e}");
            return refuse(attach, session, state, AmqpError::InternalError, why, None).await;
        }
    }
    let filter = attach.source.as_ref().and_then(|s| s.filter.as_ref());
    let start = match start_filter_of(filter) {
        Ok(start) => start,
        Err(e) => {
            let why = format!("the start filter is not understood: {e}");
            let condition = ErrorCondition::Custom(Symbol::from("com.microsoft:argument-error"));
            return refuse(attach, session, state, condition, why, None).await;
        }
    };
    let epoch = epoch_of(&attach);
    let guard = match ctx
        .epochs
        .admit(PartitionKey::new(&consumer_group, index), epoch)
    {
        Ok(guard) => guard,
        Err(e) => {
            return refuse(
                attach,
                session,
                state,
                LinkError::Stolen,
                e.to_string(),
                None,
            )
            .await;
        }
    };
    let after = match hub.partition_start(index, start).await {
        Ok(after) => after,
        Err(e) => {
            let why = format!("the event log could not be read: {e}");
            return refuse(attach, session, state, AmqpError::InternalError, why, None).await;
        }
    };
    let metric = attach
        .desired_capabilities
        .as_ref()
        .is_some_and(|c| c.0.iter().any(|s| s.as_str() == RUNTIME_METRIC));
    let offered: &[&str] = if metric { &[RUNTIME_METRIC] } else { &[] };
    let Some(sender) = accept_sender(attach, session, offered).await else {
        return;
    };
    tracing::debug!(transport = state.peer.transport, peer = %state.peer, %consumer_group, partition = index, ?start, ?epoch, "event receiver attached");
    let filter = EventFilter {
        partition: Some(index),
        ..EventFilter::default()
    };
    let reader = Reader {
        ctx: ctx.clone(),
        state: state.clone(),
        partition: index,
        follower: hub.follow_events(Some(after), filter),
        guard,
        source,
        metric: metric.then(MetricCache::default),
    };
    links.spawn(reader.run(sender));
}

fn epoch_of(attach: &Attach) -> Option<i64> {
    let value = attach
        .properties
        .as_ref()?
        .get(&Symbol::from(EPOCH_PROPERTY))?;
    match value {
        Value::Long(e) => Some(*e),
        Value::Int(e) => Some(i64::from(*e)),
        Value::Ulong(e) => i64::try_from(*e).ok(),
        Value::Uint(e) => Some(i64::from(*e)),
        _ => None,
    }
}

#[derive(Default)]
struct MetricCache {
    info: Option<(Instant, PartitionInfo)>,
}

struct Reader {
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
    partition: u32,
    follower: EventFollower,
    guard: EpochGuard,
    source: TokenSource,
    metric: Option<MetricCache>,
}

enum Step {
    Event(Arc<crate::store::events::TelemetryEvent>),
    End(Option<definitions::Error>),
}

impl Reader {
    async fn run(mut self, mut sender: Sender) {
        let ctx = self.ctx.clone();
        let mut shutdown = ctx.shutdown.clone();
        let tokens = self.state.tokens.subscribe();
        let lapsed = token_lapsed(&ctx, tokens, self.source.clone());
        tokio::pin!(lapsed);
        loop {
            let step = tokio::select! {
                event = self.follower.next() => match event {
                    Some(e) => Step::Event(e),
                    None => Step::End(Some(definitions::Error::new(AmqpError::InternalError, Some("the event log could not be read".to_string()), None))),
                },
                epoch = self.guard.stolen() => Step::End(Some(definitions::Error::new(
                    LinkError::Stolen,
                    Some(format!("a receiver with epoch {epoch} took partition {} over", self.partition)),
                    None,
                ))),
                () = &mut lapsed => Step::End(Some(definitions::Error::new(
                    AmqpError::UnauthorizedAccess,
                    Some(format!("the token ({}) expired and was not renewed", self.source)),
                    None,
                ))),
                _ = sender.on_detach() => return,
                _ = shutdown.changed() => Step::End(None),
            };
            let event = match step {
                Step::Event(e) => e,
                Step::End(error) => {
                    if let Some(e) = &error {
                        tracing::info!(transport = self.state.peer.transport, peer = %self.state.peer, partition = self.partition, "event receiver detached: {}", e.description.as_deref().unwrap_or_default());
                    }
                    let _ = match error {
                        Some(e) => sender.close_with_error(e).await,
                        None => sender.close().await,
                    };
                    return;
                }
            };
            let mut message = event_message(&event);
            if let Some(cache) = &mut self.metric
                && let Some(info) = refresh(&ctx, self.partition, cache).await
            {
                message.delivery_annotations = Some(runtime_metric(
                    info.last_enqueued_sequence_number,
                    info.last_enqueued_offset,
                    info.last_enqueued_time_ms,
                    unix_millis(ctx.hub.now()),
                ));
            }
            // Waits for credit (and notices a detach meanwhile); the outcome is not awaited:
            // receivers settle first, and nothing is redelivered on this endpoint.
            if sender.send_batchable(message).await.is_err() {
                return;
            }
        }
    }
}

/// The partition's last-enqueued figures, read again once they are [`METRIC_REFRESH`] old.
async fn refresh(
    ctx: &AmqpContext,
    partition: u32,
    cache: &mut MetricCache,
) -> Option<PartitionInfo> {
    let fresh = cache
        .info
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < METRIC_REFRESH);
    if !fresh && let Ok(info) = ctx.hub.partition_info(partition).await {
        cache.info = Some((Instant::now(), info));
    }
    cache.info.as_ref().map(|(_, info)| *info)
}
