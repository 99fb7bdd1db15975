//! Port of the device twin sample of Microsoft's IoT MQTT Samples: patch reported
//! `{"temperature": 32}`, then GET the twin and print it.
//!
//! ```text
//! IOTHUB_DEVICE_CONNECTION_STRING='…' cargo run -p iothub-device --example twin
//! ```

mod common;

use anyhow::{Context, Result};
use iothub_device::DeviceClient;

#[tokio::main]
async fn main() -> Result<()> {
    let args = common::Args::parse();
    let client = DeviceClient::connect(args.client_options()?)
        .await
        .context("connecting")?;
    let version = client
        .update_reported(&serde_json::json!({ "temperature": 32 }))
        .await
        .context("patching reported properties")?;
    println!("reported properties updated, $version {version}");
    let twin = client.twin().await.context("getting the twin")?;
    println!("{twin}");
    client.close().await;
    Ok(())
}
