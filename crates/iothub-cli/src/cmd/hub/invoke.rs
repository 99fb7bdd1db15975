//! `iothub hub invoke DEVICE METHOD`: `POST /twins/{id}/methods` (docs/protocol.md §7 "Service
//! side"); prints `{"status":…,"payload":…}` and exits 1 when the device's status is not 2xx.

use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::service::{ServiceClient, segment};
use crate::args::InvokeArgs;
use crate::cmd::Global;

pub(crate) async fn run(
    client: &ServiceClient,
    args: &InvokeArgs,
    _global: Global,
) -> anyhow::Result<ExitCode> {
    let payload: Value = serde_json::from_str(&args.payload).context("--payload is not JSON")?;
    let mut path = format!("/twins/{}", segment(&args.device));
    if let Some(m) = &args.module {
        path.push_str(&format!("/modules/{}", segment(m)));
    }
    path.push_str("/methods");
    let body = json!({
        "methodName": args.method,
        "payload": payload,
        "responseTimeoutInSeconds": args.timeout,
        "connectTimeoutInSeconds": args.connect_timeout,
    });
    let answer = client
        .json(Method::POST, &path, Some(&body))
        .await
        .with_context(|| format!("invoking {} on {}", args.method, args.device))?;
    println!("{answer}");
    let status = answer["status"]
        .as_i64()
        .context("the answer has no numeric status")?;
    Ok(if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
