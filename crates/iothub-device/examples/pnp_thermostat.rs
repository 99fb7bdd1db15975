//! Port of Microsoft's Plug and Play thermostat (`dtmi:com:example:Thermostat;1`): announces
//! the model id, sends `{"temperature": …}` every interval, reports `maxTempSinceLastReboot`,
//! acknowledges the writable `targetTemperature`, and answers the `getMaxMinReport` command.
//! The behaviour lives in `iothub_device::thermostat` (shared with `iothub demo`); this
//! example connects, prints what the thermostat does, and stops after `--count` messages.
//!
//! ```text
//! IOTHUB_DEVICE_CONNECTION_STRING='…' cargo run -p iothub-device --example pnp_thermostat -- \
//!   [--interval-ms 2000] [--count N]
//! ```

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use iothub_device::DeviceClient;
use iothub_device::thermostat::{self, Thermostat, ThermostatEvent};

#[tokio::main]
async fn main() -> Result<()> {
    let args = common::Args::parse();
    let interval = Duration::from_millis(args.number("interval-ms", 2000)?);
    let count = args.number("count", u64::MAX)?;
    let options = args.client_options()?.model_id(thermostat::MODEL_ID);
    let client = DeviceClient::connect(options).await.context("connecting")?;

    let (events, mut transcript) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = transcript.recv().await {
            match event {
                ThermostatEvent::TelemetrySent { temperature } => {
                    println!("telemetry {{\"temperature\":{temperature}}}");
                }
                ThermostatEvent::MaxReported { max, version } => {
                    println!("reported maxTempSinceLastReboot={max} ($version {version})");
                }
                ThermostatEvent::TargetAcknowledged { target, ac, av } => {
                    println!("targetTemperature -> {target} (ac {ac}, av {av})");
                }
                ThermostatEvent::CommandAnswered { payload, response } => {
                    println!("command getMaxMinReport({payload}) -> {response}");
                }
                _ => {}
            }
        }
    });

    let mut thermostat = Thermostat::start(&client, events)
        .await
        .context("starting the thermostat")?;
    tokio::select! {
        result = thermostat.run(interval, Some(count)) => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(thermostat);
    client.close().await;
    // The handler's sender goes with the client; the printer ends once both are gone.
    let _ = tokio::time::timeout(Duration::from_secs(1), printer).await;
    Ok(())
}
