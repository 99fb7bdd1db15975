//! Where the simulated devices live: which hub, how devices reach it over MQTT, and creating
//! the device identities (REST `PUT /devices/{id}` for a running emulator or a real hub, the
//! registry directly for `--in-process`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::ProgressBar;
use iothub_device::ClientOptions;
use iothub_emulator::hub::registry::{self, NewIdentity, RegistryError};
use iothub_emulator::timestamp;
use iothub_emulator::{Config, RunningEmulator};
use iothub_proto::connection_string::ConnectionString;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::args::SimulateArgs;
use crate::cmd::hub::service::{ServiceClient, checked, segment};

/// How many `PUT /devices` requests run at once.
const CREATE_CONCURRENCY: usize = 16;

/// How devices dial the hub.
#[derive(Debug, Clone)]
struct Dial {
    /// `HostName` put in the credentials.
    host: String,
    /// Port to dial (None = the client's default 8883).
    port: Option<u16>,
    /// Extra CA to trust (the emulator's).
    ca_pem: Option<String>,
    /// Plain TCP (the emulator's development port).
    plain: bool,
}

/// Where identities are created.
enum Registry {
    /// Our own emulator: the registry in-process.
    InProcess(Box<RunningEmulator>),
    /// A running emulator or a real hub: its REST API.
    Rest(ServiceClient),
}

/// The target hub.
pub(crate) struct Fleet {
    registry: Registry,
    dial: Dial,
}

impl Fleet {
    /// Resolves the hub from the flags (see `SimulateArgs`).
    pub(crate) async fn resolve(args: &SimulateArgs) -> anyhow::Result<Self> {
        if args.in_process {
            let emulator = RunningEmulator::start(Config::ephemeral())
                .await
                .context("cannot start the in-process emulator")?;
            let dial = if args.plain {
                Dial {
                    host: emulator.hub.host().to_owned(),
                    port: emulator.plain_addr.map(|a| a.port()),
                    ca_pem: None,
                    plain: true,
                }
            } else {
                Dial {
                    host: emulator.hub.host().to_owned(),
                    port: Some(emulator.mqtt_addr.port()),
                    ca_pem: Some(emulator.ca_pem.clone()),
                    plain: false,
                }
            };
            return Ok(Self {
                registry: Registry::InProcess(Box::new(emulator)),
                dial,
            });
        }
        let service = ServiceClient::resolve(&args.service)?;
        let extra_ca = match &args.service.ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read CA file {}", path.display()))?,
            ),
            None => None,
        };
        let dial = match &args.service.hub_connection_string {
            Some(cs) => {
                let parsed = ConnectionString::parse(cs)
                    .map_err(|e| anyhow!("invalid hub connection string: {e}"))?;
                Dial {
                    host: parsed.host_name().to_owned(),
                    port: None,
                    ca_pem: extra_ca,
                    plain: false,
                }
            }
            None => {
                let dir = match &args.service.data_dir {
                    Some(d) => d.clone(),
                    None => default_data_dir()?,
                };
                emulator_dial(&dir, args.plain)?
            }
        };
        Ok(Self {
            registry: Registry::Rest(service),
            dial,
        })
    }

    /// Creates (or looks up) every device and returns its client options.
    pub(crate) async fn create_devices(
        &self,
        ids: &[String],
        bar: &ProgressBar,
    ) -> anyhow::Result<Vec<(String, ClientOptions)>> {
        let mut out = Vec::with_capacity(ids.len());
        match &self.registry {
            Registry::InProcess(emulator) => {
                let host = emulator.hub.host().to_owned();
                // One database job for the whole fleet: 10,000 inserts in one transaction.
                let ids_owned = ids.to_vec();
                let strings = emulator
                    .hub
                    .store()
                    .call(move |tx| {
                        let now = timestamp::unix_millis(SystemTime::now());
                        let mut strings = Vec::with_capacity(ids_owned.len());
                        for id in ids_owned {
                            let new = NewIdentity {
                                device_id: id.clone(),
                                ..NewIdentity::default()
                            };
                            let record = match registry::create(tx, new, now) {
                                Ok(r) => Ok(r),
                                Err(RegistryError::AlreadyExists) => {
                                    iothub_emulator::store::registry::find(tx, &id, None)?
                                        .ok_or(RegistryError::NotFound)
                                }
                                Err(e) => Err(e),
                            };
                            strings.push(record.map(|r| registry::connection_string(&r, &host)));
                        }
                        Ok(strings)
                    })
                    .await?;
                for (id, cs) in ids.iter().zip(strings) {
                    let cs = cs.map_err(|e| anyhow!("cannot create device {id}: {e}"))?;
                    out.push((id.clone(), self.options(&cs)?));
                    bar.inc(1);
                }
            }
            Registry::Rest(service) => {
                let mut pending = ids.iter();
                let mut running = FuturesUnordered::new();
                loop {
                    while running.len() < CREATE_CONCURRENCY {
                        let Some(id) = pending.next() else { break };
                        running.push(async move { (id, create_rest(service, id).await) });
                    }
                    let Some((id, key)) = running.next().await else {
                        break;
                    };
                    let key = key?;
                    let cs = format!(
                        "HostName={};DeviceId={id};SharedAccessKey={key}",
                        self.dial.host
                    );
                    out.push((id.clone(), self.options(&cs)?));
                    bar.inc(1);
                }
            }
        }
        Ok(out)
    }

    fn options(&self, connection_string: &str) -> anyhow::Result<ClientOptions> {
        let mut options = ClientOptions::from_connection_string(connection_string)?;
        if let Some(port) = self.dial.port {
            options = options.port(port);
        }
        if let Some(pem) = &self.dial.ca_pem {
            options = options.trust_ca_pem(pem.clone());
        }
        if self.dial.plain {
            options = options.plain_tcp();
        }
        Ok(options)
    }

    /// Stops the in-process emulator, if any.
    pub(crate) async fn shutdown(self) {
        if let Registry::InProcess(emulator) = self.registry {
            emulator.shutdown().await;
        }
    }
}

/// Creates `id` (or reads it when it exists) and returns its primary key.
async fn create_rest(service: &ServiceClient, id: &str) -> anyhow::Result<String> {
    let path = format!("/devices/{}", segment(id));
    let body = json!({"deviceId": id});
    let response = service.send(Method::PUT, &path, Some(&body), None).await?;
    let device: Value = if response.status() == StatusCode::CONFLICT {
        service
            .json(Method::GET, &path, None)
            .await
            .with_context(|| format!("device {id} exists but cannot be read"))?
    } else {
        let response = checked(response)
            .await
            .with_context(|| format!("cannot create device {id}"))?;
        let text = response
            .text()
            .await
            .context("cannot read the hub's answer")?;
        serde_json::from_str(&text)
            .with_context(|| format!("the hub's answer for device {id} is not JSON: {text}"))?
    };
    match device["authentication"]["symmetricKey"]["primaryKey"].as_str() {
        Some(key) if !key.is_empty() => Ok(key.to_owned()),
        _ => bail!("device {id} has no symmetric key (an X.509 device cannot be simulated)"),
    }
}

/// How to dial the emulator that recorded `endpoints.json` in `dir`.
fn emulator_dial(dir: &Path, plain: bool) -> anyhow::Result<Dial> {
    let path = dir.join("endpoints.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no running emulator found ({} is missing): start `iothub emulator`, pass --in-process or --hub-connection-string",
            path.display()
        )
    })?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let host = v["hostName"].as_str().unwrap_or("localhost").to_owned();
    let key = if plain { "mqttPlain" } else { "mqttTls" };
    let addr = v[key]
        .as_str()
        .with_context(|| format!("{} lists no {key} endpoint", path.display()))?;
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("{key} in {} is not host:port", path.display()))?;
    let ca_pem = match (plain, v["caFile"].as_str()) {
        (false, Some(ca)) => Some(
            std::fs::read_to_string(ca)
                .with_context(|| format!("cannot read the emulator's CA {ca}"))?,
        ),
        _ => None,
    };
    Ok(Dial {
        host,
        port: Some(port),
        ca_pem,
        plain,
    })
}

/// `~/.local/share/iothub/emulator` (the emulator's default data dir).
fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/iothub/emulator"))
}
