//! `iothub demo`: the whole product in one command.
//!
//! Starts an in-process emulator on free ports, creates a device, runs the Plug and Play
//! thermostat of `iothub_device::thermostat` on it over MQTT/TLS, and then acts as the service
//! on the same hub, printing each step as it completes:
//! telemetry arriving on the hub's live feed, a C2D message delivered and completed (queue back
//! to 0), a desired `targetTemperature` acknowledged by the device (`ac`/`av` read back from the
//! hub's twin), and a `getMaxMinReport` method call answered. Then it prints the dashboard URL
//! and streams the live telemetry until Ctrl-C. With `--once` it exits after the transcript:
//! 0 when every step worked, 1 when one failed or timed out, 2 when the demo could not start.

mod transcript;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use iothub_device::thermostat::{self, Thermostat, ThermostatEvent};
use iothub_device::{C2dReceiver, ClientOptions, DeviceClient};
use iothub_emulator::hub::auth::Identity;
use iothub_emulator::hub::c2d::{self, OutgoingMessage};
use iothub_emulator::hub::methods::MethodCall;
use iothub_emulator::hub::registry::{self, NewIdentity};
use iothub_emulator::hub::twin;
use iothub_emulator::store::events::TelemetryEvent;
use iothub_emulator::timestamp;
use iothub_emulator::{Config, RunningEmulator, StartError};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use self::transcript::Transcript;
use super::Global;
use crate::args::DemoArgs;

/// The demo device.
const DEVICE_ID: &str = "thermostat-01";

/// The emulator's default HTTP (REST API + dashboard) port, used when free.
const DASHBOARD_PORT: u16 = 8080;

/// The C2D message the service sends.
const C2D_TEXT: &str = "Hello from the cloud";

/// The new target the service asks for.
const TARGET: f64 = 25.0;

/// Least time the emulator start, device connection and thermostat start may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Telemetry period of the thermostat (Microsoft's `PnPMQTTWin32` sample sends every 2 s).
const TELEMETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Runs `iothub demo`.
pub(crate) fn run(args: &DemoArgs, global: Global) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(args, global))
}

/// Everything the steps share.
struct Demo {
    emulator: RunningEmulator,
    identity: Identity,
    client: DeviceClient,
    live: broadcast::Receiver<Arc<TelemetryEvent>>,
    events: mpsc::UnboundedReceiver<ThermostatEvent>,
    c2d: C2dReceiver,
    out: Transcript,
    timeout: Duration,
}

async fn demo(args: &DemoArgs, global: Global) -> anyhow::Result<ExitCode> {
    let out = if global.json {
        Transcript::hidden()
    } else {
        Transcript::for_stdout()
    };
    // The temporary dir lives until the demo ends; `--data-dir` is kept.
    let (_temp, data_dir) = match &args.data_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("iothub-demo-")
                .tempdir()
                .context("cannot create a temporary data dir")?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    out.heading(
        "iothub demo",
        "a local IoT Hub, a Plug and Play thermostat, and the service side talking to it",
    );
    let mut demo = start(&data_dir, out, Duration::from_secs(args.step_timeout)).await?;

    let mut results = Vec::new();
    results.push(("telemetry", demo.telemetry().await));
    results.push(("c2d", demo.c2d().await));
    results.push(("twin", demo.twin().await));
    results.push(("method", demo.method().await));
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();

    out.link("dashboard", &dashboard_url(&demo.emulator));
    out.note(&format!(
        "data dir {} (try `iothub hub monitor --data-dir {}` in another terminal)",
        data_dir.display(),
        data_dir.display()
    ));
    if global.json {
        let steps: Vec<Value> = results
            .iter()
            .map(|(label, r)| match r {
                Ok(()) => json!({"step": label, "ok": true}),
                Err(e) => json!({"step": label, "ok": false, "error": format!("{e:#}")}),
            })
            .collect();
        println!(
            "{}",
            json!({"steps": steps, "dashboard": dashboard_url(&demo.emulator),
                   "dataDir": data_dir, "deviceId": DEVICE_ID})
        );
    }

    if !args.once {
        out.blank();
        out.note("live telemetry from the thermostat follows. Press Ctrl-C to stop.");
        demo.follow(global.json).await;
    }
    let Demo {
        emulator, client, ..
    } = demo;
    client.close().await;
    emulator.shutdown().await;
    if failed == 0 {
        out.blank();
        out.note("every step worked.");
        Ok(ExitCode::SUCCESS)
    } else {
        out.blank();
        out.note(&format!("{failed} step(s) failed."));
        Ok(ExitCode::from(1))
    }
}

/// Starts the emulator, creates the device, connects it and starts the thermostat.
async fn start(
    data_dir: &std::path::Path,
    out: Transcript,
    timeout: Duration,
) -> anyhow::Result<Demo> {
    let config = Config {
        data_dir: Some(PathBuf::from(data_dir)),
        ..Config::ephemeral()
    };
    // The dashboard on the usual port when it is free (an address a person can remember),
    // else on any free port like the other listeners.
    let preferred = Config {
        http_port: Some(DASHBOARD_PORT),
        ..config.clone()
    };
    let emulator = match RunningEmulator::start(preferred).await {
        Ok(e) => e,
        Err(StartError::Bind { .. }) => RunningEmulator::start(config)
            .await
            .context("cannot start the emulator")?,
        Err(e) => return Err(anyhow!(e).context("cannot start the emulator")),
    };
    out.info(
        "hub",
        &format!(
            "emulator running: MQTT/TLS on {}, its CA in {}",
            emulator.mqtt_addr,
            emulator
                .ca_path
                .as_ref()
                .map_or_else(|| "memory".to_owned(), |p| p.display().to_string())
        ),
    );

    let host = emulator.hub.host().to_owned();
    let now = timestamp::unix_millis(SystemTime::now());
    let record = emulator
        .hub
        .store()
        .call(move |tx| {
            Ok(registry::create(
                tx,
                NewIdentity {
                    device_id: DEVICE_ID.into(),
                    ..NewIdentity::default()
                },
                now,
            ))
        })
        .await
        .context("the registry is unavailable")?;
    let record = match record {
        Ok(r) => r,
        // A kept --data-dir already has the device from an earlier run.
        Err(registry::RegistryError::AlreadyExists) => {
            let found = emulator
                .hub
                .store()
                .call(|tx| Ok(iothub_emulator::store::registry::find(tx, DEVICE_ID, None)))
                .await?;
            found?.context("the demo device vanished")?
        }
        Err(e) => return Err(anyhow!(e).context("cannot create the demo device")),
    };
    let connection_string = registry::connection_string(&record, &host);
    out.info(
        "device",
        &format!("created {DEVICE_ID} with a symmetric key (SAS tokens signed by the device)"),
    );

    // Subscribe to the live feed before the device can send anything.
    let live = emulator.hub.live_feed();
    let options = ClientOptions::from_connection_string(&connection_string)?
        .port(emulator.mqtt_addr.port())
        .trust_ca_pem(emulator.ca_pem.clone())
        .model_id(thermostat::MODEL_ID);
    // Starting is not one of the transcript's steps: it gets at least START_TIMEOUT.
    let start_timeout = timeout.max(START_TIMEOUT);
    let client = tokio::time::timeout(start_timeout, DeviceClient::connect(options))
        .await
        .map_err(|_| anyhow!("the device did not connect within {start_timeout:?}"))?
        .context("the device could not connect")?;
    let c2d = client.c2d_messages().await?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut thermostat = tokio::time::timeout(start_timeout, Thermostat::start(&client, events_tx))
        .await
        .map_err(|_| anyhow!("the thermostat did not start within {start_timeout:?}"))?
        .context("the thermostat could not start")?;
    out.info(
        "device",
        &format!(
            "connected over MQTT/TLS as Plug and Play model {}",
            thermostat::MODEL_ID
        ),
    );
    tokio::spawn(async move {
        if let Err(e) = thermostat.run(TELEMETRY_INTERVAL, None).await {
            eprintln!("the thermostat stopped: {e}");
        }
    });
    out.blank();
    Ok(Demo {
        emulator,
        identity: Identity {
            device_id: DEVICE_ID.into(),
            module_id: None,
        },
        client,
        live,
        events,
        c2d,
        out,
        timeout,
    })
}

impl Demo {
    /// Telemetry sent by the thermostat arrives on the hub's live feed.
    async fn telemetry(&mut self) -> anyhow::Result<()> {
        let live = &mut self.live;
        let wait = async {
            let event = next_from(live, DEVICE_ID).await?;
            Ok(format!(
                "the hub received {} from {DEVICE_ID} (enqueued, seq {})",
                String::from_utf8_lossy(&event.body),
                event.seq
            ))
        };
        let result = tokio::time::timeout(self.timeout, wait).await;
        self.finish("telemetry", result)
    }

    /// A C2D message is delivered to the device and completed (the queue goes back to 0).
    async fn c2d(&mut self) -> anyhow::Result<()> {
        let hub = self.emulator.hub.clone();
        let identity = self.identity.clone();
        let c2d_rx = &mut self.c2d;
        let wait = async {
            let message = OutgoingMessage {
                body: C2D_TEXT.as_bytes().to_vec(),
                message_id: Some("demo-c2d-1".into()),
                ..OutgoingMessage::default()
            };
            hub.send_c2d(&identity, message)
                .await
                .context("the hub refused the message")?;
            let received = c2d_rx
                .recv()
                .await
                .context("the device's C2D stream closed")?;
            let body = String::from_utf8_lossy(&received.body).into_owned();
            if body != C2D_TEXT {
                bail!("the device received {body:?} instead");
            }
            // Completion: the device's PUBACK completes the message and empties the queue.
            loop {
                let depth = hub
                    .store()
                    .call(|tx| Ok(c2d::queue_depth(tx, DEVICE_ID, None, SystemTime::now())))
                    .await??;
                if depth == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(format!(
                "the service sent {C2D_TEXT:?}; the device received it and the hub completed it (queue empty)"
            ))
        };
        let result = tokio::time::timeout(self.timeout, wait).await;
        self.finish("c2d", result)
    }

    /// A desired `targetTemperature` is acknowledged by the device, read back from the twin.
    async fn twin(&mut self) -> anyhow::Result<()> {
        let hub = self.emulator.hub.clone();
        let identity = self.identity.clone();
        let events = &mut self.events;
        let wait = async {
            let update = hub
                .patch_twin(
                    &identity,
                    json!({"properties": {"desired": {"targetTemperature": TARGET}}}),
                    None,
                )
                .await
                .context("the hub refused the desired patch")?;
            let version = update.twin.desired.version;
            loop {
                match events.recv().await {
                    Some(ThermostatEvent::TargetAcknowledged { av, .. }) if av == version => break,
                    Some(_) => {}
                    None => bail!("the thermostat stopped"),
                }
            }
            let twin = hub
                .store()
                .call(|tx| Ok(twin::read(tx, DEVICE_ID, None, SystemTime::now())))
                .await??;
            let ack = twin
                .reported
                .properties
                .get("targetTemperature")
                .cloned()
                .unwrap_or(Value::Null);
            if ack["ac"] != json!(200) || ack["av"] != json!(version) {
                bail!(
                    "the twin's reported targetTemperature is {ack}, expected ac 200, av {version}"
                );
            }
            Ok(format!(
                "desired targetTemperature {TARGET} ($version {version}); the device acknowledged: ac {}, av {}, value {}",
                ack["ac"], ack["av"], ack["value"]
            ))
        };
        let result = tokio::time::timeout(self.timeout, wait).await;
        self.finish("twin", result)
    }

    /// The `getMaxMinReport` command is answered.
    async fn method(&mut self) -> anyhow::Result<()> {
        let hub = self.emulator.hub.clone();
        let identity = self.identity.clone();
        let wait = async {
            let call = MethodCall::from_json(&json!({
                "methodName": thermostat::GET_MAX_MIN_REPORT,
                "payload": {"since": "boot"},
                "responseTimeoutInSeconds": 10,
            }))
            .map_err(|e| anyhow!("{e}"))?;
            let result = hub
                .invoke_method(&identity, call)
                .await
                .map_err(|e| anyhow!("the call failed: {e}"))?;
            if result.status != 200 || result.payload.get("maxTemp").is_none() {
                bail!(
                    "the device answered {} {}, expected 200 with maxTemp",
                    result.status,
                    result.payload
                );
            }
            Ok(format!(
                "{} answered {}: {}",
                thermostat::GET_MAX_MIN_REPORT,
                result.status,
                result.payload
            ))
        };
        let result = tokio::time::timeout(self.timeout, wait).await;
        self.finish("method", result)
    }

    fn finish(
        &self,
        label: &str,
        result: Result<anyhow::Result<String>, tokio::time::error::Elapsed>,
    ) -> anyhow::Result<()> {
        let result = result
            .unwrap_or_else(|_| Err(anyhow!("no answer within {} s", self.timeout.as_secs())));
        match &result {
            Ok(text) => self.out.ok(label, text),
            Err(e) => self.out.failed(label, &format!("{e:#}")),
        }
        result.map(|_| ())
    }

    /// Streams the thermostat's telemetry as the hub receives it, until Ctrl-C.
    async fn follow(&mut self, json: bool) {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                // The thermostat keeps reporting; nothing to print, but drain the channel so
                // it does not grow for as long as the demo runs.
                Some(_) = self.events.recv() => {}
                event = next_from(&mut self.live, DEVICE_ID) => match event {
                    Ok(e) => {
                        let time = timestamp::iso8601_millis(timestamp::from_unix_millis(e.enqueued_ms));
                        let body = String::from_utf8_lossy(&e.body);
                        if json {
                            println!("{}", json!({"telemetry": {"deviceId": e.device_id, "enqueuedTime": time, "body": body}}));
                        } else {
                            self.out.info("telemetry", &format!("{time}  {body}"));
                        }
                    }
                    Err(e) => {
                        self.out.failed("telemetry", &format!("{e:#}"));
                        break;
                    }
                },
            }
        }
    }
}

/// The next telemetry event of `device` (lagging is skipped: the feed is best effort).
async fn next_from(
    live: &mut broadcast::Receiver<Arc<TelemetryEvent>>,
    device: &str,
) -> anyhow::Result<Arc<TelemetryEvent>> {
    loop {
        match live.recv().await {
            Ok(event) if event.device_id == device => return Ok(event),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => bail!("the hub's live feed closed"),
        }
    }
}

/// The dashboard's address: the plain HTTP port, else the HTTPS one.
fn dashboard_url(emulator: &RunningEmulator) -> String {
    match (emulator.http_addr, emulator.https_addr) {
        (Some(http), _) => format!("http://{http}/"),
        (None, Some(https)) => format!("https://localhost:{}/", https.port()),
        (None, None) => "(no HTTP listener)".to_owned(),
    }
}
