//! `TestHub`: an in-memory emulator on free loopback ports for other crates' tests
//! (feature `test-util`).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::hub::Clock;
use crate::hub::registry::{self as reg, NewIdentity};
use crate::store::registry::IdentityRecord;
use crate::{Config, RunningEmulator, StartError};

/// An emulator for tests: in memory, every listener on port 0 of 127.0.0.1.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
/// let cs = hub.create_device("dev1").await.unwrap();
/// assert!(cs.starts_with("HostName=localhost;DeviceId=dev1;SharedAccessKey="));
/// assert!(hub.ca_pem().contains("BEGIN CERTIFICATE"));
/// hub.shutdown().await;
/// # });
/// ```
#[derive(Debug)]
pub struct TestHub {
    /// The running emulator (addresses, hub handle, live feed).
    pub emulator: RunningEmulator,
}

impl TestHub {
    /// Starts an in-memory emulator on free ports.
    ///
    /// # Errors
    /// [`StartError`] when it cannot start.
    pub async fn spawn() -> Result<Self, StartError> {
        Ok(Self {
            emulator: RunningEmulator::start(Config::ephemeral()).await?,
        })
    }

    /// Starts an in-memory emulator on free ports whose hub reads `clock`: a test advances a
    /// [`ManualClock`](crate::hub::ManualClock) to expire tokens instead of sleeping.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use iothub_emulator::hub::{Clock, ManualClock};
    /// let clock = Arc::new(ManualClock::new(SystemTime::now()));
    /// let hub = iothub_emulator::testing::TestHub::spawn_with_clock(clock.clone()).await.unwrap();
    /// clock.advance(Duration::from_secs(3600));
    /// assert_eq!(hub.emulator.hub.now(), clock.now());
    /// hub.shutdown().await;
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`StartError`] when it cannot start.
    pub async fn spawn_with_clock(clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        Ok(Self {
            emulator: RunningEmulator::start(Config {
                clock,
                ..Config::ephemeral()
            })
            .await?,
        })
    }

    /// Creates a device with generated keys and returns its connection string
    /// (`HostName=localhost;DeviceId=…;SharedAccessKey=…`).
    ///
    /// # Errors
    /// [`reg::RegistryError`] when the id is invalid or taken.
    pub async fn create_device(&self, device_id: &str) -> Result<String, reg::RegistryError> {
        let record = self
            .create(NewIdentity {
                device_id: device_id.into(),
                ..NewIdentity::default()
            })
            .await?;
        Ok(reg::connection_string(&record, "localhost"))
    }

    /// Creates any identity (module, X.509, disabled, given keys).
    ///
    /// # Errors
    /// [`reg::RegistryError`].
    pub async fn create(&self, new: NewIdentity) -> Result<IdentityRecord, reg::RegistryError> {
        let now = crate::timestamp::unix_millis(self.emulator.hub.now());
        self.emulator
            .hub
            .store()
            .call(move |tx| Ok(reg::create(tx, new, now)))
            .await?
    }

    /// PEM of the CA the TLS listeners' certificates chain to.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.emulator.ca_pem
    }

    /// MQTT over TLS address (server name `localhost`).
    #[must_use]
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.emulator.mqtt_addr
    }

    /// Plain MQTT address.
    #[must_use]
    pub fn plain_addr(&self) -> SocketAddr {
        // invariant: `Config::ephemeral` always enables the plain listener.
        #[allow(clippy::unwrap_used)]
        self.emulator.plain_addr.unwrap()
    }

    /// HTTPS / WebSocket address (`wss://localhost:{port}/$iothub/websocket`).
    #[must_use]
    pub fn https_addr(&self) -> SocketAddr {
        // invariant: `Config::ephemeral` always enables the HTTPS listener.
        #[allow(clippy::unwrap_used)]
        self.emulator.https_addr.unwrap()
    }

    /// Stops the emulator.
    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }
}
