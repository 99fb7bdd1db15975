//! `iothub hub consumer-group create|list|delete`: the consumer groups of the emulator's
//! Event Hub-compatible endpoint, through its REST API (docs/rest-api.md,
//! `/eventHub/consumerGroups`, an extension of this emulator: a real hub manages them
//! through Azure Resource Manager).

use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;

use super::service::{ServiceClient, segment};
use crate::args::{ConsumerGroupArgs, ConsumerGroupCommand};
use crate::cmd::Global;

/// Runs a consumer-group subcommand against the hub's REST API.
pub(crate) async fn run(
    client: &ServiceClient,
    args: &ConsumerGroupArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    match &args.command {
        ConsumerGroupCommand::Create { name } => {
            let created = client
                .json(Method::PUT, &path(name), None)
                .await
                .with_context(|| format!("creating consumer group {name}"))?;
            if global.json {
                println!("{created}");
            } else {
                println!("created consumer group {name}");
            }
        }
        ConsumerGroupCommand::List => {
            let all = client
                .json(Method::GET, "/eventHub/consumerGroups", None)
                .await
                .context("listing consumer groups")?;
            if global.json {
                println!("{all}");
            } else {
                for group in all.as_array().map(Vec::as_slice).unwrap_or_default() {
                    println!("{}", group["name"].as_str().unwrap_or_default());
                }
            }
        }
        ConsumerGroupCommand::Delete { name } => {
            client
                .json(Method::DELETE, &path(name), None)
                .await
                .with_context(|| format!("deleting consumer group {name}"))?;
            if !global.json {
                println!("deleted consumer group {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn path(name: &str) -> String {
    format!("/eventHub/consumerGroups/{}", segment(name))
}
