//! Finding: `hub.db` (+ `-wal`, `-shm`) with every key, and `endpoints.json` with the
//! `iothubowner` connection string, were created 0644 in a 0755 directory.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use iothub_emulator::{Config, RunningEmulator};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn start(dir: &Path) -> RunningEmulator {
    let config = Config {
        data_dir: Some(dir.to_path_buf()),
        ..Config::ephemeral()
    };
    RunningEmulator::start(config).await.unwrap()
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700);
    for f in [
        "hub.db",
        "hub.db-wal",
        "hub.db-shm",
        "endpoints.json",
        "ca.key",
        "server.key",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
}

#[tokio::test]
async fn the_data_dir_and_its_secrets_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    // A fresh dir, created by the emulator.
    let fresh = tmp.path().join("fresh");
    let emulator = start(&fresh).await;
    emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::events::count(tx))
        .await
        .unwrap();
    assert_private(&fresh);
    emulator.shutdown().await;

    // An existing dir whose modes were loosened is tightened at the next start.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["hub.db", "endpoints.json"] {
        std::fs::set_permissions(fresh.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let emulator = start(&fresh).await;
    assert_private(&fresh);
    emulator.shutdown().await;
}
