//! Telemetry for the service side — **our extension** in place of the Event Hubs-compatible
//! endpoint (PROTOCOL.md §10 "`az iot hub monitor-events`"; real hubs hand events out over
//! AMQP only):
//!
//! - `GET /events?since={seq}&device={id}&module={mid}&limit={n}`: a range read of the durable
//!   event log, oldest first: `{"events":[…],"next":{seq}}`; pass `next` as `since` to continue.
//! - `GET /events/stream?device=…&module=…&since=…`: server-sent events, one per telemetry
//!   message (`id:` = seq, `data:` = the event JSON), first the log after `since` (or
//!   `Last-Event-ID`), then live from the hub's broadcast feed. When the stream falls behind
//!   the feed (`Lagged`) it catches up from the log, so a slow reader loses nothing.
//!
//! Event JSON: `{"seq","deviceId","moduleId","enqueuedTimeUtc","systemProperties",
//! "applicationProperties","payload","body"}` — `payload` is the body as JSON when it parses,
//! else as a UTF-8 string, else `null`; `body` is always the base64 of the raw bytes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
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
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::{ApiError, ApiState, Permission, Route};
use crate::hub::Hub;
use crate::store::events::{self, TelemetryEvent};
use crate::timestamp::{from_unix_millis, iso8601_millis};

/// Log rows read per store round trip.
const BATCH: u32 = 500;
/// Most rows one range read scans (the answer's `next` lets the caller continue).
const MAX_SCAN: usize = 50_000;

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
    fn accepts(&self, e: &TelemetryEvent) -> bool {
        self.device.as_ref().is_none_or(|d| *d == e.device_id)
            && self
                .module
                .as_ref()
                .is_none_or(|m| Some(m) == e.module_id.as_ref())
    }
}

async fn range(
    State(s): State<ApiState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
    let mut next = filter.since.unwrap_or(0);
    let mut out = Vec::new();
    let mut scanned = 0;
    while out.len() < limit && scanned < MAX_SCAN {
        let after = next;
        let batch = s
            .hub
            .store()
            .call(move |tx| events::read_after(tx, after, BATCH))
            .await?;
        let full = batch.len() == BATCH as usize;
        for e in batch {
            scanned += 1;
            next = e.seq;
            if filter.accepts(&e) {
                out.push(event_json(&e));
                if out.len() == limit {
                    break;
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(Json(json!({ "events": out, "next": next })))
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
    // Subscribe before reading the log so nothing falls between the replay and the live feed.
    let feed = s.hub.live_feed();
    let tail = Tail {
        hub: s.hub.clone(),
        shutdown: s.shutdown.clone(),
        feed,
        catch_up_from: filter.since,
        replayed_upto: None,
        last_seen: None,
        backlog: VecDeque::new(),
        filter,
    };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        let e = tail.next().await?;
        let sse = Event::default()
            .id(e.seq.to_string())
            .data(event_json(&e).to_string());
        Some((Ok(sse), tail))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The state of one SSE reader: log replay first, then the live feed.
struct Tail {
    hub: Hub,
    /// Becomes `true` when the emulator stops: end the stream then (`None`: never).
    shutdown: Option<watch::Receiver<bool>>,
    feed: broadcast::Receiver<Arc<TelemetryEvent>>,
    filter: Filter,
    /// `Some(seq)`: read the log after `seq` before (or instead of) the live feed.
    catch_up_from: Option<i64>,
    /// Live events at or below this seq were already sent from the log.
    replayed_upto: Option<i64>,
    /// Highest seq seen so far (where to catch up from after `Lagged`).
    last_seen: Option<i64>,
    backlog: VecDeque<Arc<TelemetryEvent>>,
}

impl Tail {
    /// The next matching event; `None` when the hub is gone or the log cannot be read.
    async fn next(&mut self) -> Option<Arc<TelemetryEvent>> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                return Some(e);
            }
            if let Some(after) = self.catch_up_from {
                let batch = self
                    .hub
                    .store()
                    .call(move |tx| events::read_after(tx, after, BATCH))
                    .await
                    .ok()?;
                let upto = batch.last().map_or(after, |e| e.seq);
                self.catch_up_from = (batch.len() == BATCH as usize).then_some(upto);
                self.replayed_upto = Some(upto);
                self.last_seen = Some(self.last_seen.map_or(upto, |l| l.max(upto)));
                self.backlog.extend(
                    batch
                        .into_iter()
                        .filter(|e| self.filter.accepts(e))
                        .map(Arc::new),
                );
                continue;
            }
            let received = tokio::select! {
                r = self.feed.recv() => r,
                // Stopping (or the sender is gone): end the response so shutdown can finish.
                () = stopped(self.shutdown.as_mut()) => return None,
            };
            match received {
                Ok(e) if self.replayed_upto.is_some_and(|r| e.seq <= r) => {}
                Ok(e) => {
                    self.last_seen = Some(self.last_seen.map_or(e.seq, |l| l.max(e.seq)));
                    if self.filter.accepts(&e) {
                        return Some(e);
                    }
                }
                // Fell behind the feed: the log has everything, read the gap from there. (A
                // reader that has seen nothing yet has no position to resume from and skips.)
                Err(RecvError::Lagged(_)) => self.catch_up_from = self.last_seen,
                Err(RecvError::Closed) => return None,
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn event(n: usize) -> TelemetryEvent {
        TelemetryEvent {
            seq: 0,
            device_id: if n.is_multiple_of(2) {
                "even".into()
            } else {
                "odd".into()
            },
            module_id: None,
            enqueued_ms: 0,
            system_properties: Default::default(),
            application_properties: Default::default(),
            body: bytes::Bytes::from(n.to_string()),
        }
    }

    #[tokio::test]
    async fn a_reader_that_lags_behind_the_live_feed_catches_up_from_the_log_without_gaps() {
        let hub = Hub::new(Store::open_in_memory().unwrap(), vec!["localhost".into()]);
        let first = hub.append_telemetry(event(0)).await.unwrap();
        let mut tail = Tail {
            hub: hub.clone(),
            shutdown: None,
            feed: hub.live_feed(),
            filter: Filter {
                device: Some("even".into()),
                ..Filter::default()
            },
            catch_up_from: None,
            replayed_upto: None,
            last_seen: Some(first),
            backlog: VecDeque::new(),
        };
        // More than the feed holds (4096), appended before the reader reads anything.
        let total = 5000;
        for n in 1..=total {
            hub.append_telemetry(event(n)).await.unwrap();
        }
        let mut bodies = Vec::new();
        while bodies.len() < total / 2 {
            let e = tokio::time::timeout(Duration::from_secs(5), tail.next())
                .await
                .unwrap()
                .unwrap();
            bodies.push(
                String::from_utf8(e.body.to_vec())
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
        }
        let expected: Vec<usize> = (2..=total).step_by(2).collect();
        assert_eq!(bodies, expected, "every even event once, in order");
        // Nothing more (no duplicates from the feed's retained tail).
        hub.append_telemetry(event(total + 2)).await.unwrap();
        let next = tail.next().await.unwrap();
        assert_eq!(&next.body[..], (total + 2).to_string().as_bytes());
    }
}
