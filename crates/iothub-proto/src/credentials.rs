//! MQTT CONNECT credentials: client id and username for IoT Hub devices and modules and for
//! DPS (docs/protocol.md §1.2–1.4, §9), a lenient hub-side username parser, and the transport
//! constants (ports, WebSocket path, keep-alive limits).

use core::fmt::{self, Display};

use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;
use crate::percent::{self, Decoded};

/// The IoT Hub api-version current documentation uses (docs/protocol.md §1.2).
pub const API_VERSION: &str = "2021-04-12";

/// The DPS api-version for MQTT registration (docs/protocol.md §9).
pub const DPS_API_VERSION: &str = "2019-03-31";

/// The DPS global endpoint host (docs/protocol.md §9).
pub const DPS_GLOBAL_ENDPOINT: &str = "global.azure-devices-provisioning.net";

/// MQTT over TLS port; IoT Hub has no plain-text port (docs/protocol.md §1.1).
pub const MQTT_TLS_PORT: u16 = 8883;

/// MQTT over WebSockets (TLS) port (docs/protocol.md §1.1).
pub const WEBSOCKET_PORT: u16 = 443;

/// The WebSocket URL path (docs/protocol.md §1.1, azure-sdk-for-c
/// `AZ_IOT_HUB_CLIENT_WEB_SOCKET_PATH`).
pub const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// The WebSocket subprotocol (docs/protocol.md §1.1).
pub const WEBSOCKET_SUBPROTOCOL: &str = "mqtt";

/// The longest useful client keep-alive: the hub times out after 1.5 × keep-alive, capped
/// at [`SERVER_IDLE_CAP_SECS`], so anything above 1177 s gains nothing (docs/protocol.md §1.6).
pub const MAX_KEEP_ALIVE_SECS: u16 = 1177;

/// The hub's idle cap in seconds, the Azure load-balancer timeout (docs/protocol.md §1.6).
pub const SERVER_IDLE_CAP_SECS: u32 = 1767;

/// The keep-alive azure-sdk-for-c uses by default (docs/protocol.md §1.6).
pub const DEFAULT_KEEP_ALIVE_SECS: u16 = 240;

/// How long the hub waits for traffic before dropping a client with this keep-alive:
/// 1.5 × keep-alive, capped at [`SERVER_IDLE_CAP_SECS`]; keep-alive 0 gets the cap
/// (docs/protocol.md §1.6).
///
/// ```
/// use iothub_proto::credentials::server_idle_timeout_secs;
///
/// assert_eq!(server_idle_timeout_secs(230), 345);
/// assert_eq!(server_idle_timeout_secs(1177), 1765);
/// assert_eq!(server_idle_timeout_secs(1200), 1767);
/// assert_eq!(server_idle_timeout_secs(0), 1767);
/// ```
pub const fn server_idle_timeout_secs(keep_alive_secs: u16) -> u32 {
    let scaled = keep_alive_secs as u32 * 3 / 2;
    if keep_alive_secs == 0 || scaled > SERVER_IDLE_CAP_SECS {
        SERVER_IDLE_CAP_SECS
    } else {
        scaled
    }
}

/// The MQTT client id: `{device_id}` or `{device_id}/{module_id}` (docs/protocol.md §1.2–1.3).
///
/// ```
/// use iothub_proto::credentials::ClientId;
///
/// assert_eq!(ClientId::device("dev1").to_string(), "dev1");
/// assert_eq!(ClientId::module("dev1", "mod1").to_string(), "dev1/mod1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
}

impl<'a> ClientId<'a> {
    /// A device's client id.
    pub const fn device(device_id: &'a str) -> Self {
        Self {
            device_id,
            module_id: None,
        }
    }

    /// A module's client id.
    pub const fn module(device_id: &'a str, module_id: &'a str) -> Self {
        Self {
            device_id,
            module_id: Some(module_id),
        }
    }

    /// Writes the client id into `buf` without `core::fmt` and returns its length in bytes
    /// (the same text as [`Display`]).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::credentials::ClientId;
    ///
    /// let mut buf = [0u8; 16];
    /// let len = ClientId::module("dev1", "mod1").encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"dev1/mod1");
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl Display for ClientId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for ClientId<'_> {
    fn write_to(&self, f: &mut dyn Sink) {
        f.put(self.device_id);
        if let Some(module_id) = self.module_id {
            f.put("/");
            f.put(module_id);
        }
    }
}

/// The IoT Hub MQTT username:
/// `{host}/{device}[/{module}]/?api-version={v}[&DeviceClientType={ua}][&model-id={dtmi}]`.
///
/// Host and ids are written as given (SDKs do not encode them); the user agent and model id
/// are percent-encoded with `quote(safe="")` rules (docs/protocol.md §1.4).
///
/// ```
/// use iothub_proto::credentials::Username;
///
/// assert_eq!(
///     Username::device("contoso.azure-devices.net", "MyDevice01").to_string(),
///     "contoso.azure-devices.net/MyDevice01/?api-version=2021-04-12"
/// );
/// assert_eq!(
///     Username::module("h", "d", "m")
///         .with_api_version("2020-09-30")
///         .with_user_agent("iothub/0.1 (rust)")
///         .with_model_id("dtmi:com:example:Thermostat;1")
///         .to_string(),
///     "h/d/m/?api-version=2020-09-30&DeviceClientType=iothub%2F0.1%20%28rust%29\
///      &model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Username<'a> {
    host: &'a str,
    device_id: &'a str,
    module_id: Option<&'a str>,
    api_version: &'a str,
    user_agent: Option<&'a str>,
    model_id: Option<&'a str>,
}

impl<'a> Username<'a> {
    /// A device username with [`API_VERSION`].
    pub const fn device(host: &'a str, device_id: &'a str) -> Self {
        Self {
            host,
            device_id,
            module_id: None,
            api_version: API_VERSION,
            user_agent: None,
            model_id: None,
        }
    }

    /// A module username with [`API_VERSION`].
    pub const fn module(host: &'a str, device_id: &'a str, module_id: &'a str) -> Self {
        Self {
            module_id: Some(module_id),
            ..Self::device(host, device_id)
        }
    }

    /// Replaces the api-version.
    #[must_use]
    pub const fn with_api_version(self, api_version: &'a str) -> Self {
        Self {
            api_version,
            ..self
        }
    }

    /// Adds `DeviceClientType={user_agent}`.
    #[must_use]
    pub const fn with_user_agent(self, user_agent: &'a str) -> Self {
        Self {
            user_agent: Some(user_agent),
            ..self
        }
    }

    /// Adds `model-id={model_id}` (a Plug and Play DTMI, docs/protocol.md §8).
    #[must_use]
    pub const fn with_model_id(self, model_id: &'a str) -> Self {
        Self {
            model_id: Some(model_id),
            ..self
        }
    }

    /// Writes the username into `buf` without `core::fmt` and returns its length in bytes
    /// (the same text as [`Display`]).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::credentials::Username;
    ///
    /// let mut buf = [0u8; 64];
    /// let len = Username::device("h.net", "d1").with_model_id("dtmi:x;1").encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"h.net/d1/?api-version=2021-04-12&model-id=dtmi%3Ax%3B1");
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl Display for Username<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for Username<'_> {
    fn write_to(&self, f: &mut dyn Sink) {
        f.put(self.host);
        f.put("/");
        f.put(self.device_id);
        if let Some(module_id) = self.module_id {
            f.put("/");
            f.put(module_id);
        }
        f.put("/?api-version=");
        f.put(self.api_version);
        if let Some(user_agent) = self.user_agent {
            f.put("&DeviceClientType=");
            percent::write_encoded(f, user_agent);
        }
        if let Some(model_id) = self.model_id {
            f.put("&model-id=");
            percent::write_encoded(f, model_id);
        }
    }
}

/// The DPS MQTT username: `{id_scope}/registrations/{registration_id}/api-version={v}[&ClientVersion={ua}]`
/// (no `?`, docs/protocol.md §9).
///
/// ```
/// use iothub_proto::credentials::DpsUsername;
///
/// assert_eq!(
///     DpsUsername::new("0ne00000001", "reg-1").to_string(),
///     "0ne00000001/registrations/reg-1/api-version=2019-03-31"
/// );
/// assert_eq!(
///     DpsUsername::new("0ne00000001", "reg-1").with_client_version("iothub/0.1").to_string(),
///     "0ne00000001/registrations/reg-1/api-version=2019-03-31&ClientVersion=iothub%2F0.1"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DpsUsername<'a> {
    id_scope: &'a str,
    registration_id: &'a str,
    api_version: &'a str,
    client_version: Option<&'a str>,
}

impl<'a> DpsUsername<'a> {
    /// A DPS username with [`DPS_API_VERSION`].
    pub const fn new(id_scope: &'a str, registration_id: &'a str) -> Self {
        Self {
            id_scope,
            registration_id,
            api_version: DPS_API_VERSION,
            client_version: None,
        }
    }

    /// Replaces the api-version.
    #[must_use]
    pub const fn with_api_version(self, api_version: &'a str) -> Self {
        Self {
            api_version,
            ..self
        }
    }

    /// Adds `ClientVersion={user_agent}`.
    #[must_use]
    pub const fn with_client_version(self, client_version: &'a str) -> Self {
        Self {
            client_version: Some(client_version),
            ..self
        }
    }
}

impl Display for DpsUsername<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id_scope)?;
        f.write_str("/registrations/")?;
        f.write_str(self.registration_id)?;
        f.write_str("/api-version=")?;
        f.write_str(self.api_version)?;
        if let Some(client_version) = self.client_version {
            f.write_str("&ClientVersion=")?;
            crate::encode::display(&percent::encode(client_version), f)?;
        }
        Ok(())
    }
}

/// A hub username as received in CONNECT, parsed leniently (docs/protocol.md §1.4, hub side).
///
/// - Split at the first `/?`; without one, the whole text is the path (the MicroPython
///   sample of Microsoft's IoT MQTT Samples sends just `{host}/{device}`), and a trailing `/`
///   is ignored.
/// - `host/device[/module]` are **not** percent-decoded: ids are compared as sent.
/// - Query values are percent-decoded on demand, `+` is never a space, unknown parameters are
///   ignored and a missing api-version is accepted.
///
/// ```
/// use iothub_proto::credentials::ParsedUsername;
///
/// let username = ParsedUsername::parse(
///     "localhost/dev3/?api-version=2020-09-30&DeviceClientType=py%2F2.14&model-id=dtmi%3acom%3aexample%3aThermostat%3b1",
/// )
/// .unwrap();
/// assert_eq!(username.host(), "localhost");
/// assert_eq!(username.device_id(), "dev3");
/// assert_eq!(username.module_id(), None);
/// assert!(username.api_version().unwrap().eq_str("2020-09-30"));
/// assert!(username.device_client_type().unwrap().eq_str("py/2.14"));
/// assert_eq!(username.model_id().unwrap().to_string(), "dtmi:com:example:Thermostat;1");
///
/// let bare = ParsedUsername::parse("myhub.azure-devices.net/esp32").unwrap();
/// assert_eq!(bare.device_id(), "esp32");
/// assert_eq!(bare.api_version(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParsedUsername<'a> {
    host: &'a str,
    device_id: &'a str,
    module_id: Option<&'a str>,
    query: &'a str,
}

impl<'a> ParsedUsername<'a> {
    /// Parses a hub username.
    ///
    /// # Errors
    ///
    /// [`UsernameError`] when the path is not `host/device[/module]` with non-empty parts.
    pub fn parse(text: &'a str) -> Result<Self, UsernameError> {
        let (path, query) = match text.split_once("/?") {
            Some((path, query)) => (path, query),
            None => (text.strip_suffix('/').unwrap_or(text), ""),
        };
        let mut segments = path.split('/');
        let host = non_empty(segments.next(), UsernameError::MissingHost)?;
        let device_id = non_empty(segments.next(), UsernameError::MissingDeviceId)?;
        let module_id = match segments.next() {
            None => None,
            Some(module_id) => Some(non_empty(Some(module_id), UsernameError::EmptyModuleId)?),
        };
        if segments.next().is_some() {
            return Err(UsernameError::TooManySegments);
        }
        Ok(Self {
            host,
            device_id,
            module_id,
            query,
        })
    }

    /// The host name as sent.
    pub const fn host(&self) -> &'a str {
        self.host
    }

    /// The device id as sent (not percent-decoded).
    pub const fn device_id(&self) -> &'a str {
        self.device_id
    }

    /// The module id as sent, for module identities.
    pub const fn module_id(&self) -> Option<&'a str> {
        self.module_id
    }

    /// The raw query after `/?` (empty when there is none).
    pub const fn query(&self) -> &'a str {
        self.query
    }

    /// `api-version`, if sent.
    pub fn api_version(&self) -> Option<Decoded<'a>> {
        query_param(self.query, "api-version")
    }

    /// `model-id` (a Plug and Play DTMI), if sent.
    pub fn model_id(&self) -> Option<Decoded<'a>> {
        query_param(self.query, "model-id")
    }

    /// `DeviceClientType` (the SDK's user agent), if sent.
    pub fn device_client_type(&self) -> Option<Decoded<'a>> {
        query_param(self.query, "DeviceClientType")
    }

    /// Any query parameter by its decoded name; a name without `=` has an empty value.
    pub fn param(&self, name: &str) -> Option<Decoded<'a>> {
        query_param(self.query, name)
    }
}

/// A DPS username as received in CONNECT:
/// `{id_scope}/registrations/{registration_id}/api-version=…[&…]`, parsed leniently.
///
/// ```
/// use iothub_proto::credentials::ParsedDpsUsername;
///
/// let username = ParsedDpsUsername::parse(
///     "0ne00000001/registrations/reg-1/api-version=2019-03-31&ClientVersion=azsdk-c%2F1.5.0",
/// )
/// .unwrap();
/// assert_eq!(username.id_scope(), "0ne00000001");
/// assert_eq!(username.registration_id(), "reg-1");
/// assert!(username.api_version().unwrap().eq_str("2019-03-31"));
/// assert!(username.client_version().unwrap().eq_str("azsdk-c/1.5.0"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParsedDpsUsername<'a> {
    id_scope: &'a str,
    registration_id: &'a str,
    query: &'a str,
}

impl<'a> ParsedDpsUsername<'a> {
    /// Parses a DPS username. A `?` before the parameters is tolerated.
    ///
    /// # Errors
    ///
    /// [`UsernameError::NotDps`] when there is no `/registrations/` after a non-empty scope,
    /// [`UsernameError::MissingRegistrationId`] when the registration id is empty.
    pub fn parse(text: &'a str) -> Result<Self, UsernameError> {
        let (id_scope, rest) = text
            .split_once("/registrations/")
            .ok_or(UsernameError::NotDps)?;
        if id_scope.is_empty() || id_scope.contains('/') {
            return Err(UsernameError::NotDps);
        }
        let (registration_id, query) = rest.split_once('/').unwrap_or((rest, ""));
        if registration_id.is_empty() {
            return Err(UsernameError::MissingRegistrationId);
        }
        let query = query.strip_prefix('?').unwrap_or(query);
        Ok(Self {
            id_scope,
            registration_id,
            query,
        })
    }

    /// The DPS ID scope as sent.
    pub const fn id_scope(&self) -> &'a str {
        self.id_scope
    }

    /// The registration id as sent.
    pub const fn registration_id(&self) -> &'a str {
        self.registration_id
    }

    /// The raw parameters after the registration id.
    pub const fn query(&self) -> &'a str {
        self.query
    }

    /// `api-version`, if sent.
    pub fn api_version(&self) -> Option<Decoded<'a>> {
        query_param(self.query, "api-version")
    }

    /// `ClientVersion` (the SDK's user agent), if sent.
    pub fn client_version(&self) -> Option<Decoded<'a>> {
        query_param(self.query, "ClientVersion")
    }

    /// Any parameter by its decoded name.
    pub fn param(&self, name: &str) -> Option<Decoded<'a>> {
        query_param(self.query, name)
    }
}

/// A CONNECT username of either service, for a server that accepts both on one listener.
///
/// A username containing `/?` is a hub username; otherwise `{scope}/registrations/{id}…` is a
/// DPS username; anything else is parsed as a hub username. (A query-less *module* username
/// whose device id is literally `registrations` is therefore read as DPS.)
///
/// ```
/// use iothub_proto::credentials::IncomingUsername;
///
/// assert!(matches!(IncomingUsername::parse("h/d/?api-version=2021-04-12"), Ok(IncomingUsername::Hub(_))));
/// assert!(matches!(
///     IncomingUsername::parse("0ne1/registrations/r/api-version=2019-03-31"),
///     Ok(IncomingUsername::Dps(_))
/// ));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncomingUsername<'a> {
    /// A DPS registration username.
    Dps(ParsedDpsUsername<'a>),
    /// An IoT Hub device or module username.
    Hub(ParsedUsername<'a>),
}

impl<'a> IncomingUsername<'a> {
    /// Classifies and parses a username.
    ///
    /// # Errors
    ///
    /// The hub parser's [`UsernameError`] when neither form fits.
    pub fn parse(text: &'a str) -> Result<Self, UsernameError> {
        if !text.contains("/?")
            && let Ok(dps) = ParsedDpsUsername::parse(text)
        {
            return Ok(Self::Dps(dps));
        }
        ParsedUsername::parse(text).map(Self::Hub)
    }
}

/// Why a CONNECT username could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UsernameError {
    /// A module segment is present but empty (`host/device//?…`).
    EmptyModuleId,
    /// No device id after the host.
    MissingDeviceId,
    /// The host is empty.
    MissingHost,
    /// The DPS registration id is empty.
    MissingRegistrationId,
    /// Not of the DPS form `{scope}/registrations/{id}`.
    NotDps,
    /// More than `host/device/module` before the query.
    TooManySegments,
}

impl Display for UsernameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyModuleId => "username has an empty module id",
            Self::MissingDeviceId => "username has no device id",
            Self::MissingHost => "username has no host name",
            Self::MissingRegistrationId => "username has no registration id",
            Self::NotDps => "username is not a dps registration username",
            Self::TooManySegments => "username has too many path segments",
        })
    }
}

impl core::error::Error for UsernameError {}

fn non_empty(segment: Option<&str>, error: UsernameError) -> Result<&str, UsernameError> {
    segment.filter(|s| !s.is_empty()).ok_or(error)
}

/// Finds the first parameter whose percent-decoded name is `name`.
fn query_param<'a>(query: &'a str, name: &str) -> Option<Decoded<'a>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        Decoded::new(key)
            .eq_str(name)
            .then_some(Decoded::new(value))
    })
}

#[cfg(test)]
mod tests;
