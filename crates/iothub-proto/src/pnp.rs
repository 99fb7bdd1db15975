//! IoT Plug and Play conventions (docs/protocol.md §8): component commands, the component
//! marker and writable-property acknowledgements.
//!
//! Property values are passed as raw JSON text (the core has no JSON DOM); names and
//! descriptions are JSON-escaped here.

use core::fmt::{self, Display};

use crate::text::{Decimal, hex_digit};

/// The key marking a twin object as a component: `"__t": "c"` (never on the default component).
pub const COMPONENT_MARKER_KEY: &str = "__t";
/// The value of the component marker.
pub const COMPONENT_MARKER_VALUE: &str = "c";
/// The separator between component and command in a method name: `{component}*{command}`.
pub const COMMAND_SEPARATOR: char = '*';

/// A command name, with the component it belongs to when not the default component.
///
/// ```
/// use iothub_proto::pnp::CommandName;
///
/// let name = CommandName::parse("component_one*TestMethod");
/// assert_eq!(name.component(), Some("component_one"));
/// assert_eq!(name.command(), "TestMethod");
/// assert_eq!(name.to_string(), "component_one*TestMethod");
/// assert_eq!(CommandName::parse("reboot").component(), None);
/// assert_eq!(CommandName::in_component("thermostat1", "getMaxMinReport").to_string(), "thermostat1*getMaxMinReport");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandName<'a> {
    component: Option<&'a str>,
    command: &'a str,
}

impl<'a> CommandName<'a> {
    /// Splits a method name at the first `*`.
    pub fn parse(method_name: &'a str) -> Self {
        match method_name.split_once(COMMAND_SEPARATOR) {
            Some((component, command)) => Self {
                component: Some(component),
                command,
            },
            None => Self {
                component: None,
                command: method_name,
            },
        }
    }

    /// A command of the default component.
    pub const fn new(command: &'a str) -> Self {
        Self {
            component: None,
            command,
        }
    }

    /// A command of `component`.
    pub const fn in_component(component: &'a str, command: &'a str) -> Self {
        Self {
            component: Some(component),
            command,
        }
    }

    /// The component, `None` for the default component.
    pub const fn component(&self) -> Option<&'a str> {
        self.component
    }

    /// The command within its component.
    pub const fn command(&self) -> &'a str {
        self.command
    }
}

impl Display for CommandName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(component) = self.component {
            f.write_str(component)?;
            f.write_str("*")?;
        }
        f.write_str(self.command)
    }
}

/// A reported-properties patch acknowledging one writable property (docs/protocol.md §8):
/// `{"name":{"value":…,"ac":200,"av":3,"ad":"…"}}`, wrapped as
/// `{"component":{"__t":"c","name":{…}}}` for a component.
///
/// ```
/// use iothub_proto::pnp::WritableAck;
///
/// let ack = WritableAck::new("targetTemperature", "21.3", 200, 3).description("complete");
/// assert_eq!(
///     ack.to_string(),
///     r#"{"targetTemperature":{"value":21.3,"ac":200,"av":3,"ad":"complete"}}"#
/// );
/// let ack = WritableAck::new("targetTemperature", "23", 200, 3).component("thermostat1").description("complete");
/// assert_eq!(
///     ack.to_string(),
///     r#"{"thermostat1":{"__t":"c","targetTemperature":{"value":23,"ac":200,"av":3,"ad":"complete"}}}"#
/// );
/// // the device's initial value
/// let initial = WritableAck::new("targetTemperature", "20.0", 203, 0).description("initialize");
/// assert_eq!(
///     initial.to_string(),
///     r#"{"targetTemperature":{"value":20.0,"ac":203,"av":0,"ad":"initialize"}}"#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritableAck<'a> {
    component: Option<&'a str>,
    name: &'a str,
    value_json: &'a str,
    status: u16,
    version: u64,
    description: Option<&'a str>,
}

impl<'a> WritableAck<'a> {
    /// Acknowledges property `name` with its value as raw JSON (`value_json` is written
    /// verbatim), status `ac` (200 accepted, 202 in progress, 203 device-set, 400 rejected,
    /// 500 error) and the desired `$version` it answers (`av`).
    pub const fn new(name: &'a str, value_json: &'a str, status: u16, version: u64) -> Self {
        Self {
            component: None,
            name,
            value_json,
            status,
            version,
            description: None,
        }
    }

    /// Places the property in `component` (adds the `"__t":"c"` marker).
    pub const fn component(mut self, component: &'a str) -> Self {
        self.component = Some(component);
        self
    }

    /// Adds the optional description `ad`.
    pub const fn description(mut self, description: &'a str) -> Self {
        self.description = Some(description);
        self
    }
}

impl Display for WritableAck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        write_component_open(f, self.component)?;
        Display::fmt(&JsonString(self.name), f)?;
        f.write_str(":{\"value\":")?;
        f.write_str(self.value_json)?;
        f.write_str(",\"ac\":")?;
        Display::fmt(&Decimal(u64::from(self.status)), f)?;
        f.write_str(",\"av\":")?;
        Display::fmt(&Decimal(self.version), f)?;
        if let Some(description) = self.description {
            f.write_str(",\"ad\":")?;
            Display::fmt(&JsonString(description), f)?;
        }
        f.write_str("}}")?;
        if self.component.is_some() {
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// A reported-properties patch setting one read-only property, in a component or not:
/// `{"name":value}` or `{"component":{"__t":"c","name":value}}`.
///
/// ```
/// use iothub_proto::pnp::ReportedProperty;
///
/// assert_eq!(ReportedProperty::new("serialNumber", r#""SN-1""#).to_string(), r#"{"serialNumber":"SN-1"}"#);
/// assert_eq!(
///     ReportedProperty::new("temperature", "21.3").component("thermostat1").to_string(),
///     r#"{"thermostat1":{"__t":"c","temperature":21.3}}"#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedProperty<'a> {
    component: Option<&'a str>,
    name: &'a str,
    value_json: &'a str,
}

impl<'a> ReportedProperty<'a> {
    /// Property `name` with its value as raw JSON, written verbatim.
    pub const fn new(name: &'a str, value_json: &'a str) -> Self {
        Self {
            component: None,
            name,
            value_json,
        }
    }

    /// Places the property in `component` (adds the `"__t":"c"` marker).
    pub const fn component(mut self, component: &'a str) -> Self {
        self.component = Some(component);
        self
    }
}

impl Display for ReportedProperty<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        write_component_open(f, self.component)?;
        Display::fmt(&JsonString(self.name), f)?;
        f.write_str(":")?;
        f.write_str(self.value_json)?;
        f.write_str("}")?;
        if self.component.is_some() {
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// Writes `"{component}":{"__t":"c",` when the property sits in a component.
fn write_component_open(f: &mut fmt::Formatter<'_>, component: Option<&str>) -> fmt::Result {
    if let Some(component) = component {
        Display::fmt(&JsonString(component), f)?;
        f.write_str(":{")?;
        Display::fmt(&JsonString(COMPONENT_MARKER_KEY), f)?;
        f.write_str(":")?;
        Display::fmt(&JsonString(COMPONENT_MARKER_VALUE), f)?;
        f.write_str(",")?;
    }
    Ok(())
}

/// Writes text as a quoted JSON string, escaping `"`, `\` and control characters (RFC 8259 §7).
///
/// ```
/// use iothub_proto::pnp::JsonString;
///
/// assert_eq!(JsonString("a\"b\\c\n\u{1}é").to_string(), r#""a\"b\\c\n\u0001é""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonString<'a>(pub &'a str);

impl Display for JsonString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        // The characters with a short escape, and those escapes two bytes each (RFC 8259 §7).
        const SHORT: &[u8] = b"\"\\\n\r\t\x08\x0c";
        const SHORT_ESCAPES: &str = r#"\"\\\n\r\t\b\f"#;
        // Every character to escape is ASCII, so the cuts below fall on character boundaries.
        let mut start = 0;
        for (at, &byte) in self.0.as_bytes().iter().enumerate() {
            let short = SHORT.iter().position(|&c| c == byte);
            if short.is_none() && byte >= 0x20 {
                continue;
            }
            f.write_str(self.0.get(start..at).unwrap_or_default())?;
            match short {
                Some(i) => f.write_str(SHORT_ESCAPES.get(2 * i..2 * i + 2).unwrap_or_default())?,
                None => {
                    // other control characters: `\u00XX`, lower-case hex as before
                    f.write_str("\\u00")?;
                    f.write_str(hex_digit(byte >> 4))?;
                    f.write_str(hex_digit(byte))?;
                }
            }
            start = at + 1;
        }
        f.write_str(self.0.get(start..).unwrap_or_default())?;
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn escapes_names_and_descriptions() {
        let ack = WritableAck::new("we\"ird", "true", 400, 7).description("bad\\value\u{7f}");
        assert_eq!(
            ack.to_string(),
            "{\"we\\\"ird\":{\"value\":true,\"ac\":400,\"av\":7,\"ad\":\"bad\\\\value\u{7f}\"}}"
        );
    }

    #[test]
    fn command_name_splits_at_the_first_star_only() {
        let name = CommandName::parse("a*b*c");
        assert_eq!((name.component(), name.command()), (Some("a"), "b*c"));
        assert_eq!(name.to_string(), "a*b*c");
    }

    #[test]
    fn empty_component_is_kept_so_names_round_trip() {
        let name = CommandName::parse("*cmd");
        assert_eq!(name.component(), Some(""));
        assert_eq!(name.to_string(), "*cmd");
    }

    proptest::proptest! {
        #[test]
        fn command_names_round_trip(name in "\\PC*") {
            proptest::prop_assert_eq!(CommandName::parse(&name).to_string(), name);
        }

        #[test]
        fn json_strings_match_serde_json(text in "\\PC*|[\\x00-\\x1f\"\\\\\\x7f é]*") {
            proptest::prop_assert_eq!(JsonString(&text).to_string(), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn json_strings_escape_every_control_character(text in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
            let json = JsonString(&text).to_string();
            proptest::prop_assert!(json.chars().all(|c| c >= ' '));
            proptest::prop_assert!(json.starts_with('"') && json.ends_with('"') && json.len() >= 2);
        }
    }
}
