//! `iothub hub enrollment …` and `iothub hub enrollment-group …`: the local emulator's DPS
//! enrollments (docs/protocol.md §9).
//!
//! Like `hub identity`, these open the emulator's SQLite database (`<data dir>/hub.db`)
//! directly only when no emulator owns the data dir (`owner`); with one running they go
//! through its enrollment endpoints (`enrollment_remote`), so two processes never write the
//! database.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use iothub_emulator::hub::provisioning::{self, DpsError, Enrollment, EnrollmentKind};
use iothub_emulator::store::Store;
use iothub_emulator::store::registry;
use iothub_emulator::timestamp::iso8601_millis;
use serde_json::{Value, json};

use crate::args::{EnrollmentArgs, EnrollmentCommand, HubService};
use crate::cmd::Global;

/// Runs an enrollment (`kind` Individual) or enrollment-group (`kind` Group) subcommand.
pub(crate) fn run(
    service: &HubService,
    kind: EnrollmentKind,
    args: &EnrollmentArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    if service.hub_connection_string.is_some() {
        bail!(
            "enrollments live in the local emulator's data dir; --hub-connection-string does not apply"
        );
    }
    let dir = match &service.data_dir {
        Some(d) => d.clone(),
        None => crate::cmd::emulator_data_dir()?,
    };
    let db = dir.join("hub.db");
    let store = Store::open(&db)
        .with_context(|| format!("cannot open the emulator database {}", db.display()))?;
    let (scope, host) = store
        .call_blocking(|tx| {
            let scope = provisioning::id_scope(tx).map_err(store_error)?;
            Ok((scope, registry::setting(tx, "host_name")?))
        })
        .context("cannot read the DPS settings")?;
    let printer = Printer {
        kind,
        scope,
        host: host.unwrap_or_else(|| "localhost".into()),
        global,
    };
    match &args.command {
        EnrollmentCommand::Create(a) => {
            let (id, key, secondary) = (a.id.clone(), a.key.clone(), a.secondary_key.clone());
            let disabled = a.disabled;
            let created = store
                .call_blocking(move |tx| {
                    let now = SystemTime::now();
                    let created = provisioning::create_enrollment(
                        tx,
                        kind,
                        &id,
                        key.as_deref(),
                        secondary.as_deref(),
                        now,
                    );
                    if let (Ok(_), true) = (&created, disabled) {
                        provisioning::set_enrollment_enabled(tx, kind, &id, false, now)
                            .map_err(store_error)?;
                    }
                    Ok(created.map(|_| provisioning::enrollment(tx, kind, &id)))
                })
                .context("cannot write the enrollments")?;
            let enrollment = match created {
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => bail!("the new enrollment {} vanished", a.id),
                Ok(Err(e)) | Err(e) => return Err(explain(e, &printer, &a.id)),
            };
            printer.print(&enrollment);
            Ok(ExitCode::SUCCESS)
        }
        EnrollmentCommand::List => {
            let all = store
                .call_blocking(move |tx| Ok(provisioning::enrollments(tx, kind)))
                .context("cannot read the enrollments")?
                .context("cannot read the enrollments")?;
            if global.json {
                let list: Vec<Value> = all.iter().map(|e| printer.to_json(e)).collect();
                println!("{}", Value::Array(list));
            } else {
                for e in &all {
                    println!(
                        "{}\t{}",
                        e.id,
                        if e.enabled { "enabled" } else { "disabled" }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EnrollmentCommand::Show(t) => {
            let id = t.id.clone();
            let found = store
                .call_blocking(move |tx| Ok(provisioning::enrollment(tx, kind, &id)))
                .context("cannot read the enrollments")?
                .context("cannot read the enrollments")?;
            let Some(e) = found else {
                eprintln!("{} {} not found", printer.noun(), t.id);
                return Ok(ExitCode::from(1));
            };
            printer.print(&e);
            Ok(ExitCode::SUCCESS)
        }
        EnrollmentCommand::Delete(t)
        | EnrollmentCommand::Enable(t)
        | EnrollmentCommand::Disable(t) => {
            let id = t.id.clone();
            let change = match &args.command {
                EnrollmentCommand::Delete(_) => None,
                EnrollmentCommand::Enable(_) => Some(true),
                _ => Some(false),
            };
            let done = store
                .call_blocking(move |tx| {
                    Ok(match change {
                        None => provisioning::delete_enrollment(tx, kind, &id),
                        Some(enabled) => provisioning::set_enrollment_enabled(
                            tx,
                            kind,
                            &id,
                            enabled,
                            SystemTime::now(),
                        ),
                    })
                })
                .context("cannot write the enrollments")?;
            match done {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(DpsError::NotFound) => {
                    eprintln!("{} {} not found", printer.noun(), t.id);
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e).context("cannot change the enrollment"),
            }
        }
    }
}

/// What every printout needs.
struct Printer {
    kind: EnrollmentKind,
    scope: String,
    host: String,
    global: Global,
}

impl Printer {
    fn noun(&self) -> &'static str {
        match self.kind {
            EnrollmentKind::Individual => "enrollment",
            EnrollmentKind::Group => "enrollment group",
        }
    }

    /// The enrollment as JSON, in the DPS service API's field names where one exists.
    fn to_json(&self, e: &Enrollment) -> Value {
        let id_field = match self.kind {
            EnrollmentKind::Individual => "registrationId",
            EnrollmentKind::Group => "enrollmentGroupId",
        };
        json!({
            id_field: e.id,
            "idScope": self.scope,
            "provisioningHost": self.host,
            "attestation": {
                "type": "symmetricKey",
                "symmetricKey": { "primaryKey": e.primary_key, "secondaryKey": e.secondary_key },
            },
            "provisioningStatus": if e.enabled { "enabled" } else { "disabled" },
            "createdDateTimeUtc": iso8601_millis(e.created),
            "lastUpdatedDateTimeUtc": iso8601_millis(e.updated),
        })
    }

    fn print(&self, e: &Enrollment) {
        if self.global.json {
            println!("{}", self.to_json(e));
            return;
        }
        let status = if e.enabled { "enabled" } else { "disabled" };
        println!("idScope: {}", self.scope);
        println!("provisioningHost: {}", self.host);
        match self.kind {
            EnrollmentKind::Individual => println!("registrationId: {}", e.id),
            EnrollmentKind::Group => println!("enrollmentGroupId: {}", e.id),
        }
        println!("primaryKey: {}", e.primary_key);
        println!("secondaryKey: {}", e.secondary_key);
        println!("status: {status}");
        if self.kind == EnrollmentKind::Group {
            eprintln!(
                "devices of this group use derived keys: iothub sas --derive-key --group-key {} --registration-id <ID>",
                e.primary_key
            );
        }
    }
}

fn explain(e: DpsError, printer: &Printer, id: &str) -> anyhow::Error {
    match e {
        DpsError::AlreadyExists => anyhow::anyhow!("{} {id} already exists", printer.noun()),
        DpsError::InvalidId => anyhow::anyhow!(
            "invalid id {id:?}: 1-128 ASCII letters, digits and - . _ :, starting and ending with a letter or digit"
        ),
        DpsError::InvalidKey => anyhow::anyhow!("invalid key: base64 of 16 to 64 bytes expected"),
        other => anyhow::Error::new(other).context("cannot create the enrollment"),
    }
}

fn store_error(e: DpsError) -> iothub_emulator::store::StoreError {
    match e {
        DpsError::Store(e) => e.into(),
        _ => iothub_emulator::store::StoreError::Corrupt("unexpected enrollment error"),
    }
}
