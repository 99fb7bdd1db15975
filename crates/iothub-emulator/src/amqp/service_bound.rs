//! The service-bound queues a back end receives from (docs/amqp.md "Feedback and file
//! notifications"): `/messages/servicebound/feedback` (C2D delivery feedback) and
//! `/messages/servicebound/filenotifications` (completed file uploads).
//!
//! Peek-lock, as on IoT Hub: a batch is taken from the hub and sent unsettled; `accepted`
//! completes it, `released` or `modified` (or the link going away before an outcome) puts it
//! back for the next receiver, `rejected` drops it. Feedback goes as batches of up to 64
//! records in one message (IoT Hub's batch size); file notifications one per message.

use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::acceptor::ListenerSessionHandle;
use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::definitions::{self, AmqpError};
use fe2o3_amqp::types::messaging::Data;
use fe2o3_amqp::types::messaging::{Message, Outcome};
use fe2o3_amqp::types::performatives::Attach;
use tokio::task::JoinSet;

use super::authorize::{authorize_link, token_lapsed};
use super::connection::ConnState;
use super::context::AmqpContext;
use super::feedback_message::{feedback_message, file_notification_message};
use super::refuse::refuse;
use super::routing::accept_sender;
use super::tokens::TokenSource;
use crate::hub::c2d::FeedbackRecord;
use crate::hub::file_upload::FileNotification;
use crate::hub::service_auth::ServiceRight;

/// Records per feedback message (IoT Hub's batch size).
const FEEDBACK_BATCH: usize = 64;
/// How often an idle feedback link looks for new records.
const FEEDBACK_POLL: Duration = Duration::from_millis(500);

/// Which queue a link reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    /// C2D delivery feedback.
    Feedback,
    /// File upload notifications.
    FileNotifications,
}

impl Queue {
    fn path(self) -> &'static str {
        match self {
            Self::Feedback => "/messages/servicebound/feedback",
            Self::FileNotifications => "/messages/servicebound/filenotifications",
        }
    }
}

/// What one message carries, kept until its outcome.
enum Batch {
    Feedback(Vec<FeedbackRecord>),
    Files(Vec<FileNotification>),
}

/// Checks and attaches a receiver on a service-bound queue, then serves it in its own task.
pub(crate) async fn open(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    queue: Queue,
    ctx: &Arc<AmqpContext>,
    state: &Arc<ConnState>,
    links: &mut JoinSet<()>,
) {
    let source = match authorize_link(ctx, state, ServiceRight::ServiceConnect, queue.path()).await
    {
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
    if let Some(sender) = accept_sender(attach, session, &[]).await {
        links.spawn(serve(sender, queue, source, ctx.clone(), state.clone()));
    }
}

async fn serve(
    mut sender: Sender,
    queue: Queue,
    source: TokenSource,
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
) {
    let lapsed = token_lapsed(&ctx, state.tokens.subscribe(), source.clone());
    tokio::pin!(lapsed);
    let mut shutdown = ctx.shutdown.clone();
    let mut files_changed = ctx.hub.file_notifications_changed();
    loop {
        let batch = match take(&ctx, queue).await {
            Some(batch) => batch,
            None => {
                // Nothing waiting: sleep until there may be, or the link ends.
                tokio::select! {
                    () = tokio::time::sleep(FEEDBACK_POLL), if queue == Queue::Feedback => continue,
                    _ = files_changed.changed(), if queue == Queue::FileNotifications => continue,
                    () = &mut lapsed => {
                        let why = format!("the token ({source}) expired and was not renewed");
                        tracing::info!(transport = state.peer.transport, peer = %state.peer, "{} receiver detached: {why}", queue.path());
                        let error = definitions::Error::new(AmqpError::UnauthorizedAccess, Some(why), None);
                        let _ = sender.close_with_error(error).await;
                        return;
                    }
                    _ = sender.on_detach() => return,
                    _ = shutdown.changed() => break,
                }
            }
        };
        let message: Message<Data> = match &batch {
            Batch::Feedback(records) => feedback_message(records, &ctx.endpoint.name),
            Batch::Files(files) => match files.first() {
                Some(f) => file_notification_message(&f.to_json()),
                None => continue,
            },
        };
        // Batchable: every TRANSFER field present (see `connection::full_frame_properties`).
        let outcome = match sender.send_batchable(message).await {
            Ok(settlement) => settlement.await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Outcome::Accepted(_)) => {}
            Ok(Outcome::Rejected(_)) => {
                tracing::info!(transport = state.peer.transport, peer = %state.peer, "{} message rejected by the receiver: dropped", queue.path());
            }
            Ok(_) => put_back(&ctx, batch).await,
            Err(e) => {
                put_back(&ctx, batch).await;
                tracing::debug!("{} link ended: {e}", queue.path());
                return;
            }
        }
    }
    let _ = sender.close().await;
}

async fn take(ctx: &AmqpContext, queue: Queue) -> Option<Batch> {
    match queue {
        Queue::Feedback => match ctx.hub.take_c2d_feedback(FEEDBACK_BATCH).await {
            Ok(records) if !records.is_empty() => Some(Batch::Feedback(records)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("feedback could not be read: {e}");
                None
            }
        },
        Queue::FileNotifications => match ctx.hub.take_file_notifications(1).await {
            Ok(files) if !files.is_empty() => Some(Batch::Files(files)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("file notifications could not be read: {e}");
                None
            }
        },
    }
}

async fn put_back(ctx: &AmqpContext, batch: Batch) {
    let result = match batch {
        Batch::Feedback(records) => ctx.hub.return_c2d_feedback(records).await,
        Batch::Files(files) => ctx.hub.return_file_notifications(files).await,
    };
    if let Err(e) = result {
        tracing::warn!("released records could not be put back: {e}");
    }
}
