//! `iothub emulator`: runs the local IoT Hub emulator in the foreground until Ctrl-C/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use iothub_emulator::{Config, RunningEmulator};

use super::Global;
use crate::args::EmulatorArgs;

/// Runs the emulator; returns after a clean shutdown.
pub(crate) fn run(args: &EmulatorArgs, global: Global) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log_level.as_deref(), args.log_format)?;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    iothub_emulator::data_dir::create_private_dir(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    // In memory the emulator does not lock the dir itself; this process does, so that
    // `iothub hub …` uses its REST API (a database emulator takes the lock in `start`).
    let _lock = if args.in_memory {
        Some(
            iothub_emulator::data_dir::lock::try_acquire(&data_dir)
                .context("cannot own the data dir")?,
        )
    } else {
        None
    };
    let config = Config {
        // In memory: the CA and endpoints.json still go to the data dir so clients and the
        // other commands can find them; the database does not.
        data_dir: (!args.in_memory).then(|| data_dir.clone()),
        hostnames: args.hostnames.clone(),
        bind: args.bind,
        mqtt_port: args.mqtt_port,
        https_port: Some(args.https_port),
        plain_port: (!args.no_plain).then_some(args.plain_port),
        http_port: (!args.no_http).then_some(args.http_port),
        retention: Duration::from_secs(args.retention_hours.saturating_mul(3600)),
        tls_files: args
            .cert
            .clone()
            .zip(args.key.clone())
            .map(|(c, k)| (c, k, args.ca.clone())),
        limits: iothub_emulator::ListenerLimits::default(),
        amqp_port: (!args.no_amqp).then_some(args.amqp_port),
        amqp_plain_port: (!args.no_amqp_plain).then_some(args.amqp_plain_port),
        event_hub_name: args.eventhub_name.clone(),
        event_hub_host: args.eventhub_hostname.clone(),
        partitions: args.partitions,
        routes: route_sources(&args.routes),
        file_upload: match &args.storage_connection_string {
            Some(cs) => iothub_emulator::FileUploadConfig::External(cs.clone()),
            None => iothub_emulator::FileUploadConfig::BuiltIn,
        },
        file_upload_container: args.file_upload_container.clone(),
        file_upload_sas_ttl: Duration::from_secs(args.file_upload_sas_ttl),
        storage_ca_pem: args
            .storage_ca
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .with_context(|| format!("cannot read the storage CA {}", path.display()))
            })
            .transpose()?,
        // The system clock.
        ..Config::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let running = RunningEmulator::start(config)
            .await
            .context("cannot start the emulator")?;
        if args.in_memory {
            write_in_memory_files(&running, &data_dir)?;
        }
        let id_scope = running
            .hub
            .store()
            .call(|tx| {
                iothub_emulator::hub::provisioning::id_scope(tx)
                    .map_err(|_| iothub_emulator::store::StoreError::Corrupt("id scope"))
            })
            .await
            .context("cannot read the DPS id scope")?;
        if let Some(warning) = &running.https_fallback_warning {
            eprintln!("warning: {warning}");
        }
        print_banner(&running, &data_dir, &id_scope, global);
        wait_for_signal().await;
        eprintln!("shutting down…");
        running.shutdown().await;
        // The emulator is gone: other commands must not find stale endpoints.
        let _ = std::fs::remove_file(data_dir.join("endpoints.json"));
        Ok(ExitCode::SUCCESS)
    })
}

fn print_banner(
    running: &RunningEmulator,
    data_dir: &std::path::Path,
    id_scope: &str,
    global: Global,
) {
    let ca = running
        .ca_path
        .clone()
        .unwrap_or_else(|| data_dir.join("ca.pem"));
    if global.json {
        let mut v = running.endpoints_json();
        v["idScope"] = serde_json::Value::String(id_scope.to_string());
        v["caFile"] = serde_json::Value::String(ca.display().to_string());
        v["dataDir"] = serde_json::Value::String(data_dir.display().to_string());
        println!("{v}");
        return;
    }
    println!("IoT Hub emulator running (Ctrl-C to stop)");
    println!("  host name            {}", running.hub.host());
    println!("  MQTT over TLS        {}", running.mqtt_addr);
    if let Some(a) = running.https_addr {
        println!(
            "  HTTPS + WebSocket    {a}  (wss://{}:{}/$iothub/websocket)",
            running.hub.host(),
            a.port()
        );
    }
    if let Some(a) = running.plain_addr {
        println!("  plain MQTT (dev)     {a}");
    }
    if let Some(a) = running.http_addr {
        println!("  HTTP API/dashboard   http://{a}/");
    }
    if let Some(a) = running.amqp_addr {
        println!("  AMQPS (back ends)    {a}");
    }
    if let Some(a) = running.amqp_plain_addr {
        println!("  plain AMQP (dev)     {a}");
    }
    println!(
        "  Event Hub endpoint   sb://{}/  EntityPath={}",
        running.event_hub.host, running.event_hub.name
    );
    println!("  file uploads         {}", file_upload_target(running));
    println!("  CA certificate       {}", ca.display());
    println!("  DPS id scope         {id_scope}");
    println!("  data dir             {}", data_dir.display());
    println!("  service connection string:");
    println!("    {}", running.service_connection_string);
}

/// Where devices' uploads go, for the banner (the account key is never shown).
fn file_upload_target(running: &RunningEmulator) -> String {
    use iothub_emulator::hub::file_upload::FileUploadStorage;
    let options = running.hub.file_upload_options();
    match &options.storage {
        FileUploadStorage::None => "off".to_owned(),
        FileUploadStorage::BuiltIn { .. } => format!(
            "built-in blob endpoint on the HTTPS port, container {}",
            options.container
        ),
        FileUploadStorage::External(account) => format!(
            "https://{}, container {}",
            account.host_name, options.container
        ),
    }
}

/// With `--in-memory` the emulator writes nothing itself; the CA and endpoints are still
/// needed by clients and by `iothub hub …`.
fn write_in_memory_files(running: &RunningEmulator, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("ca.pem"), &running.ca_pem).context("cannot write ca.pem")?;
    let mut endpoints = running.endpoints_json();
    endpoints["caFile"] = serde_json::Value::String(dir.join("ca.pem").display().to_string());
    iothub_emulator::data_dir::write_secret(
        &dir.join("endpoints.json"),
        endpoints.to_string().as_bytes(),
    )
    .context("cannot write endpoints.json")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `~/.local/share/iothub/emulator` (`$IOTHUB_EMULATOR_DIR` is handled by clap).
pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/iothub/emulator"))
}

/// The hub's route sources from `--route`.
fn route_sources(routes: &[crate::args::RouteArg]) -> iothub_emulator::hub::routes::RouteSources {
    use crate::args::RouteArg;
    use iothub_emulator::hub::routes::{RouteSource, RouteSources};
    routes
        .iter()
        .fold(RouteSources::default(), |sources, route| {
            sources.with(match route {
                RouteArg::TwinChanges => RouteSource::TwinChanges,
                RouteArg::Lifecycle => RouteSource::Lifecycle,
                RouteArg::ConnectionState => RouteSource::ConnectionState,
            })
        })
}
