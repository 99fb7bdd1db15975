//! Opening an authorised AMQP connection (docs/amqp.md "Endpoints", "Authentication"): TCP,
//! TLS from the first byte (tokio-rustls; not the AMQP TLS header), SASL ANONYMOUS, one
//! session, then a `$cbs` put-token for each audience the client uses.

use std::time::Duration;

use anyhow::{Context, anyhow};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::{Connection, Session};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::cbs::put_token;
use super::endpoint::Endpoint;
use super::ids::uuid_v4;
use super::request::RequestLink;

/// How long connecting (TCP, TLS, SASL, OPEN) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An open connection with one session and its `$cbs` link.
#[derive(Debug)]
pub(crate) struct Client {
    connection: ConnectionHandle<()>,
    /// The session links are attached on.
    pub(crate) session: SessionHandle<()>,
    cbs: RequestLink,
    /// The host this connection reached (as named, not as dialled).
    pub(crate) host: String,
}

impl Client {
    /// Connects to `host:port` as `endpoint` dials it.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        host: &str,
        port: u16,
    ) -> anyhow::Result<Self> {
        let dial = endpoint.dial(host, port);
        let (addr, dial_port) = (&dial.address.0, dial.address.1);
        let scheme = if endpoint.tls.is_some() {
            "amqps"
        } else {
            "amqp"
        };
        let what = format!("{scheme}://{host}:{port}");
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect((addr.as_str(), dial_port))
                .await
                .with_context(|| format!("cannot connect to {addr}:{dial_port}"))?;
            // Small request/reply frames: do not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            match &endpoint.tls {
                Some(config) => {
                    let name =
                        ServerName::try_from(dial.server_name.clone()).with_context(|| {
                            format!("`{}` is not a valid TLS server name", dial.server_name)
                        })?;
                    let tls = TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .context("TLS handshake failed")?;
                    open(tls, &dial.server_name).await
                }
                None => open(tcp, &dial.server_name).await,
            }
        })
        .await
        .map_err(|_| anyhow!("timed out after {}s", CONNECT_TIMEOUT.as_secs()))
        .and_then(|r| r)
        .with_context(|| format!("cannot open an AMQP connection to {what}"))?;
        let mut connection = connection;
        let mut session = Session::begin(&mut connection)
            .await
            .with_context(|| format!("cannot begin an AMQP session with {what}"))?;
        let cbs = RequestLink::attach(&mut session, "$cbs").await?;
        Ok(Self {
            connection,
            session,
            cbs,
            host: host.to_owned(),
        })
    }

    /// Puts `token` on `$cbs` for `audience`.
    pub(crate) async fn authorize(&mut self, audience: &str, token: &str) -> anyhow::Result<()> {
        self.cbs
            .call(put_token(audience, token))
            .await
            .with_context(|| format!("{} refused the service token for {audience}", self.host))?;
        Ok(())
    }

    /// Ends the session and closes the connection.
    pub(crate) async fn close(mut self) {
        self.cbs.close().await;
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

async fn open<Io>(stream: Io, hostname: &str) -> anyhow::Result<ConnectionHandle<()>>
where
    Io: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let container = format!("iothub-cli-{}", uuid_v4()?);
    Connection::builder()
        .container_id(container)
        .hostname(hostname)
        .sasl_profile(SaslProfile::Anonymous)
        .open_with_stream(stream)
        .await
        .context("the AMQP handshake failed")
}
