//! Which process owns the emulator's data dir decides how `hub identity` and `hub
//! enrollment` reach it, so two processes never write `hub.db` at once (emulator README,
//! "Registry and `iothub hub identity`"): a running emulator holds the lock on `hub.lock`,
//! and then the commands go through its REST API (found in `endpoints.json`); otherwise the
//! command takes the lock itself for its duration and opens the database.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use iothub_emulator::data_dir::lock::{self, DataDirLock, LockError};

/// How long to wait for a starting emulator to record its endpoints.
const ENDPOINTS_WAIT: Duration = Duration::from_secs(15);

/// Who owns the data dir.
#[derive(Debug)]
pub(crate) enum Owner {
    /// No emulator runs: this process holds the lock (while the value lives) and may open
    /// `hub.db`. `None` when the data dir does not exist (there is nothing to lock).
    Nobody(Option<DataDirLock>),
    /// An emulator runs and its `endpoints.json` is current: use its REST API.
    Emulator,
}

/// Finds out who owns `dir`, waiting for a starting emulator's `endpoints.json` and for
/// another command's brief hold of the lock.
pub(crate) fn of(dir: &Path) -> anyhow::Result<Owner> {
    if !dir.is_dir() {
        return Ok(Owner::Nobody(None));
    }
    let deadline = Instant::now() + ENDPOINTS_WAIT;
    loop {
        match lock::try_acquire(dir) {
            Ok(held) => return Ok(Owner::Nobody(Some(held))),
            Err(LockError::Held(_)) => {}
            Err(e) => return Err(e).context("cannot tell whether an emulator runs"),
        }
        // Held: by an emulator once its endpoints.json names the lock holder's pid; else by
        // an emulator still starting, or by another command for a moment.
        let holder = lock::holder_pid(dir);
        if holder.is_some() && holder == recorded_pid(dir) {
            return Ok(Owner::Emulator);
        }
        if Instant::now() > deadline {
            bail!(
                "{} is locked by process {} but no current endpoints.json names it; is an emulator stuck starting?",
                dir.display(),
                holder.map_or_else(|| "?".to_owned(), |p| p.to_string())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `pid` recorded in `dir/endpoints.json`, if readable.
fn recorded_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("endpoints.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    u32::try_from(v["pid"].as_u64()?).ok()
}
