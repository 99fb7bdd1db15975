//! IoT Plug and Play conventions (PROTOCOL.md §8): component commands, the component
//! marker and writable-property acknowledgements.
//!
//! Property values are passed as raw JSON text (the core has no JSON DOM); names and
//! descriptions are JSON-escaped here.

use core::fmt::{self, Display, Write};

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
            write!(f, "{component}{COMMAND_SEPARATOR}")?;
        }
        f.write_str(self.command)
    }
}

/// A reported-properties patch acknowledging one writable property (PROTOCOL.md §8):
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
        f.write_char('{')?;
        if let Some(component) = self.component {
            write!(
                f,
                "{}:{{{}:{},",
                JsonString(component),
                JsonString(COMPONENT_MARKER_KEY),
                JsonString(COMPONENT_MARKER_VALUE)
            )?;
        }
        write!(
            f,
            "{}:{{\"value\":{},\"ac\":{},\"av\":{}",
            JsonString(self.name),
            self.value_json,
            self.status,
            self.version
        )?;
        if let Some(description) = self.description {
            write!(f, ",\"ad\":{}", JsonString(description))?;
        }
        f.write_str("}}")?;
        if self.component.is_some() {
            f.write_char('}')?;
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
        match self.component {
            Some(component) => write!(
                f,
                "{{{}:{{{}:{},{}:{}}}}}",
                JsonString(component),
                JsonString(COMPONENT_MARKER_KEY),
                JsonString(COMPONENT_MARKER_VALUE),
                JsonString(self.name),
                self.value_json
            ),
            None => write!(f, "{{{}:{}}}", JsonString(self.name), self.value_json),
        }
    }
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
        f.write_char('"')?;
        let mut rest = self.0;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\u{8}' => f.write_str("\\b")?,
                '\u{c}' => f.write_str("\\f")?,
                other => write!(f, "\\u{:04x}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)?;
        f.write_char('"')
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
        fn json_strings_escape_every_control_character(text in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
            let json = JsonString(&text).to_string();
            proptest::prop_assert!(json.chars().all(|c| c >= ' '));
            proptest::prop_assert!(json.starts_with('"') && json.ends_with('"') && json.len() >= 2);
        }
    }
}
