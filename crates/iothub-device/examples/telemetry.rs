//! Port of the telemetry sample of Microsoft's IoT MQTT Samples: connect, send messages, report
//! each acknowledgement.
//!
//! ```text
//! IOTHUB_DEVICE_CONNECTION_STRING='HostName=…;DeviceId=…;SharedAccessKey=…' \
//!   cargo run -p iothub-device --example telemetry -- [--count 5] [--interval-ms 1000] [--ca-file ca.pem]
//! ```

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use iothub_device::{DeviceClient, Message};

#[tokio::main]
async fn main() -> Result<()> {
    let args = common::Args::parse();
    let count = args.number("count", 5)?;
    let interval = Duration::from_millis(args.number("interval-ms", 1000)?);
    let client = DeviceClient::connect(args.client_options()?)
        .await
        .context("connecting (check the device id, hub name and key)")?;
    for i in 1..=count {
        let body = serde_json::json!({ "temperature": 20.0 + i as f64 / 10.0, "sequence": i });
        let message = Message::json(&body).message_id(format!("telemetry-{i}"));
        client
            .send_telemetry(message)
            .await
            .with_context(|| format!("sending message {i}"))?;
        println!("message {i} acknowledged: {body}");
        if i < count {
            tokio::time::sleep(interval).await;
        }
    }
    client.close().await;
    Ok(())
}
