//! Shared flag parsing for the examples: the connection string comes from
//! `--connection-string` or `IOTHUB_DEVICE_CONNECTION_STRING`.
//!
//! Transport flags: `--ca-file PATH` (trust an extra CA, e.g. the emulator's), `--port N`,
//! `--websockets`, `--cert PATH --key-file PATH` (X.509), `--dial HOST` (connect to HOST while keeping `HostName` in the credentials,
//! like `GatewayHostName`), `--plain` (no TLS: the emulator's development port only).

#![allow(dead_code)] // each example uses a different subset

use std::path::Path;

use anyhow::{Context, Result, bail};
use iothub_device::ClientOptions;

/// Command-line flags as `--name value` pairs and bare `--switch`es.
pub(crate) struct Args {
    args: Vec<String>,
}

impl Args {
    pub(crate) fn parse() -> Self {
        Self {
            args: std::env::args().skip(1).collect(),
        }
    }

    /// The value after `--name`.
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        let flag = format!("--{name}");
        self.args
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| self.args.get(i + 1))
            .cloned()
    }

    /// Whether `--name` is present.
    pub(crate) fn flag(&self, name: &str) -> bool {
        let flag = format!("--{name}");
        self.args.contains(&flag)
    }

    /// A numeric flag with a default.
    pub(crate) fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.value(name) {
            Some(v) => v
                .parse()
                .with_context(|| format!("--{name} must be a number")),
            None => Ok(default),
        }
    }

    /// Client options from the connection string and transport flags.
    pub(crate) fn client_options(&self) -> Result<ClientOptions> {
        let cs = match self.value("connection-string") {
            Some(cs) => cs,
            None => std::env::var("IOTHUB_DEVICE_CONNECTION_STRING")
                .context("set IOTHUB_DEVICE_CONNECTION_STRING or pass --connection-string")?,
        };
        let options =
            ClientOptions::from_connection_string(&cs).context("parsing the connection string")?;
        self.transport(options)
    }

    /// Applies the transport flags.
    pub(crate) fn transport(&self, mut options: ClientOptions) -> Result<ClientOptions> {
        if let Some(ca) = self.value("ca-file") {
            options = options.trust_ca_file(Path::new(&ca))?;
        }
        if let Some(port) = self.value("port") {
            options = options.port(port.parse().context("--port must be a port number")?);
        }
        if let Some(host) = self.value("dial") {
            options = options.gateway_host_name(&host);
        }
        if self.flag("websockets") {
            options = options.websockets(true);
        }
        if self.flag("plain") {
            options = options.plain_tcp();
        }
        match (self.value("cert"), self.value("key-file")) {
            (Some(cert), Some(key)) => {
                options = options.x509_files(Path::new(&cert), Path::new(&key))?;
            }
            (Some(_), None) => bail!("--cert needs --key-file"),
            _ => {}
        }
        Ok(options)
    }
}
