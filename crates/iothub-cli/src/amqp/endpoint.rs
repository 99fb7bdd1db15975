//! Where the AMQP client connects and with which credentials (docs/amqp.md "Endpoints").
//!
//! With `--hub-connection-string`: the hub's `HostName` on AMQPS 5671, the policy and key of
//! the connection string, the web roots (plus `--ca-file`). Without one: the local emulator
//! described by the `endpoints.json` in its data dir — its `serviceConnectionString` and the
//! ports of its `amqp` section: plain AMQP when it has that listener, else AMQPS trusting its
//! CA (`caFile`). Every connection to the local emulator,
//! the redirected Event Hub one too, dials the emulator's own address: its host names (the
//! hub's, the Event Hub's) need not resolve on this machine, they are only sent as TLS SNI and
//! in the AMQP OPEN.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use iothub_proto::connection_string::{ConnectionString, Credential};
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rustls::ClientConfig;
use serde_json::Value;

use crate::args::HubService;

/// The IANA port of AMQPS.
pub(crate) const AMQPS_PORT: u16 = 5671;

/// Lifetime of the tokens the client signs (one command run; long `monitor` runs renew).
pub(crate) const TOKEN_TTL_SECS: u64 = 3600;

/// A hub reachable over AMQP, with the service policy that signs its tokens.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// The hub's `HostName`: TLS SNI, OPEN hostname and token resource.
    pub(crate) host: String,
    /// The hub's AMQP port.
    pub(crate) port: u16,
    /// The shared access policy name (`skn`).
    pub(crate) policy: String,
    key: String,
    /// TLS settings; `None` for plain AMQP (a local emulator without AMQPS).
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// The local emulator's address, dialled for every host name.
    pub(crate) local_ip: Option<IpAddr>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output.
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("policy", &self.policy)
            .field("tls", &self.tls.is_some())
            .field("local_ip", &self.local_ip)
            .finish_non_exhaustive()
    }
}

/// Where one TCP connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dial {
    /// Host (name or address) and port to connect to.
    pub(crate) address: (String, u16),
    /// The name sent as TLS SNI and in OPEN.
    pub(crate) server_name: String,
}

impl Endpoint {
    /// Resolves the target hub from the flags, the environment or the emulator's data dir.
    pub(crate) fn resolve(service: &HubService) -> anyhow::Result<Self> {
        let mut ca_files: Vec<PathBuf> = service.ca_file.iter().cloned().collect();
        let (connection_string, local) = match &service.hub_connection_string {
            Some(cs) => (cs.clone(), None),
            None => {
                let dir = match &service.data_dir {
                    Some(d) => d.clone(),
                    None => crate::cmd::emulator_data_dir()?,
                };
                let local = LocalAmqp::read(&dir)?;
                ca_files.extend(local.ca_file.clone());
                (local.connection_string.clone(), Some(local))
            }
        };
        crate::errors::check_connection_string(&connection_string)?;
        let parsed = ConnectionString::parse(&connection_string)
            .map_err(|e| anyhow!("invalid hub connection string: {e}"))?;
        let Credential::ServicePolicyKey { policy, key } = parsed.credential() else {
            bail!(
                "the hub connection string needs SharedAccessKeyName and SharedAccessKey (a service policy)"
            );
        };
        let (port, tls, local_ip) = match &local {
            None => (
                AMQPS_PORT,
                Some(super::tls::client_config(&ca_files)?),
                None,
            ),
            // Plain AMQP when the emulator offers it (as the REST client prefers plain
            // HTTP), else AMQPS trusting the emulator's CA.
            Some(l) => match (l.plain_port, l.port) {
                (Some(p), _) => (p, None, Some(l.ip)),
                (None, Some(p)) => (p, Some(super::tls::client_config(&ca_files)?), Some(l.ip)),
                (None, None) => bail!("the local emulator has its AMQP listeners switched off"),
            },
        };
        Ok(Self {
            host: parsed.host_name().to_owned(),
            port,
            policy: policy.to_owned(),
            key: key.to_owned(),
            tls,
            local_ip,
        })
    }

    /// Where to connect to reach `host:port` (the hub, or the host a redirect names).
    pub(crate) fn dial(&self, host: &str, port: u16) -> Dial {
        let address = match self.local_ip {
            // Plain AMQP is one port for every name; AMQPS redirects name the same port.
            Some(ip) if self.tls.is_none() => (ip.to_string(), self.port),
            Some(ip) => (ip.to_string(), port),
            None => (host.to_owned(), port),
        };
        Dial {
            address,
            server_name: host.to_owned(),
        }
    }

    /// A SAS token for `resource` (the hub's host name, or `sb://{host}/{eventhub}`), signed
    /// with the policy key (docs/protocol.md §2).
    pub(crate) fn token(&self, resource: &str) -> anyhow::Result<String> {
        let signer = HmacSha256Signer::from_base64(&self.key)
            .map_err(|e| anyhow!("invalid policy key: {e}"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = SasToken::sign(
            ResourceUri::raw(resource),
            now + TOKEN_TTL_SECS,
            Some(&self.policy),
            &signer,
        )
        .map_err(|e| anyhow!("cannot sign the service token: {e}"))?;
        Ok(token.to_string())
    }
}

/// What the running emulator recorded about its AMQP listeners in `endpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalAmqp {
    pub(crate) connection_string: String,
    /// The address to dial: the IP the emulator's listeners are bound to.
    pub(crate) ip: IpAddr,
    /// AMQPS port.
    pub(crate) port: Option<u16>,
    /// Plain AMQP port.
    pub(crate) plain_port: Option<u16>,
    pub(crate) ca_file: Option<PathBuf>,
}

impl LocalAmqp {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let v = crate::cmd::read_endpoints(dir)?;
        Self::from_json(&v).with_context(|| format!("in {}", dir.join("endpoints.json").display()))
    }

    /// Reads the fields the AMQP client needs.
    pub(crate) fn from_json(v: &Value) -> anyhow::Result<Self> {
        let connection_string = v["serviceConnectionString"]
            .as_str()
            .context("no serviceConnectionString")?
            .to_owned();
        let amqp = &v["amqp"];
        if !amqp.is_object() {
            bail!(
                "the running emulator has no AMQP endpoint (no `amqp` section): it predates AMQP support; upgrade and restart `iothub emulator`"
            );
        }
        let port = |key: &str| -> anyhow::Result<Option<u16>> {
            match &amqp[key] {
                Value::Null => Ok(None),
                p => p
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .map(Some)
                    .with_context(|| format!("amqp.{key} is not a port: {p}")),
            }
        };
        // The listeners share one bind address; any recorded socket address names it.
        let ip = ["mqttTls", "mqttPlain", "https", "http"]
            .iter()
            .find_map(|k| v[*k].as_str()?.parse::<SocketAddr>().ok())
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| loopback_if_any(a.ip()));
        Ok(Self {
            connection_string,
            ip,
            port: port("port")?,
            plain_port: port("plainPort")?,
            ca_file: v["caFile"].as_str().map(PathBuf::from),
        })
    }
}

/// A listener bound to the unspecified address is reached on loopback.
fn loopback_if_any(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CS: &str = "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=AAAA";

    #[test]
    fn reads_the_amqp_section_of_endpoints_json() {
        let v = json!({"mqttTls": "0.0.0.0:8883", "http": "127.0.0.1:8080",
            "amqp": {"port": 5671, "plainPort": null, "eventHubName": "localhost", "eventHubHost": "127.0.0.1"},
            "caFile": "/d/ca.pem", "serviceConnectionString": CS});
        let local = LocalAmqp::from_json(&v).unwrap();
        assert_eq!(local.port, Some(5671));
        assert_eq!(local.plain_port, None);
        assert_eq!(local.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(local.ca_file, Some(PathBuf::from("/d/ca.pem")));
        assert_eq!(local.connection_string, CS);
    }

    #[test]
    fn an_emulator_without_amqp_is_named_as_such() {
        let v = json!({"mqttTls": "127.0.0.1:8883", "serviceConnectionString": CS});
        let err = LocalAmqp::from_json(&v).unwrap_err();
        assert!(err.to_string().contains("no AMQP endpoint"), "{err:#}");
        let bad = json!({"amqp": {"port": 70000}, "serviceConnectionString": CS});
        assert!(LocalAmqp::from_json(&bad).is_err());
    }

    fn endpoint(local_ip: Option<IpAddr>, tls: bool) -> Endpoint {
        Endpoint {
            host: "localhost".into(),
            port: 5999,
            policy: "iothubowner".into(),
            key: "AAAA".into(),
            tls: tls.then(|| super::super::tls::client_config(&[]).unwrap()),
            local_ip,
        }
    }

    #[test]
    fn the_local_emulator_is_dialled_by_address_for_every_name() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let tls = endpoint(Some(ip), true).dial("eh.servicebus.windows.net", 6000);
        assert_eq!(tls.address, ("127.0.0.1".to_owned(), 6000));
        assert_eq!(tls.server_name, "eh.servicebus.windows.net");
        let plain = endpoint(Some(ip), false).dial("127.0.0.1", 6000);
        assert_eq!(plain.address, ("127.0.0.1".to_owned(), 5999));
        let real = endpoint(None, true).dial("x.servicebus.windows.net", 5671);
        assert_eq!(real.address, ("x.servicebus.windows.net".to_owned(), 5671));
    }

    #[test]
    fn tokens_name_their_resource_and_policy() {
        let t = endpoint(None, false)
            .token("sb://h.servicebus.windows.net/hub")
            .unwrap();
        assert!(t.starts_with("SharedAccessSignature "), "{t}");
        assert!(t.contains("skn=iothubowner"), "{t}");
        assert!(
            t.contains("sr=sb%3A%2F%2Fh.servicebus.windows.net%2Fhub"),
            "{t}"
        );
    }
}
