//! `iothub hub identity … --hub-connection-string CS`: the same commands against any hub's
//! registry REST API (docs/protocol.md §10 "Registry", docs/rest-api.md), e.g. a real IoT Hub.
//!
//! Keys are generated here when not given, so creation does not depend on the hub filling them
//! in (unconfirmed for real hubs). Deletion sends `If-Match: *`, which real hubs require.

use std::process::ExitCode;

use anyhow::Context;
use iothub_emulator::hub::registry::generate_key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::service::{ServiceClient, checked, segment};
use crate::args::{IdentityArgs, IdentityCommand, IdentityTarget};
use crate::cmd::Global;

/// Runs an identity subcommand against the hub's REST API.
pub(crate) async fn run(
    client: &ServiceClient,
    args: &IdentityArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    match &args.command {
        IdentityCommand::Create(a) => {
            let t = &a.target;
            let authentication = match &a.x509_thumbprint {
                Some(thumbprint) => json!({
                    "type": "selfSigned",
                    "x509Thumbprint": {"primaryThumbprint": thumbprint, "secondaryThumbprint": null},
                }),
                None => json!({
                    "type": "sas",
                    "symmetricKey": {
                        "primaryKey": a.primary_key.clone().unwrap_or_else(generate_key),
                        "secondaryKey": a.secondary_key.clone().unwrap_or_else(generate_key),
                    },
                }),
            };
            let mut body = json!({
                "deviceId": t.device_id,
                "status": if a.disabled { "disabled" } else { "enabled" },
                "authentication": authentication,
            });
            if let Some(m) = &t.module {
                body["moduleId"] = json!(m);
            }
            let created = client
                .json(Method::PUT, &path(t), Some(&body))
                .await
                .with_context(|| format!("creating {}", who(t)))?;
            print_identity(client, &created, global, true);
            Ok(ExitCode::SUCCESS)
        }
        IdentityCommand::List => {
            let all = client
                .json(Method::GET, "/devices", None)
                .await
                .context("listing devices")?;
            let all = all.as_array().cloned().unwrap_or_default();
            if global.json {
                println!("{}", Value::Array(all));
            } else {
                for d in &all {
                    println!(
                        "{}\t{}\t{}",
                        d["deviceId"].as_str().unwrap_or_default(),
                        d["status"].as_str().unwrap_or_default(),
                        d["authentication"]["type"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        IdentityCommand::Show(t) => match fetch(client, t).await? {
            Some(mut identity) => {
                identity["connectionString"] = json!(connection_string(client, &identity));
                println!(
                    "{}",
                    serde_json::to_string_pretty(&identity).unwrap_or_default()
                );
                Ok(ExitCode::SUCCESS)
            }
            None => not_found(t),
        },
        IdentityCommand::ConnectionString(t) => match fetch(client, t).await? {
            Some(identity) => {
                print_identity(client, &identity, global, false);
                Ok(ExitCode::SUCCESS)
            }
            None => not_found(t),
        },
        IdentityCommand::Delete(t) => {
            let response = client
                .send(Method::DELETE, &path(t), None, Some("*"))
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return not_found(t);
            }
            checked(response)
                .await
                .with_context(|| format!("deleting {}", who(t)))?;
            if global.json {
                println!("{}", json!({ "deleted": 1 }));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `GET` one identity; `None` when the hub answers 404.
async fn fetch(client: &ServiceClient, t: &IdentityTarget) -> anyhow::Result<Option<Value>> {
    let response = client.send(Method::GET, &path(t), None, None).await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let response = checked(response)
        .await
        .with_context(|| format!("reading {}", who(t)))?;
    let text = response.text().await.context("cannot read the response")?;
    let identity = serde_json::from_str(&text)
        .with_context(|| format!("the hub answered with invalid JSON: {text}"))?;
    Ok(Some(identity))
}

/// The identity's device (or module) connection string on this hub (docs/protocol.md §3).
fn connection_string(client: &ServiceClient, identity: &Value) -> String {
    let mut cs = format!(
        "HostName={};DeviceId={}",
        client.host(),
        identity["deviceId"].as_str().unwrap_or_default()
    );
    if let Some(m) = identity["moduleId"].as_str().filter(|m| !m.is_empty()) {
        cs.push_str(&format!(";ModuleId={m}"));
    }
    match identity["authentication"]["symmetricKey"]["primaryKey"].as_str() {
        Some(key) if identity["authentication"]["type"] == "sas" => {
            cs.push_str(&format!(";SharedAccessKey={key}"));
        }
        _ => cs.push_str(";x509=true"),
    }
    cs
}

fn print_identity(client: &ServiceClient, identity: &Value, global: Global, full: bool) {
    let cs = connection_string(client, identity);
    if global.json {
        let mut v = if full { identity.clone() } else { json!({}) };
        v["connectionString"] = json!(cs);
        println!("{v}");
    } else {
        println!("{cs}");
    }
}

fn path(t: &IdentityTarget) -> String {
    match &t.module {
        Some(m) => format!("/devices/{}/modules/{}", segment(&t.device_id), segment(m)),
        None => format!("/devices/{}", segment(&t.device_id)),
    }
}

fn who(t: &IdentityTarget) -> String {
    match &t.module {
        Some(m) => format!("{}/{m}", t.device_id),
        None => t.device_id.clone(),
    }
}

fn not_found(t: &IdentityTarget) -> anyhow::Result<ExitCode> {
    eprintln!("identity {} not found", who(t));
    Ok(ExitCode::from(1))
}
