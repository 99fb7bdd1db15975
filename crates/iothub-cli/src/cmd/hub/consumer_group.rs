//! `iothub hub consumer-group create|list|delete`: the consumer groups of the emulator's
//! Event Hub-compatible endpoint, through a running emulator's REST API (docs/rest-api.md,
//! `/eventHub/consumerGroups`, an extension of this emulator: a real hub manages them
//! through Azure Resource Manager), or in `hub.db` when no emulator owns the data dir (the
//! hub's own rules, `iothub_emulator::hub::consumer_groups`).

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

/// Runs a consumer-group subcommand on `<dir>/hub.db` (no emulator owns the data dir; the
/// caller holds its lock).
pub(crate) fn run_local(
    dir: &std::path::Path,
    args: &ConsumerGroupArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    use iothub_emulator::hub::consumer_groups as rules;
    use iothub_emulator::store::{Store, consumer_groups};
    let db = dir.join("hub.db");
    let store = Store::open(&db)
        .with_context(|| format!("cannot open the emulator database {}", db.display()))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    match &args.command {
        ConsumerGroupCommand::Create { name } => {
            let owned = name.clone();
            store
                .call_blocking(move |tx| Ok(rules::create(tx, &owned, now_ms)))
                .context("cannot write the database")?
                .with_context(|| format!("creating consumer group {name}"))?;
            if global.json {
                println!("{}", serde_json::json!({ "name": name }));
            } else {
                println!("created consumer group {name}");
            }
        }
        ConsumerGroupCommand::List => {
            let names = store
                .call_blocking(|tx| consumer_groups::list(tx))
                .context("cannot read the database")?;
            if global.json {
                let all: Vec<_> = names
                    .iter()
                    .map(|n| serde_json::json!({ "name": n }))
                    .collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                for name in names {
                    println!("{name}");
                }
            }
        }
        ConsumerGroupCommand::Delete { name } => {
            let owned = name.clone();
            store
                .call_blocking(move |tx| Ok(rules::delete(tx, &owned)))
                .context("cannot write the database")?
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
