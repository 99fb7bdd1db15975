//! `iothub hub c2d DEVICE MESSAGE`: queues a cloud-to-device message through the emulator's
//! `POST /messages/devicebound` (an emulator extension: real hubs take C2D over AMQP only,
//! so against a real hub this command fails with the hub's answer).

use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::service::ServiceClient;
use crate::args::C2dArgs;
use crate::cmd::Global;

pub(crate) async fn run(
    client: &ServiceClient,
    args: &C2dArgs,
    _global: Global,
) -> anyhow::Result<ExitCode> {
    let mut properties = Map::new();
    for p in &args.properties {
        let Some((k, v)) = p.split_once('=') else {
            bail!("property {p:?} is not key=value");
        };
        properties.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    let mut body = json!({
        "deviceId": args.device,
        "payload": args.message,
        "properties": properties,
    });
    let optional = [
        ("ack", &args.ack),
        ("messageId", &args.message_id),
        ("correlationId", &args.correlation_id),
        ("contentType", &args.content_type),
        ("contentEncoding", &args.content_encoding),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            body[key] = Value::String(v.clone());
        }
    }
    if let Some(ttl) = args.ttl {
        body["ttlSeconds"] = json!(ttl);
    }
    let answer = client
        .json(Method::POST, "/messages/devicebound", Some(&body))
        .await
        .with_context(|| format!("sending a C2D message to {}", args.device))?;
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}
