//! `iothub hub c2d DEVICE MESSAGE`: sends a cloud-to-device message over AMQP to
//! `/messages/devicebound` as the service SDKs do (docs/amqp.md "Cloud-to-device"), to the
//! local emulator or any hub. With `--wait` it first attaches a receiver on
//! `/messages/servicebound/feedback`, then waits for the record whose `originalMessageId` is
//! the message's, accepts that feedback message and prints the record.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::{Body, Outcome};
use fe2o3_amqp::types::primitives::Value;
use serde_json::{Value as Json, json};

use crate::amqp::c2d::{Ack, C2dRequest, DEVICEBOUND, c2d_message, parse_properties};
use crate::amqp::connect::Client;
use crate::amqp::endpoint::Endpoint;
use crate::amqp::feedback::{FEEDBACK, body_bytes, describe, is_success, record_for};
use crate::amqp::ids::uuid_v4;
use crate::amqp::redirect::condition_name;
use crate::args::{C2dArgs, HubService};
use crate::cmd::Global;

pub(crate) async fn run(
    service: &HubService,
    args: &C2dArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    let ack = args.ack.as_deref().map(Ack::parse).transpose()?;
    if args.wait && matches!(ack, None | Some(Ack::None)) {
        bail!(
            "--wait needs --ack positive, negative or full: without it the hub sends no feedback"
        );
    }
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        bail!("--timeout must be a non-negative number of seconds");
    }
    let request = C2dRequest {
        device: args.device.clone(),
        body: args.message.clone().into_bytes(),
        message_id: match &args.message_id {
            Some(id) => id.clone(),
            None => uuid_v4()?,
        },
        correlation_id: args.correlation_id.clone(),
        content_type: args.content_type.clone(),
        content_encoding: args.content_encoding.clone(),
        ack,
        ttl_secs: args.ttl,
        properties: parse_properties(&args.properties)?,
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let message = c2d_message(&request, now_ms)?;

    let endpoint = Endpoint::resolve(service)?;
    let mut client = Client::connect(&endpoint, &endpoint.host, endpoint.port).await?;
    let result = async {
        client
            .authorize(&endpoint.host, &endpoint.token(&endpoint.host)?)
            .await?;
        let suffix = uuid_v4()?;
        // Attached before sending, so a quick device's feedback cannot be missed.
        let mut feedback = if args.wait {
            let receiver = Receiver::builder()
                .name(format!("iothub-feedback-{suffix}"))
                .source(FEEDBACK)
                .attach(&mut client.session)
                .await
                .with_context(|| format!("cannot receive feedback from {FEEDBACK}"))?;
            Some(receiver)
        } else {
            None
        };
        let mut sender = Sender::builder()
            .name(format!("iothub-c2d-{suffix}"))
            .target(DEVICEBOUND)
            .attach(&mut client.session)
            .await
            .with_context(|| format!("cannot send to {DEVICEBOUND}"))?;
        let outcome = sender
            .send(message)
            .await
            .with_context(|| format!("sending a C2D message to {}", request.device))?;
        let _ = sender.close().await;
        check_outcome(outcome, &request.device)?;
        let Some(receiver) = feedback.as_mut() else {
            println!("{}", json!({ "messageId": request.message_id }));
            return Ok(ExitCode::SUCCESS);
        };
        let wait = Duration::from_secs_f64(args.timeout);
        let mut held = Vec::new();
        let found = tokio::time::timeout(
            wait,
            wait_for_record(receiver, &request.message_id, &mut held),
        )
        .await;
        if !held.is_empty() {
            let _ = receiver.release_all(held).await;
        }
        let code = match found {
            Ok(record) => {
                let record = record?;
                if global.json {
                    println!("{record}");
                } else {
                    println!("{}", describe(&record));
                }
                if is_success(&record) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(_) => {
                eprintln!(
                    "no feedback for message {} within {}s (sent to {})",
                    request.message_id, args.timeout, request.device
                );
                ExitCode::from(1)
            }
        };
        if let Some(receiver) = feedback {
            let _ = receiver.close().await;
        }
        Ok(code)
    }
    .await;
    client.close().await;
    result
}

/// Anything but `accepted` is the hub's refusal (docs/amqp.md "Cloud-to-device": unknown
/// device, queue full, too large, bad `to`).
fn check_outcome(outcome: Outcome, device: &str) -> anyhow::Result<()> {
    match outcome {
        Outcome::Accepted(_) => Ok(()),
        Outcome::Rejected(rejected) => match rejected.error {
            Some(e) => bail!(
                "the hub rejected the message for {device}: {}{}",
                condition_name(&e.condition),
                e.description.map(|d| format!(": {d}")).unwrap_or_default()
            ),
            None => bail!("the hub rejected the message for {device}"),
        },
        other => bail!("the hub did not accept the message for {device}: {other:?}"),
    }
}

/// Receives feedback messages until one holds the record of `message_id` and accepts that
/// one. The others stay unsettled in `held` (another service may be waiting for them): the
/// caller releases them back to the hub when done, so they are not redelivered to this loop.
async fn wait_for_record(
    receiver: &mut Receiver,
    message_id: &str,
    held: &mut Vec<DeliveryInfo>,
) -> anyhow::Result<Json> {
    loop {
        let delivery = receiver
            .recv::<Body<Value>>()
            .await
            .context("the feedback link stopped")?;
        let record = body_bytes(delivery.message())
            .and_then(|body| record_for(&body, message_id))
            .unwrap_or_else(|e| {
                eprintln!("skipping a feedback message: {e:#}");
                None
            });
        match record {
            Some(record) => {
                receiver
                    .accept(&delivery)
                    .await
                    .context("cannot complete the feedback message")?;
                return Ok(record);
            }
            None => held.push(DeliveryInfo::from(delivery)),
        }
    }
}
