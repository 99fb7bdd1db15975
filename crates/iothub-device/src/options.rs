//! Client configuration: identity, credentials, transport, reliability knobs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_proto::connection_string::{ConnectionString, Credential};
use iothub_proto::credentials::{
    ClientId, DEFAULT_KEEP_ALIVE_SECS, MAX_KEEP_ALIVE_SECS, MQTT_TLS_PORT, Username, WEBSOCKET_PORT,
};
use iothub_proto::sas::{HmacSha256Signer, ParsedSasToken, ResourceUri, SasToken};

use crate::backoff::Backoff;
use crate::driver::{DriverOptions, LoginInfo, LoginSource};
use crate::session::SessionConfig;
use crate::transport::Endpoint;
use crate::{ConfigError, CredentialError, Error};

/// Sent as `DeviceClientType` in the MQTT username (docs/protocol.md §1.4).
const USER_AGENT: &str = concat!("iothub-device-rs/", env!("CARGO_PKG_VERSION"));

/// Largest MQTT packet accepted or sent: 256 KiB telemetry plus room for the topic and
/// property bag; twin documents and method payloads (128 KiB) fit too.
pub(crate) const MAX_PACKET_SIZE: usize = 256 * 1024 + 16 * 1024;

/// How the device proves its identity.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// A symmetric key: a fresh SAS token is minted for every connection and renewed by a
    /// planned reconnect before it expires.
    SasKey {
        /// Base64 key.
        key: String,
        /// `skn` for policy keys (such as `device`); `None` for the device's own key.
        policy: Option<String>,
    },
    /// A pre-made SAS token, used verbatim; the client cannot renew it.
    SasToken(String),
    /// An X.509 client certificate chain and its private key, PEM.
    X509 {
        /// Certificate chain, PEM.
        cert_pem: Vec<u8>,
        /// Private key, PEM.
        key_pem: Vec<u8>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(match self {
            Self::SasKey { .. } => "SasKey(..)",
            Self::SasToken(_) => "SasToken(..)",
            Self::X509 { .. } => "X509(..)",
        })
    }
}

/// Everything needed to start a [`DeviceClient`](crate::DeviceClient).
///
/// ```
/// use std::time::Duration;
/// use iothub_device::ClientOptions;
///
/// let options = ClientOptions::from_connection_string(
///     "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
/// )?
/// .model_id("dtmi:com:example:Thermostat;1")
/// .websockets(true)
/// .token_ttl(Duration::from_secs(3600))
/// .outbox_capacity(10_000);
/// assert_eq!(options.device_id(), "dev1");
/// # Ok::<(), iothub_device::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    host_name: String,
    gateway_host_name: Option<String>,
    device_id: String,
    module_id: Option<String>,
    auth: Auth,
    model_id: Option<String>,
    port: Option<u16>,
    websockets: bool,
    tls: bool,
    extra_ca_pem: Vec<Vec<u8>>,
    proxy: Option<String>,
    keep_alive: Duration,
    token_ttl: Duration,
    outbox_capacity: usize,
    max_inflight: usize,
    outbox_dir: Option<PathBuf>,
    pub(crate) request_timeout: Duration,
    drain_timeout: Duration,
    ack_timeout: Duration,
    backoff: iothub_proto::Backoff,
    auth_backoff_min: Duration,
    connect_timeout: Duration,
    https_port: Option<u16>,
}

impl ClientOptions {
    /// Options for identity `device_id` (and `module_id`) on hub `host_name`.
    pub fn new(host_name: &str, device_id: &str, module_id: Option<&str>, auth: Auth) -> Self {
        Self {
            host_name: host_name.to_owned(),
            gateway_host_name: None,
            device_id: device_id.to_owned(),
            module_id: module_id.map(str::to_owned),
            auth,
            model_id: None,
            port: None,
            websockets: false,
            tls: true,
            extra_ca_pem: Vec::new(),
            proxy: None,
            keep_alive: Duration::from_secs(u64::from(DEFAULT_KEEP_ALIVE_SECS)),
            token_ttl: Duration::from_secs(iothub_proto::sas::DEFAULT_TOKEN_TTL_SECS),
            outbox_capacity: 1000,
            max_inflight: 64,
            outbox_dir: None,
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(60),
            backoff: iothub_proto::Backoff::DEFAULT,
            auth_backoff_min: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            https_port: None,
        }
    }

    /// Options from a device or module connection string (docs/protocol.md §3): a device or
    /// module key, a policy key on behalf of a device, `SharedAccessSignature=…`, or
    /// `x509=true` (then call [`ClientOptions::x509_identity`]). `GatewayHostName` is dialled
    /// while `HostName` stays in the username and token.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed string ([`ConfigError::ConnectionString`] names the
    /// field), a string without a device ([`ConfigError::MissingDeviceId`]) or a service
    /// (hub-level) connection string ([`ConfigError::ServiceConnectionString`]).
    pub fn from_connection_string(text: &str) -> Result<Self, Error> {
        let cs = ConnectionString::parse(text).map_err(ConfigError::ConnectionString)?;
        let device_id = cs.device_id().ok_or(ConfigError::MissingDeviceId)?;
        let auth = match cs.credential() {
            Credential::DeviceKey { key } | Credential::ModuleKey { key } => Auth::SasKey {
                key: key.to_owned(),
                policy: None,
            },
            Credential::DevicePolicyKey { policy, key } => Auth::SasKey {
                key: key.to_owned(),
                policy: Some(policy.to_owned()),
            },
            Credential::Token { token } => Auth::SasToken(token.to_owned()),
            Credential::X509 => Auth::X509 {
                cert_pem: Vec::new(),
                key_pem: Vec::new(),
            },
            _ => return Err(ConfigError::ServiceConnectionString.into()),
        };
        let mut options = Self::new(cs.host_name(), device_id, cs.module_id(), auth);
        options.gateway_host_name = cs.gateway_host_name().map(str::to_owned);
        Ok(options)
    }

    /// Sets the X.509 client certificate chain and key (PEM).
    pub fn x509_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.auth = Auth::X509 {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        };
        self
    }

    /// Reads the X.509 client certificate chain and key from PEM files.
    ///
    /// # Errors
    ///
    /// [`ConfigError::File`] when a file cannot be read.
    pub fn x509_files(self, cert: &Path, key: &Path) -> Result<Self, Error> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Ok(self.x509_identity(cert_pem, key_pem))
    }

    /// Announces a Plug and Play model id (`model-id` in the username, docs/protocol.md §8).
    pub fn model_id(mut self, dtmi: &str) -> Self {
        self.model_id = Some(dtmi.to_owned());
        self
    }

    /// MQTT over WebSockets (port 443 unless [`ClientOptions::port`] says otherwise).
    pub fn websockets(mut self, on: bool) -> Self {
        self.websockets = on;
        self
    }

    /// Overrides the port (default 8883, or 443 with WebSockets).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Overrides the host to dial (as `GatewayHostName` does); TLS verifies this name.
    pub fn gateway_host_name(mut self, host: &str) -> Self {
        self.gateway_host_name = Some(host.to_owned());
        self
    }

    /// Disables TLS. Only for a local emulator's plain development port: IoT Hub has none.
    pub fn plain_tcp(mut self) -> Self {
        self.tls = false;
        self
    }

    /// Trusts the CA certificates in this PEM, in addition to the embedded Azure roots.
    pub fn trust_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_ca_pem.push(pem.into());
        self
    }

    /// Trusts the CA certificates in this PEM file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::File`] when the file cannot be read.
    pub fn trust_ca_file(self, path: &Path) -> Result<Self, Error> {
        let pem = read(path)?;
        Ok(self.trust_ca_pem(pem))
    }

    /// Connects through an HTTP CONNECT proxy at `host:port`.
    pub fn http_proxy(mut self, address: &str) -> Self {
        self.proxy = Some(address.to_owned());
        self
    }

    /// MQTT keep-alive (default 240 s; capped at 1177 s, the largest IoT Hub honours, §1.6).
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive.min(Duration::from_secs(u64::from(MAX_KEEP_ALIVE_SECS)));
        self
    }

    /// Lifetime of minted SAS tokens (default 1 h); renewed at 80 % by a planned reconnect.
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Maximum messages held in the outbox (default 1000); more are refused with
    /// [`Error::OutboxFull`].
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        self.outbox_capacity = capacity.max(1);
        self
    }

    /// Maximum un-acknowledged publishes on the wire (default 64).
    pub fn max_inflight(mut self, max: usize) -> Self {
        self.max_inflight = max.max(1);
        self
    }

    /// Makes the outbox durable in `dir`: accepted telemetry survives process restarts.
    pub fn outbox_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.outbox_dir = Some(dir.into());
        self
    }

    /// Timeout of twin requests and of [`DeviceClient::connect`](crate::DeviceClient::connect)
    /// (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long [`DeviceClient::close`](crate::DeviceClient::close) waits for in-flight
    /// messages (default 10 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long a PUBACK may take before the link is considered dead and everything in
    /// flight is re-sent on a new connection (default 60 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Reconnect backoff bounds (default 1 s to 60 s, 20 % jitter).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = iothub_proto::Backoff::new(min, max).with_jitter_percent(20);
        self
    }

    /// Minimum wait after the hub refused the credentials (default 10 s).
    pub fn auth_failure_backoff(mut self, min: Duration) -> Self {
        self.auth_backoff_min = min;
        self
    }

    /// The port of the hub's HTTPS endpoint, used by file uploads
    /// ([`DeviceClient::upload_file`](crate::DeviceClient::upload_file)); default 443, as on
    /// IoT Hub. The emulator serves it on 443, or 8443 when it may not bind 443. With
    /// [`ClientOptions::plain_tcp`], plain HTTP is spoken on this port (the emulator's
    /// development HTTP port).
    pub fn https_port(mut self, port: u16) -> Self {
        self.https_port = Some(port);
        self
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The module id, for module identities.
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// The hub host name (used in the username and token).
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// What a file upload needs, kept by the client until the first upload builds its HTTP
    /// clients from it (a client that never uploads pays nothing).
    pub(crate) fn upload_config(&self) -> crate::upload::UploadConfig {
        let identity = match &self.auth {
            Auth::X509 { cert_pem, key_pem } => Some((cert_pem.clone(), key_pem.clone())),
            Auth::SasKey { .. } | Auth::SasToken(_) => None,
        };
        crate::upload::UploadConfig {
            host: self
                .gateway_host_name
                .clone()
                .unwrap_or_else(|| self.host_name.clone()),
            port: self.https_port.unwrap_or(443),
            tls: self.tls,
            extra_ca_pem: self.extra_ca_pem.clone(),
            identity,
            proxy: self.proxy.clone(),
            connect_timeout: self.connect_timeout,
            device_id: self.device_id.clone(),
            module_id: self.module_id.clone(),
            login: Arc::new(Credentials {
                host_name: self.host_name.clone(),
                device_id: self.device_id.clone(),
                module_id: self.module_id.clone(),
                auth: self.auth.clone(),
                model_id: None,
                token_ttl: self.token_ttl,
            }),
        }
    }

    pub(crate) fn into_driver_options(self) -> Result<DriverOptions, Error> {
        let identity = match &self.auth {
            Auth::X509 { cert_pem, key_pem } => {
                if cert_pem.is_empty() || key_pem.is_empty() {
                    return Err(ConfigError::MissingX509Identity.into());
                }
                Some((cert_pem.as_slice(), key_pem.as_slice()))
            }
            Auth::SasKey { key, .. } => {
                HmacSha256Signer::from_base64(key).map_err(CredentialError::Key)?;
                None
            }
            Auth::SasToken(_) => None,
        };
        let tls = if self.tls {
            Some(crate::tls::client_config(&self.extra_ca_pem, identity)?)
        } else {
            None
        };
        let port = self.port.unwrap_or(if self.websockets {
            WEBSOCKET_PORT
        } else {
            MQTT_TLS_PORT
        });
        let endpoint = Endpoint {
            host: self
                .gateway_host_name
                .clone()
                .unwrap_or_else(|| self.host_name.clone()),
            port,
            websocket: self.websockets,
            tls,
            proxy: self.proxy.clone(),
            connect_timeout: self.connect_timeout,
        };
        let session = SessionConfig {
            keep_alive: self.keep_alive,
            response_timeout: self.request_timeout.min(Duration::from_secs(30)),
            ack_timeout: self.ack_timeout,
            max_inflight: self.max_inflight,
            capacity: self.outbox_capacity,
        };
        Ok(DriverOptions {
            endpoint,
            session,
            device_id: self.device_id.clone(),
            module_id: self.module_id.clone(),
            backoff: Backoff(self.backoff),
            auth_backoff_min: self.auth_backoff_min,
            request_timeout: self.request_timeout,
            drain_timeout: self.drain_timeout,
            max_packet_size: MAX_PACKET_SIZE,
            outbox_dir: self.outbox_dir.clone(),
            renew_fraction: 0.8,
            login: Arc::new(Credentials {
                host_name: self.host_name,
                device_id: self.device_id,
                module_id: self.module_id,
                auth: self.auth,
                model_id: self.model_id,
                token_ttl: self.token_ttl,
            }),
        })
    }
}

/// Mints the CONNECT credentials of one identity.
struct Credentials {
    host_name: String,
    device_id: String,
    module_id: Option<String>,
    auth: Auth,
    model_id: Option<String>,
    token_ttl: Duration,
}

impl LoginSource for Credentials {
    fn login(&self) -> Result<LoginInfo, CredentialError> {
        let (client_id, username) = match &self.module_id {
            Some(module) => (
                ClientId::module(&self.device_id, module).to_string(),
                Username::module(&self.host_name, &self.device_id, module),
            ),
            None => (
                ClientId::device(&self.device_id).to_string(),
                Username::device(&self.host_name, &self.device_id),
            ),
        };
        let mut username = username.with_user_agent(USER_AGENT);
        if let Some(model) = &self.model_id {
            username = username.with_model_id(model);
        }
        let username = username.to_string();
        let now = unix_now();
        let (password, valid_for) = match &self.auth {
            Auth::SasKey { key, policy } => {
                let signer = HmacSha256Signer::from_base64(key).map_err(CredentialError::Key)?;
                let resource = match &self.module_id {
                    Some(module) => ResourceUri::module(&self.host_name, &self.device_id, module),
                    None => ResourceUri::device(&self.host_name, &self.device_id),
                };
                let expiry = now + self.token_ttl.as_secs();
                let token = SasToken::sign(resource, expiry, policy.as_deref(), &signer)
                    .map_err(CredentialError::Signing)?;
                (Some(token.to_string()), Some(self.token_ttl))
            }
            Auth::SasToken(token) => {
                let parsed =
                    ParsedSasToken::parse(token).map_err(CredentialError::MalformedToken)?;
                if parsed.expiry() <= now {
                    return Err(CredentialError::TokenExpired {
                        expiry: parsed.expiry(),
                    });
                }
                (Some(token.clone()), None)
            }
            Auth::X509 { .. } => (None, None),
        };
        Ok(LoginInfo {
            client_id,
            username,
            password,
            valid_for,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| {
        Error::Config(ConfigError::File {
            path: path.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn login(cs: &str) -> LoginInfo {
        let options = ClientOptions::from_connection_string(cs)
            .unwrap()
            .plain_tcp();
        options
            .into_driver_options()
            .unwrap()
            .login
            .login()
            .unwrap()
    }

    #[test]
    fn device_key_mints_a_renewable_token_for_the_device_resource() {
        let info = login(&format!(
            "HostName=h.example;DeviceId=dev1;SharedAccessKey={KEY}"
        ));
        assert_eq!(info.client_id, "dev1");
        assert!(
            info.username.starts_with("h.example/dev1/?api-version="),
            "{}",
            info.username
        );
        let password = info.password.unwrap();
        assert!(
            password.starts_with("SharedAccessSignature sr=h.example%2Fdevices%2Fdev1&sig="),
            "{password}"
        );
        assert!(!password.contains("skn="));
        assert_eq!(info.valid_for, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn module_key_uses_module_client_id_username_and_resource() {
        let info = login(&format!(
            "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey={KEY}"
        ));
        assert_eq!(info.client_id, "d/m");
        assert!(info.username.starts_with("h/d/m/?"));
        assert!(
            info.password
                .unwrap()
                .contains("sr=h%2Fdevices%2Fd%2Fmodules%2Fm&")
        );
    }

    #[test]
    fn policy_key_adds_skn() {
        let info = login(&format!(
            "HostName=h;DeviceId=d;SharedAccessKeyName=device;SharedAccessKey={KEY}"
        ));
        assert!(info.password.unwrap().ends_with("&skn=device"));
    }

    #[test]
    fn gateway_is_dialled_while_hostname_stays_in_credentials() {
        let options = ClientOptions::from_connection_string(&format!(
            "HostName=hub.example;DeviceId=d;SharedAccessKey={KEY};GatewayHostName=edge.local"
        ))
        .unwrap()
        .plain_tcp()
        .into_driver_options()
        .unwrap();
        assert_eq!(options.endpoint.host, "edge.local");
        assert_eq!(options.endpoint.port, 8883);
        let info = options.login.login().unwrap();
        assert!(info.username.starts_with("hub.example/d/"));
        assert!(
            info.password
                .unwrap()
                .contains("sr=hub.example%2Fdevices%2Fd")
        );
    }

    #[test]
    fn model_id_goes_into_the_username() {
        let options = ClientOptions::from_connection_string(&format!(
            "HostName=h;DeviceId=d;SharedAccessKey={KEY}"
        ))
        .unwrap()
        .model_id("dtmi:com:example:Thermostat;1")
        .plain_tcp();
        let info = options
            .into_driver_options()
            .unwrap()
            .login
            .login()
            .unwrap();
        assert!(
            info.username
                .ends_with("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"),
            "{}",
            info.username
        );
    }

    #[test]
    fn premade_token_is_used_verbatim_and_expired_one_is_refused() {
        let future = unix_now() + 1000;
        let token = format!("SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se={future}");
        let info = login(&format!(
            "HostName=h;DeviceId=d;SharedAccessSignature={token}"
        ));
        assert_eq!(info.password.as_deref(), Some(token.as_str()));
        assert_eq!(info.valid_for, None);

        let expired = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1000";
        let options = ClientOptions::from_connection_string(&format!(
            "HostName=h;DeviceId=d;SharedAccessSignature={expired}"
        ))
        .unwrap()
        .plain_tcp();
        let err = options
            .into_driver_options()
            .unwrap()
            .login
            .login()
            .unwrap_err();
        assert_eq!(err, CredentialError::TokenExpired { expiry: 1000 });
    }

    #[test]
    fn x509_without_certificate_is_a_configuration_error() {
        let options =
            ClientOptions::from_connection_string("HostName=h;DeviceId=d;x509=true").unwrap();
        assert!(matches!(
            options.into_driver_options(),
            Err(Error::Config(ConfigError::MissingX509Identity))
        ));
    }

    #[test]
    fn websockets_default_to_port_443() {
        let options = ClientOptions::from_connection_string(&format!(
            "HostName=h;DeviceId=d;SharedAccessKey={KEY}"
        ))
        .unwrap()
        .websockets(true)
        .into_driver_options()
        .unwrap();
        assert_eq!(options.endpoint.port, 443);
        assert!(options.endpoint.websocket);
        assert!(options.endpoint.tls.is_some());
    }
}
