//! Reading events as back ends do (docs/amqp.md "Redirect", "Receiving events"): ask the IoT
//! Hub host for `messages/events`, follow its `amqp:link:redirect` to the Event Hub-compatible
//! endpoint, read the partition ids from `$management`, and attach one receiver per partition
//! (or the one `--partition`), all starting at the same position.

use anyhow::{Context, bail};
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::link::{Receiver, ReceiverAttachError};
use fe2o3_amqp::types::messaging::{Body, Message};
use fe2o3_amqp::types::primitives::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::connect::Client;
use super::endpoint::Endpoint;
use super::filter::Start;
use super::ids::uuid_v4;
use super::management::{partition_ids, read_event_hub};
use super::redirect::{Redirect, parse_redirect};
use super::request::RequestLink;

/// Credit each partition receiver keeps open (the Event Hubs SDKs prefetch about 300).
const PREFETCH: u32 = 300;

/// What to read.
#[derive(Debug, Clone)]
pub(crate) struct EventOptions {
    /// The consumer group (`$Default` always exists).
    pub(crate) consumer_group: String,
    /// Only this partition.
    pub(crate) partition: Option<String>,
    /// Where every receiver starts.
    pub(crate) start: Start,
}

/// Receivers on every chosen partition of the Event Hub-compatible endpoint.
#[derive(Debug)]
pub(crate) struct EventStream {
    client: Client,
    /// The audience of the Event Hub token (for renewal).
    audience: String,
    events: mpsc::Receiver<anyhow::Result<Message<Body<Value>>>>,
    tasks: JoinSet<()>,
}

impl EventStream {
    /// Connects through the hub's redirect and attaches the partition receivers.
    pub(crate) async fn open(endpoint: &Endpoint, options: &EventOptions) -> anyhow::Result<Self> {
        let redirect = find_event_hub(endpoint, &options.consumer_group).await?;
        let mut client = Client::connect(endpoint, &redirect.hostname, redirect.port).await?;
        let audience = format!("sb://{}/{}", redirect.hostname, redirect.event_hub);
        client
            .authorize(&audience, &endpoint.token(&audience)?)
            .await?;
        let mut management = RequestLink::attach(&mut client.session, "$management").await?;
        let reply = management
            .call(read_event_hub(&redirect.event_hub))
            .await
            .context("cannot read the Event Hub's partitions")?;
        let all = partition_ids(&reply)?;
        management.close().await;
        let partitions = match &options.partition {
            Some(p) if all.contains(p) => vec![p.clone()],
            Some(p) => bail!(
                "there is no partition {p:?}: the Event Hub has {}",
                all.join(", ")
            ),
            None => all,
        };
        let (tx, events) = mpsc::channel(PREFETCH as usize);
        let mut tasks = JoinSet::new();
        let suffix = uuid_v4()?;
        for id in &partitions {
            let address = format!(
                "amqps://{}/{}/ConsumerGroups/{}/Partitions/{id}",
                redirect.hostname, redirect.event_hub, options.consumer_group
            );
            let receiver = Receiver::builder()
                .name(format!("iothub-monitor-{id}-{suffix}"))
                .source(options.start.source(&address))
                .credit_mode(CreditMode::Auto(PREFETCH))
                .auto_accept(true)
                .attach(&mut client.session)
                .await
                .map_err(|e| attach_error(e, &address))?;
            tasks.spawn(forward(receiver, id.clone(), tx.clone()));
        }
        Ok(Self {
            client,
            audience,
            events,
            tasks,
        })
    }

    /// The next event; an error when a partition link failed.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Message<Body<Value>>> {
        match self.events.recv().await {
            Some(event) => event,
            None => bail!("every partition receiver stopped"),
        }
    }

    /// Puts a fresh token on `$cbs` before the current one expires.
    pub(crate) async fn renew(&mut self, endpoint: &Endpoint) -> anyhow::Result<()> {
        let token = endpoint.token(&self.audience)?;
        self.client.authorize(&self.audience, &token).await
    }

    /// Detaches the receivers and closes the connection.
    pub(crate) async fn close(mut self) {
        self.tasks.abort_all();
        self.client.close().await;
    }
}

/// Asks the IoT Hub host where its events are: a receiver on
/// `messages/events/ConsumerGroups/{group}/Partitions/0` that the hub detaches with a redirect.
async fn find_event_hub(endpoint: &Endpoint, consumer_group: &str) -> anyhow::Result<Redirect> {
    let mut hub = Client::connect(endpoint, &endpoint.host, endpoint.port).await?;
    hub.authorize(&endpoint.host, &endpoint.token(&endpoint.host)?)
        .await?;
    let address = format!(
        "amqps://{}/messages/events/ConsumerGroups/{consumer_group}/Partitions/0",
        endpoint.host
    );
    let attached = Receiver::builder()
        .name(format!("iothub-redirect-{}", uuid_v4()?))
        .source(address.clone())
        .attach(&mut hub.session)
        .await;
    let redirect = match attached {
        Err(ReceiverAttachError::RemoteClosedWithError(error)) => {
            parse_redirect(&error).map_err(anyhow::Error::from)
        }
        Ok(receiver) => {
            let _ = receiver.close().await;
            Err(anyhow::anyhow!(
                "{} did not redirect {address} to an Event Hub-compatible endpoint",
                endpoint.host
            ))
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("cannot attach to {address}"))),
    };
    hub.close().await;
    redirect
}

fn attach_error(e: ReceiverAttachError, address: &str) -> anyhow::Error {
    match e {
        ReceiverAttachError::RemoteClosedWithError(error) => anyhow::anyhow!(
            "the Event Hub refused {address}: {}{}",
            super::redirect::condition_name(&error.condition),
            error
                .description
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        other => anyhow::Error::from(other).context(format!("cannot attach to {address}")),
    }
}

/// Hands a partition's events to the stream until its link fails.
async fn forward(
    mut receiver: Receiver,
    partition: String,
    tx: mpsc::Sender<anyhow::Result<Message<Body<Value>>>>,
) {
    loop {
        let event = receiver
            .recv::<Body<Value>>()
            .await
            .map(|d| d.into_message())
            .with_context(|| format!("partition {partition} stopped"));
        let failed = event.is_err();
        if tx.send(event).await.is_err() || failed {
            break;
        }
    }
    let _ = receiver.close().await;
}
