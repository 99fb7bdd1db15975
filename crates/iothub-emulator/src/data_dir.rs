//! The data directory's permissions (emulator README, "Data directory"): it holds every
//! device and policy key (`hub.db` and its `-wal`/`-shm`), the `iothubowner` connection string
//! (`endpoints.json`) and the TLS private keys, so the directory is `0700` and those files
//! `0600`, whatever the umask. A directory or file found with looser modes is tightened, with
//! a warning. The lock that says which process owns the directory lives in [`lock`].

pub mod lock;

use std::io;
use std::path::Path;

/// Files in the data dir that hold secrets.
pub const SECRET_FILES: &[&str] = &[
    "hub.db",
    "hub.db-wal",
    "hub.db-shm",
    "endpoints.json",
    "ca.key",
    "server.key",
];

/// Creates `dir` as `0700` (or tightens it), tightens every existing secret file to `0600`,
/// and creates an empty `hub.db` as `0600` so SQLite, which gives its `-wal` and `-shm` files
/// the database file's mode, creates those `0600` too.
///
/// # Errors
/// The I/O error of a directory or file that cannot be created or changed.
pub fn prepare(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    for name in SECRET_FILES {
        // Checked and tightened in one step, not after an `exists()`: SQLite deletes `-wal`
        // and `-shm` when its last connection closes, which may be happening right now in an
        // emulator that just stopped on this dir. A file that is gone needs no tightening.
        match restrict(&dir.join(name), 0o600) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    let db = dir.join("hub.db");
    if !db.exists() {
        open_private(&db, false)?;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with the new directory `0700`; an existing one with
/// group or other bits is tightened to `0700` with a warning.
///
/// # Errors
/// The I/O error of creating or changing it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    restrict(dir, 0o700)
}

/// Writes `contents` to `path` readable by the owner only: a temporary `0600` file in the same
/// directory renamed over `path`, so readers never see a partial file.
///
/// # Errors
/// The I/O error of writing or renaming.
pub fn write_secret(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = open_private(&tmp, true)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Opens (creating, `0600`) a file for writing; `truncate` empties an existing one.
fn open_private(path: &Path, truncate: bool) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The umask cannot widen 0600, but an existing file keeps its old mode: set it.
    restrict(path, 0o600)?;
    Ok(file)
}

/// Sets `path`'s permission bits to `mode` when it has any bit `mode` lacks.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & !mode != 0 {
        tracing::warn!(
            path = %path.display(),
            from = format!("{current:o}"),
            to = format!("{mode:o}"),
            "tightening permissions: the data dir holds keys"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn a_loose_dir_and_its_secret_files_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let endpoints = dir.join("endpoints.json");
        std::fs::write(&endpoints, "{}").unwrap();
        std::fs::set_permissions(&endpoints, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&endpoints), 0o600);
        assert_eq!(mode(&dir.join("hub.db")), 0o600);
    }

    #[test]
    fn secrets_are_written_owner_only_and_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("endpoints.json");
        write_secret(&path, b"one").unwrap();
        write_secret(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
