//! Refusing a link: attach it, then detach it at once with an AMQP error that says why
//! (AMQP 1.0 §2.6.3: a refused link is attached and immediately closed). The refusal is
//! logged with its reason; the session and the connection's other links go on.

use fe2o3_amqp::acceptor::{LinkAcceptor, LinkEndpoint, ListenerSessionHandle};
use fe2o3_amqp::types::definitions::{self, ErrorCondition, Fields};
use fe2o3_amqp::types::performatives::Attach;

use super::connection::ConnState;

/// Attaches `attach` and closes it with `condition`, `description` and `info`.
pub(crate) async fn refuse(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    state: &ConnState,
    condition: impl Into<ErrorCondition>,
    description: String,
    info: Option<Fields>,
) {
    let condition = condition.into();
    tracing::info!(
        transport = state.peer.transport,
        peer = %state.peer,
        link = %attach.name,
        condition = ?condition,
        "AMQP link refused: {description}"
    );
    let error = definitions::Error::new(condition, Some(description), info);
    let acceptor = LinkAcceptor::builder()
        .properties(super::connection::full_frame_properties())
        .verify_incoming_source(false)
        .verify_incoming_target(false)
        .build();
    match acceptor.accept_incoming_attach(attach, session).await {
        Ok(LinkEndpoint::Sender(sender)) => {
            let _ = sender.close_with_error(error).await;
        }
        Ok(LinkEndpoint::Receiver(receiver)) => {
            let _ = receiver.close_with_error(error).await;
        }
        Err(e) => tracing::debug!("a refused link could not be attached: {e}"),
    }
}
