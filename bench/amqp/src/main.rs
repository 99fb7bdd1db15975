//! AMQP consumers (fe2o3-amqp as a client) and MQTT devices for `bench/amqp/run.sh`, the
//! back-end reading benchmark of issue 12 (docs/amqp.md "Receiving events"):
//!
//! ```text
//! amqp-bench drain   EXPECTED
//! amqp-bench live
//! amqp-bench latency MQTT_ADDR MQTT_CA CREDS DEVICES RATE SECONDS WARMUP_SECONDS
//! ```
//!
//! - `drain`: one consumer (one connection, one session and receiver per partition) reads
//!   every partition from the start (`amqp.annotation.x-opt-offset > '-1'`) until it has
//!   `EXPECTED` events in all; prints one JSON line with the time from the first attach to
//!   the last event.
//! - `live`: receivers on every partition from `@latest` (only new events); prints
//!   `{"attached":true}` once all are attached, counts what arrives, and when a line `N` comes
//!   on stdin waits until it has N events (at most 60 s) and prints what it got.
//! - `latency`: the receivers of `live`, plus `DEVICES` MQTT devices over TLS (`CREDS` as
//!   bench/emulator/devices.py writes it) publishing QoS 1 at `RATE` messages per second in
//!   all, paced and staggered, for `SECONDS`. Each body carries the message's number; per
//!   message the delay from the PUBACK reaching its device to the event reaching its
//!   receiver, in one process on one monotonic clock. The first `WARMUP_SECONDS` are not
//!   counted. Prints one JSON line with n, percentiles, lost and duplicated events.
//!
//! The AMQP connection comes from the environment: `AMQP_ADDR` (host:port), `AMQP_CA` (a CA
//! PEM file: AMQPS, server name `localhost`; empty or unset: plain AMQP), `EVENTHUB` (the Event
//! Hub name), `PARTITIONS` (4), `AMQP_USER` and `AMQP_TOKEN` (SASL PLAIN: user
//! `{policy}@sas.root.{hub}` and a SAS token, docs/amqp.md "Authentication"), `CREDIT` (300
//! per receiver, azure-eventhub's default prefetch; fe2o3-amqp tops it up when half is used)
//! and `SETTLE` (`accept`: every delivery settled by an accepted disposition, as a
//! peek-lock client does; `settled`: the receiver asks for pre-settled deliveries, as .NET's
//! Event Hubs client does).

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::SenderSettleMode;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{AmqpValue, Body, Data, Source, Target};
use fe2o3_amqp::types::primitives::{Symbol, Value};
use fe2o3_amqp::{Connection, Receiver, Session};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SELECTOR: &str = "apache.org:selector-filter:string";

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let amqp = AmqpConfig::from_env()?;
    match args.first().map(String::as_str) {
        Some("drain") if args.len() == 2 => runtime()?.block_on(drain(&amqp, args[1].parse()?)),
        Some("live") if args.len() == 1 => runtime()?.block_on(live(&amqp)),
        Some("latency") if args.len() == 8 => latency(
            &amqp,
            &Devices {
                addr: args[1].parse()?,
                ca: args[2].clone(),
                creds: args[3].clone(),
                count: args[4].parse()?,
                rate: args[5].parse()?,
                seconds: args[6].parse()?,
                warmup: args[7].parse()?,
            },
        ),
        _ => Err("usage: amqp-bench drain EXPECTED | live | latency MQTT_ADDR MQTT_CA CREDS DEVICES RATE SECONDS WARMUP_SECONDS".into()),
    }
}

/// One thread: the client takes one core, the server the other (as bench/emulator/load).
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[derive(Clone)]
struct AmqpConfig {
    addr: SocketAddr,
    ca: Option<String>,
    event_hub: String,
    partitions: u32,
    user: String,
    token: String,
    credit: u32,
    settled: bool,
}

impl AmqpConfig {
    fn from_env() -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let settle = or("SETTLE", "accept");
        if settle != "accept" && settle != "settled" {
            return Err(format!("SETTLE must be accept or settled, not {settle}").into());
        }
        Ok(Self {
            addr: var("AMQP_ADDR")?.parse()?,
            ca: std::env::var("AMQP_CA").ok().filter(|c| !c.is_empty()),
            event_hub: var("EVENTHUB")?,
            partitions: or("PARTITIONS", "4").parse()?,
            user: var("AMQP_USER")?,
            token: var("AMQP_TOKEN")?,
            credit: or("CREDIT", "300").parse()?,
            settled: settle == "settled",
        })
    }
}

fn connector(ca: &str) -> Result<TlsConnector, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Opens the consumer's connection (SASL PLAIN, over TLS when `AMQP_CA` is set).
async fn open(cfg: &AmqpConfig) -> Result<ConnectionHandle<()>, Error> {
    let tcp = TcpStream::connect(cfg.addr).await?;
    tcp.set_nodelay(true)?;
    let builder = Connection::builder()
        .container_id("amqp-bench")
        .hostname("localhost")
        .sasl_profile(SaslProfile::Plain {
            username: cfg.user.clone(),
            password: cfg.token.clone(),
        });
    // fe2o3-amqp speaks AMQP over whatever stream it is given: the TLS is ours, from the
    // first byte, as Azure clients do (docs/amqp.md "Endpoints").
    Ok(match &cfg.ca {
        Some(ca) => {
            let name = rustls::pki_types::ServerName::try_from("localhost")?;
            let tls = connector(ca)?.connect(name, tcp).await?;
            builder.open_with_stream(tls).await?
        }
        None => builder.open_with_stream(tcp).await?,
    })
}

/// A receiver on `partition` of the `$Default` consumer group, starting where `selector` says.
async fn attach(
    cfg: &AmqpConfig,
    session: &mut SessionHandle<()>,
    partition: u32,
    selector: &str,
) -> Result<Receiver, Error> {
    let source = Source::builder()
        .address(format!(
            "{}/ConsumerGroups/$Default/Partitions/{partition}",
            cfg.event_hub
        ))
        .add_to_filter(
            Symbol::from(SELECTOR),
            Described {
                descriptor: Descriptor::Name(Symbol::from(SELECTOR)),
                value: Value::String(selector.into()),
            },
        )
        .build();
    let mut builder = Receiver::builder()
        .name(format!("amqp-bench-{partition}"))
        .source(source)
        .target(Target::builder().address("amqp-bench").build())
        .credit_mode(CreditMode::Auto(cfg.credit));
    if cfg.settled {
        builder = builder.sender_settle_mode(SenderSettleMode::Settled);
    }
    Ok(builder.attach(session).await?)
}

/// One session and receiver per partition, as Event Hubs clients open one link per partition.
async fn attach_all(
    cfg: &AmqpConfig,
    connection: &mut ConnectionHandle<()>,
    selector: &str,
) -> Result<Vec<(SessionHandle<()>, Receiver)>, Error> {
    let mut out = Vec::new();
    for p in 0..cfg.partitions {
        let mut session = Session::begin(connection).await?;
        let receiver = attach(cfg, &mut session, p, selector).await?;
        out.push((session, receiver));
    }
    Ok(out)
}

/// The next event's body bytes and `x-opt-sequence-number`, settled (an accepted disposition,
/// or nothing for a pre-settled delivery: either way fe2o3-amqp counts it towards the next
/// credit top-up).
async fn next_event(receiver: &mut Receiver) -> Result<(Vec<u8>, Option<i64>), Error> {
    let delivery = receiver.recv::<Body<Value>>().await?;
    receiver.accept(&delivery).await?;
    let message = delivery.into_message();
    let seq = message.message_annotations.as_ref().and_then(|a| {
        a.0.iter().find_map(|(k, v)| match (k, v) {
            (OwnedKey::Symbol(s), Value::Long(n)) if s.as_str() == "x-opt-sequence-number" => {
                Some(*n)
            }
            _ => None,
        })
    });
    let body = match message.body {
        Body::Data(batch) => batch.into_iter().flat_map(|Data(b)| b.into_vec()).collect(),
        Body::Value(AmqpValue(Value::Binary(b))) => b.into_vec(),
        _ => Vec::new(),
    };
    Ok((body, seq))
}

/// One partition's order check: each event's sequence number should be the previous one's
/// plus one (docs/amqp.md "Receiving events": per-partition sequence numbers from 0).
#[derive(Default, Clone, Copy)]
struct Order {
    last: Option<i64>,
    /// Events whose sequence number was not above the previous one's.
    backwards: u64,
    /// Sequence numbers skipped (events never received, as far as this link saw).
    skipped: u64,
}

impl Order {
    fn see(&mut self, seq: Option<i64>) {
        let Some(seq) = seq else { return };
        match self.last {
            Some(last) if seq <= last => self.backwards += 1,
            Some(last) => self.skipped += u64::try_from(seq - last - 1).unwrap_or(0),
            None => {}
        }
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
    }

    fn sum(all: &[Order]) -> (u64, u64) {
        all.iter()
            .fold((0, 0), |(b, s), o| (b + o.backwards, s + o.skipped))
    }
}

async fn drain(cfg: &AmqpConfig, expected: usize) -> Result<(), Error> {
    let start = Instant::now();
    let mut connection = open(cfg).await?;
    let links = attach_all(cfg, &mut connection, "amqp.annotation.x-opt-offset > '-1'").await?;
    let total = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (session, mut receiver) in links {
        let (total, done_tx, mut done_rx) = (total.clone(), done_tx.clone(), done_rx.clone());
        tasks.push(tokio::spawn(async move {
            let _session = session;
            let mut mine = 0usize;
            let mut order = Order::default();
            loop {
                tokio::select! {
                    event = next_event(&mut receiver) => {
                        order.see(event?.1);
                        mine += 1;
                        if total.fetch_add(1, Ordering::Relaxed) + 1 >= expected {
                            let _ = done_tx.send(true);
                            break;
                        }
                    }
                    _ = done_rx.changed() => break,
                }
            }
            Ok::<_, Error>((mine, order, receiver))
        }));
    }
    drop(done_tx);
    let mut per_partition = Vec::new();
    let mut receivers = Vec::new();
    let mut orders = Vec::new();
    for t in tasks {
        let (n, o, r) = t.await??;
        per_partition.push(n);
        orders.push(o);
        receivers.push(r);
    }
    let (backwards, skipped) = Order::sum(&orders);
    let secs = start.elapsed().as_secs_f64();
    drop(done_rx);
    let got: usize = per_partition.iter().sum();
    println!(
        "{{\"events\":{got},\"seconds\":{secs:.3},\"eventsPerSec\":{:.0},\"perPartition\":{per_partition:?},\"backwards\":{backwards},\"skipped\":{skipped},\"credit\":{},\"settle\":\"{}\",\"tls\":{},\"cpuSeconds\":{:.2}}}",
        got as f64 / secs,
        cfg.credit,
        if cfg.settled { "settled" } else { "accept" },
        cfg.ca.is_some(),
        own_cpu_seconds()
    );
    for r in receivers {
        let _ = r.close().await;
    }
    let _ = connection.close().await;
    Ok(())
}

/// This process's CPU time (user + system) from /proc/self/stat, in clock ticks of 1/100 s
/// (Linux's `USER_HZ`); NaN where that cannot be read.
fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

async fn live(cfg: &AmqpConfig) -> Result<(), Error> {
    let mut connection = open(cfg).await?;
    let links = attach_all(cfg, &mut connection, "amqp.annotation.x-opt-offset > '@latest'").await?;
    let total = Arc::new(AtomicUsize::new(0));
    let orders: Vec<Arc<Mutex<Order>>> = (0..links.len()).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for ((session, mut receiver), order) in links.into_iter().zip(orders.clone()) {
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let _session = session;
            loop {
                match next_event(&mut receiver).await {
                    Ok((_, seq)) => {
                        if let Ok(mut o) = order.lock() {
                            o.see(seq);
                        }
                    }
                    Err(e) => {
                        eprintln!("amqp-bench live: a receiver stopped: {e}");
                        return;
                    }
                }
                total.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    println!("{{\"attached\":true}}");
    // The script writes how many events the round sent once its ingest is over.
    let expected = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        line.trim().parse::<usize>().unwrap_or(0)
    })
    .await?;
    let asked = Instant::now();
    while total.load(Ordering::Relaxed) < expected && asked.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let orders: Vec<Order> = orders
        .iter()
        .map(|o| o.lock().map(|o| *o).unwrap_or_default())
        .collect();
    let (backwards, skipped) = Order::sum(&orders);
    println!(
        "{{\"received\":{},\"expected\":{expected},\"lastAfterIngestMs\":{:.1},\"backwards\":{backwards},\"skipped\":{skipped},\"cpuSeconds\":{:.2}}}",
        total.load(Ordering::Relaxed),
        asked.elapsed().as_secs_f64() * 1000.0,
        own_cpu_seconds()
    );
    for t in tasks {
        t.abort();
    }
    let _ = connection.close().await;
    Ok(())
}

struct Devices {
    addr: SocketAddr,
    ca: String,
    creds: String,
    count: usize,
    rate: f64,
    seconds: f64,
    warmup: f64,
}

/// Per message: nanoseconds after the run's start at which its PUBACK reached the device and
/// its event reached a receiver (0: not yet), and how often it was received.
struct Stamps {
    start: Instant,
    puback: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    times_received: Vec<AtomicU64>,
    sent_at: Vec<AtomicU64>,
    /// Messages received at least once.
    distinct: AtomicUsize,
    /// When the devices had every PUBACK (0: not yet).
    devices_done: AtomicU64,
}

impl Stamps {
    fn now(&self) -> u64 {
        // Nanoseconds since the start fit in u64 for 584 years; 0 is kept for "not yet".
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }
}

/// The message number is the body's first 8 bytes, as decimal digits (the rest is padding,
/// 100 bytes in all as in bench/emulator/run.sh).
const BODY_BYTES: usize = 100;

fn body_of(id: u64) -> Vec<u8> {
    let mut b = format!("{id:08}").into_bytes();
    b.resize(BODY_BYTES, b'x');
    b
}

fn id_of(body: &[u8]) -> Option<usize> {
    std::str::from_utf8(body.get(..8)?).ok()?.parse().ok()
}

fn latency(cfg: &AmqpConfig, d: &Devices) -> Result<(), Error> {
    let per_device = (d.rate / d.count as f64 * d.seconds).round() as usize;
    let total = per_device * d.count;
    let new = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
    let stamps = Arc::new(Stamps {
        start: Instant::now(),
        puback: new(total),
        received: new(total),
        times_received: new(total),
        sent_at: new(total),
        distinct: AtomicUsize::new(0),
        devices_done: AtomicU64::new(0),
    });
    // The receivers on a thread of their own, so that a receipt is stamped when it arrives,
    // not when the devices' thread gets round to it.
    let (attached_tx, attached_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let orders: Vec<Arc<Mutex<Order>>> = (0..cfg.partitions).map(|_| Arc::default()).collect();
    let consumer = {
        let stamps = stamps.clone();
        let orders = orders.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let rt = runtime().map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let attached = async {
                    let mut connection = open(&cfg).await?;
                    let links =
                        attach_all(&cfg, &mut connection, "amqp.annotation.x-opt-offset > '@latest'")
                            .await?;
                    Ok::<_, Error>((connection, links))
                }
                .await;
                let (connection, links) = match attached {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = attached_tx.send(Err(e.to_string()));
                        return Err(e.to_string());
                    }
                };
                let _ = attached_tx.send(Ok(()));
                let mut tasks = Vec::new();
                for (p, (session, mut receiver)) in links.into_iter().enumerate() {
                    let stamps = stamps.clone();
                    let order = orders[p].clone();
                    tasks.push(tokio::spawn(async move {
                        let _session = session;
                        loop {
                            let body = match next_event(&mut receiver).await {
                                Ok((body, seq)) => {
                                    if let Ok(mut o) = order.lock() {
                                        o.see(seq);
                                    }
                                    body
                                }
                                Err(e) => {
                                    eprintln!("amqp-bench latency: a receiver stopped: {e}");
                                    break;
                                }
                            };
                            let at = stamps.now();
                            if let Some(id) = id_of(&body).filter(|&i| i < stamps.received.len())
                            {
                                if stamps.times_received[id].fetch_add(1, Ordering::Relaxed) == 0 {
                                    stamps.received[id].store(at, Ordering::Relaxed);
                                    stamps.distinct.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }));
                }
                // Until every message was received, or 10 s after the devices' last PUBACK.
                loop {
                    let done = stamps.devices_done.load(Ordering::Relaxed);
                    if stamps.distinct.load(Ordering::Relaxed) == total
                        || (done != 0 && stamps.now() - done > 10_000_000_000)
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for t in tasks {
                    t.abort();
                }
                drop(connection);
                Ok(())
            })
        })
    };
    match attached_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err("the consumer thread ended before attaching".into()),
    }
    let rt = runtime()?;
    let sent = rt.block_on(devices(d, per_device, stamps.clone()));
    stamps.devices_done.store(stamps.now(), Ordering::Relaxed);
    let sent = sent?;
    consumer
        .join()
        .map_err(|_| "the consumer thread panicked")??;

    let warm_ns = (d.warmup * 1e9) as u64;
    let mut delays = Vec::with_capacity(total);
    let (mut lost, mut duplicated, mut counted) = (0usize, 0usize, 0usize);
    for id in 0..total {
        if stamps.sent_at[id].load(Ordering::Relaxed) < warm_ns {
            continue;
        }
        counted += 1;
        let times = stamps.times_received[id].load(Ordering::Relaxed);
        if times == 0 {
            lost += 1;
            continue;
        }
        if times > 1 {
            duplicated += 1;
        }
        let (p, r) = (
            stamps.puback[id].load(Ordering::Relaxed),
            stamps.received[id].load(Ordering::Relaxed),
        );
        // Signed: the hub puts an event on the live feed before the PUBACK is written, so a
        // receiver can have it first.
        delays.push((r as f64 - p as f64) / 1e6);
    }
    delays.sort_by(f64::total_cmp);
    let orders: Vec<Order> = orders
        .iter()
        .map(|o| o.lock().map(|o| *o).unwrap_or_default())
        .collect();
    let (backwards, skipped) = Order::sum(&orders);
    let pct = |q: f64| {
        if delays.is_empty() {
            f64::NAN
        } else {
            delays[((delays.len() as f64 - 1.0) * q).round() as usize]
        }
    };
    println!(
        "{{\"devices\":{},\"ratePerSec\":{},\"seconds\":{},\"warmupSeconds\":{},\"sent\":{sent},\"counted\":{counted},\"n\":{},\"lost\":{lost},\"duplicated\":{duplicated},\"backwards\":{backwards},\"skipped\":{skipped},\"p50Ms\":{:.3},\"p90Ms\":{:.3},\"p99Ms\":{:.3},\"p999Ms\":{:.3},\"maxMs\":{:.3},\"minMs\":{:.3},\"credit\":{},\"settle\":\"{}\",\"tls\":{}}}",
        d.count,
        d.rate,
        d.seconds,
        d.warmup,
        delays.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        delays.last().copied().unwrap_or(f64::NAN),
        delays.first().copied().unwrap_or(f64::NAN),
        cfg.credit,
        if cfg.settled { "settled" } else { "accept" },
        cfg.ca.is_some()
    );
    Ok(())
}

struct Creds {
    client_id: String,
    username: String,
    password: String,
}

fn read_creds(path: &str, n: usize) -> Result<Vec<Creds>, Error> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::with_capacity(n);
    for line in file.lines().take(n) {
        let line = line?;
        let mut parts = line.splitn(3, '\t');
        out.push(Creds {
            client_id: parts.next().unwrap_or_default().to_owned(),
            username: parts.next().unwrap_or_default().to_owned(),
            password: parts.next().unwrap_or_default().to_owned(),
        });
    }
    if out.len() < n {
        return Err(format!("{path} has {} lines, {n} needed", out.len()).into());
    }
    Ok(out)
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_be_bytes());
    buf.extend_from_slice(s);
}

fn put_packet(out: &mut Vec<u8>, first: u8, body: &[u8]) {
    out.push(first);
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
}

/// TCP + TLS + CONNECT (clean session, keep-alive 0) + CONNACK 0 (as bench/emulator/load).
async fn mqtt_connect(
    addr: SocketAddr,
    tls: &TlsConnector,
    c: &Creds,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut s = tls.connect(name, tcp).await?;
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.extend_from_slice(&[4, 0xc2, 0, 0]);
    put_str(&mut body, c.client_id.as_bytes());
    put_str(&mut body, c.username.as_bytes());
    put_str(&mut body, c.password.as_bytes());
    let mut pkt = Vec::new();
    put_packet(&mut pkt, 0x10, &body);
    s.write_all(&pkt).await?;
    s.flush().await?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await?;
    if connack[0] != 0x20 || connack[3] != 0 {
        return Err(format!("{}: CONNACK {:?}", c.client_id, connack).into());
    }
    Ok(s)
}

/// Connects every device, then each publishes `per_device` messages at its share of the rate,
/// the devices' first sends spread over one interval; returns how many were acknowledged.
async fn devices(d: &Devices, per_device: usize, stamps: Arc<Stamps>) -> Result<usize, Error> {
    let tls = if d.ca.is_empty() {
        return Err("MQTT_CA is needed (devices connect over TLS)".into());
    } else {
        connector(&d.ca)?
    };
    let creds = read_creds(&d.creds, d.count)?;
    let mut streams = Vec::with_capacity(d.count);
    for c in &creds {
        streams.push(mqtt_connect(d.addr, &tls, c).await?);
    }
    let interval = Duration::from_secs_f64(d.count as f64 / d.rate);
    let begin = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for (i, (s, c)) in streams.into_iter().zip(&creds).enumerate() {
        let topic = format!("devices/{}/messages/events/", c.client_id);
        let first = begin + interval.mul_f64(i as f64 / d.count as f64);
        let stamps = stamps.clone();
        let ids: Vec<u64> = (0..per_device)
            .map(|k| (k * d.count + i) as u64)
            .collect();
        tasks.push(tokio::spawn(publish_paced(
            s, topic, ids, first, interval, stamps,
        )));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await??;
    }
    Ok(acked)
}

/// Publishes one QoS 1 message per `interval` from `first` (catching up after a late tick),
/// stamping each send and each PUBACK.
async fn publish_paced(
    s: tokio_rustls::client::TlsStream<TcpStream>,
    topic: String,
    ids: Vec<u64>,
    first: tokio::time::Instant,
    interval: Duration,
    stamps: Arc<Stamps>,
) -> Result<usize, Error> {
    let (mut rd, mut wr) = tokio::io::split(s);
    let n = ids.len();
    // Packet id -> message number, for the PUBACKs.
    let in_flight: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
    let reader = {
        let (in_flight, stamps) = (in_flight.clone(), stamps.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = vec![0u8; 4096];
            let mut acked = 0usize;
            while acked < n {
                let got = rd.read(&mut chunk).await?;
                if got == 0 {
                    return Err::<usize, Error>(format!("closed after {acked} PUBACKs").into());
                }
                let at = stamps.now();
                buf.extend_from_slice(&chunk[..got]);
                let mut pos = 0;
                while buf.len() - pos >= 4 {
                    if buf[pos] != 0x40 || buf[pos + 1] != 2 {
                        return Err(format!("unexpected packet {:#x}", buf[pos]).into());
                    }
                    let pid = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]);
                    let id = in_flight
                        .lock()
                        .map_err(|_| "poisoned")?
                        .remove(&pid)
                        .ok_or("PUBACK for a packet not in flight")?;
                    stamps.puback[id as usize].store(at, Ordering::Relaxed);
                    acked += 1;
                    pos += 4;
                }
                buf.drain(..pos);
            }
            Ok(acked)
        })
    };
    let mut ticks = tokio::time::interval_at(first, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pkt = Vec::with_capacity(BODY_BYTES + topic.len() + 8);
    let mut out = Vec::with_capacity(BODY_BYTES + topic.len() + 8);
    for (k, &id) in ids.iter().enumerate() {
        ticks.tick().await;
        let pid = u16::try_from(k % usize::from(u16::MAX) + 1).unwrap_or(1);
        in_flight
            .lock()
            .map_err(|_| "poisoned")?
            .insert(pid, id);
        pkt.clear();
        put_str(&mut pkt, topic.as_bytes());
        pkt.extend_from_slice(&pid.to_be_bytes());
        pkt.extend_from_slice(&body_of(id));
        out.clear();
        put_packet(&mut out, 0x32, &pkt);
        stamps.sent_at[id as usize].store(stamps.now(), Ordering::Relaxed);
        wr.write_all(&out).await?;
        wr.flush().await?;
    }
    let acked = reader.await??;
    let _ = wr.write_all(&[0xe0, 0]).await;
    let _ = wr.shutdown().await;
    Ok(acked)
}
