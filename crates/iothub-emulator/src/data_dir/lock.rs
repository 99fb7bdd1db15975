//! Who owns a data dir: an exclusive advisory lock (`flock`) on `hub.lock` in it. The
//! emulator holds it for as long as it runs; `iothub hub identity`/`enrollment` take it for the
//! length of one command before opening `hub.db` directly, and when they cannot (an emulator
//! runs) they go through the emulator's REST API instead. So never two processes write the
//! database at once (emulator README, "Registry and `iothub hub identity`"). The kernel drops
//! the lock when its holder exits, even on `kill -9`: a stale lock file is harmless.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "hub.lock";

/// An acquired lock; dropping it releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why the lock was not acquired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process (a running emulator, or a CLI command for a moment) holds it.
    #[error("the data dir {0} is in use by another process (a running emulator?)")]
    Held(PathBuf),
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Takes the lock on `dir` without waiting.
///
/// # Errors
/// [`LockError::Held`] when another process holds it, [`LockError::Io`] otherwise.
///
/// # Example
/// ```
/// use iothub_emulator::data_dir::lock::{LockError, try_acquire};
/// let dir = tempfile::tempdir().unwrap();
/// let held = try_acquire(dir.path()).unwrap();
/// assert!(matches!(try_acquire(dir.path()), Err(LockError::Held(_))));
/// drop(held);
/// assert!(try_acquire(dir.path()).is_ok());
/// ```
pub fn try_acquire(dir: &Path) -> Result<DataDirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's pid, so a reader can tell which `endpoints.json` is current.
            use std::io::Write as _;
            let mut f = &file;
            f.set_len(0)
                .and_then(|()| write!(f, "{}", std::process::id()))
                .map_err(io)?;
            Ok(DataDirLock { _file: file, path })
        }
        Err(TryLockError::WouldBlock) => Err(LockError::Held(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Takes the lock, retrying for up to `wait` while another process holds it (a CLI command
/// holds it for milliseconds; an emulator for as long as it runs).
///
/// # Errors
/// As [`try_acquire`] once `wait` has passed.
pub fn acquire_within(dir: &Path, wait: Duration) -> Result<DataDirLock, LockError> {
    let deadline = Instant::now() + wait;
    loop {
        match try_acquire(dir) {
            Err(LockError::Held(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The pid the current (or last) holder wrote into the lock file.
#[must_use]
pub fn holder_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(LOCK_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a process holds the lock on `dir` now (the lock is taken and released at once).
///
/// # Errors
/// [`LockError::Io`] when the lock file cannot be opened.
pub fn is_held(dir: &Path) -> Result<bool, LockError> {
    match try_acquire(dir) {
        Ok(_) => Ok(false),
        Err(LockError::Held(_)) => Ok(true),
        Err(e) => Err(e),
    }
}
