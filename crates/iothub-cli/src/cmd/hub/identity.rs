//! `iothub hub identity …` without `--hub-connection-string`: the local emulator's identity
//! registry (with one, `identity_remote` talks to any hub's REST API).
//!
//! These commands open the emulator's SQLite database (`<data dir>/hub.db`) directly, and
//! only when no emulator owns the data dir (`owner`): with one running, the same commands go
//! through its REST API (`identity_remote`), so two processes never write the database.

use std::process::ExitCode;

use anyhow::{Context, bail};
use iothub_emulator::hub::registry::{self as reg, NewIdentity, RegistryError};
use iothub_emulator::store::registry::{self, Authentication, IdentityRecord};
use iothub_emulator::store::{Store, StoreError};

use crate::args::{HubService, IdentityArgs, IdentityCommand};
use crate::cmd::Global;

/// Runs an identity subcommand.
pub(crate) fn run(
    service: &HubService,
    args: &IdentityArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    let dir = match &service.data_dir {
        Some(d) => d.clone(),
        None => crate::cmd::emulator_data_dir()?,
    };
    let db = dir.join("hub.db");
    let store = Store::open(&db)
        .with_context(|| format!("cannot open the emulator database {}", db.display()))?;
    // The emulator records its primary host name at start-up; connection strings use it.
    let host = store
        .call_blocking(|tx| registry::setting(tx, "host_name"))
        .context("cannot read the registry")?
        .unwrap_or_else(|| "localhost".into());
    match &args.command {
        IdentityCommand::Create(a) => {
            let new = NewIdentity {
                device_id: a.target.device_id.clone(),
                module_id: a.target.module.clone(),
                primary_key: a.primary_key.clone(),
                secondary_key: a.secondary_key.clone(),
                x509_thumbprint: a.x509_thumbprint.clone(),
                disabled: a.disabled,
            };
            let now = now_ms();
            let created = store
                .call_blocking(move |tx| {
                    reg::ensure_policies(tx)?;
                    Ok(reg::create(tx, new, now))
                })
                .context("cannot write the registry")?;
            let record = match created {
                Ok(r) => r,
                Err(RegistryError::AlreadyExists) => bail!(
                    "identity {} already exists",
                    who(&a.target.device_id, a.target.module.as_deref())
                ),
                Err(RegistryError::NotFound) => bail!(
                    "device {} does not exist (create it before its modules)",
                    a.target.device_id
                ),
                Err(e) => return Err(e).context("cannot create the identity"),
            };
            print_record(&record, &host, global, true);
            Ok(ExitCode::SUCCESS)
        }
        IdentityCommand::List => {
            let all = store
                .call_blocking(|tx| registry::list(tx))
                .context("cannot read the registry")?;
            if global.json {
                let v: Vec<_> = all.iter().map(reg::to_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for r in &all {
                    println!(
                        "{}\t{}\t{}",
                        who(&r.device_id, r.module_id.as_deref()),
                        r.status.as_str(),
                        r.authentication.type_name()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        IdentityCommand::Show(t) => {
            let Some(record) = find(&store, &t.device_id, t.module.as_deref())? else {
                eprintln!(
                    "identity {} not found",
                    who(&t.device_id, t.module.as_deref())
                );
                return Ok(ExitCode::from(1));
            };
            let mut v = reg::to_json(&record);
            v["connectionString"] =
                serde_json::Value::String(reg::connection_string(&record, &host));
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        IdentityCommand::Delete(t) => {
            let (d, m) = (t.device_id.clone(), t.module.clone());
            let n = store
                .call_blocking(move |tx| registry::delete(tx, &d, m.as_deref()))
                .context("cannot write the registry")?;
            if n == 0 {
                eprintln!(
                    "identity {} not found",
                    who(&t.device_id, t.module.as_deref())
                );
                return Ok(ExitCode::from(1));
            }
            if global.json {
                println!("{}", serde_json::json!({ "deleted": n }));
            }
            Ok(ExitCode::SUCCESS)
        }
        IdentityCommand::ConnectionString(t) => {
            let Some(record) = find(&store, &t.device_id, t.module.as_deref())? else {
                eprintln!(
                    "identity {} not found",
                    who(&t.device_id, t.module.as_deref())
                );
                return Ok(ExitCode::from(1));
            };
            print_record(&record, &host, global, false);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_record(record: &IdentityRecord, host: &str, global: Global, full: bool) {
    let cs = reg::connection_string(record, host);
    if global.json {
        let mut v = if full {
            reg::to_json(record)
        } else {
            serde_json::json!({})
        };
        v["connectionString"] = serde_json::Value::String(cs);
        println!("{v}");
    } else {
        if matches!(record.authentication, Authentication::SelfSigned { .. }) && full {
            eprintln!(
                "X.509 identity: connect with the certificate whose thumbprint you registered"
            );
        }
        println!("{cs}");
    }
}

fn find(
    store: &Store,
    device: &str,
    module: Option<&str>,
) -> anyhow::Result<Option<IdentityRecord>> {
    let (d, m) = (device.to_string(), module.map(str::to_string));
    store
        .call_blocking(move |tx| registry::find(tx, &d, m.as_deref()))
        .map_err(|e: StoreError| anyhow::Error::new(e))
        .context("cannot read the registry")
}

fn who(device: &str, module: Option<&str>) -> String {
    match module {
        Some(m) => format!("{device}/{m}"),
        None => device.to_string(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
