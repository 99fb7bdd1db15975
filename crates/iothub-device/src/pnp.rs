//! IoT Plug and Play conventions (docs/protocol.md §8) on top of the twin: reporting properties in
//! components, acknowledging writable properties, reading writable updates from desired
//! patches. The JSON shapes come from `iothub_proto::pnp`; this file only wires them to the
//! client.

use bytes::Bytes;
use iothub_proto::pnp::{COMPONENT_MARKER_KEY, ReportedProperty, WritableAck};
use serde_json::Value;

use crate::{DesiredPatch, DeviceClient, Error};

/// The device's answer to a writable property (`ac`, `av`, `ad` in the convention).
///
/// ```
/// use iothub_device::WritableResponse;
///
/// let ack = WritableResponse::completed(3);
/// assert_eq!((ack.status, ack.version, ack.description.as_deref()), (200, 3, Some("completed")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritableResponse {
    /// `ac`: 200 accepted, 202 in progress, 203 device value (with `av` 0), 400 rejected, 500 error.
    pub status: u16,
    /// `av`: the desired `$version` acknowledged.
    pub version: u64,
    /// `ad`: optional description.
    pub description: Option<String>,
}

impl WritableResponse {
    /// `ac` 200 for desired `$version` `version`.
    pub fn completed(version: u64) -> Self {
        Self {
            status: 200,
            version,
            description: Some("completed".into()),
        }
    }

    /// The device's initial value: `ac` 203, `av` 0 (docs/protocol.md §8).
    pub fn initial() -> Self {
        Self {
            status: 203,
            version: 0,
            description: Some("initialize".into()),
        }
    }
}

impl DesiredPatch {
    /// The writable properties this change carries for `component` (`None` = the default
    /// component), without `$version` and the component marker.
    ///
    /// ```
    /// use iothub_device::DesiredPatch;
    /// use serde_json::json;
    ///
    /// let patch = DesiredPatch {
    ///     version: 3,
    ///     properties: json!({"thermostat1": {"__t": "c", "targetTemperature": 23}, "$version": 3}),
    ///     full: false,
    /// };
    /// assert_eq!(patch.writable(Some("thermostat1")), [("targetTemperature".to_string(), json!(23))]);
    /// assert_eq!(patch.writable(None), [("thermostat1".to_string(), json!({"__t": "c", "targetTemperature": 23}))]);
    /// ```
    pub fn writable(&self, component: Option<&str>) -> Vec<(String, Value)> {
        let section = match component {
            Some(name) => self.properties.get(name),
            None => Some(&self.properties),
        };
        let Some(Value::Object(map)) = section else {
            return Vec::new();
        };
        map.iter()
            .filter(|(k, _)| !k.starts_with('$') && k.as_str() != COMPONENT_MARKER_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl DeviceClient {
    /// Acknowledges writable property `name` with `value`: a reported patch
    /// `{"name":{"value":…,"ac":…,"av":…,"ad":…}}`, wrapped in its component with `"__t":"c"`.
    /// Returns the new reported `$version`.
    ///
    /// # Errors
    ///
    /// As [`DeviceClient::update_reported`].
    pub async fn acknowledge_writable(
        &self,
        component: Option<&str>,
        name: &str,
        value: &Value,
        response: &WritableResponse,
    ) -> Result<u64, Error> {
        let value = value.to_string();
        let mut ack = WritableAck::new(name, &value, response.status, response.version);
        if let Some(component) = component {
            ack = ack.component(component);
        }
        if let Some(description) = &response.description {
            ack = ack.description(description);
        }
        self.update_reported_raw(Bytes::from(ack.to_string())).await
    }

    /// Reports read-only property `name` (in `component`, with the component marker).
    /// Returns the new reported `$version`.
    ///
    /// # Errors
    ///
    /// As [`DeviceClient::update_reported`].
    pub async fn report_property(
        &self,
        component: Option<&str>,
        name: &str,
        value: &Value,
    ) -> Result<u64, Error> {
        let value = value.to_string();
        let mut property = ReportedProperty::new(name, &value);
        if let Some(component) = component {
            property = property.component(component);
        }
        self.update_reported_raw(Bytes::from(property.to_string()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn writable_ignores_version_and_marker() {
        let patch = DesiredPatch {
            version: 7,
            properties: json!({"targetTemperature": 21.5, "$version": 7}),
            full: false,
        };
        assert_eq!(
            patch.writable(None),
            [("targetTemperature".to_string(), json!(21.5))]
        );
        assert!(patch.writable(Some("missing")).is_empty());
    }
}
