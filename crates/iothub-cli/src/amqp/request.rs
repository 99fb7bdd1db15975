//! The request/reply pattern of the `$cbs` and `$management` nodes (docs/amqp.md
//! "Authentication", "Event Hub metadata (`$management`)"): a sender whose target is the node
//! and a receiver whose source is the node; each request carries a `message-id` and `reply-to`
//! (the receiver's target), and its reply the same id as `correlation-id` with
//! `status-code`/`status-description` application properties.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{AmqpValue, Body, Message, MessageId, Properties, Target};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use serde_amqp::primitives::OrderedMap;

use super::ids::uuid_v4;

/// How long a node may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A request/reply link pair on one node.
#[derive(Debug)]
pub(crate) struct RequestLink {
    node: String,
    sender: Sender,
    receiver: Receiver,
    reply_to: String,
    next_id: u64,
}

impl RequestLink {
    /// Attaches the pair on `node` (`$cbs`, `$management`).
    pub(crate) async fn attach(
        session: &mut SessionHandle<()>,
        node: &str,
    ) -> anyhow::Result<Self> {
        let id = uuid_v4()?;
        let reply_to = format!("{node}-client-{id}");
        let sender = Sender::builder()
            .name(format!("{node}-sender-{id}"))
            .target(node.to_owned())
            .attach(session)
            .await
            .with_context(|| format!("cannot attach a sender to {node}"))?;
        let receiver = Receiver::builder()
            .name(format!("{node}-receiver-{id}"))
            .source(node.to_owned())
            .target(Target::builder().address(reply_to.clone()).build())
            .attach(session)
            .await
            .with_context(|| format!("cannot attach a receiver to {node}"))?;
        Ok(Self {
            node: node.to_owned(),
            sender,
            receiver,
            reply_to,
            next_id: 0,
        })
    }

    /// Sends `request` (its application properties name the operation) and returns the reply,
    /// an error when its status is not 2xx.
    pub(crate) async fn call(
        &mut self,
        mut request: Message<AmqpValue<Value>>,
    ) -> anyhow::Result<Message<Body<Value>>> {
        let id = MessageId::Ulong(self.next_id);
        self.next_id += 1;
        let properties = request.properties.get_or_insert_with(Properties::default);
        properties.message_id = Some(id.clone());
        properties.reply_to = Some(self.reply_to.clone());
        let node = self.node.clone();
        let outcome = self
            .sender
            .send(request)
            .await
            .with_context(|| format!("cannot send a request to {node}"))?;
        if !outcome.is_accepted() {
            bail!("{node} did not accept the request: {outcome:?}");
        }
        let reply = tokio::time::timeout(REPLY_TIMEOUT, async {
            loop {
                let delivery = self
                    .receiver
                    .recv::<Body<Value>>()
                    .await
                    .with_context(|| format!("no reply from {node}"))?;
                self.receiver
                    .accept(&delivery)
                    .await
                    .with_context(|| format!("cannot settle the reply from {node}"))?;
                let message = delivery.into_message();
                let correlation = message
                    .properties
                    .as_ref()
                    .and_then(|p| p.correlation_id.clone());
                if correlation.as_ref() == Some(&id) {
                    return anyhow::Ok(message);
                }
            }
        })
        .await
        .map_err(|_| anyhow!("{node} did not answer within {}s", REPLY_TIMEOUT.as_secs()))??;
        let status = reply_status(&reply);
        match status.code {
            Some(200..=299) => Ok(reply),
            code => bail!(
                "{node} refused the request: status {}{}",
                code.map_or("none".to_owned(), |c| c.to_string()),
                status
                    .description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        }
    }

    /// Detaches both links.
    pub(crate) async fn close(self) {
        let _ = self.sender.close().await;
        let _ = self.receiver.close().await;
    }
}

/// The status a node's reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) code: Option<i64>,
    pub(crate) description: Option<String>,
}

/// Reads `status-code` (any AMQP integer; older nodes spell it `statusCode`) and
/// `status-description`.
pub(crate) fn reply_status<B>(reply: &Message<B>) -> Status {
    let empty = OrderedMap::new();
    let props = reply
        .application_properties
        .as_ref()
        .map_or(&empty, |p| &p.0);
    let get = |a: &str, b: &str| props.get(a).or_else(|| props.get(b)).cloned();
    let code = get("status-code", "statusCode").and_then(|v| match v {
        SimpleValue::Int(n) => Some(i64::from(n)),
        SimpleValue::Long(n) => Some(n),
        SimpleValue::Uint(n) => Some(i64::from(n)),
        SimpleValue::Ulong(n) => i64::try_from(n).ok(),
        SimpleValue::Short(n) => Some(i64::from(n)),
        SimpleValue::Ushort(n) => Some(i64::from(n)),
        SimpleValue::String(s) => s.parse().ok(),
        _ => None,
    });
    let description = get("status-description", "statusDescription").and_then(|v| match v {
        SimpleValue::String(s) => Some(s),
        SimpleValue::Symbol(s) => Some(s.as_str().to_owned()),
        _ => None,
    });
    Status { code, description }
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::messaging::ApplicationProperties;

    use super::*;

    fn reply(props: ApplicationProperties) -> Message<AmqpValue<Value>> {
        Message::builder()
            .application_properties(props)
            .value(Value::Null)
            .build()
    }

    #[test]
    fn status_codes_of_any_integer_type() {
        let r = reply(
            ApplicationProperties::builder()
                .insert("status-code", SimpleValue::Int(202))
                .insert("status-description", "Accepted")
                .build(),
        );
        assert_eq!(
            reply_status(&r),
            Status {
                code: Some(202),
                description: Some("Accepted".into())
            }
        );
        let r = reply(
            ApplicationProperties::builder()
                .insert("statusCode", SimpleValue::Long(401))
                .build(),
        );
        assert_eq!(reply_status(&r).code, Some(401));
        assert_eq!(
            reply_status(&Message::builder().value(Value::Null).build()).code,
            None
        );
    }
}
