//! Counters shared by the device tasks (read live by the progress bar) and the final summary
//! with exact PUBACK-latency percentiles.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// Live counters; every device task holds a reference.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connected: AtomicU64,
    /// PUBACK latencies in microseconds.
    latencies: Mutex<Vec<u32>>,
    /// The first distinct error messages (for the summary).
    error_samples: Mutex<Vec<String>>,
}

/// How many distinct error messages the summary keeps.
const ERROR_SAMPLES: usize = 5;

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one acknowledged message and its latency.
    pub(crate) fn acked(&self, latency: Duration) {
        Self::add(&self.acked);
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        lock(&self.latencies).push(micros);
    }

    /// Records one failure.
    pub(crate) fn error(&self, message: String) {
        Self::add(&self.errors);
        let mut samples = lock(&self.error_samples);
        if samples.len() < ERROR_SAMPLES && !samples.contains(&message) {
            samples.push(message);
        }
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The summary after `elapsed` of sending.
    pub(crate) fn summary(&self, devices: u64, qos: u8, elapsed: Duration) -> Summary {
        let mut latencies = std::mem::take(&mut *lock(&self.latencies));
        latencies.sort_unstable();
        let acked = Self::get(&self.acked);
        let secs = elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
        let throughput = if secs > 0.0 { acked as f64 / secs } else { 0.0 };
        Summary {
            devices,
            qos,
            connected: Self::get(&self.connected),
            sent: Self::get(&self.sent),
            acked,
            errors: Self::get(&self.errors),
            reconnects: Self::get(&self.reconnects),
            elapsed,
            throughput,
            p50: percentile(&latencies, 50.0),
            p95: percentile(&latencies, 95.0),
            p99: percentile(&latencies, 99.0),
            max: latencies.last().map(|&m| micros(m)),
            error_samples: lock(&self.error_samples).clone(),
        }
    }
}

fn micros(m: u32) -> Duration {
    Duration::from_micros(u64::from(m))
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u32], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(micros(sorted[rank.clamp(1, sorted.len()) - 1]))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The run's result.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) devices: u64,
    /// 1: latencies are PUBACK latencies; 0: time until the publish was written.
    pub(crate) qos: u8,
    pub(crate) connected: u64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) errors: u64,
    pub(crate) reconnects: u64,
    pub(crate) elapsed: Duration,
    pub(crate) throughput: f64,
    pub(crate) p50: Option<Duration>,
    pub(crate) p95: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    pub(crate) max: Option<Duration>,
    pub(crate) error_samples: Vec<String>,
}

fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        json!((d.as_secs_f64() * 1e5).round() / 100.0)
    })
}

fn ms_text(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
}

impl Summary {
    /// The `--json` form (latencies in milliseconds).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "devices": self.devices,
            "qos": self.qos,
            "connected": self.connected,
            "sent": self.sent,
            "acknowledged": self.acked,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "seconds": (self.elapsed.as_secs_f64() * 100.0).round() / 100.0,
            "throughput": (self.throughput * 10.0).round() / 10.0,
            "latencyMs": {"p50": ms(self.p50), "p95": ms(self.p95), "p99": ms(self.p99), "max": ms(self.max)},
            "errorSamples": self.error_samples,
        })
    }

    /// The plain-text form.
    pub(crate) fn to_text(&self) -> String {
        let mut s = format!(
            "devices      {} ({} connected), QoS {}\n\
             sent         {}\n\
             acknowledged {}\n\
             throughput   {:.1} msg/s over {:.1} s\n\
             {} p50 {}  p95 {}  p99 {}  max {}\n\
             reconnects   {}\n\
             errors       {}",
            self.devices,
            self.connected,
            self.qos,
            self.sent,
            self.acked,
            self.throughput,
            self.elapsed.as_secs_f64(),
            if self.qos == 0 {
                "written     "
            } else {
                "PUBACK      "
            },
            ms_text(self.p50),
            ms_text(self.p95),
            ms_text(self.p99),
            ms_text(self.max),
            self.reconnects,
            self.errors,
        );
        for e in &self.error_samples {
            s.push_str(&format!("\n  {e}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&samples, 95.0), Some(Duration::from_micros(95)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&[7], 99.0), Some(Duration::from_micros(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_counts_and_throughput() {
        let c = Counters::default();
        Counters::add(&c.sent);
        Counters::add(&c.sent);
        c.acked(Duration::from_millis(2));
        c.acked(Duration::from_millis(4));
        c.error("boom".into());
        c.error("boom".into());
        let s = c.summary(1, 1, Duration::from_secs(2));
        assert_eq!((s.sent, s.acked, s.errors), (2, 2, 2));
        assert_eq!(s.throughput, 1.0);
        assert_eq!(s.error_samples, vec!["boom".to_string()]);
        let j = s.to_json();
        assert_eq!(j["latencyMs"]["p50"], 2.0);
        assert_eq!(j["latencyMs"]["p99"], 4.0);
    }
}
