//! Errors a person can act on.
//!
//! Two pieces: [`connect_device`] connects like `DeviceClient::connect` but ends at the first
//! failed attempt with a message naming the cause and the fix (a command line tool must not
//! sit in the client's reconnect backoff), and [`hint`] adds a `hint:` line to any error the
//! commands return (malformed connection strings, throttling, refusals). Both choose by the
//! errors' types (`iothub_device`'s typed reasons, the hub's HTTP status, the rustls error
//! inside a failed request), never by searching error text.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use iothub_device::{
    ClientOptions, ConnectRefusal, ConnectionState, CredentialError, DeviceClient,
    DisconnectReason, NetworkError,
};
use iothub_proto::connection_string::{ConnectionString, ConnectionStringError, Credential};
use iothub_proto::sas::ParsedSasToken;

/// How long a command waits for the first CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The keys a connection string may carry (for "did you mean").
const KNOWN_KEYS: [&str; 8] = [
    "HostName",
    "DeviceId",
    "ModuleId",
    "SharedAccessKey",
    "SharedAccessKeyName",
    "SharedAccessSignature",
    "GatewayHostName",
    "x509",
];

/// What the command is connecting to, for the messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    /// Host dialled.
    pub(crate) host: String,
    /// Port dialled.
    pub(crate) port: u16,
    /// Device id.
    pub(crate) device_id: String,
    /// Whether the user passed `--ca-file`.
    pub(crate) ca_file: bool,
    /// `se` of a pre-made SAS token in the connection string.
    pub(crate) token_expiry: Option<u64>,
}

impl Target {
    /// Reads host, device and token expiry from a device connection string.
    pub(crate) fn from_connection_string(cs: &str, port: Option<u16>, ca_file: bool) -> Self {
        let Ok(parsed) = ConnectionString::parse(cs) else {
            return Self::default();
        };
        let token_expiry = match parsed.credential() {
            Credential::Token { token } => ParsedSasToken::parse(token).ok().map(|t| t.expiry()),
            _ => None,
        };
        Self {
            host: parsed.dial_host().to_owned(),
            port: port.unwrap_or(8883),
            device_id: parsed.device_id().unwrap_or_default().to_owned(),
            ca_file,
            token_expiry,
        }
    }
}

/// Connects, and turns the first failed attempt into an actionable error.
///
/// # Errors
/// Unreachable host, TLS failure, refused credentials, disabled device, timeout.
pub(crate) async fn connect_device(
    options: ClientOptions,
    target: &Target,
) -> anyhow::Result<DeviceClient> {
    let client = DeviceClient::start(options)?;
    let mut state = client.connection_state();
    let outcome = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            let current = state.borrow_and_update().clone();
            match current {
                ConnectionState::Connected => return Ok(()),
                ConnectionState::Disconnected { reason, .. } => {
                    return Err(explain(&reason, target));
                }
                ConnectionState::Closed => {
                    return Err(anyhow!("the client closed while connecting"));
                }
                _ => {}
            }
            if state.changed().await.is_err() {
                return Err(anyhow!("the client stopped while connecting"));
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(())) => {
            crate::connection_events::print_changes(&client);
            Ok(client)
        }
        Ok(Err(e)) => {
            client.close().await;
            Err(e)
        }
        Err(_) => {
            client.close().await;
            Err(anyhow!(
                "no CONNACK from {}:{} within {} s: the host accepts connections but does not answer MQTT; check --port (MQTT/TLS is 8883, WebSockets 443)",
                target.host,
                target.port,
                CONNECT_TIMEOUT.as_secs()
            ))
        }
    }
}

/// The message for a failed connection attempt, chosen by the reason's type.
fn explain(reason: &DisconnectReason, t: &Target) -> anyhow::Error {
    let at = format!("{}:{}", t.host, t.port);
    match reason {
        DisconnectReason::Network(e @ NetworkError::Tls { .. }) => {
            let ca = if t.ca_file {
                "the --ca-file you passed does not contain the CA that signed the hub's certificate"
            } else {
                "no CA given"
            };
            anyhow!(
                "TLS with {at} failed: {} ({ca}). For the local emulator pass its CA: \
                 --ca-file ~/.local/share/iothub/emulator/ca.pem (or <data dir>/ca.pem; `iothub emulator` prints the path). \
                 For Azure IoT Hub no --ca-file is needed (the DigiCert Global Root G2 and Microsoft roots are built in) \
                 unless a TLS-inspecting proxy sits in between: then pass that proxy's CA.",
                tls_reason(e)
            )
        }
        DisconnectReason::Network(_) => anyhow!(
            "cannot reach {at}: {reason}. Check HostName in the connection string and --port; \
             for the local emulator start it with `iothub emulator` (MQTT/TLS listens on 8883 by default)."
        ),
        DisconnectReason::Credentials(CredentialError::TokenExpired { expiry }) => anyhow!(
            "the device cannot sign in: the SharedAccessSignature in the connection string expired (se={expiry}). \
             Mint a fresh token with `iothub sas --connection-string ...` \
             or put the device's SharedAccessKey in the connection string so tokens are renewed automatically."
        ),
        DisconnectReason::Credentials(_) => anyhow!(
            "the device cannot sign in: {reason}. Mint a fresh token with `iothub sas --connection-string ...` \
             or put the device's SharedAccessKey in the connection string so tokens are renewed automatically."
        ),
        DisconnectReason::Refused(ConnectRefusal::NotAuthorized) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match t.token_expiry {
                Some(se) if se <= now => anyhow!(
                    "not authorized (CONNACK 5): the SharedAccessSignature in the connection string expired {} s ago (se={se}). \
                     Mint a new one with `iothub sas`, or use the device key (SharedAccessKey=...) instead.",
                    now - se
                ),
                Some(_) => anyhow!(
                    "not authorized (CONNACK 5): the token is not expired, so its signature or scope is wrong: \
                     it was not signed with device {}'s key for {}, or the device does not exist there",
                    t.device_id,
                    t.host
                ),
                None => anyhow!(
                    "not authorized (CONNACK 5): {} rejected the signature of device {}: the SharedAccessKey is wrong \
                     (copy it again: `iothub hub identity connection-string {}`), or the device does not exist on this hub. \
                     Tokens are signed just now, so it is not an expired token (unless this machine's clock is off by more than 5 minutes).",
                    t.host,
                    t.device_id,
                    t.device_id
                ),
            }
        }
        DisconnectReason::Refused(ConnectRefusal::ServerUnavailable) => anyhow!(
            "refused with CONNACK 3 (server unavailable): device {} is disabled on {} (enable it on the hub; \
             on the emulator `iothub hub identity show {}` shows its status), or the hub is throttling connections: retry later",
            t.device_id,
            t.host,
            t.device_id
        ),
        DisconnectReason::Refused(code) => anyhow!("{} refused the connection: {code}", t.host),
        DisconnectReason::Protocol(_) => anyhow!("{at}: {reason}"),
        DisconnectReason::Timeout(_) => anyhow!(
            "{at} did not answer in time ({reason}): is it an MQTT endpoint? MQTT/TLS is 8883, WebSockets 443"
        ),
        other => anyhow!("the connection to {at} failed: {other}"),
    }
}

/// rustls' reason for a TLS failure (`invalid peer certificate: UnknownIssuer`), else the
/// whole failure.
fn tls_reason(e: &NetworkError) -> String {
    match e.tls_error() {
        Some(reason) => reason.to_string(),
        None => DisconnectReason::Network(e.clone()).to_string(),
    }
}

/// The rustls error somewhere in `error`'s chain, if TLS is what failed.
///
/// rustls errors travel inside [`io::Error`]s (tokio-rustls, hyper, reqwest), sometimes one
/// inside another, and `io::Error::source()` skips the wrapped error itself, so each
/// `io::Error` is opened too.
fn tls_failure(error: &anyhow::Error) -> Option<&rustls::Error> {
    error.chain().find_map(rustls_inside)
}

/// `error` itself, or what it wraps, as a rustls error.
fn rustls_inside<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = error.downcast_ref::<io::Error>()?.get_ref()?;
    // Walk what the `io::Error` wraps (and that error's own sources).
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(wrapped);
    while let Some(e) = cause {
        if let Some(tls) = rustls_inside(e) {
            return Some(tls);
        }
        cause = e.source();
    }
    None
}

/// Validates a connection string and names the offending field, with a "did you mean".
///
/// # Errors
/// The string is malformed.
pub(crate) fn check_connection_string(cs: &str) -> anyhow::Result<()> {
    match ConnectionString::parse(cs) {
        Ok(_) => Ok(()),
        Err(ConnectionStringError::UnknownKey { offset }) => {
            let key = cs
                .get(offset..)
                .and_then(|rest| rest.split(['=', ';']).next())
                .unwrap_or("");
            let guess = KNOWN_KEYS
                .iter()
                .min_by_key(|k| distance(&k.to_ascii_lowercase(), &key.to_ascii_lowercase()))
                .copied()
                .unwrap_or("HostName");
            Err(anyhow!(
                "malformed connection string: unknown field `{key}` (did you mean `{guess}`?); known fields: {}",
                KNOWN_KEYS.join(", ")
            ))
        }
        Err(ConnectionStringError::MalformedSegment { offset }) => {
            let segment = cs
                .get(offset..)
                .and_then(|r| r.split(';').next())
                .unwrap_or("");
            Err(anyhow!(
                "malformed connection string: `{segment}` is not Field=value (fields are separated by `;`)"
            ))
        }
        Err(e) => Err(anyhow!("malformed connection string: {e}")),
    }
}

/// Levenshtein distance of two short ASCII strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A `hint:` for errors whose fix is not in the message itself, chosen by the types of the
/// errors in the chain.
pub(crate) fn hint(error: &anyhow::Error) -> Option<String> {
    for cause in error.chain() {
        if let Some(iothub_device::Error::Rejected { status: 429, .. }) = cause.downcast_ref() {
            return Some(throttled());
        }
        if let Some(answer) = cause.downcast_ref::<HubAnswered>() {
            return match answer.status().as_u16() {
                429 => Some(throttled()),
                401 => Some(
                    "the service credentials were rejected: check SharedAccessKeyName and SharedAccessKey of the \
                     service connection string (the emulator prints its iothubowner string at start-up; for Azure: \
                     `az iot hub connection-string show --policy-name iothubowner`), and this machine's clock."
                        .to_owned(),
                ),
                _ => None,
            };
        }
    }
    // The service side (REST over reqwest): the same causes, seen through HTTP.
    let request = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<reqwest::Error>())?;
    if tls_failure(error).is_some() {
        return Some(
            "the hub's TLS certificate is not trusted. For the local emulator pass its CA with \
             --ca-file ~/.local/share/iothub/emulator/ca.pem (or <data dir>/ca.pem), or leave out \
             --hub-connection-string so the command finds the emulator (and its CA) through its data dir. \
             Azure IoT Hub needs no --ca-file."
                .to_owned(),
        );
    }
    if request.is_connect() {
        return Some(
            "the hub cannot be reached: check HostName in the service connection string; for the local \
             emulator start `iothub emulator` (or pass --data-dir to the one you started)."
                .to_owned(),
        );
    }
    None
}

/// The hub's REST API answered with an error status.
///
/// A type of its own so that [`hint`] chooses by the status, not by the message text.
#[derive(Debug)]
pub(crate) struct HubAnswered {
    status: reqwest::StatusCode,
    /// The hub's error message (and error code when it sent one).
    message: String,
}

impl HubAnswered {
    /// An answer with `status` and the hub's `message`.
    pub(crate) fn new(status: reqwest::StatusCode, message: String) -> Self {
        Self { status, message }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> reqwest::StatusCode {
        self.status
    }
}

impl std::fmt::Display for HubAnswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the hub answered {}: {}", self.status, self.message)
    }
}

impl std::error::Error for HubAnswered {}

fn throttled() -> String {
    "the hub is throttling this operation (429): you exceeded its per-unit quota for this kind of \
     request. Wait and retry with backoff (the device client does this for telemetry), send less often, \
     or scale the hub up (more units or a higher tier)."
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn names_an_unknown_field_and_suggests_the_right_one() {
        let e = check_connection_string("HostNme=h;DeviceId=d;SharedAccessKey=AAAA").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("`HostNme`") && text.contains("did you mean `HostName`"),
            "{text}"
        );
    }

    #[test]
    fn names_a_segment_without_equals() {
        let e = check_connection_string("HostName=h;DeviceId;SharedAccessKey=AAAA").unwrap_err();
        assert!(
            e.to_string().contains("`DeviceId` is not Field=value"),
            "{e}"
        );
    }

    #[test]
    fn tells_an_expired_token_from_a_wrong_key() {
        let t = Target {
            host: "h".into(),
            port: 8883,
            device_id: "d".into(),
            ca_file: false,
            token_expiry: Some(1),
        };
        let refused = DisconnectReason::Refused(ConnectRefusal::NotAuthorized);
        assert!(explain(&refused, &t).to_string().contains("expired"));
        let key = Target {
            token_expiry: None,
            ..t
        };
        let text = explain(&refused, &key).to_string();
        assert!(
            text.contains("SharedAccessKey is wrong") && text.contains("not an expired token"),
            "{text}"
        );
    }

    #[test]
    fn recognises_tls_failures_by_type() {
        let t = Target {
            host: "h".into(),
            port: 8883,
            ..Target::default()
        };
        let untrusted = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            )
        };
        let tls = DisconnectReason::Network(NetworkError::Tls {
            host: "h".into(),
            source: Arc::new(untrusted()),
        });
        let text = explain(&tls, &t).to_string();
        assert!(
            text.starts_with("TLS with h:8883 failed: invalid peer certificate: UnknownIssuer"),
            "{text}"
        );
        let refused = DisconnectReason::Network(NetworkError::Tcp {
            address: "h:8883".into(),
            source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        });
        let text = explain(&refused, &t).to_string();
        assert!(text.starts_with("cannot reach h:8883"), "{text}");
        assert!(!text.contains("TLS with"), "{text}");
        // The same rustls error found inside an anyhow chain (the REST side), and text
        // alone that merely mentions certificates is not taken for one.
        let chained = anyhow::Error::new(untrusted()).context("GET https://h/ failed");
        assert!(tls_failure(&chained).is_some());
        assert!(tls_failure(&anyhow!("certificate UnknownIssuer handshake")).is_none());
    }

    #[test]
    fn explains_an_expired_premade_token_by_type() {
        let expired = DisconnectReason::Credentials(CredentialError::TokenExpired { expiry: 1000 });
        let text = explain(&expired, &Target::default()).to_string();
        assert!(
            text.contains("expired (se=1000)") && text.contains("iothub sas"),
            "{text}"
        );
    }

    #[test]
    fn hints_by_the_status_the_hub_answered() {
        let throttled = anyhow::Error::new(HubAnswered::new(
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            "Throttling".into(),
        ));
        assert!(hint(&throttled).is_some_and(|h| h.contains("throttling")));
        let unauthorized = anyhow::Error::new(HubAnswered::new(
            reqwest::StatusCode::UNAUTHORIZED,
            "no".into(),
        ))
        .context("listing devices");
        assert!(hint(&unauthorized).is_some_and(|h| h.contains("service credentials")));
        // Text alone no longer triggers a hint.
        assert!(hint(&anyhow!("the hub answered 429 Too Many Requests")).is_none());
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(distance("hostnme", "hostname"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("deviceid", "deviceid"), 0);
    }
}
