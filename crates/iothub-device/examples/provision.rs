//! The provisioning flow: register with DPS (individual key, group key or
//! X.509), then connect to the assigned hub and send one message.
//!
//! ```text
//! cargo run -p iothub-device --example provision -- --id-scope 0ne… --registration-id dev1 \
//!   (--key K | --group-key G | --cert cert.pem --key-file key.pem) [--provisioning-host H] [--ca-file ca.pem]
//! ```
//! Prints the assignment and a device connection string for symmetric keys.

mod common;

use std::path::Path;

use anyhow::{Context, Result, bail};
use iothub_device::{Attestation, DeviceClient, Message, ProvisioningOptions, provision};

#[tokio::main]
async fn main() -> Result<()> {
    let args = common::Args::parse();
    let id_scope = args.value("id-scope").context("--id-scope is required")?;
    let registration_id = args
        .value("registration-id")
        .context("--registration-id is required")?;
    let attestation = match (
        args.value("key"),
        args.value("group-key"),
        args.value("cert"),
    ) {
        (Some(key), None, None) => Attestation::SymmetricKey(key),
        (None, Some(group), None) => Attestation::GroupKey(group),
        (None, None, Some(cert)) => {
            let key = args.value("key-file").context("--cert needs --key-file")?;
            Attestation::X509 {
                cert_pem: std::fs::read(&cert).with_context(|| format!("reading {cert}"))?,
                key_pem: std::fs::read(&key).with_context(|| format!("reading {key}"))?,
            }
        }
        _ => bail!("pass exactly one of --key, --group-key or --cert"),
    };
    let mut options = ProvisioningOptions::new(&id_scope, &registration_id, attestation);
    if let Some(host) = args.value("provisioning-host") {
        options = options.provisioning_host(&host);
    }
    if let Some(port) = args.value("dps-port") {
        options = options.port(port.parse().context("--dps-port must be a port number")?);
    }
    if let Some(ca) = args.value("ca-file") {
        options = options.trust_ca_file(Path::new(&ca))?;
    }
    if args.flag("plain") {
        options = options.plain_tcp();
    }
    let provisioned = provision(options).await.context("provisioning")?;
    println!(
        "{}",
        serde_json::json!({
            "assignedHub": provisioned.assigned_hub,
            "deviceId": provisioned.device_id,
            "connectionString": provisioned.connection_string(),
        })
    );
    let client_options = args.transport(provisioned.client_options())?;
    let client = DeviceClient::connect(client_options)
        .await
        .context("connecting to the assigned hub")?;
    client
        .send_telemetry(Message::new("hello from a provisioned device"))
        .await?;
    println!("telemetry acknowledged by {}", provisioned.assigned_hub);
    client.close().await;
    Ok(())
}
