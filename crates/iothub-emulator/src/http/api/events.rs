//! Telemetry for the service side — **our extension** in place of the Event Hubs-compatible
//! endpoint (docs/protocol.md §10 "`az iot hub monitor-events`"; real hubs hand events out over
//! AMQP only):
//!
//! - `GET /events?since={seq}&device={id}&module={mid}&limit={n}`: a range read of the durable
//!   event log, oldest first: `{"events":[…],"next":{seq}}`; pass `next` as `since` to continue.
//! - `GET /events/stream?device=…&module=…&since=…`: server-sent events, one per telemetry
//!   message (`id:` = seq, `data:` = the event JSON), first the log after `since` (or
//!   `Last-Event-ID`), then live from the hub's broadcast feed. When the stream falls behind
//!   the feed it catches up from the log, so a slow reader loses nothing (the hub's
//!   [`crate::hub::event_log`] does both reads).
//!
//! The stream also carries each file upload notification as it is queued (docs/file-upload.md),
//! as an SSE event named `fileUploadNotification` (so `onmessage` readers never see it) whose
//! data is the notification's JSON; it has no `id:` and is not replayed.
//!
//! Event JSON: `{"seq","deviceId","moduleId","enqueuedTimeUtc","systemProperties",
//! "applicationProperties","payload","body"}` — `payload` is the body as JSON when it parses,
//! else as a UTF-8 string, else `null`; `body` is always the base64 of the raw bytes.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::{ApiError, ApiState, Permission, Route};
use crate::hub::event_log::EventFilter;
use crate::store::events::TelemetryEvent;
use crate::timestamp::{from_unix_millis, iso8601_millis};

pub(crate) fn routes() -> Vec<Route> {
    let service = Some(Permission::ServiceConnect);
    vec![
        Route::new(Method::GET, "/events", service, range),
        Route::new(Method::GET, "/events/stream", service, stream),
    ]
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Filter {
    since: Option<i64>,
    device: Option<String>,
    module: Option<String>,
    limit: Option<usize>,
}

impl Filter {
    fn events(&self) -> EventFilter {
        EventFilter {
            device_id: self.device.clone(),
            module_id: self.module.clone(),
        }
    }
}

async fn range(
    State(s): State<ApiState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
    let read = s
        .hub
        .read_events(filter.since.unwrap_or(0), &filter.events(), limit)
        .await?;
    let events: Vec<Value> = read.events.iter().map(event_json).collect();
    Ok(Json(json!({ "events": events, "next": read.next })))
}

async fn stream(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut filter): Query<Filter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    if filter.since.is_none() {
        filter.since = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
    }
    // The follower subscribes before reading the log, so nothing falls between the replay
    // and the live feed.
    let follower = s.hub.follow_events(filter.since, filter.events());
    let files = s.hub.follow_file_notifications();
    let device = filter.device.clone();
    let events = futures_util::stream::unfold(
        (follower, files, device, s.shutdown.clone()),
        |(mut follower, mut files, device, mut shutdown)| async move {
            let sse = loop {
                tokio::select! {
                    e = follower.next() => {
                        let e = e?;
                        break Event::default()
                            .id(e.seq.to_string())
                            .data(event_json(&e).to_string());
                    }
                    n = files.recv() => match n {
                        Ok(n) if device.as_ref().is_none_or(|d| *d == n.device_id) => {
                            break Event::default()
                                .event("fileUploadNotification")
                                .data(n.to_json().to_string());
                        }
                        // Another device's, or missed while lagging (not replayed).
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    // Stopping (or the sender is gone): end the response so shutdown can finish.
                    () = stopped(shutdown.as_mut()) => return None,
                }
            };
            Some((Ok(sse), (follower, files, device, shutdown)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Resolves when `shutdown` becomes `true` or its sender is dropped; never for `None`.
async fn stopped(shutdown: Option<&mut watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            let _ = rx.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

/// One event as the REST API and the SSE stream show it.
pub(crate) fn event_json(e: &TelemetryEvent) -> Value {
    let payload = serde_json::from_slice::<Value>(&e.body)
        .ok()
        .or_else(|| {
            std::str::from_utf8(&e.body)
                .ok()
                .map(|s| Value::String(s.to_owned()))
        })
        .unwrap_or(Value::Null);
    json!({
        "seq": e.seq,
        "deviceId": e.device_id,
        "moduleId": e.module_id,
        "enqueuedTimeUtc": iso8601_millis(from_unix_millis(e.enqueued_ms)),
        "systemProperties": e.system_properties,
        "applicationProperties": e.application_properties,
        "payload": payload,
        "body": STANDARD.encode(&e.body),
    })
}
