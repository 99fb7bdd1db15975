//! Starting the emulator: store, TLS, listeners, and the handle tests and the CLI hold.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::hub::registry as reg;
use crate::hub::{Clock, Hub, SystemClock};
use crate::listener_limits::{
    Admission, AdmittedUntilConnack, Gate, ListenerLimits, accept_admitted,
};
use crate::mqtt::Link;
use crate::store::{Store, StoreError, events, registry};
use crate::tls::{TlsError, TlsMaterial};

/// Emulator configuration (the CLI maps its flags into this).
#[derive(Clone, Debug)]
pub struct Config {
    /// Data directory (database, CA, `endpoints.json`); `None` = in memory, nothing persisted.
    pub data_dir: Option<PathBuf>,
    /// Host names the hub answers to, besides `localhost` and `127.0.0.1`.
    pub hostnames: Vec<String>,
    /// Address to bind (default 127.0.0.1).
    pub bind: IpAddr,
    /// MQTT over TLS port (default 8883).
    pub mqtt_port: u16,
    /// HTTPS + MQTT-over-WebSocket port (default 443; falls back to 8443 when not allowed).
    pub https_port: Option<u16>,
    /// Plain MQTT port (default 1883; `None` switches it off).
    pub plain_port: Option<u16>,
    /// Plain HTTP port for the REST API and the dashboard (default 8080; `None` switches it off).
    pub http_port: Option<u16>,
    /// Telemetry retention (default 24 h).
    pub retention: Duration,
    /// User-supplied certificate chain, key and optional CA file (PEM) instead of the local CA.
    pub tls_files: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    /// Timeouts and connection caps of every listener.
    pub limits: ListenerLimits,
    /// AMQPS port (default 5671; `None` switches it off).
    pub amqp_port: Option<u16>,
    /// Plain AMQP port for `UseDevelopmentEmulator=true` clients (default 5672; `None`
    /// switches it off).
    pub amqp_plain_port: Option<u16>,
    /// The Event Hub-compatible endpoint's name (default: the hub's name, the first label of
    /// its primary host name).
    pub event_hub_name: Option<String>,
    /// The host name clients are redirected to for events (default `127.0.0.1`, a name of
    /// this host other than the hub's `localhost`; docs/amqp.md "Endpoints").
    pub event_hub_host: Option<String>,
    /// Event Hub partitions of the event log (default 4), fixed when the data dir is
    /// created: starting an existing data dir with another count fails
    /// ([`StoreError::PartitionCount`]).
    pub partitions: u32,
    /// Which non-telemetry events go to the event log (none by default).
    pub routes: crate::hub::routes::RouteSources,
    /// Where uploaded files go (default: the built-in blob endpoint; docs/file-upload.md).
    pub file_upload: FileUploadConfig,
    /// The blob container of file uploads (default `fileupload`).
    pub file_upload_container: String,
    /// Lifetime of each upload's SAS token and correlation (default one hour).
    pub file_upload_sas_ttl: Duration,
    /// A CA (PEM) to trust, besides the public roots, when reading blob sizes from an
    /// external storage account (`--storage-ca`; Azurite with its own certificate).
    pub storage_ca_pem: Option<Vec<u8>>,
    /// The hub's clock: the system's by default; tests pass a
    /// [`ManualClock`](crate::hub::ManualClock) and drive token expiry by advancing it.
    pub clock: Arc<dyn Clock>,
}

/// Where a running emulator's file uploads go.
#[derive(Clone, Debug, Default)]
pub enum FileUploadConfig {
    /// The emulator's own blob endpoint on its HTTP(S) ports, files under `<data-dir>/blobs/`.
    #[default]
    BuiltIn,
    /// An Azure Storage account (or Azurite): its connection string
    /// (`--storage-connection-string`). Never logged: it holds the account key.
    External(String),
    /// No storage: every upload request is refused.
    Disabled,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: None,
            hostnames: Vec::new(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mqtt_port: 8883,
            https_port: Some(443),
            plain_port: Some(1883),
            http_port: Some(8080),
            retention: Duration::from_secs(24 * 3600),
            tls_files: None,
            limits: ListenerLimits::default(),
            amqp_port: Some(5671),
            amqp_plain_port: Some(5672),
            event_hub_name: None,
            event_hub_host: None,
            partitions: crate::hub::event_hub::DEFAULT_PARTITIONS,
            routes: crate::hub::routes::RouteSources::default(),
            file_upload: FileUploadConfig::BuiltIn,
            file_upload_container: crate::hub::file_upload::DEFAULT_CONTAINER.to_owned(),
            file_upload_sas_ttl: crate::hub::file_upload::DEFAULT_SAS_TTL,
            storage_ca_pem: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl Config {
    /// In memory, every listener on a free loopback port: the configuration tests use.
    #[must_use]
    pub fn ephemeral() -> Self {
        Self {
            mqtt_port: 0,
            https_port: Some(0),
            plain_port: Some(0),
            http_port: Some(0),
            amqp_port: Some(0),
            amqp_plain_port: Some(0),
            ..Self::default()
        }
    }
}

/// Errors while starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// TLS material could not be prepared.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Writing `endpoints.json` failed.
    #[error("cannot write endpoints.json")]
    Endpoints(#[source] std::io::Error),
    /// The data dir could not be created or its permissions tightened.
    #[error("cannot prepare the data dir")]
    DataDir(#[source] std::io::Error),
    /// Another process owns the data dir (its `hub.lock`).
    #[error(transparent)]
    Locked(#[from] crate::data_dir::lock::LockError),
    /// The storage connection string is not usable (the key is never shown).
    #[error("invalid storage connection string")]
    StorageConnectionString(#[source] crate::hub::file_upload::StorageConnectionStringError),
    /// The built-in blob endpoint's directory could not be prepared.
    #[error("cannot prepare the blob store")]
    BlobStore(#[source] std::io::Error),
    /// The client for the external storage account could not be set up (its CA).
    #[error("cannot set up the storage client")]
    StorageClient(#[source] crate::storage_client::StorageClientError),
}

/// A running emulator. Dropping it does not stop it; call [`RunningEmulator::shutdown`].
#[derive(Debug)]
pub struct RunningEmulator {
    /// MQTT over TLS.
    pub mqtt_addr: SocketAddr,
    /// HTTPS + MQTT over WebSocket (`/$iothub/websocket`), if enabled.
    pub https_addr: Option<SocketAddr>,
    /// Plain MQTT, if enabled.
    pub plain_addr: Option<SocketAddr>,
    /// Plain HTTP (REST API, dashboard), if enabled.
    pub http_addr: Option<SocketAddr>,
    /// AMQPS, if enabled.
    pub amqp_addr: Option<SocketAddr>,
    /// Plain AMQP, if enabled.
    pub amqp_plain_addr: Option<SocketAddr>,
    /// The Event Hub-compatible endpoint (name, host, port) back ends read events from.
    pub event_hub: crate::amqp::EventHubEndpoint,
    /// Set when 443 could not be bound and 8443 was used instead.
    pub https_fallback_warning: Option<String>,
    /// PEM of the CA clients must trust.
    pub ca_pem: String,
    /// Path of that CA file (`None` in memory).
    pub ca_path: Option<PathBuf>,
    /// The hub every transport calls (registry, telemetry, C2D, twins, methods, DPS, feed).
    pub hub: Hub,
    /// The `iothubowner` service connection string.
    pub service_connection_string: String,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Held while running: CLI commands then use the REST API instead of `hub.db`.
    _data_dir_lock: Option<crate::data_dir::lock::DataDirLock>,
}

impl RunningEmulator {
    /// Starts everything described by `config`.
    ///
    /// # Errors
    /// [`StartError`] when a port, the database or the TLS files are unusable.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        crate::listener_limits::raise_descriptor_limit();
        let limits = config.limits;
        let data_dir_lock = match &config.data_dir {
            Some(dir) => {
                crate::data_dir::prepare(dir).map_err(StartError::DataDir)?;
                // A CLI command holds it for a moment at most; another emulator for good.
                Some(crate::data_dir::lock::acquire_within(
                    dir,
                    Duration::from_secs(5),
                )?)
            }
            None => None,
        };
        let store = match &config.data_dir {
            Some(dir) => Store::open(&dir.join("hub.db"))?,
            None => Store::open_in_memory()?,
        };
        store.call(|tx| reg::ensure_policies(tx)).await?;
        let mut names = config.hostnames.clone();
        for n in ["localhost", "127.0.0.1"] {
            if !names.iter().any(|x| x == n) {
                names.push(n.into());
            }
        }
        let event_hub_host = config
            .event_hub_host
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into());
        if !names
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&event_hub_host))
        {
            names.push(event_hub_host.clone());
        }
        let primary = names.first().cloned().unwrap_or_else(|| "localhost".into());
        // `iothub hub identity` reads it to build connection strings without the emulator.
        store
            .call(move |tx| registry::set_setting(tx, "host_name", &primary))
            .await?;
        let file_upload = crate::http::blob::file_upload_options(&config, &store).await?;
        let hub = Hub::open(
            store.clone(),
            crate::hub::HubOptions {
                names,
                partitions: config.partitions,
                routes: config.routes,
                file_upload,
                clock: config.clock.clone(),
                ..crate::hub::HubOptions::default()
            },
        )
        .await?;
        let tls = match &config.tls_files {
            Some((cert, key, ca)) => TlsMaterial::from_files(cert, key, ca.as_deref())?,
            None => {
                if let Some(dir) = &config.data_dir {
                    std::fs::create_dir_all(dir).map_err(StartError::Endpoints)?;
                }
                let mut sans = config.hostnames.clone();
                sans.push(event_hub_host.clone());
                TlsMaterial::local_ca(config.data_dir.as_deref(), &sans)?
            }
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let mqtt = bind(SocketAddr::new(config.bind, config.mqtt_port)).await?;
        let mqtt_addr = local(&mqtt)?;
        let acceptor = TlsAcceptor::from(tls.server_config(&[])?);
        tasks.spawn(accept_tls(
            mqtt,
            acceptor,
            limits,
            hub.clone(),
            shutdown_rx.clone(),
        ));

        let plain_addr = match config.plain_port {
            Some(port) => {
                let l = bind(SocketAddr::new(config.bind, port)).await?;
                let addr = local(&l)?;
                tasks.spawn(accept_plain(
                    l,
                    Gate::new("mqtt", limits.max_unauthenticated),
                    hub.clone(),
                    shutdown_rx.clone(),
                ));
                Some(addr)
            }
            None => None,
        };

        let event_hub = crate::amqp::EventHubEndpoint {
            name: config
                .event_hub_name
                .clone()
                .unwrap_or_else(|| hub_name(hub.host())),
            host: event_hub_host,
            port: 0,
            created_at_ms: hub.event_hub_created_ms(),
        };
        let amqp_listener = match config.amqp_port {
            Some(port) => Some(bind(SocketAddr::new(config.bind, port)).await?),
            None => None,
        };
        let amqp_addr = amqp_listener.as_ref().map(local).transpose()?;
        let event_hub = crate::amqp::EventHubEndpoint {
            port: amqp_addr.map_or(5671, |a| a.port()),
            ..event_hub
        };
        let amqp = std::sync::Arc::new(crate::amqp::AmqpContext {
            hub: hub.clone(),
            endpoint: event_hub.clone(),
            epochs: crate::amqp::epochs::Epochs::default(),
            limits,
            shutdown: shutdown_rx.clone(),
        });
        if let Some(l) = amqp_listener {
            let acceptor = TlsAcceptor::from(tls.server_config(&[])?);
            tasks.spawn(crate::amqp::listener::serve_amqps(
                l,
                acceptor,
                amqp.clone(),
                shutdown_rx.clone(),
            ));
        }
        let amqp_plain_addr = match config.amqp_plain_port {
            Some(port) => {
                let l = bind(SocketAddr::new(config.bind, port)).await?;
                let addr = local(&l)?;
                tasks.spawn(crate::amqp::listener::serve_amqp_plain(
                    l,
                    amqp.clone(),
                    shutdown_rx.clone(),
                ));
                Some(addr)
            }
            None => None,
        };

        let mut https_fallback_warning = None;
        let https_addr = match config.https_port {
            Some(port) => {
                let l = match bind(SocketAddr::new(config.bind, port)).await {
                    Ok(l) => l,
                    Err(StartError::Bind { source, .. })
                        if port == 443 && source.kind() == std::io::ErrorKind::PermissionDenied =>
                    {
                        https_fallback_warning = Some(
                            "port 443 needs privileges: serving HTTPS/WebSocket on 8443 instead. To get 443, run \
                             `sudo sysctl net.ipv4.ip_unprivileged_port_start=443` or \
                             `sudo setcap cap_net_bind_service=+ep $(which iothub)`"
                                .to_string(),
                        );
                        bind(SocketAddr::new(config.bind, 8443)).await?
                    }
                    Err(e) => return Err(e),
                };
                let addr = local(&l)?;
                let acceptor = TlsAcceptor::from(tls.server_config(&[b"http/1.1"])?);
                tasks.spawn(crate::http::serve_https(
                    l,
                    acceptor,
                    limits,
                    hub.clone(),
                    amqp.clone(),
                    shutdown_rx.clone(),
                ));
                Some(addr)
            }
            None => None,
        };

        let http_addr = match config.http_port {
            Some(port) => {
                let l = bind(SocketAddr::new(config.bind, port)).await?;
                let addr = local(&l)?;
                let app = crate::http::api::router_with_shutdown(hub.clone(), shutdown_rx.clone())
                    .merge(crate::http::dashboard::router(hub.clone()))
                    .merge(crate::http::blob::router(hub.clone()));
                tasks.spawn(crate::http::serve_plain(
                    l,
                    app,
                    limits,
                    shutdown_rx.clone(),
                ));
                Some(addr)
            }
            None => None,
        };

        tasks.spawn(retention(
            hub.clone(),
            config.retention,
            shutdown_rx.clone(),
        ));
        let host = hub.host().to_string();
        let service_connection_string = store
            .call(move |tx| {
                reg::service_connection_string(tx, &host, "iothubowner")
                    .map_err(|_| StoreError::Corrupt("iothubowner policy missing"))
            })
            .await?;
        let running = Self {
            mqtt_addr,
            https_addr,
            plain_addr,
            http_addr,
            amqp_addr,
            amqp_plain_addr,
            event_hub,
            https_fallback_warning,
            ca_pem: tls.ca_pem.clone(),
            ca_path: tls.ca_path.clone(),
            hub,
            service_connection_string,
            shutdown,
            tasks,
            _data_dir_lock: data_dir_lock,
        };
        if let Some(dir) = &config.data_dir {
            running.write_endpoints(dir)?;
        }
        Ok(running)
    }

    /// The endpoint record other commands read (`endpoints.json` in the data dir).
    #[must_use]
    pub fn endpoints_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pid": std::process::id(),
            "hostName": self.hub.host(),
            "mqttTls": self.mqtt_addr.to_string(),
            "https": self.https_addr.map(|a| a.to_string()),
            "mqttPlain": self.plain_addr.map(|a| a.to_string()),
            "http": self.http_addr.map(|a| a.to_string()),
            "amqp": {
                "port": self.amqp_addr.map(|a| a.port()),
                "plainPort": self.amqp_plain_addr.map(|a| a.port()),
                "eventHubName": self.event_hub.name,
                "eventHubHost": self.event_hub.host,
            },
            "caFile": self.ca_path,
            "serviceConnectionString": self.service_connection_string,
        })
    }

    fn write_endpoints(&self, dir: &std::path::Path) -> Result<(), StartError> {
        let text = serde_json::to_string_pretty(&self.endpoints_json()).unwrap_or_default();
        crate::data_dir::write_secret(&dir.join("endpoints.json"), text.as_bytes())
            .map_err(StartError::Endpoints)
    }

    /// Stops accepting, closes every connection (their in-flight appends complete first) and
    /// waits for the tasks. Everything already acknowledged is in the database.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // A final round trip through the database thread: every earlier job has committed.
        let _ = self.hub.store().call(|tx| events::count(tx)).await;
    }
}

/// The hub's name: the first label of its primary host name (`myhub` for
/// `myhub.azure-devices.net`), as IoT Hub names its Event Hub-compatible endpoint after it.
fn hub_name(host: &str) -> String {
    if host.parse::<IpAddr>().is_ok() {
        return "iothub".into();
    }
    host.split('.').next().unwrap_or(host).to_string()
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local(l: &TcpListener) -> Result<SocketAddr, StartError> {
    l.local_addr().map_err(StartError::Endpoints)
}

async fn accept_plain(
    listener: TcpListener,
    gate: Gate,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) {
    let connections = shutdown.clone();
    accept_admitted(listener, gate, shutdown, |stream, peer, admission| {
        let _ = stream.set_nodelay(true);
        let stream = AdmittedUntilConnack::new(stream, Some(admission));
        let link = Link {
            transport: "mqtt",
            peer: Some(peer),
        };
        crate::mqtt::serve(hub.clone(), stream, link, None, connections.clone())
    })
    .await;
}

async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) {
    let gate = Gate::new("mqtt-tls", limits.max_unauthenticated);
    let connections = shutdown.clone();
    accept_admitted(listener, gate, shutdown, |stream, peer, admission| {
        tls_connection(
            stream,
            peer,
            admission,
            acceptor.clone(),
            limits,
            hub.clone(),
            connections.clone(),
        )
    })
    .await;
}

async fn tls_connection(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) {
    // Boxed: the handshake runs once, and its state (a whole TLS connection beside the one
    // it returns) would otherwise size every connection's task for its whole life.
    let Some((tls, thumbprints)) = Box::pin(tls_handshake(stream, peer, acceptor, limits)).await
    else {
        return;
    };
    // The CONNACK is visible above TLS only: the admission moves there after the handshake.
    let link = Link {
        transport: "mqtt+tls",
        peer: Some(peer),
    };
    let tls = AdmittedUntilConnack::new(tls, Some(admission));
    crate::mqtt::serve(hub, tls, link, thumbprints, shutdown).await;
}

/// The TLS handshake within the listener's time limit, and the client certificate's
/// thumbprints; `None` (logged) when it fails or takes too long.
async fn tls_handshake(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<(String, String)>,
)> {
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(transport = "mqtt+tls", %peer, "TLS handshake failed: {e}");
            return None;
        }
        Err(_) => {
            tracing::info!(
                transport = "mqtt+tls",
                %peer,
                "TLS handshake not finished within {:?}",
                limits.tls_handshake
            );
            return None;
        }
    };
    let thumbprints = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|leaf| crate::tls::thumbprints(leaf.as_ref()));
    Some((tls, thumbprints))
}

/// Applies the retention every minute.
async fn retention(hub: Hub, keep: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = hub.apply_retention(keep).await {
            tracing::warn!(error = %e, "retention purge failed");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}
