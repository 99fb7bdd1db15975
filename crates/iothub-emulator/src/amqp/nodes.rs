//! The request/reply nodes `$cbs` and `$management` (docs/amqp.md "Authentication",
//! "Event Hub metadata"): a client attaches a sender whose target is the node (requests) and a
//! receiver whose source is the node (replies). Requests are answered in order on the
//! connection's reply link for that node; a reply that arrives before its reply link is
//! attached waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::{AmqpValue, Message};
use fe2o3_amqp::types::primitives::Value;
use tokio::sync::mpsc;

use super::connection::ConnState;
use super::context::AmqpContext;
use crate::lock::lock;

/// Replies a node keeps for a reply link that is not attached (yet).
const REPLY_BUFFER: usize = 64;

/// A request/reply node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    /// `$cbs`: put-token.
    Cbs,
    /// `$management`: Event Hub and partition properties.
    Management,
}

impl Node {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Cbs => "$cbs",
            Self::Management => "$management",
        }
    }
}

struct Slot {
    tx: mpsc::Sender<Message<AmqpValue<Value>>>,
    rx: Option<mpsc::Receiver<Message<AmqpValue<Value>>>>,
}

/// The reply queues of one connection's nodes.
#[derive(Default)]
pub(crate) struct NodeReplies {
    slots: Mutex<HashMap<Node, Slot>>,
}

impl std::fmt::Debug for NodeReplies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeReplies").finish_non_exhaustive()
    }
}

impl NodeReplies {
    fn with_slot<R>(&self, node: Node, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(node).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(REPLY_BUFFER);
            Slot { tx, rx: Some(rx) }
        });
        f(slot)
    }

    fn sender(&self, node: Node) -> mpsc::Sender<Message<AmqpValue<Value>>> {
        self.with_slot(node, |s| s.tx.clone())
    }

    fn take_receiver(&self, node: Node) -> Option<mpsc::Receiver<Message<AmqpValue<Value>>>> {
        self.with_slot(node, |s| s.rx.take())
    }

    fn put_back(&self, node: Node, rx: mpsc::Receiver<Message<AmqpValue<Value>>>) {
        self.with_slot(node, |s| s.rx = Some(rx));
    }
}

/// Serves a node's request link: each request is accepted, answered by the node's handler
/// and the answer queued for the reply link.
pub(crate) async fn serve_requests(
    mut receiver: Receiver,
    node: Node,
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
) {
    let replies = state.replies.sender(node);
    loop {
        let delivery = match receiver.recv::<Value>().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(node = node.name(), "request link ended: {e}");
                break;
            }
        };
        let _ = receiver.accept(&delivery).await;
        let request = delivery.into_message();
        let reply = match node {
            Node::Cbs => super::authorize::put_token(&ctx, &state, &request).await,
            Node::Management => super::metadata::answer(&ctx, &state, &request).await,
        };
        if replies.send(reply).await.is_err() {
            break;
        }
    }
    let _ = receiver.close().await;
}

/// Serves a node's reply link: sends the node's replies until the client detaches.
pub(crate) async fn serve_replies(mut sender: Sender, node: Node, state: Arc<ConnState>) {
    // A second reply link for the same node on this connection gets nothing to send; it is
    // kept open (clients do not do this) until detached.
    let rx = state.replies.take_receiver(node);
    let Some(mut rx) = rx else {
        let _ = sender.on_detach().await;
        return;
    };
    loop {
        enum Step {
            Reply(Box<Message<AmqpValue<Value>>>),
            Detached,
        }
        let step = tokio::select! {
            reply = rx.recv() => match reply {
                Some(m) => Step::Reply(Box::new(m)),
                None => Step::Detached,
            },
            _ = sender.on_detach() => Step::Detached,
        };
        match step {
            Step::Reply(m) => {
                // Replies go unsettled in the client's mode; nothing waits for the outcome.
                if sender.send_batchable(*m).await.is_err() {
                    break;
                }
            }
            Step::Detached => break,
        }
    }
    state.replies.put_back(node, rx);
    let _ = sender.close().await;
}
