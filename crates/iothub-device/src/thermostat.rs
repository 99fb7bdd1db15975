//! Microsoft's Plug and Play thermostat (`dtmi:com:example:Thermostat;1`) as a reusable device
//! behaviour, shared by `examples/pnp_thermostat.rs` and the CLI's `iothub demo`.
//!
//! What it does, following Microsoft's `PnPMQTTWin32` sample (docs/protocol.md §8, Plug and Play
//! conventions): it expects the client to announce [`MODEL_ID`] at CONNECT; it acknowledges the
//! writable `targetTemperature` (the value the twin already asks for, or an initial `203`
//! acknowledgement), sends `{"temperature": …}` telemetry every interval drifting towards the
//! target, reports `maxTempSinceLastReboot` whenever the maximum changes, acknowledges every
//! desired `targetTemperature` change with `ac` 200 and `av` = the patch's `$version`, and
//! answers the `getMaxMinReport` command with the statistics since start.
//!
//! Everything it does is reported as a [`ThermostatEvent`] on a channel, so a caller can print
//! a transcript (the example prints lines, the demo a formatted transcript).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{DesiredReceiver, DeviceClient, Error, Message, MethodResponse, WritableResponse};

/// The model id the thermostat implements; pass it to [`crate::ClientOptions::model_id`].
pub const MODEL_ID: &str = "dtmi:com:example:Thermostat;1";

/// The writable property the thermostat acknowledges.
pub const TARGET_TEMPERATURE: &str = "targetTemperature";

/// The read-only property reported when the maximum changes.
pub const MAX_TEMP_SINCE_LAST_REBOOT: &str = "maxTempSinceLastReboot";

/// The command the thermostat answers.
pub const GET_MAX_MIN_REPORT: &str = "getMaxMinReport";

/// Starting temperature (and target, until the twin says otherwise), in °C.
const INITIAL_TEMPERATURE: f64 = 20.0;

/// Something the thermostat did, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ThermostatEvent {
    /// A telemetry message was acknowledged by the hub (PUBACK).
    TelemetrySent {
        /// The temperature sent.
        temperature: f64,
    },
    /// `maxTempSinceLastReboot` was reported.
    MaxReported {
        /// The value.
        max: f64,
        /// The reported properties' new `$version`.
        version: u64,
    },
    /// `targetTemperature` was acknowledged (`ac`/`av`/`ad` written to the reported properties).
    TargetAcknowledged {
        /// The value acknowledged.
        target: f64,
        /// `ac`: 200 for an applied change, 203 for the initial value.
        ac: u16,
        /// `av`: the desired `$version` acknowledged (0 for the initial value).
        av: u64,
    },
    /// A `getMaxMinReport` command was answered.
    CommandAnswered {
        /// The request payload.
        payload: Value,
        /// The answer sent with status 200.
        response: Value,
    },
}

/// Temperatures seen since start.
#[derive(Debug)]
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
    fn new() -> Self {
        Self {
            current: INITIAL_TEMPERATURE,
            target: INITIAL_TEMPERATURE,
            max: INITIAL_TEMPERATURE,
            min: INITIAL_TEMPERATURE,
            sum: 0.0,
            samples: 0,
            started: SystemTime::now(),
        }
    }

    /// Moves a tenth of the way towards the target (rounded to 0.01 °C) and records it.
    fn step(&mut self) -> f64 {
        let next = self.current + (self.target - self.current) / 10.0;
        let t = (next * 100.0).round() / 100.0;
        self.current = t;
        self.max = self.max.max(t);
        self.min = self.min.min(t);
        self.sum += t;
        self.samples += 1;
        t
    }

    /// The `getMaxMinReport` answer of the model.
    fn report(&self) -> Value {
        #[allow(clippy::cast_precision_loss)] // sample counts stay far below 2^52
        let avg = if self.samples == 0 {
            self.current
        } else {
            self.sum / self.samples as f64
        };
        json!({
            "maxTemp": self.max,
            "minTemp": self.min,
            "avgTemp": (avg * 100.0).round() / 100.0,
            "startTime": rfc3339(self.started),
            "endTime": rfc3339(SystemTime::now()),
        })
    }
}

/// A running thermostat on a connected [`DeviceClient`].
///
/// ```no_run
/// use iothub_device::thermostat::{self, Thermostat};
/// use iothub_device::{ClientOptions, DeviceClient};
///
/// # async fn run(cs: &str) -> Result<(), iothub_device::Error> {
/// let options = ClientOptions::from_connection_string(cs)?.model_id(thermostat::MODEL_ID);
/// let client = DeviceClient::connect(options).await?;
/// let (events, mut transcript) = tokio::sync::mpsc::unbounded_channel();
/// let mut thermostat = Thermostat::start(&client, events).await?;
/// tokio::spawn(async move {
///     while let Some(event) = transcript.recv().await {
///         println!("{event:?}");
///     }
/// });
/// thermostat.run(std::time::Duration::from_secs(2), Some(10)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Thermostat {
    client: DeviceClient,
    stats: Arc<Mutex<Stats>>,
    desired: DesiredReceiver,
    events: mpsc::UnboundedSender<ThermostatEvent>,
    reported_max: Option<f64>,
}

impl Thermostat {
    /// Registers the `getMaxMinReport` handler, subscribes to desired-property patches,
    /// reads the twin and acknowledges `targetTemperature` (the desired value if the twin has
    /// one — a change made while the device was offline, docs/protocol.md §8 — else the initial
    /// value with `ac` 203).
    ///
    /// # Errors
    /// [`Error`] when the client cannot subscribe, read the twin or report.
    pub async fn start(
        client: &DeviceClient,
        events: mpsc::UnboundedSender<ThermostatEvent>,
    ) -> Result<Self, Error> {
        let stats = Arc::new(Mutex::new(Stats::new()));
        let (handler_stats, handler_events) = (stats.clone(), events.clone());
        client
            .on_method(GET_MAX_MIN_REPORT, move |call| {
                let response = lock(&handler_stats).report();
                let _ = handler_events.send(ThermostatEvent::CommandAnswered {
                    payload: call.payload.clone(),
                    response: response.clone(),
                });
                async move { MethodResponse::ok(response) }
            })
            .await?;
        let desired = client.desired_properties().await?;
        let twin = client.twin().await?;
        let version = twin["desired"]["$version"].as_u64().unwrap_or(0);
        let mut thermostat = Self {
            client: client.clone(),
            stats,
            desired,
            events,
            reported_max: None,
        };
        match twin["desired"][TARGET_TEMPERATURE].as_f64() {
            Some(target) => thermostat.acknowledge(target, version).await?,
            None => {
                let response = WritableResponse::initial();
                thermostat
                    .client
                    .acknowledge_writable(
                        None,
                        TARGET_TEMPERATURE,
                        &json!(INITIAL_TEMPERATURE),
                        &response,
                    )
                    .await?;
                thermostat.emit(ThermostatEvent::TargetAcknowledged {
                    target: INITIAL_TEMPERATURE,
                    ac: 203,
                    av: 0,
                });
            }
        }
        Ok(thermostat)
    }

    /// Sends telemetry every `interval` (`count` messages, or until the client closes when
    /// `None`) and acknowledges desired `targetTemperature` changes meanwhile.
    ///
    /// # Errors
    /// [`Error`] when a send or a report fails.
    pub async fn run(&mut self, interval: Duration, count: Option<u64>) -> Result<(), Error> {
        let mut ticker = tokio::time::interval(interval);
        let mut sent = 0;
        while count.is_none_or(|n| sent < n) {
            tokio::select! {
                _ = ticker.tick() => {
                    self.tick().await?;
                    sent += 1;
                }
                patch = self.desired.recv() => {
                    let Some(patch) = patch else { break };
                    for (name, value) in patch.writable(None) {
                        if name != TARGET_TEMPERATURE {
                            continue;
                        }
                        if let Some(target) = value.as_f64() {
                            self.acknowledge(target, patch.version).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One telemetry message, then `maxTempSinceLastReboot` if the maximum changed.
    async fn tick(&mut self) -> Result<(), Error> {
        let (temperature, max) = {
            let mut s = lock(&self.stats);
            let t = s.step();
            (t, s.max)
        };
        let message = Message::json(&json!({ "temperature": temperature }));
        self.client.send_telemetry(message).await?;
        self.emit(ThermostatEvent::TelemetrySent { temperature });
        if self.reported_max != Some(max) {
            let version = self
                .client
                .report_property(None, MAX_TEMP_SINCE_LAST_REBOOT, &json!(max))
                .await?;
            self.reported_max = Some(max);
            self.emit(ThermostatEvent::MaxReported { max, version });
        }
        Ok(())
    }

    /// Applies a new target and acknowledges it with `ac` 200, `av` = `version`.
    async fn acknowledge(&mut self, target: f64, version: u64) -> Result<(), Error> {
        lock(&self.stats).target = target;
        self.client
            .acknowledge_writable(
                None,
                TARGET_TEMPERATURE,
                &json!(target),
                &WritableResponse::completed(version),
            )
            .await?;
        self.emit(ThermostatEvent::TargetAcknowledged {
            target,
            ac: 200,
            av: version,
        });
        Ok(())
    }

    fn emit(&self, event: ThermostatEvent) {
        // Nobody listening is fine: the transcript is optional.
        let _ = self.events.send(event);
    }
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

/// RFC 3339 UTC at second precision, as `$.ctime` is written.
fn rfc3339(time: SystemTime) -> Value {
    json!(crate::message::format_utc(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drifts_a_tenth_of_the_way_towards_the_target() {
        let mut s = Stats::new();
        s.target = 30.0;
        assert_eq!(s.step(), 21.0);
        assert_eq!(s.step(), 21.9);
        assert_eq!(s.max, 21.9);
        assert_eq!(s.min, 20.0);
    }

    #[test]
    fn max_min_report_follows_the_model() {
        let mut s = Stats::new();
        s.target = 10.0;
        s.step();
        s.step();
        let r = s.report();
        assert_eq!(r["maxTemp"], 20.0);
        assert_eq!(r["minTemp"], 18.1);
        assert_eq!(r["avgTemp"], 18.55);
        assert!(r["startTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
