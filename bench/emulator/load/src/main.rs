//! MQTT 3.1.1 over TLS load generator for `bench/emulator/run.sh`.
//!
//! The same client drives the emulator and mosquitto, so the two servers see identical traffic:
//!
//! ```text
//! emulator-load ingest ADDR CA CREDS CONNECTIONS MESSAGES WINDOW BODY_BYTES
//! emulator-load idle   ADDR CA CREDS CONNECTIONS CONCURRENCY
//! ```
//!
//! `CREDS` has one line per connection: `client_id<TAB>username<TAB>password` (empty username
//! and password: none sent). Each connection publishes QoS 1 to `devices/{client_id}/messages/events/`.
//!
//! - `ingest`: connects every connection first, then all publish `MESSAGES` in total (split
//!   evenly), each keeping at most `WINDOW` PUBLISHes unacknowledged; prints one JSON line with the
//!   time from the first PUBLISH to the last PUBACK.
//! - `idle`: opens `CONNECTIONS` connections (TCP + TLS + CONNECT/CONNACK), at most
//!   `CONCURRENCY` in progress at once, prints one JSON line with the time it took, then holds
//!   them open until stdin closes and prints how many the server closed meanwhile.
//!
//! Runs on a current-thread runtime: one core for the client, the rest for the server.

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Creds {
    client_id: String,
    username: String,
    password: String,
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("ingest") if args.len() == 8 => rt.block_on(ingest(
            args[1].parse()?,
            &args[2],
            &args[3],
            args[4].parse()?,
            args[5].parse()?,
            args[6].parse()?,
            args[7].parse()?,
        )),
        Some("idle") if args.len() == 6 => rt.block_on(idle(
            args[1].parse()?,
            &args[2],
            &args[3],
            args[4].parse()?,
            args[5].parse()?,
        )),
        _ => Err("usage: emulator-load ingest ADDR CA CREDS CONNECTIONS MESSAGES WINDOW BODY_BYTES | idle ADDR CA CREDS CONNECTIONS CONCURRENCY".into()),
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

fn read_creds(path: &str, n: usize) -> Result<Vec<Creds>, Error> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::with_capacity(n);
    for line in file.lines().take(n) {
        let line = line?;
        let mut parts = line.splitn(3, '\t');
        let client_id = parts.next().unwrap_or_default().to_owned();
        let username = parts.next().unwrap_or_default().to_owned();
        let password = parts.next().unwrap_or_default().to_owned();
        out.push(Creds {
            client_id,
            username,
            password,
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

/// TCP + TLS + CONNECT (clean session, keep-alive 0) + CONNACK 0.
async fn connect(
    addr: SocketAddr,
    tls: &TlsConnector,
    c: &Creds,
) -> Result<TlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut s = tls.connect(name, tcp).await?;
    let mut body = Vec::with_capacity(64 + c.username.len() + c.password.len());
    put_str(&mut body, b"MQTT");
    let mut flags = 0x02u8;
    if !c.username.is_empty() {
        flags |= 0x80;
    }
    if !c.password.is_empty() {
        flags |= 0x40;
    }
    body.extend_from_slice(&[4, flags, 0, 0]);
    put_str(&mut body, c.client_id.as_bytes());
    if !c.username.is_empty() {
        put_str(&mut body, c.username.as_bytes());
    }
    if !c.password.is_empty() {
        put_str(&mut body, c.password.as_bytes());
    }
    let mut pkt = Vec::with_capacity(body.len() + 5);
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

#[allow(clippy::too_many_arguments)]
async fn ingest(
    addr: SocketAddr,
    ca: &str,
    creds: &str,
    connections: usize,
    messages: usize,
    window: usize,
    body_bytes: usize,
) -> Result<(), Error> {
    let tls = connector(ca)?;
    let creds = read_creds(creds, connections)?;
    let mut streams = Vec::with_capacity(connections);
    for c in &creds {
        streams.push(connect(addr, &tls, c).await?);
    }
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for (i, (s, c)) in streams.into_iter().zip(&creds).enumerate() {
        // Spread the remainder over the first connections.
        let n = messages / connections + usize::from(i < messages % connections);
        let topic = format!("devices/{}/messages/events/", c.client_id);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            publish_all(s, topic, n, window, body_bytes).await
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut acked = 0;
    for t in tasks {
        acked += t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"connections\":{connections},\"messages\":{acked},\"window\":{window},\"bodyBytes\":{body_bytes},\"seconds\":{secs:.3},\"msgPerSec\":{:.0}}}",
        acked as f64 / secs
    );
    Ok(())
}

/// Publishes `n` QoS 1 messages keeping at most `window` unacknowledged; returns the PUBACKs.
async fn publish_all(
    s: TlsStream<TcpStream>,
    topic: String,
    n: usize,
    window: usize,
    body_bytes: usize,
) -> Result<usize, Error> {
    let (mut rd, mut wr) = tokio::io::split(s);
    let credit = Arc::new(Semaphore::new(window));
    let reader_credit = credit.clone();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut acked = 0usize;
        while acked < n {
            let got = rd.read(&mut chunk).await?;
            if got == 0 {
                return Err::<usize, Error>(format!("closed after {acked} PUBACKs").into());
            }
            buf.extend_from_slice(&chunk[..got]);
            let mut at = 0;
            // Every packet we expect is short: PUBACK (0x40 0x02 id id).
            while buf.len() - at >= 2 {
                let len = usize::from(buf[at + 1]);
                if buf[at + 1] & 0x80 != 0 {
                    return Err("unexpected long packet".into());
                }
                if buf.len() - at < 2 + len {
                    break;
                }
                if buf[at] == 0x40 {
                    acked += 1;
                    reader_credit.add_permits(1);
                }
                at += 2 + len;
            }
            buf.drain(..at);
        }
        Ok(acked)
    });
    let body = vec![b'x'; body_bytes];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut pkt = Vec::with_capacity(body_bytes + topic.len() + 8);
    let mut sent = 0usize;
    let mut id: u16 = 0;
    while sent < n {
        // Wait for one credit, then take every credit already available: one write per burst.
        credit.acquire().await?.forget();
        let mut burst = 1;
        while sent + burst < n {
            match credit.try_acquire() {
                Ok(p) => {
                    p.forget();
                    burst += 1;
                }
                Err(_) => break,
            }
        }
        out.clear();
        for _ in 0..burst {
            id = if id == u16::MAX { 1 } else { id + 1 };
            pkt.clear();
            put_str(&mut pkt, topic.as_bytes());
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&body);
            put_packet(&mut out, 0x32, &pkt);
        }
        wr.write_all(&out).await?;
        wr.flush().await?;
        sent += burst;
    }
    let acked = reader.await??;
    // DISCONNECT, so the emulator does not turn a Will into telemetry (there is none anyway).
    let _ = wr.write_all(&[0xe0, 0]).await;
    let _ = wr.shutdown().await;
    Ok(acked)
}

async fn idle(
    addr: SocketAddr,
    ca: &str,
    creds: &str,
    connections: usize,
    concurrency: usize,
) -> Result<(), Error> {
    let tls = connector(ca)?;
    let creds = read_creds(creds, connections)?;
    let limit = Arc::new(Semaphore::new(concurrency));
    let closed = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let start = Instant::now();
    let spawner = {
        let closed = closed.clone();
        tokio::spawn(async move {
            for c in creds {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (tls, closed, done) = (tls.clone(), closed.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let s = connect(addr, &tls, &c).await;
                    drop(permit);
                    match s {
                        Ok(mut s) => {
                            let _ = done.send(Ok(()));
                            // Hold it; any byte or EOF from the server counts as a close.
                            let mut one = [0u8; 1];
                            let _ = s.read(&mut one).await;
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let _ = done.send(Err(e.to_string()));
                        }
                    }
                });
            }
        })
    };
    let mut ok = 0usize;
    let mut failed = 0usize;
    let mut first_error = String::new();
    for _ in 0..connections {
        match done_rx.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = e;
                }
            }
            None => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    spawner.await?;
    println!(
        "{{\"connections\":{connections},\"connected\":{ok},\"failed\":{failed},\"firstError\":{first_error:?},\"concurrency\":{concurrency},\"seconds\":{secs:.3},\"connPerSec\":{:.0}}}",
        ok as f64 / secs
    );
    // Hold until the script closes our stdin (it measures the server's RSS meanwhile).
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    // Give the reader tasks a moment to notice closes that happened just before.
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!(
        "{{\"closedByServerWhileHeld\":{}}}",
        closed.load(Ordering::Relaxed)
    );
    Ok(())
}
