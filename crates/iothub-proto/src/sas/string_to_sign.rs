//! The exact text a SAS signature covers (PROTOCOL.md §2.1).

use core::fmt::{self, Display};

use super::PercentEncoded;
use crate::text::Decimal;

/// `{percent-encoded resource}\n{expiry}`: what the device signs.
///
/// The resource is encoded like Python's `quote(uri, safe="")` (upper-case escapes, RFC 3986
/// unreserved characters literal), which is what IoT Hub SDKs send (PROTOCOL.md §2.1).
///
/// ```
/// use iothub_proto::sas::{ResourceUri, StringToSign};
///
/// // azure-sdk-for-c string-assembly vector (PROTOCOL.md §2.2)
/// let to_sign = StringToSign::new(ResourceUri::device("myiothub.azure-devices.net", "my_device"), 1578941692);
/// assert_eq!(to_sign.to_string(), "myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StringToSign<R> {
    resource: R,
    expiry: u64,
}

impl<R: Display> StringToSign<R> {
    /// Combines an unencoded resource with an expiry in Unix seconds.
    pub const fn new(resource: R, expiry: u64) -> Self {
        Self { resource, expiry }
    }

    /// The unencoded resource.
    pub const fn resource(&self) -> &R {
        &self.resource
    }

    /// The expiry in Unix seconds.
    pub const fn expiry(&self) -> u64 {
        self.expiry
    }
}

impl<R: Display> Display for StringToSign<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(&PercentEncoded(&self.resource), f)?;
        f.write_str("\n")?;
        Display::fmt(&Decimal(self.expiry), f)
    }
}
