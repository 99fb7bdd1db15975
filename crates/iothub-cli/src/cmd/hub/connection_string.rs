//! `iothub hub connection-string`: the local emulator's service connection string for a
//! policy, or the Event Hub-compatible one (`Endpoint=sb://{eh-host}/;…;EntityPath={name}`)
//! that Event Hubs clients (azure-eventhub, Azure Functions, Stream Analytics) take.
//!
//! Everything comes from the emulator's data dir: `endpoints.json` (written at start-up)
//! names the host, the recorded policy's connection string and, under `amqp`, the Event Hub
//! host, name and ports; another policy's key is read from `hub.db`, opened read-only (the
//! running emulator stays its only writer).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use iothub_proto::connection_string::{ConnectionString, Credential};
use serde_json::{Value, json};

use crate::args::{ConnectionStringArgs, HubService};
use crate::cmd::Global;

/// AMQPS port clients assume when the endpoint names none.
const DEFAULT_TLS_PORT: u64 = 5671;

/// Plain AMQP port clients assume with `UseDevelopmentEmulator=true`.
const DEFAULT_PLAIN_PORT: u64 = 5672;

/// Prints the connection string.
pub(crate) fn run(
    service: &HubService,
    args: &ConnectionStringArgs,
    global: Global,
) -> anyhow::Result<ExitCode> {
    let dir = super::data_dir(service)?;
    let printed = connection_string(&dir, args)?;
    if global.json {
        println!("{}", printed.json);
    } else {
        println!("{}", printed.text);
    }
    Ok(ExitCode::SUCCESS)
}

/// What the command prints.
#[derive(Debug)]
struct Printed {
    text: String,
    json: Value,
}

/// The connection string `args` asks for, from the emulator whose data dir is `dir`.
fn connection_string(dir: &Path, args: &ConnectionStringArgs) -> anyhow::Result<Printed> {
    let path = dir.join("endpoints.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no running emulator found ({} is missing): start `iothub emulator` or pass --data-dir",
            path.display()
        )
    })?;
    let endpoints: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let recorded = endpoints["serviceConnectionString"]
        .as_str()
        .with_context(|| format!("{} has no serviceConnectionString", path.display()))?;
    let parsed = ConnectionString::parse(recorded).map_err(|e| {
        anyhow!(
            "{} has an invalid serviceConnectionString: {e}",
            path.display()
        )
    })?;
    let Credential::ServicePolicyKey { policy, key } = parsed.credential() else {
        bail!(
            "the serviceConnectionString in {} is not a policy's",
            path.display()
        );
    };
    let host = parsed.host_name();
    let key = if policy == args.policy {
        key.to_owned()
    } else {
        policy_key(dir, &args.policy)?
    };

    if !args.default_eventhub {
        let cs = format!(
            "HostName={host};SharedAccessKeyName={};SharedAccessKey={key}",
            args.policy
        );
        return Ok(Printed {
            json: json!({ "policy": args.policy, "connectionString": cs }),
            text: cs,
        });
    }

    let amqp = &endpoints["amqp"];
    let missing = |field: &str| {
        anyhow!(
            "{} has no amqp.{field}: this emulator does not serve the Event Hub-compatible endpoint (AMQP)",
            path.display()
        )
    };
    let eh_host = amqp["eventHubHost"]
        .as_str()
        .ok_or_else(|| missing("eventHubHost"))?;
    let eh_name = amqp["eventHubName"]
        .as_str()
        .ok_or_else(|| missing("eventHubName"))?;
    let (port, default_port) = if args.plain {
        (port_of(&amqp["plainPort"]), DEFAULT_PLAIN_PORT)
    } else {
        (port_of(&amqp["port"]), DEFAULT_TLS_PORT)
    };
    let port = port.ok_or_else(|| missing(if args.plain { "plainPort" } else { "port" }))?;
    let cs = eventhub_connection_string(
        eh_host,
        (port != default_port).then_some(port),
        &args.policy,
        &key,
        eh_name,
        args.plain,
    );
    Ok(Printed {
        json: json!({
            "policy": args.policy,
            "eventHubName": eh_name,
            "endpoint": format!("sb://{}/", authority(eh_host, (port != default_port).then_some(port))),
            "connectionString": cs,
        }),
        text: cs,
    })
}

/// A port recorded as a number or as `"host:port"` text.
fn port_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.rsplit(':').next()?.parse().ok(),
        _ => None,
    }
}

fn authority(host: &str, port: Option<u64>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// `Endpoint=sb://{host}[:port]/;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`, plus
/// `;UseDevelopmentEmulator=true` for the plain port (clients then skip TLS).
fn eventhub_connection_string(
    host: &str,
    port: Option<u64>,
    policy: &str,
    key: &str,
    event_hub: &str,
    plain: bool,
) -> String {
    let mut cs = format!(
        "Endpoint=sb://{}/;SharedAccessKeyName={policy};SharedAccessKey={key};EntityPath={event_hub}",
        authority(host, port)
    );
    if plain {
        cs.push_str(";UseDevelopmentEmulator=true");
    }
    cs
}

/// The primary key of `policy`, read from `hub.db` without taking the data dir's lock: a
/// read-only connection beside the emulator's writer (SQLite WAL allows it).
fn policy_key(dir: &Path, policy: &str) -> anyhow::Result<String> {
    let db = dir.join("hub.db");
    if !db.is_file() {
        bail!(
            "{} is missing (an --in-memory emulator?): only the policy in endpoints.json is available",
            db.display()
        );
    }
    let conn = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} read-only", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .context("cannot configure the database connection")?;
    let found = iothub_emulator::store::registry::policy(&conn, policy)
        .with_context(|| format!("cannot read the policies in {}", db.display()))?;
    match found {
        Some(p) => Ok(p.primary_key),
        None => bail!("no shared access policy named {policy}"),
    }
}

#[cfg(test)]
mod tests {
    use iothub_emulator::hub::registry;
    use iothub_emulator::store::Store;

    use super::*;

    const OWNER_KEY: &str = "b3duZXJvd25lcm93bmVyb3duZXJvd25lcm93bmVyb3duZXI=";

    fn args(policy: &str, default_eventhub: bool, plain: bool) -> ConnectionStringArgs {
        ConnectionStringArgs {
            policy: policy.into(),
            default_eventhub,
            plain,
        }
    }

    fn data_dir(amqp: Option<Value>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut endpoints = json!({
            "pid": 1,
            "hostName": "localhost",
            "serviceConnectionString":
                format!("HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey={OWNER_KEY}"),
        });
        if let Some(amqp) = amqp {
            endpoints["amqp"] = amqp;
        }
        std::fs::write(dir.path().join("endpoints.json"), endpoints.to_string()).unwrap();
        dir
    }

    #[test]
    fn the_recorded_policy_needs_no_database() {
        let dir = data_dir(None);
        let out = connection_string(dir.path(), &args("iothubowner", false, false)).unwrap();
        assert_eq!(
            out.text,
            format!(
                "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey={OWNER_KEY}"
            )
        );
        assert_eq!(out.json["policy"], "iothubowner");
        assert_eq!(out.json["connectionString"], out.text.as_str());
    }

    #[test]
    fn another_policy_is_read_from_hub_db() {
        let dir = data_dir(None);
        let store = Store::open(&dir.path().join("hub.db")).unwrap();
        store
            .call_blocking(|tx| registry::ensure_policies(tx))
            .unwrap();
        let service = store
            .call_blocking(|tx| iothub_emulator::store::registry::policy(tx, "service"))
            .unwrap()
            .unwrap();
        // The emulator keeps its store open meanwhile.
        let out = connection_string(dir.path(), &args("service", false, false)).unwrap();
        assert_eq!(
            out.text,
            format!(
                "HostName=localhost;SharedAccessKeyName=service;SharedAccessKey={}",
                service.primary_key
            )
        );
        let err = connection_string(dir.path(), &args("nobody", false, false)).unwrap_err();
        assert!(
            err.to_string()
                .contains("no shared access policy named nobody")
        );
        drop(store);
    }

    #[test]
    fn the_event_hub_string_uses_the_amqp_record() {
        let dir = data_dir(Some(json!({
            "eventHubHost": "localhost",
            "eventHubName": "iothub-ehub-localhost",
            "port": 5671,
            "plainPort": 15672,
        })));
        let out = connection_string(dir.path(), &args("iothubowner", true, false)).unwrap();
        assert_eq!(
            out.text,
            format!(
                "Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey={OWNER_KEY};EntityPath=iothub-ehub-localhost"
            )
        );
        assert_eq!(out.json["eventHubName"], "iothub-ehub-localhost");
        let plain = connection_string(dir.path(), &args("iothubowner", true, true)).unwrap();
        assert_eq!(
            plain.text,
            format!(
                "Endpoint=sb://localhost:15672/;SharedAccessKeyName=iothubowner;SharedAccessKey={OWNER_KEY};EntityPath=iothub-ehub-localhost;UseDevelopmentEmulator=true"
            )
        );
        assert_eq!(plain.json["endpoint"], "sb://localhost:15672/");
    }

    #[test]
    fn missing_pieces_fail_clearly() {
        let none = tempfile::tempdir().unwrap();
        let err = connection_string(none.path(), &args("iothubowner", false, false)).unwrap_err();
        assert!(
            err.to_string().contains("no running emulator found"),
            "{err}"
        );

        let no_amqp = data_dir(None);
        let err = connection_string(no_amqp.path(), &args("iothubowner", true, false)).unwrap_err();
        assert!(err.to_string().contains("amqp.eventHubHost"), "{err}");

        let no_plain = data_dir(Some(json!({
            "eventHubHost": "h", "eventHubName": "n", "port": "127.0.0.1:5671",
        })));
        let tls = connection_string(no_plain.path(), &args("iothubowner", true, false)).unwrap();
        assert!(tls.text.starts_with("Endpoint=sb://h/;"), "{}", tls.text);
        let err = connection_string(no_plain.path(), &args("iothubowner", true, true)).unwrap_err();
        assert!(err.to_string().contains("amqp.plainPort"), "{err}");

        let err = connection_string(no_amqp.path(), &args("service", false, false)).unwrap_err();
        assert!(err.to_string().contains("hub.db"), "{err}");
    }
}
