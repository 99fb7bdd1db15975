//! `iothub hub monitor`: reads the hub's Event Hub-compatible endpoint over AMQP, as back ends
//! and `az iot hub monitor-events` do (docs/amqp.md "Redirect", "Receiving events"), from the
//! local emulator or any hub, and prints one JSON object per message in the shape of
//! `az iot hub monitor-events`:
//! `{"event":{"origin":…,"module":…,"interface":…,"component":…,"properties":{"system":{…},"application":{…}},"payload":…}}`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::amqp::endpoint::{Endpoint, TOKEN_TTL_SECS};
use crate::amqp::event::{monitor_event, origin};
use crate::amqp::events::{EventOptions, EventStream};
use crate::amqp::filter::Start;
use crate::args::{HubService, MonitorArgs};
use crate::cmd::Global;

pub(crate) async fn run(
    service: &HubService,
    args: &MonitorArgs,
    _global: Global,
) -> anyhow::Result<ExitCode> {
    let deadline = match args.timeout {
        Some(t) if t.is_finite() && t >= 0.0 => Some(Instant::now() + Duration::from_secs_f64(t)),
        Some(_) => bail!("--timeout must be a non-negative number of seconds"),
        None => None,
    };
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let options = EventOptions {
        consumer_group: args.consumer_group.clone(),
        partition: args.partition.clone(),
        start: Start::from_flags(args.since, args.enqueued_time.as_deref())?,
    };
    let endpoint = Endpoint::resolve(service)?;
    let Some(opened) = within(deadline, EventStream::open(&endpoint, &options)).await else {
        return Ok(timed_out(args));
    };
    let mut stream = opened.context("cannot read the hub's events")?;
    let result = print_events(&mut stream, &endpoint, args, deadline).await;
    stream.close().await;
    result
}

async fn print_events(
    stream: &mut EventStream,
    endpoint: &Endpoint,
    args: &MonitorArgs,
    deadline: Option<Instant>,
) -> anyhow::Result<ExitCode> {
    // Renew at ~90 % of the token's life, as the Event Hubs SDKs do (docs/amqp.md
    // "Authentication").
    let renew_every = Duration::from_secs(TOKEN_TTL_SECS * 9 / 10);
    let mut renew_at = Instant::now() + renew_every;
    let mut printed = 0;
    let stdout = std::io::stdout();
    loop {
        let ends = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        // `next` is cancel-safe (a channel receive): losing the race loses no event.
        let event = tokio::select! {
            event = stream.next() => event,
            () = tokio::time::sleep_until(renew_at) => {
                stream.renew(endpoint).await?;
                renew_at = Instant::now() + renew_every;
                continue;
            }
            () = ends => return Ok(timed_out(args)),
        };
        let message = event?;
        if !origin(&message).matches(args.device.as_deref(), args.module.as_deref()) {
            continue;
        }
        let mut out = stdout.lock();
        writeln!(out, "{}", monitor_event(&message, args.properties))
            .context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
        printed += 1;
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// `--timeout` passed: fine when no `--count` was asked for, a negative result otherwise.
fn timed_out(args: &MonitorArgs) -> ExitCode {
    if args.count.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Awaits `f` until `deadline` (if any); `None` when the deadline passed first.
async fn within<T>(deadline: Option<Instant>, f: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await.ok(),
        None => Some(f.await),
    }
}
