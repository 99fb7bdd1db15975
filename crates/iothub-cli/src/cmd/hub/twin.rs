//! `iothub hub twin show|update DEVICE`: `GET` / `PATCH /twins/{id}` (docs/protocol.md §10
//! "Twins"). Update merges (`null` deletes) and prints the resulting twin.

use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::service::{ServiceClient, segment};
use crate::args::{TwinArgs, TwinCommand, TwinTarget};
use crate::cmd::Global;

pub(crate) async fn run(
    client: &ServiceClient,
    args: &TwinArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    let twin = match &args.command {
        TwinCommand::Show(target) => client
            .json(Method::GET, &path(target), None)
            .await
            .with_context(|| format!("reading the twin of {}", target.device))?,
        TwinCommand::Update(update) => {
            let mut patch = json!({});
            if let Some(tags) = &update.tags {
                patch["tags"] = object(tags, "--tags")?;
            }
            if let Some(desired) = &update.desired {
                patch["properties"] = json!({ "desired": object(desired, "--desired")? });
            }
            if patch.as_object().is_some_and(serde_json::Map::is_empty) {
                bail!("nothing to update: give --desired and/or --tags");
            }
            let target = path(&update.target);
            let request = client.send(Method::PATCH, &target, Some(&patch), update.etag.as_deref());
            let response = super::service::checked(request.await?)
                .await
                .with_context(|| format!("updating the twin of {}", update.target.device))?;
            let text = response.text().await.context("cannot read the response")?;
            serde_json::from_str::<Value>(&text).context("the hub answered with invalid JSON")?
        }
    };
    if global.json {
        println!("{twin}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&twin).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn path(target: &TwinTarget) -> String {
    match &target.module {
        Some(m) => format!("/twins/{}/modules/{}", segment(&target.device), segment(m)),
        None => format!("/twins/{}", segment(&target.device)),
    }
}

fn object(text: &str, flag: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(text).with_context(|| format!("{flag} is not JSON"))?;
    if !v.is_object() {
        bail!("{flag} must be a JSON object");
    }
    Ok(v)
}
