//! `iothub hub monitor`: follows the emulator's live event stream (`GET /events/stream`,
//! server-sent events; an emulator extension in place of the Event Hubs endpoint,
//! docs/protocol.md §10) and prints one JSON object per message in the shape of
//! `az iot hub monitor-events`:
//! `{"event":{"origin":…,"module":…,"interface":…,"component":…,"properties":{"system":{…},"application":{…}},"payload":…}}`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::service::{ServiceClient, checked, segment};
use crate::args::MonitorArgs;
use crate::cmd::Global;

pub(crate) async fn run(
    client: &ServiceClient,
    args: &MonitorArgs,
    _global: Global,
) -> anyhow::Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(d) = &args.device {
        query.push(format!("device={}", segment(d)));
    }
    if let Some(m) = &args.module {
        query.push(format!("module={}", segment(m)));
    }
    if let Some(s) = args.since {
        query.push(format!("since={s}"));
    }
    let path = if query.is_empty() {
        "/events/stream".to_owned()
    } else {
        format!("/events/stream?{}", query.join("&"))
    };
    let deadline = match args.timeout {
        Some(t) if t.is_finite() && t >= 0.0 => Some(Instant::now() + Duration::from_secs_f64(t)),
        Some(_) => bail!("--timeout must be a non-negative number of seconds"),
        None => None,
    };
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let response = within(deadline, client.send(Method::GET, &path, None, None)).await;
    let Some(response) = response else {
        return Ok(timed_out(args));
    };
    let mut response = checked(response?)
        .await
        .context("opening the event stream")?;
    let mut buffer = String::new();
    let mut printed = 0;
    let stdout = std::io::stdout();
    loop {
        let Some(chunk) = within(deadline, response.chunk()).await else {
            return Ok(timed_out(args));
        };
        let Some(chunk) = chunk.context("reading the event stream")? else {
            bail!("the hub closed the event stream");
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(data) = sse_data(&frame) else {
                continue;
            };
            let event: Value =
                serde_json::from_str(&data).context("the event stream sent invalid JSON")?;
            let mut out = stdout.lock();
            writeln!(out, "{}", monitor_event(&event, args.properties))
                .context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                return Ok(ExitCode::SUCCESS);
            }
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

/// The `data:` lines of one server-sent event, joined; `None` for comments and keep-alives.
fn sse_data(frame: &str) -> Option<String> {
    let lines: Vec<&str> = frame
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Converts an emulator event into the `az iot hub monitor-events` shape.
fn monitor_event(e: &Value, with_properties: bool) -> Value {
    let system = e["systemProperties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let text = |key: &str| {
        system
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    // JSON bodies decoded, others as strings; bodies that are not UTF-8 as base64.
    let payload = match &e["payload"] {
        Value::Null if e["body"].as_str().is_some_and(|b| !b.is_empty()) => e["body"].clone(),
        other => other.clone(),
    };
    let mut event = Map::new();
    event.insert("origin".into(), e["deviceId"].clone());
    event.insert("module".into(), json!(e["moduleId"].as_str().unwrap_or("")));
    event.insert("interface".into(), json!(text("dt-dataschema")));
    event.insert("component".into(), json!(text("dt-subject")));
    if with_properties {
        let application = e["applicationProperties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        event.insert(
            "properties".into(),
            json!({ "system": system, "application": application }),
        );
    }
    event.insert("payload".into(), payload);
    json!({ "event": event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_the_az_monitor_shape() {
        let e = json!({"seq": 3, "deviceId": "d1", "moduleId": null,
            "systemProperties": {"dt-dataschema": "dtmi:x;1", "dt-subject": "thermostat1", "message-id": "m1"},
            "applicationProperties": {"alert": "true"}, "payload": {"t": 1}, "body": "eyJ0IjoxfQ=="});
        assert_eq!(
            monitor_event(&e, false),
            json!({"event": {"origin": "d1", "module": "", "interface": "dtmi:x;1", "component": "thermostat1", "payload": {"t": 1}}})
        );
        let with = monitor_event(&e, true);
        assert_eq!(with["event"]["properties"]["system"]["message-id"], "m1");
        assert_eq!(with["event"]["properties"]["application"]["alert"], "true");
    }

    #[test]
    fn sse_frames_yield_their_data_and_skip_keep_alives() {
        assert_eq!(
            sse_data("id: 4\ndata: {\"a\":1}\n\n").as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(sse_data(":\n\n"), None);
    }
}
