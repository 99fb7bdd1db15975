//! Port of the subscribe sample of Microsoft's IoT MQTT Samples: print every cloud-to-device
//! message.
//!
//! ```text
//! IOTHUB_DEVICE_CONNECTION_STRING='…' cargo run -p iothub-device --example c2d -- [--count N]
//! ```
//! Each message is printed as one JSON line and completed at the hub once printed.

mod common;

use anyhow::{Context, Result};
use iothub_device::DeviceClient;

#[tokio::main]
async fn main() -> Result<()> {
    let args = common::Args::parse();
    let count = args.number("count", u64::MAX)?;
    let client = DeviceClient::connect(args.client_options()?)
        .await
        .context("connecting")?;
    let mut messages = client.c2d_messages().await?;
    println!("{}", serde_json::json!({"listening": true}));
    let mut received = 0;
    while received < count {
        let Some(message) = messages.recv().await else {
            break;
        };
        received += 1;
        let properties: serde_json::Map<String, serde_json::Value> = message
            .properties
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map_or(serde_json::Value::Null, Into::into),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "body": String::from_utf8_lossy(&message.body),
                "messageId": message.message_id,
                "correlationId": message.correlation_id,
                "contentType": message.content_type,
                "properties": properties,
            })
        );
    }
    client.close().await;
    Ok(())
}
