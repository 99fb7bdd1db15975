//! `iothub simulate`: a fleet of devices sending telemetry at a fixed total rate, with live
//! progress and a latency summary (figures: BENCHMARKS.md, `bench/simulate/run.sh`).
//!
//! Every simulated device is an `iothub_device::DeviceClient` (one driver task and one
//! connection each; see BENCHMARKS.md for the memory per device at 10,000), so the simulator
//! measures the same code path real devices use: PUBACK latency is the time from handing a
//! message to the client until the hub's PUBACK resolved it. Devices are created as needed:
//! through the hub's REST API (`PUT /devices/{id}`, the emulator's or a real hub's), or in the
//! registry directly with `--in-process`.
//!
//! Phases: create devices, connect them (bounded concurrency), send for `--duration` seconds
//! (each device every `devices / rate` seconds, phases spread evenly), then wait up to
//! [`DRAIN`] for the last acknowledgements and close.

mod fleet;
mod payload;
mod stats;

use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iothub_device::{ConnectionState, DeviceClient, Error, Message};

use self::fleet::Fleet;
use self::payload::{DEFAULT_TEMPLATE, Template, Xorshift};
use self::stats::Counters;
use super::Global;
use crate::args::SimulateArgs;

/// How long the simulator waits for outstanding PUBACKs after the sending phase.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs `iothub simulate`.
pub(crate) fn run(args: &SimulateArgs, global: Global) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of messages per second");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(simulate(args, global))
}

async fn simulate(args: &SimulateArgs, global: Global) -> anyhow::Result<ExitCode> {
    let progress = if global.json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let fleet = Fleet::resolve(args).await?;
    let ids: Vec<String> = (1..=args.devices)
        .map(|i| format!("{}{i:05}", args.device_prefix))
        .collect();

    let bar = bar(&progress, args.devices, "creating devices");
    let options = fleet.create_devices(&ids, &bar).await?;
    bar.finish_and_clear();

    let counters = Arc::new(Counters::default());
    let bar = self::bar(&progress, args.devices, "connecting");
    let clients = connect_all(options, args.connect_concurrency, &counters, &bar).await;
    bar.finish_and_clear();
    if clients.is_empty() {
        fleet.shutdown().await;
        bail!(
            "no device could connect; first errors: {}",
            counters
                .summary(args.devices, args.qos, Duration::ZERO)
                .error_samples
                .join("; ")
        );
    }

    let template = Arc::new(Template::parse(
        args.payload.as_deref().unwrap_or(DEFAULT_TEMPLATE),
    ));
    let duration = Duration::from_secs(args.duration);
    #[allow(clippy::cast_precision_loss)] // device counts are small
    let period = Duration::from_secs_f64(ids.len() as f64 / args.rate);
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + duration;
    let bar = sending_bar(&progress, args.duration);
    let mut tasks = tokio::task::JoinSet::new();
    let count = clients.len();
    for (index, (id, client)) in clients.into_iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let offset = period.mul_f64(index as f64 / count as f64);
        let device = Device {
            id,
            client,
            template: template.clone(),
            counters: counters.clone(),
            first: start + offset,
            period,
            end,
            seed: u32::try_from(index)
                .unwrap_or(0)
                .wrapping_mul(2_654_435_761)
                | 1,
            at_most_once: args.qos == 0,
        };
        tasks.spawn(device.run());
    }
    let ticker = {
        let (counters, bar) = (counters.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let elapsed = start.elapsed();
                bar.set_position(elapsed.as_secs().min(duration.as_secs()));
                let acked = Counters::get(&counters.acked);
                let rate = acked as f64 / elapsed.as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "sent {}  acked {}  {rate:.0} msg/s  reconnects {}  errors {}",
                    Counters::get(&counters.sent),
                    acked,
                    Counters::get(&counters.reconnects),
                    Counters::get(&counters.errors),
                ));
            }
        })
    };
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().min(duration + DRAIN);
    ticker.abort();
    bar.finish_and_clear();
    fleet.shutdown().await;

    let summary = counters.summary(args.devices, args.qos, elapsed.max(duration));
    if global.json {
        println!("{}", summary.to_json());
    } else {
        println!("{}", summary.to_text());
    }
    let complete =
        summary.errors == 0 && summary.acked == summary.sent && summary.connected == args.devices;
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn bar(target: &ProgressDrawTarget, len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), clone_target(target));
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

fn sending_bar(target: &ProgressDrawTarget, secs: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(secs), clone_target(target));
    bar.set_style(
        ProgressStyle::with_template("sending [{bar:30}] {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn clone_target(target: &ProgressDrawTarget) -> ProgressDrawTarget {
    if target.is_hidden() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// Connects every device, at most `concurrency` at a time; failures are counted, not fatal.
async fn connect_all(
    options: Vec<(String, iothub_device::ClientOptions)>,
    concurrency: usize,
    counters: &Arc<Counters>,
    bar: &ProgressBar,
) -> Vec<(String, DeviceClient)> {
    let mut pending = options.into_iter();
    let mut connecting = FuturesUnordered::new();
    let mut clients = Vec::new();
    loop {
        while connecting.len() < concurrency.max(1) {
            let Some((id, options)) = pending.next() else {
                break;
            };
            connecting.push(async move {
                let result =
                    tokio::time::timeout(Duration::from_secs(60), DeviceClient::connect(options))
                        .await;
                (id, result)
            });
        }
        let Some((id, result)) = connecting.next().await else {
            break;
        };
        bar.inc(1);
        match result {
            Ok(Ok(client)) => {
                Counters::add(&counters.connected);
                clients.push((id, client));
            }
            Ok(Err(e)) => counters.error(format!("{id}: cannot connect: {e}")),
            Err(_) => counters.error(format!("{id}: no CONNACK within 60 s")),
        }
    }
    clients
}

type Ack = Pin<Box<dyn Future<Output = (Instant, Result<(), Error>)> + Send>>;

/// One simulated device's sending loop.
struct Device {
    id: String,
    client: DeviceClient,
    template: Arc<Template>,
    counters: Arc<Counters>,
    first: Instant,
    period: Duration,
    end: Instant,
    seed: u32,
    /// `--qos 0`: the ack future resolves once the publish is written (no PUBACK).
    at_most_once: bool,
}

impl Device {
    async fn run(self) {
        let mut random = Xorshift::new(self.seed);
        let mut state = self.client.connection_state();
        let mut was_down = false;
        let mut acks: FuturesUnordered<Ack> = FuturesUnordered::new();
        let mut next = self.first;
        let mut seq = 0;
        let drain_end = self.end + DRAIN;
        loop {
            if next >= self.end && acks.is_empty() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()), if next < self.end => {
                    seq += 1;
                    next += self.period;
                    let now_ms = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis());
                    let body = self.template.render(&self.id, seq, now_ms, random.next_u32());
                    let sent_at = Instant::now();
                    let mut message = Message::new(body);
                    if self.at_most_once {
                        message = message.at_most_once();
                    }
                    match self.client.enqueue_telemetry(message).await {
                        Ok(ack) => {
                            Counters::add(&self.counters.sent);
                            acks.push(Box::pin(async move { (sent_at, ack.await) }));
                        }
                        Err(e) => self.counters.error(format!("{}: {e}", self.id)),
                    }
                }
                Some((sent_at, result)) = acks.next(), if !acks.is_empty() => match result {
                    Ok(()) => self.counters.acked(sent_at.elapsed()),
                    Err(e) => self.counters.error(format!("{}: {e}", self.id)),
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    match &*state.borrow_and_update() {
                        ConnectionState::Connected if was_down => {
                            was_down = false;
                            Counters::add(&self.counters.reconnects);
                        }
                        ConnectionState::Disconnected { .. } => was_down = true,
                        _ => {}
                    }
                }
                () = tokio::time::sleep_until(drain_end.into()) => {
                    let lost = acks.len();
                    for _ in 0..lost {
                        self.counters.error(format!("{}: message(s) not acknowledged within {} s after the run", self.id, DRAIN.as_secs()));
                    }
                    break;
                }
            }
        }
        drop(acks);
        self.client.close().await;
    }
}
