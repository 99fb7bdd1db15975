//! `iothub hub enrollment|enrollment-group …` while an emulator owns the data dir: the same
//! commands through its enrollment endpoints (docs/rest-api.md "DPS enrollments"), so the
//! command never writes the database the emulator is writing.

use std::process::ExitCode;

use anyhow::Context;
use iothub_emulator::hub::provisioning::EnrollmentKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::service::{ServiceClient, checked, segment};
use crate::args::{EnrollmentArgs, EnrollmentCommand};
use crate::cmd::Global;

/// Runs an enrollment subcommand against the emulator's REST API.
pub(crate) async fn run(
    client: &ServiceClient,
    kind: EnrollmentKind,
    args: &EnrollmentArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    let (base, noun) = match kind {
        EnrollmentKind::Individual => ("/enrollments", "enrollment"),
        EnrollmentKind::Group => ("/enrollmentGroups", "enrollment group"),
    };
    let one = |id: &str| format!("{base}/{}", segment(id));
    match &args.command {
        EnrollmentCommand::Create(a) => {
            let mut keys = json!({});
            if let Some(k) = &a.key {
                keys["primaryKey"] = json!(k);
            }
            if let Some(k) = &a.secondary_key {
                keys["secondaryKey"] = json!(k);
            }
            let body = json!({
                "attestation": { "type": "symmetricKey", "symmetricKey": keys },
                "provisioningStatus": if a.disabled { "disabled" } else { "enabled" },
            });
            let created = client
                .json(Method::PUT, &one(&a.id), Some(&body))
                .await
                .with_context(|| format!("creating {noun} {}", a.id))?;
            print(kind, &created, global);
            Ok(ExitCode::SUCCESS)
        }
        EnrollmentCommand::List => {
            let all = client
                .json(Method::GET, base, None)
                .await
                .context("listing enrollments")?;
            let all = all.as_array().cloned().unwrap_or_default();
            if global.json {
                println!("{}", Value::Array(all));
            } else {
                for e in &all {
                    println!(
                        "{}\t{}",
                        id_of(kind, e),
                        e["provisioningStatus"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EnrollmentCommand::Show(t) => {
            let response = client.send(Method::GET, &one(&t.id), None, None).await?;
            if response.status() == StatusCode::NOT_FOUND {
                eprintln!("{noun} {} not found", t.id);
                return Ok(ExitCode::from(1));
            }
            let text = checked(response)
                .await?
                .text()
                .await
                .context("cannot read the response")?;
            let e: Value = serde_json::from_str(&text)
                .with_context(|| format!("the emulator answered with invalid JSON: {text}"))?;
            print(kind, &e, global);
            Ok(ExitCode::SUCCESS)
        }
        EnrollmentCommand::Delete(t)
        | EnrollmentCommand::Enable(t)
        | EnrollmentCommand::Disable(t) => {
            let response = match &args.command {
                EnrollmentCommand::Delete(_) => {
                    client
                        .send(Method::DELETE, &one(&t.id), None, Some("*"))
                        .await?
                }
                command => {
                    let enabled = matches!(command, EnrollmentCommand::Enable(_));
                    let body = json!({ "provisioningStatus": if enabled { "enabled" } else { "disabled" } });
                    client
                        .send(Method::PUT, &one(&t.id), Some(&body), Some("*"))
                        .await?
                }
            };
            if response.status() == StatusCode::NOT_FOUND {
                eprintln!("{noun} {} not found", t.id);
                return Ok(ExitCode::from(1));
            }
            checked(response)
                .await
                .with_context(|| format!("changing {noun} {}", t.id))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn id_of(kind: EnrollmentKind, e: &Value) -> &str {
    let field = match kind {
        EnrollmentKind::Individual => "registrationId",
        EnrollmentKind::Group => "enrollmentGroupId",
    };
    e[field].as_str().unwrap_or_default()
}

/// Prints an enrollment as the database path does (`enrollment::Printer`).
fn print(kind: EnrollmentKind, e: &Value, global: Global) {
    if global.json {
        println!("{e}");
        return;
    }
    let text = |f: &str| e[f].as_str().unwrap_or_default().to_owned();
    let key = |f: &str| {
        e["attestation"]["symmetricKey"][f]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    println!("idScope: {}", text("idScope"));
    println!("provisioningHost: {}", text("provisioningHost"));
    match kind {
        EnrollmentKind::Individual => println!("registrationId: {}", id_of(kind, e)),
        EnrollmentKind::Group => println!("enrollmentGroupId: {}", id_of(kind, e)),
    }
    println!("primaryKey: {}", key("primaryKey"));
    println!("secondaryKey: {}", key("secondaryKey"));
    println!("status: {}", text("provisioningStatus"));
    if kind == EnrollmentKind::Group {
        eprintln!(
            "devices of this group use derived keys: iothub sas --derive-key --group-key {} --registration-id <ID>",
            key("primaryKey")
        );
    }
}
