//! `iothub device …`: act as a device with `iothub-device`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use iothub_device::{
    Attestation, ClientOptions, DeviceClient, Message, MethodResponse, ProvisioningOptions,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Global;
use crate::args::{
    DeviceArgs, DeviceCommand, DeviceConnection, ListenArgs, ProvisionArgs, ReportArgs, SendArgs,
};

/// Runs `iothub device …`.
pub(crate) fn run(args: &DeviceArgs, global: Global) -> Result<ExitCode> {
    // One thread: the application task and the connection's driver hand messages to each
    // other without cross-thread wake-ups (measured faster for `send`, bench/device-send).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match &args.command {
            DeviceCommand::Send(a) => send(a, global).await,
            DeviceCommand::Listen(a) => listen(a).await,
            DeviceCommand::Twin(a) => twin(&a.connection).await,
            DeviceCommand::Report(a) => report(a, global).await,
            DeviceCommand::Provision(a) => provision(a, global).await,
            DeviceCommand::Upload(a) => {
                super::device_upload::upload(a, options(&a.connection)?, global).await
            }
        }
    })
}

fn options(connection: &DeviceConnection) -> Result<ClientOptions> {
    let cs = connection
        .connection_string
        .as_deref()
        .context("pass --connection-string or set IOTHUB_DEVICE_CONNECTION_STRING")?;
    crate::errors::check_connection_string(cs)?;
    let mut options =
        ClientOptions::from_connection_string(cs).context("parsing the connection string")?;
    if let Some(ca) = &connection.ca_file {
        options = options.trust_ca_file(ca)?;
    }
    if let Some(port) = connection.port {
        options = options.port(port);
    }
    if connection.websockets {
        options = options.websockets(true);
    }
    if let (Some(cert), Some(key)) = (&connection.cert, &connection.key) {
        options = options.x509_files(cert, key)?;
    }
    if let Some(host) = &connection.dial {
        options = options.gateway_host_name(host);
    }
    if connection.plain {
        options = options.plain_tcp();
    }
    Ok(options)
}

async fn connect(connection: &DeviceConnection) -> Result<DeviceClient> {
    connect_with(connection, options(connection)?).await
}

/// Connects with `options`; fails at the first attempt with the cause and its fix
/// (unreachable, TLS, unauthorized, disabled; see `errors.rs`), never waiting out backoff.
async fn connect_with(
    connection: &DeviceConnection,
    options: ClientOptions,
) -> Result<DeviceClient> {
    let target = crate::errors::Target::from_connection_string(
        connection.connection_string.as_deref().unwrap_or_default(),
        connection.port,
        connection.ca_file.is_some(),
    );
    crate::errors::connect_device(options, &target).await
}

async fn send(args: &SendArgs, global: Global) -> Result<ExitCode> {
    let mut properties = Vec::new();
    for p in &args.properties {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("property `{p}` is not key=value"))?;
        properties.push((k.to_owned(), v.to_owned()));
    }
    let build = |body: String| {
        let mut m = Message::new(body);
        if let Some(ct) = &args.content_type {
            m = m.content_type(ct.clone());
        }
        if let Some(ce) = &args.content_encoding {
            m = m.content_encoding(ce.clone());
        }
        for (k, v) in &properties {
            m = m.property(k.clone(), v.clone());
        }
        m
    };
    // A wider window than the library default: `send` exists to push volume.
    let options = options(&args.connection)?
        .max_inflight(256)
        .outbox_capacity(4096);
    let client = connect_with(&args.connection, options).await?;
    // Messages are pipelined: each is accepted into the outbox, acknowledgements are awaited
    // together, so throughput is not bounded by one round trip per message.
    let mut pending = VecDeque::new();
    let mut sent: u64 = 0;
    if args.stdin {
        let (tx, mut rx) = mpsc::channel::<String>(1024);
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            pending.push_back(enqueue(&client, build(line)).await?);
            sent += 1;
            settle(&mut pending, 2048).await?;
        }
    } else {
        let body = args.message.clone().unwrap_or_default();
        for i in 0..args.count {
            if i > 0 && args.interval > 0 {
                tokio::time::sleep(Duration::from_millis(args.interval)).await;
            }
            pending.push_back(enqueue(&client, build(body.clone())).await?);
            sent += 1;
            settle(&mut pending, 2048).await?;
        }
    }
    settle(&mut pending, 0).await?;
    client.close().await;
    let mut out = io::stdout().lock();
    if global.json {
        writeln!(out, "{}", json!({ "sent": sent }))?;
    } else {
        writeln!(out, "sent {sent} message(s), all acknowledged")?;
    }
    Ok(ExitCode::SUCCESS)
}

type Ack = std::pin::Pin<Box<dyn Future<Output = Result<(), iothub_device::Error>> + Send>>;

async fn enqueue(client: &DeviceClient, message: Message) -> Result<Ack> {
    loop {
        match client.enqueue_telemetry(message.clone()).await {
            Ok(wait) => return Ok(Box::pin(wait)),
            // Back-pressure: the outbox drains as acknowledgements arrive.
            Err(iothub_device::Error::OutboxFull { .. }) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e).context("sending telemetry"),
        }
    }
}

/// Awaits acknowledgements, oldest first, until at most `keep` are outstanding.
async fn settle(pending: &mut VecDeque<Ack>, keep: usize) -> Result<()> {
    while pending.len() > keep {
        if let Some(ack) = pending.pop_front() {
            ack.await.context("a message was not acknowledged")?;
        }
    }
    Ok(())
}

async fn listen(args: &ListenArgs) -> Result<ExitCode> {
    let mut answers: HashMap<String, (u16, Value)> = HashMap::new();
    for m in &args.methods {
        let (name, rest) = m
            .split_once('=')
            .ok_or_else(|| anyhow!("--method `{m}` is not NAME=STATUS:JSON"))?;
        let (status, payload) = rest.split_once(':').unwrap_or((rest, "null"));
        let status: u16 = status
            .parse()
            .with_context(|| format!("--method `{m}`: status is not a number"))?;
        let payload: Value = serde_json::from_str(payload)
            .with_context(|| format!("--method `{m}`: payload is not JSON"))?;
        answers.insert(name.to_owned(), (status, payload));
    }
    let client = connect(&args.connection).await?;
    let (events, mut rx) = mpsc::unbounded_channel::<Value>();

    let answers = Arc::new(answers);
    let method_events = events.clone();
    client
        .on_any_method(move |call| {
            let (status, payload) = answers.get(&call.name).cloned().unwrap_or_else(|| {
                (
                    501,
                    json!({"message": format!("method '{}' is not implemented", call.name)}),
                )
            });
            let _ = method_events.send(json!({
                "type": "method", "name": call.name, "payload": call.payload, "status": status,
            }));
            async move { MethodResponse::new(status, payload) }
        })
        .await?;

    let mut c2d = client.c2d_messages().await?;
    let c2d_events = events.clone();
    tokio::spawn(async move {
        while let Some(m) = c2d.recv().await {
            let properties: serde_json::Map<String, Value> = m
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect();
            let _ = c2d_events.send(json!({
                "type": "c2d",
                "body": String::from_utf8_lossy(&m.body),
                "messageId": m.message_id,
                "correlationId": m.correlation_id,
                "contentType": m.content_type,
                "contentEncoding": m.content_encoding,
                "properties": properties,
            }));
        }
    });
    let mut desired = client.desired_properties().await?;
    tokio::spawn(async move {
        while let Some(patch) = desired.recv().await {
            let _ = events.send(json!({
                "type": "desired", "version": patch.version, "properties": patch.properties, "full": patch.full,
            }));
        }
    });

    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
    let complete = loop {
        if args.count.is_some_and(|n| seen >= n) {
            break true;
        }
        let event = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(e) => e,
                Err(_) => break args.count.is_none(),
            },
            None => rx.recv().await,
        };
        let Some(event) = event else { break false };
        seen += 1;
        let mut out = io::stdout().lock();
        writeln!(out, "{event}")?;
        out.flush()?;
    };
    // Let method answers go out before closing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.close().await;
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn twin(connection: &DeviceConnection) -> Result<ExitCode> {
    let client = connect(connection).await?;
    let twin = client.twin().await.context("getting the twin")?;
    client.close().await;
    writeln!(io::stdout().lock(), "{twin}")?;
    Ok(ExitCode::SUCCESS)
}

async fn report(args: &ReportArgs, global: Global) -> Result<ExitCode> {
    let patch: Value = serde_json::from_str(&args.patch).context("the patch is not JSON")?;
    if !patch.is_object() {
        bail!("the patch must be a JSON object");
    }
    let client = connect(&args.connection).await?;
    let version = client
        .update_reported(&patch)
        .await
        .context("patching reported properties")?;
    client.close().await;
    let mut out = io::stdout().lock();
    if global.json {
        writeln!(out, "{}", json!({ "version": version }))?;
    } else {
        writeln!(out, "{version}")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn provision(args: &ProvisionArgs, global: Global) -> Result<ExitCode> {
    let attestation = match (&args.key, &args.group_key) {
        (Some(key), None) => Attestation::SymmetricKey(key.clone()),
        (None, Some(group)) => Attestation::GroupKey(group.clone()),
        _ => bail!("pass exactly one of --key or --group-key"),
    };
    let mut options = ProvisioningOptions::new(&args.id_scope, &args.registration_id, attestation)
        .provisioning_host(&args.provisioning_host);
    if let Some(port) = args.port {
        options = options.port(port);
    }
    if let Some(ca) = &args.ca_file {
        options = options.trust_ca_file(ca)?;
    }
    if let Some(model) = &args.model_id {
        options = options.model_id(model);
    }
    if args.plain {
        options = options.plain_tcp();
    }
    let provisioned = match iothub_device::provision(options).await {
        Ok(p) => p,
        // DPS answered, negatively: a negative result, not a malfunction.
        Err(iothub_device::Error::Rejected { status, body }) => {
            eprintln!("registration failed with status {status}: {body}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e).context("provisioning"),
    };
    let connection_string = if args.save {
        provisioned.connection_string()
    } else {
        None
    };
    let mut out = io::stdout().lock();
    if global.json {
        let mut value = json!({
            "assignedHub": provisioned.assigned_hub,
            "deviceId": provisioned.device_id,
        });
        if let Some(cs) = &connection_string {
            value["connectionString"] = json!(cs);
        }
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "assigned hub: {}", provisioned.assigned_hub)?;
        writeln!(out, "device id: {}", provisioned.device_id)?;
        if let Some(cs) = connection_string {
            writeln!(out, "{cs}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
