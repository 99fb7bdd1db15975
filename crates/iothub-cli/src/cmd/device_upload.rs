//! `iothub device upload FILE`: IoT Hub file upload with `DeviceClient::upload_file`, a
//! progress bar on standard error, and the outcome on standard output.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iothub_device::{ClientOptions, DeviceClient, RetryPolicy, UploadOptions, Uploaded};
use serde_json::json;

use super::Global;
use crate::args::UploadArgs;

/// Runs `iothub device upload`.
pub(crate) async fn upload(
    args: &UploadArgs,
    options: ClientOptions,
    global: Global,
) -> Result<ExitCode> {
    let stdin = args.file.as_os_str() == "-";
    let blob_name = match (&args.blob_name, stdin) {
        (Some(name), _) => name.clone(),
        (None, true) => bail!("reading standard input needs --blob-name"),
        (None, false) => args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .with_context(|| {
                format!("{} has no file name: pass --blob-name", args.file.display())
            })?,
    };
    let mut options = options;
    if let Some(port) = args.https_port {
        options = options.https_port(port);
    }
    // The upload speaks HTTPS only; the client's MQTT connection is never waited for.
    let client = DeviceClient::start(options).context("starting the device client")?;

    let bar = progress_bar(global.json);
    let tracker = bar.clone();
    let mut upload = UploadOptions::new()
        .block_size(args.block_size as usize * 1024 * 1024)
        .retry(RetryPolicy::new(
            args.tries,
            Duration::from_secs(1),
            Duration::from_secs(16),
        ))
        .request_timeout(Duration::from_secs(args.request_timeout.max(1)))
        .storage_plain_http(args.storage_plain_http)
        .on_progress(move |p| {
            if let Some(total) = p.total {
                tracker.set_length(total);
            }
            tracker.set_position(p.bytes_sent);
        });
    if let Some(content_type) = &args.content_type {
        upload = upload.content_type(content_type);
    }
    let outcome = if stdin {
        client
            .upload_file(&blob_name, tokio::io::stdin(), upload)
            .await
    } else {
        client.upload_path(&blob_name, &args.file, upload).await
    };
    bar.finish_and_clear();
    client.close().await;
    let uploaded =
        outcome.with_context(|| format!("uploading {} as {blob_name}", args.file.display()))?;
    print(&uploaded, global)?;
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(json: bool) -> ProgressBar {
    // Hidden for --json, and by indicatif itself when standard error is not a terminal.
    let target = if json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template(
            "uploading [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ({eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn print(uploaded: &Uploaded, global: Global) -> Result<()> {
    let mut out = io::stdout().lock();
    if global.json {
        writeln!(
            out,
            "{}",
            json!({
                "correlationId": uploaded.correlation_id,
                "containerName": uploaded.container_name,
                "blobName": uploaded.blob_name,
                "blobUrl": uploaded.blob_url,
                "size": uploaded.size,
                "blocks": uploaded.blocks,
                "retries": uploaded.retries,
            })
        )?;
    } else {
        writeln!(
            out,
            "uploaded {} bytes in {} block(s) to {} (correlation id {})",
            uploaded.size, uploaded.blocks, uploaded.blob_url, uploaded.correlation_id
        )?;
    }
    Ok(())
}
