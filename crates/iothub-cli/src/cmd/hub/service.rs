//! The service connection: which hub, which endpoint, which credentials, and the HTTP calls.
//!
//! With `--hub-connection-string` the commands talk to `https://{HostName}` and sign service
//! SAS tokens (`sr={HostName}`, `skn={policy}`) with the policy key, as the official service
//! SDKs do. Without one they read `endpoints.json` from the emulator's data dir and use its
//! plain HTTP endpoint when it has one (else HTTPS, trusting its CA) with the
//! `iothubowner` connection string it recorded.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use iothub_proto::connection_string::{ConnectionString, Credential};
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use reqwest::{Method, Response};
use serde_json::Value;

use crate::args::HubService as Service;
use crate::errors::HubAnswered;

/// API version sent with every request (ignored by the emulator, required by real hubs).
const API_VERSION: &str = "2021-04-12";

/// Lifetime of the tokens this client signs.
const TOKEN_TTL_SECS: u64 = 3600;

/// A signed-in HTTP client for one hub.
#[derive(Debug)]
pub(crate) struct ServiceClient {
    http: reqwest::Client,
    /// `https://host[:port]` or `http://127.0.0.1:port`.
    base: String,
    /// `HostName` of the connection string: the token's `sr`.
    host: String,
    policy: String,
    key: String,
}

impl ServiceClient {
    /// Resolves the target hub from the flags, the environment or the emulator's data dir.
    pub(crate) fn resolve(service: &Service) -> anyhow::Result<Self> {
        let mut ca_files: Vec<PathBuf> = service.ca_file.iter().cloned().collect();
        let (connection_string, base) = match &service.hub_connection_string {
            Some(cs) => (cs.clone(), None),
            None => {
                let dir = match &service.data_dir {
                    Some(d) => d.clone(),
                    None => default_data_dir()?,
                };
                let local = LocalEmulator::read(&dir)?;
                if local.base.starts_with("https://") {
                    ca_files.extend(local.ca_file);
                }
                (local.connection_string, Some(local.base))
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
        let host = parsed.host_name().to_owned();
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        for file in &ca_files {
            let pem = std::fs::read(file)
                .with_context(|| format!("cannot read CA file {}", file.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("no PEM certificates in {}", file.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.unwrap_or_else(|| format!("https://{host}")),
            host,
            policy: policy.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The hub's `HostName`, as device connection strings name it.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// Sends a request to `path` (which may carry a query) with a fresh service token.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Response> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{separator}api-version={API_VERSION}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("Authorization", self.token()?);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        if let Some(etag) = if_match {
            request = request.header("If-Match", format!("\"{}\"", etag.trim_matches('"')));
        }
        request
            .send()
            .await
            .with_context(|| format!("{method} {url} failed"))
    }

    /// Sends a request and returns its JSON answer; a non-2xx answer becomes an error that
    /// carries the hub's error code and message.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let response = checked(self.send(method, path, body, None).await?).await?;
        let text = response.text().await.context("cannot read the response")?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the hub answered with invalid JSON: {text}"))
    }

    fn token(&self) -> anyhow::Result<String> {
        let signer = HmacSha256Signer::from_base64(&self.key)
            .map_err(|e| anyhow!("invalid policy key: {e}"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = SasToken::sign(
            ResourceUri::hub(&self.host),
            now + TOKEN_TTL_SECS,
            Some(&self.policy),
            &signer,
        )
        .map_err(|e| anyhow!("cannot sign the service token: {e}"))?;
        Ok(token.to_string())
    }
}

/// Turns an error answer into an error naming the hub's error code and message.
pub(crate) async fn checked(response: Response) -> anyhow::Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    // IoT Hub nests the error object as a JSON string in `Message`.
    let inner = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_owned))
        .and_then(|m| serde_json::from_str::<Value>(&m).ok());
    let message = match inner {
        Some(e) => format!(
            "{} (error {})",
            e["message"].as_str().unwrap_or("no message"),
            e["errorCode"]
        ),
        None => text,
    };
    Err(HubAnswered::new(status, message).into())
}

/// What the running emulator recorded in its data dir.
struct LocalEmulator {
    base: String,
    connection_string: String,
    ca_file: Option<PathBuf>,
}

impl LocalEmulator {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("endpoints.json");
        let v = crate::cmd::read_endpoints(dir)?;
        let connection_string = v["serviceConnectionString"]
            .as_str()
            .with_context(|| format!("{} has no serviceConnectionString", path.display()))?
            .to_owned();
        let base = match (v["http"].as_str(), v["https"].as_str()) {
            (Some(http), _) => format!("http://{http}"),
            (None, Some(https)) => format!("https://{https}"),
            (None, None) => bail!("{} lists no HTTP or HTTPS endpoint", path.display()),
        };
        Ok(Self {
            base,
            connection_string,
            ca_file: v["caFile"].as_str().map(PathBuf::from),
        })
    }
}

/// `$IOTHUB_EMULATOR_DIR` is handled by clap; this is the fallback `~/.local/share/iothub/emulator`.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/iothub/emulator"))
}

/// Percent-encodes an id for a URL path segment.
pub(crate) fn segment(id: &str) -> String {
    iothub_proto::percent::encode(id).to_string()
}
