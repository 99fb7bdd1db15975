//! Cloud-to-device messages sent by the service SDKs (docs/amqp.md "Cloud-to-device"): a
//! sender link to `/messages/devicebound`, each message addressed by its `to` property. Each
//! goes into the same queue, through the same hub operation, as the REST path; its delivery
//! is accepted once enqueued, or rejected with an error that says why (unknown device, queue
//! full, too large, a malformed `to`), and the link goes on.

use std::sync::Arc;

use fe2o3_amqp::acceptor::ListenerSessionHandle;
use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::types::definitions::{self, AmqpError};
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;
use tokio::task::JoinSet;

use super::authorize::{authorize_link, token_lapsed};
use super::c2d_message::{c2d_error, c2d_from_message};
use super::connection::ConnState;
use super::context::AmqpContext;
use super::refuse::refuse;
use super::routing::accept_receiver;
use super::tokens::TokenSource;
use crate::hub::service_auth::ServiceRight;

/// Checks and attaches a C2D sender link, then enqueues what it sends in its own task.
pub(crate) async fn open(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<AmqpContext>,
    state: &Arc<ConnState>,
    links: &mut JoinSet<()>,
) {
    let source = match authorize_link(
        ctx,
        state,
        ServiceRight::ServiceConnect,
        "/messages/devicebound",
    )
    .await
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
    if let Some(receiver) = accept_receiver(attach, session).await {
        links.spawn(serve(receiver, source, ctx.clone(), state.clone()));
    }
}

async fn serve(
    mut receiver: Receiver,
    source: TokenSource,
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
) {
    let limit = ctx.hub.c2d_limits().max_message_bytes;
    let lapsed = token_lapsed(&ctx, state.tokens.subscribe(), source.clone());
    tokio::pin!(lapsed);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let delivery = tokio::select! {
            d = receiver.recv::<Body<Value>>() => match d {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!("C2D link ended: {e}");
                    break;
                }
            },
            () = &mut lapsed => {
                let why = format!("the token ({source}) expired and was not renewed");
                tracing::info!(transport = state.peer.transport, peer = %state.peer, "C2D link detached: {why}");
                let error = definitions::Error::new(AmqpError::UnauthorizedAccess, Some(why), None);
                let _ = receiver.close_with_error(error).await;
                return;
            }
            _ = shutdown.changed() => break,
        };
        let (delivery, message) = delivery.into_parts();
        let outcome = match c2d_from_message(message, limit) {
            Ok((identity, message)) => ctx
                .hub
                .send_c2d_to_registered(&identity, message)
                .await
                .map_err(|e| {
                    let why = format!("C2D to `{identity}` refused: {e}");
                    (c2d_error(&e), why)
                }),
            Err(refusal) => {
                let why = format!("C2D message refused: {refusal}");
                Err((refusal.to_error(), why))
            }
        };
        let settled = match outcome {
            Ok(_) => receiver.accept(delivery).await,
            Err((error, why)) => {
                tracing::info!(transport = state.peer.transport, peer = %state.peer, "{why}");
                receiver.reject(delivery, error).await
            }
        };
        if settled.is_err() {
            break;
        }
    }
    let _ = receiver.close().await;
}
