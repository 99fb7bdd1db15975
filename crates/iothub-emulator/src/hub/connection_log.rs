//! Each device's recent connection history — accepted, closed (with why and after how long)
//! and refused (with the rule that failed) — kept in memory for the dashboard and the
//! service API, bounded per device and in the number of devices.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::lock;
use crate::timestamp::iso8601_millis;

/// Events kept per device: the most recent ones.
pub const EVENTS_PER_DEVICE: usize = 50;

/// Devices with a history at most. Refusals name device ids chosen by whoever connects, so
/// the map must not grow without bound; past this, devices not yet in it are not recorded
/// (the log still has every line).
const MAX_DEVICES: usize = 100_000;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// A connection was accepted.
    Connected,
    /// A connection closed.
    Disconnected {
        /// Why.
        reason: String,
        /// How long it had been open.
        duration: Duration,
    },
    /// A connection attempt was refused.
    Refused {
        /// The rule that failed, with the values (never a secret).
        reason: String,
    },
}

/// One entry of a device's connection history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// When, on the hub's clock.
    pub at: SystemTime,
    /// The module, for a module identity.
    pub module_id: Option<String>,
    /// Which transport (`mqtt+tls`, `mqtt+ws`, `mqtt`, …).
    pub transport: &'static str,
    /// What happened.
    pub kind: ConnectionEventKind,
}

impl ConnectionEvent {
    /// The JSON the service API serves:
    /// `{"time","event":"connected|disconnected|refused","transport","moduleId"?,"reason"?,"durationMs"?}`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use iothub_emulator::hub::{ConnectionEvent, ConnectionEventKind};
    /// let e = ConnectionEvent {
    ///     at: SystemTime::UNIX_EPOCH,
    ///     module_id: None,
    ///     transport: "mqtt+tls",
    ///     kind: ConnectionEventKind::Disconnected { reason: "keep-alive timeout".into(), duration: Duration::from_millis(1500) },
    /// };
    /// let json = e.to_json();
    /// assert_eq!(json["event"], "disconnected");
    /// assert_eq!(json["durationMs"], 1500);
    /// assert_eq!(json["time"], "1970-01-01T00:00:00.000Z");
    /// ```
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "time": iso8601_millis(self.at),
            "transport": self.transport,
        });
        if let Some(m) = &self.module_id {
            v["moduleId"] = json!(m);
        }
        match &self.kind {
            ConnectionEventKind::Connected => v["event"] = json!("connected"),
            ConnectionEventKind::Disconnected { reason, duration } => {
                v["event"] = json!("disconnected");
                v["reason"] = json!(reason);
                v["durationMs"] = json!(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            }
            ConnectionEventKind::Refused { reason } => {
                v["event"] = json!("refused");
                v["reason"] = json!(reason);
            }
        }
        v
    }
}

/// The histories, by device id.
#[derive(Debug, Default)]
pub(crate) struct ConnectionLog {
    by_device: Mutex<HashMap<String, VecDeque<ConnectionEvent>>>,
}

impl ConnectionLog {
    /// Records `event` for `device_id`, dropping its oldest beyond [`EVENTS_PER_DEVICE`].
    pub(crate) fn record(&self, device_id: &str, event: ConnectionEvent) {
        let mut map = lock(&self.by_device);
        if let Some(events) = map.get_mut(device_id) {
            if events.len() == EVENTS_PER_DEVICE {
                events.pop_front();
            }
            events.push_back(event);
        } else if map.len() < MAX_DEVICES {
            map.insert(device_id.to_owned(), VecDeque::from([event]));
        }
    }

    /// The device's history, oldest first.
    pub(crate) fn events(&self, device_id: &str) -> Vec<ConnectionEvent> {
        lock(&self.by_device)
            .get(device_id)
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(n: usize) -> ConnectionEvent {
        ConnectionEvent {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(n as u64),
            module_id: None,
            transport: "mqtt",
            kind: ConnectionEventKind::Refused {
                reason: format!("attempt {n}"),
            },
        }
    }

    #[test]
    fn keeps_the_latest_fifty_events_of_a_device_oldest_first() {
        let log = ConnectionLog::default();
        for n in 0..60 {
            log.record("d1", refused(n));
        }
        let events = log.events("d1");
        assert_eq!(events.len(), EVENTS_PER_DEVICE);
        assert_eq!(events[0], refused(10));
        assert_eq!(events[49], refused(59));
        assert!(log.events("d2").is_empty());
    }
}
