//! A fault-injecting TCP proxy: forwards bytes both ways and cuts every connection on demand,
//! possibly mid-packet, so acknowledgements in flight are lost too.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    cut: Arc<watch::Sender<u64>>,
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(0u64);
        let cut = Arc::new(cut);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let mut a = [0u8; 4096];
                    let mut b = [0u8; 4096];
                    loop {
                        tokio::select! {
                            n = cr.read(&mut a) => match n {
                                Ok(n) if n > 0 => if sw.write_all(&a[..n]).await.is_err() { return },
                                _ => return,
                            },
                            n = sr.read(&mut b) => match n {
                                Ok(n) if n > 0 => if cw.write_all(&b[..n]).await.is_err() { return },
                                _ => return,
                            },
                            _ = cut.changed() => return,
                        }
                    }
                });
            }
        });
        Self { addr, cut }
    }

    /// Drops every open connection at once, in both directions.
    pub(crate) fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}
