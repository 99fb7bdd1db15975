//! Resource URIs a SAS token can be scoped to (docs/protocol.md §2.1).

use core::fmt::{self, Display};

use crate::encode::{Sink, WriteTo};

/// The resource a SAS token grants access to, written *unencoded* by [`Display`].
///
/// Token formatting percent-encodes it; scope checks compare against this unencoded form.
///
/// ```
/// use iothub_proto::sas::ResourceUri;
///
/// assert_eq!(ResourceUri::hub("h.azure-devices.net").to_string(), "h.azure-devices.net");
/// assert_eq!(ResourceUri::device("h.azure-devices.net", "d1").to_string(), "h.azure-devices.net/devices/d1");
/// assert_eq!(
///     ResourceUri::module("h.azure-devices.net", "d1", "m1").to_string(),
///     "h.azure-devices.net/devices/d1/modules/m1"
/// );
/// assert_eq!(ResourceUri::dps_registration("0ne0001", "reg-1").to_string(), "0ne0001/registrations/reg-1");
/// assert_eq!(ResourceUri::raw("anything/at/all").to_string(), "anything/at/all");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceUri<'a> {
    /// A whole DPS registration: `{id_scope}/registrations/{registration_id}`
    /// (docs/protocol.md §9).
    DpsRegistration {
        /// The DPS ID scope, e.g. `0ne00000000`.
        id_scope: &'a str,
        /// The registration id.
        registration_id: &'a str,
    },
    /// A device identity: `{host}/devices/{device_id}`.
    Device {
        /// The hub host name, e.g. `myhub.azure-devices.net`.
        host: &'a str,
        /// The device id, case-sensitive and not encoded.
        device_id: &'a str,
    },
    /// The whole hub (service policies such as `iothubowner`): `{host}`.
    Hub {
        /// The hub host name.
        host: &'a str,
    },
    /// A module identity: `{host}/devices/{device_id}/modules/{module_id}`.
    Module {
        /// The hub host name.
        host: &'a str,
        /// The device id.
        device_id: &'a str,
        /// The module id.
        module_id: &'a str,
    },
    /// Any other resource text, written as given.
    Raw(&'a str),
}

impl<'a> ResourceUri<'a> {
    /// A device resource `{host}/devices/{device_id}`.
    pub const fn device(host: &'a str, device_id: &'a str) -> Self {
        Self::Device { host, device_id }
    }

    /// A module resource `{host}/devices/{device_id}/modules/{module_id}`.
    pub const fn module(host: &'a str, device_id: &'a str, module_id: &'a str) -> Self {
        Self::Module {
            host,
            device_id,
            module_id,
        }
    }

    /// The hub-wide resource `{host}`, used with service policies.
    pub const fn hub(host: &'a str) -> Self {
        Self::Hub { host }
    }

    /// A DPS registration resource `{id_scope}/registrations/{registration_id}`.
    pub const fn dps_registration(id_scope: &'a str, registration_id: &'a str) -> Self {
        Self::DpsRegistration {
            id_scope,
            registration_id,
        }
    }

    /// Any resource text, used verbatim (for example a gateway scope `{host}/devices`).
    pub const fn raw(resource: &'a str) -> Self {
        Self::Raw(resource)
    }
}

impl Display for ResourceUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for ResourceUri<'_> {
    fn write_to(&self, f: &mut dyn Sink) {
        match self {
            Self::DpsRegistration {
                id_scope,
                registration_id,
            } => {
                f.put(id_scope);
                f.put("/registrations/");
                f.put(registration_id);
            }
            Self::Device { host, device_id } => {
                f.put(host);
                f.put("/devices/");
                f.put(device_id);
            }
            Self::Hub { host } => f.put(host),
            Self::Module {
                host,
                device_id,
                module_id,
            } => {
                f.put(host);
                f.put("/devices/");
                f.put(device_id);
                f.put("/modules/");
                f.put(module_id);
            }
            Self::Raw(resource) => f.put(resource),
        }
    }
}
