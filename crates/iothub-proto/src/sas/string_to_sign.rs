//! The exact text a SAS signature covers (docs/protocol.md §2.1).

use core::fmt::{self, Display};

use super::ResourceUri;
use crate::encode::{Sink, ViaDisplay, WriteTo};
use crate::error::BufferTooSmall;
use crate::percent::PercentSink;
use crate::text::Decimal;

/// `{percent-encoded resource}\n{expiry}`: what the device signs.
///
/// The resource is encoded like Python's `quote(uri, safe="")` (upper-case escapes, RFC 3986
/// unreserved characters literal), which is what IoT Hub SDKs send (docs/protocol.md §2.1).
///
/// ```
/// use iothub_proto::sas::{ResourceUri, StringToSign};
///
/// // azure-sdk-for-c string-assembly vector (docs/protocol.md §2.2)
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
        let to_sign = StringToSign {
            resource: ViaDisplay(&self.resource),
            expiry: self.expiry,
        };
        crate::encode::display(&to_sign, f)
    }
}

impl<R: WriteTo> WriteTo for StringToSign<R> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_string_to_sign(out, &self.resource, self.expiry);
    }
}

impl StringToSign<ResourceUri<'_>> {
    /// Writes the string-to-sign into `buf` without `core::fmt` and returns its length in
    /// bytes (the same text as [`Display`]); hand `&buf[..len]` to a byte-oriented signer.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::sas::{ResourceUri, StringToSign};
    ///
    /// let to_sign = StringToSign::new(ResourceUri::device("myiothub.azure-devices.net", "my_device"), 1578941692);
    /// let mut buf = [0u8; 64];
    /// let len = to_sign.encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692");
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

/// `{percent-encoded resource}\n{expiry}`: the one implementation behind both paths.
pub(super) fn write_string_to_sign(out: &mut dyn Sink, resource: &dyn WriteTo, expiry: u64) {
    resource.write_to(&mut PercentSink(out));
    out.put("\n");
    Decimal(expiry).write_to(out)
}
