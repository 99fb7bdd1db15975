//! Retry timing and status classes (docs/c-api.md, "Retry"). Randomness is the caller's.

use core::time::Duration;

use iothub_proto::{Backoff, Status};

/// The delay in milliseconds before retry number `attempt` (0 for the first): `min_delay_ms`
/// doubling per attempt up to `max_delay_ms`, minus up to `jitter_percent` % (capped at 100)
/// scaled by `random` (uniform over `uint32_t`, from the caller's RNG), and never less than
/// the server's `retry_after_ms` (0 when it sent none). Saturates at `UINT32_MAX`.
#[unsafe(no_mangle)]
pub extern "C" fn iothub_retry_calculate_delay_ms(
    attempt: u32,
    min_delay_ms: u32,
    max_delay_ms: u32,
    jitter_percent: u32,
    random: u32,
    retry_after_ms: u32,
) -> u32 {
    let percent = u8::try_from(jitter_percent.min(100)).unwrap_or(100);
    let backoff = Backoff::new(
        Duration::from_millis(u64::from(min_delay_ms)),
        Duration::from_millis(u64::from(max_delay_ms)),
    )
    .with_jitter_percent(percent);
    let server = (retry_after_ms > 0).then(|| Duration::from_millis(u64::from(retry_after_ms)));
    let delay = backoff.delay_with_retry_after(attempt, random, server);
    u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)
}

/// Whether a status (twin, method, DPS response) is a success (2xx).
#[unsafe(no_mangle)]
pub extern "C" fn iothub_status_is_success(status: u16) -> bool {
    Status(status).is_success()
}

/// Whether a failed request may be retried (429 throttling, 5xx).
#[unsafe(no_mangle)]
pub extern "C" fn iothub_status_is_retriable(status: u16) -> bool {
    Status(status).is_retriable()
}
