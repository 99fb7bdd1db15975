//! Port of the seed's Plug and Play thermostat (`dtmi:com:example:Thermostat;1`): announces
//! the model id, sends `{"temperature": …}` every interval, reports `maxTempSinceLastReboot`,
//! acknowledges the writable `targetTemperature`, and answers the `getMaxMinReport` command.
//!
//! ```text
//! IOTHUB_DEVICE_CONNECTION_STRING='…' cargo run -p iothub-device --example pnp_thermostat -- \
//!   [--interval-ms 2000] [--count N]
//! ```

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use iothub_device::{DeviceClient, Message, MethodResponse, WritableResponse};
use serde_json::{Value, json};

const MODEL_ID: &str = "dtmi:com:example:Thermostat;1";

/// Temperatures seen since start.
struct Stats {
    current: f64,
    target: f64,
    max: f64,
    min: f64,
    sum: f64,
    samples: u64,
    started: SystemTime,
}

impl Stats {
    fn record(&mut self, t: f64) {
        self.current = t;
        self.max = self.max.max(t);
        self.min = self.min.min(t);
        self.sum += t;
        self.samples += 1;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = common::Args::parse();
    let interval = Duration::from_millis(args.number("interval-ms", 2000)?);
    let count = args.number("count", u64::MAX)?;
    let options = args.client_options()?.model_id(MODEL_ID);
    let client = DeviceClient::connect(options).await.context("connecting")?;
    let stats = Arc::new(Mutex::new(Stats {
        current: 20.0,
        target: 20.0,
        max: 20.0,
        min: 20.0,
        sum: 0.0,
        samples: 0,
        started: SystemTime::now(),
    }));

    let report_stats = stats.clone();
    client
        .on_method("getMaxMinReport", move |call| {
            let stats = report_stats.clone();
            async move {
                let s = stats.lock().unwrap_or_else(|e| e.into_inner());
                let avg = if s.samples == 0 {
                    s.current
                } else {
                    s.sum / s.samples as f64
                };
                println!("command getMaxMinReport({})", call.payload);
                MethodResponse::ok(json!({
                    "maxTemp": s.max,
                    "minTemp": s.min,
                    "avgTemp": avg,
                    "startTime": humantime(s.started),
                    "endTime": humantime(SystemTime::now()),
                }))
            }
        })
        .await?;

    // Writable property: apply what the twin already asks for, or report the initial value
    // (PROTOCOL.md §8: acknowledge versions that changed while offline).
    let mut desired = client.desired_properties().await?;
    let twin = client.twin().await.context("getting the twin")?;
    let version = twin["desired"]["$version"].as_u64().unwrap_or(0);
    match twin["desired"]["targetTemperature"].as_f64() {
        Some(target) => {
            stats.lock().unwrap_or_else(|e| e.into_inner()).target = target;
            client
                .acknowledge_writable(
                    None,
                    "targetTemperature",
                    &json!(target),
                    &WritableResponse::completed(version),
                )
                .await?;
        }
        None => {
            client
                .acknowledge_writable(
                    None,
                    "targetTemperature",
                    &json!(20.0),
                    &WritableResponse::initial(),
                )
                .await?;
        }
    }

    let mut ticker = tokio::time::interval(interval);
    let mut sent = 0;
    let mut reported_max = f64::NAN;
    while sent < count {
        tokio::select! {
            _ = ticker.tick() => {
                let (temperature, max) = {
                    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                    // Drift a tenth of the way towards the target each tick.
                    let next = s.current + (s.target - s.current) / 10.0;
                    s.record((next * 100.0).round() / 100.0);
                    (s.current, s.max)
                };
                client.send_telemetry(Message::json(&json!({ "temperature": temperature }))).await?;
                sent += 1;
                println!("telemetry {{\"temperature\":{temperature}}}");
                if max != reported_max {
                    client.report_property(None, "maxTempSinceLastReboot", &json!(max)).await?;
                    reported_max = max;
                }
            }
            patch = desired.recv() => {
                let Some(patch) = patch else { break };
                for (name, value) in patch.writable(None) {
                    if name != "targetTemperature" {
                        continue;
                    }
                    let Some(target) = value.as_f64() else { continue };
                    println!("targetTemperature -> {target} ($version {})", patch.version);
                    stats.lock().unwrap_or_else(|e| e.into_inner()).target = target;
                    client
                        .acknowledge_writable(None, &name, &value, &WritableResponse::completed(patch.version))
                        .await?;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}

/// RFC 3339 UTC without a date library (the examples avoid extra dependencies).
fn humantime(time: SystemTime) -> Value {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let message =
        Message::new("").creation_time(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    json!(message.creation_time_utc())
}
