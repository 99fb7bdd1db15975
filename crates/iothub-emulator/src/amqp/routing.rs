//! Where an attaching link goes (docs/amqp.md "Nodes"): by its address (the source's when the
//! client receives, the target's when it sends) and its direction. Each accepted link runs in
//! its own task on the session; anything else is refused with the reason.

use std::sync::Arc;

use fe2o3_amqp::acceptor::{
    LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SupportedReceiverSettleModes,
};
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::definitions::{AmqpError, Fields, LinkError, ReceiverSettleMode, Role};
use fe2o3_amqp::types::messaging::TargetArchetype;
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use tokio::task::JoinSet;

use super::address::{LinkAddress, parse_link_address, redirect_address};
use super::authorize::authorize_link;
use super::connection::{ConnState, full_frame_properties};
use super::context::AmqpContext;
use super::nodes::{Node, serve_replies, serve_requests};
use super::refuse::refuse;
use crate::hub::service_auth::ServiceRight;

/// Largest delivery a client may send the emulator (1 MiB: well above C2D's 64 KB so that the
/// hub, not the link, answers an oversized C2D message with its own error).
const MAX_INCOMING_MESSAGE: u64 = 1024 * 1024;

/// Routes one attaching link.
pub(crate) async fn route(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<AmqpContext>,
    state: &Arc<ConnState>,
    links: &mut JoinSet<()>,
) {
    // The client's role: a receiving client reads from the node named by its source.
    let client_receives = attach.role == Role::Receiver;
    let address = if client_receives {
        attach.source.as_ref().and_then(|s| s.address.clone())
    } else {
        attach.target.as_deref().and_then(|t| match t {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    };
    let Some(address) = address else {
        let why = "the link names no address".to_string();
        return refuse(attach, session, state, AmqpError::InvalidField, why, None).await;
    };
    let node = match parse_link_address(&address) {
        Ok(node) => node,
        Err(e) => {
            let why = format!("there is no node `{address}`: {e}");
            return refuse(attach, session, state, AmqpError::NotFound, why, None).await;
        }
    };
    match (node, client_receives) {
        (LinkAddress::Cbs, false) => {
            accept_requests(attach, session, Node::Cbs, ctx, state, links).await
        }
        (LinkAddress::Cbs, true) => accept_replies(attach, session, Node::Cbs, state, links).await,
        (LinkAddress::Management, false) => {
            accept_requests(attach, session, Node::Management, ctx, state, links).await;
        }
        (LinkAddress::Management, true) => {
            accept_replies(attach, session, Node::Management, state, links).await;
        }
        (
            LinkAddress::EventHubPartition {
                event_hub,
                consumer_group,
                partition,
            },
            true,
        ) => {
            let target = super::event_link::PartitionTarget {
                event_hub,
                consumer_group,
                partition,
            };
            super::event_link::open(attach, session, target, ctx, state, links).await;
        }
        (LinkAddress::HubEvents { tail }, true) => {
            redirect(attach, session, &tail, ctx, state).await
        }
        (LinkAddress::DeviceBound, false) => {
            super::c2d_link::open(attach, session, ctx, state, links).await;
        }
        (LinkAddress::Feedback, true) => {
            super::service_bound::open(
                attach,
                session,
                super::service_bound::Queue::Feedback,
                ctx,
                state,
                links,
            )
            .await;
        }
        (LinkAddress::FileNotifications, true) => {
            let queue = super::service_bound::Queue::FileNotifications;
            super::service_bound::open(attach, session, queue, ctx, state, links).await;
        }
        (_, receives) => {
            let why = format!(
                "`{address}` cannot be {} here",
                if receives { "received from" } else { "sent to" }
            );
            refuse(attach, session, state, AmqpError::NotAllowed, why, None).await;
        }
    }
}

/// Attaches a link the client sends on (our receiver).
pub(crate) async fn accept_receiver(
    attach: Attach,
    session: &mut ListenerSessionHandle,
) -> Option<Receiver> {
    // Bounds what a client may send on one delivery before it is decoded (C2D is 64 KB, a
    // CBS or $management request a few hundred bytes): fe2o3-amqp refuses a larger delivery
    // with `amqp:link:message-size-exceeded` instead of buffering it.
    let acceptor = LinkAcceptor::builder()
        .max_message_size(MAX_INCOMING_MESSAGE)
        // Settlement mode first only, as IoT Hub answers (docs/amqp.md "Choices"): each
        // outcome goes out settled. uamqp asks for second and, told second, waits for a
        // settlement that never comes.
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .properties(full_frame_properties())
        .build();
    match acceptor.accept_incoming_attach(attach, session).await {
        Ok(LinkEndpoint::Receiver(r)) => Some(r),
        Ok(LinkEndpoint::Sender(s)) => {
            let _ = s.close().await;
            None
        }
        Err(e) => {
            tracing::debug!("link not attached: {e}");
            None
        }
    }
}

/// Attaches a link the client receives on (our sender), offering `capabilities`.
pub(crate) async fn accept_sender(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    capabilities: &[&str],
) -> Option<Sender> {
    let mut acceptor = LinkAcceptor::builder().properties(full_frame_properties());
    for c in capabilities {
        acceptor = acceptor.add_offered_capabilities(Symbol::from(*c));
    }
    match acceptor
        .build()
        .accept_incoming_attach(attach, session)
        .await
    {
        Ok(LinkEndpoint::Sender(s)) => Some(s),
        Ok(LinkEndpoint::Receiver(r)) => {
            let _ = r.close().await;
            None
        }
        Err(e) => {
            tracing::debug!("link not attached: {e}");
            None
        }
    }
}

async fn accept_requests(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    node: Node,
    ctx: &Arc<AmqpContext>,
    state: &Arc<ConnState>,
    links: &mut JoinSet<()>,
) {
    if let Some(receiver) = accept_receiver(attach, session).await {
        links.spawn(serve_requests(receiver, node, ctx.clone(), state.clone()));
    }
}

async fn accept_replies(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    node: Node,
    state: &Arc<ConnState>,
    links: &mut JoinSet<()>,
) {
    if let Some(sender) = accept_sender(attach, session, &[]).await {
        links.spawn(serve_replies(sender, node, state.clone()));
    }
}

/// A receiver on the IoT Hub's `messages/events` is sent to the Event Hub-compatible
/// endpoint (docs/amqp.md "Redirect"): detached with `amqp:link:redirect` and where to go.
/// It must be authorised first, so a wrong key is told so rather than redirected.
async fn redirect(
    mut attach: Attach,
    session: &mut ListenerSessionHandle,
    tail: &str,
    ctx: &AmqpContext,
    state: &ConnState,
) {
    if let Err(why) =
        authorize_link(ctx, state, ServiceRight::ServiceConnect, "/messages/events").await
    {
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
    let ep = &ctx.endpoint;
    let address = redirect_address(&ep.host, ep.port, &ep.name, tail);
    let mut info = Fields::new();
    info.insert(Symbol::from("hostname"), Value::String(ep.host.clone()));
    info.insert(Symbol::from("network-host"), Value::String(ep.host.clone()));
    info.insert(Symbol::from("port"), Value::Int(i32::from(ep.port)));
    info.insert(Symbol::from("address"), Value::String(address.clone()));
    // The answering ATTACH carries no source: the node is not here (docs/amqp.md "Redirect").
    attach.source = None;
    let why = format!(
        "the events of this hub are read from its Event Hub-compatible endpoint: {address}"
    );
    refuse(attach, session, state, LinkError::Redirect, why, Some(info)).await;
}
