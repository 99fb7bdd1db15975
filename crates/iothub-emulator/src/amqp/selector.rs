//! Where an Event Hubs receiver starts: the selector filter of its source (docs/amqp.md
//! "Start position").
//!
//! Clients send one filter, keyed and described as `apache.org:selector-filter:string`,
//! whose value is an SQL-like comparison on a message annotation:
//!
//! | client | text |
//! |---|---|
//! | azure-eventhub and the other SDKs | `amqp.annotation.x-opt-offset > '123'` (`>=` when inclusive), `x-opt-sequence-number`, `x-opt-enqueued-time` (epoch ms); offset `'-1'` = start, `'@latest'` = end |
//! | az CLI `monitor-events` | `amqp.annotation.x-opt-enqueuedtimeutc > 1712345678901` (unquoted) |
//!
//! A source without a selector starts at the beginning of retention. Anything else is
//! refused with the reason, so a client with an unsupported filter fails at attach rather
//! than reading from the wrong place.

use crate::hub::event_hub::EventPosition;
use fe2o3_amqp::types::messaging::FilterSet;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

/// Name of the selector filter, as key and as descriptor.
pub const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";

/// Numeric descriptor of the selector filter (`0x0000468C:0x00000004`, the AMQP filter
/// registry's code for `apache.org:selector-filter:string`).
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// Why a selector or filter set was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The text does not start with `amqp.annotation.`.
    #[error("selector must compare an amqp.annotation: {0:?}")]
    NotAnAnnotation(String),
    /// An annotation other than offset, sequence number or enqueued time.
    #[error("selector on unsupported annotation {0:?}")]
    UnknownAnnotation(String),
    /// An operator other than `>` or `>=` (or none).
    #[error("selector operator must be > or >=, got {0:?}")]
    UnsupportedOperator(String),
    /// A quote that is never closed.
    #[error("unterminated quote in selector value")]
    UnterminatedQuote,
    /// No value after the operator.
    #[error("selector has no value")]
    MissingValue,
    /// Text after the value.
    #[error("unexpected text after selector value: {0:?}")]
    TrailingText(String),
    /// The value is not what the annotation takes (an integer; `@latest` for offsets).
    #[error("invalid value {value:?} for {annotation}")]
    BadValue {
        /// The annotation compared.
        annotation: &'static str,
        /// The value as written (without quotes).
        value: String,
    },
    /// The selector filter's value is not a string.
    #[error("selector filter value must be a string")]
    NotAString,
}

/// The annotations a selector may compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Annotation {
    Offset,
    SequenceNumber,
    EnqueuedTime,
}

/// Parses a selector text into a start position.
///
/// Whitespace around the operator and the value is optional; keywords are matched
/// case-insensitively; values may be quoted with `'` or `"`, or unquoted.
///
/// # Errors
/// [`SelectorError`] naming what is wrong.
///
/// # Example
/// ```
/// use iothub_emulator::amqp::selector::parse_selector;
/// use iothub_emulator::hub::event_hub::EventPosition;
/// assert_eq!(parse_selector("amqp.annotation.x-opt-offset > '-1'"), Ok(EventPosition::Start));
/// assert_eq!(
///     parse_selector("amqp.annotation.x-opt-sequence-number >= '42'"),
///     Ok(EventPosition::SequenceNumber { sequence_number: 42, inclusive: true })
/// );
/// assert_eq!(
///     parse_selector("amqp.annotation.x-opt-enqueuedtimeutc > 1712345678901"),
///     Ok(EventPosition::EnqueuedTime { unix_ms: 1_712_345_678_901, inclusive: false })
/// );
/// assert!(parse_selector("amqp.annotation.x-opt-offset < '5'").is_err());
/// ```
pub fn parse_selector(text: &str) -> Result<EventPosition, SelectorError> {
    const PREFIX: &str = "amqp.annotation.";
    let text = text.trim();
    let rest = text
        .get(..PREFIX.len())
        .filter(|head| head.eq_ignore_ascii_case(PREFIX))
        .map(|_| &text[PREFIX.len()..])
        .ok_or_else(|| SelectorError::NotAnAnnotation(text.to_owned()))?;
    let name_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_end);
    let annotation = annotation(name)?;
    let rest = rest.trim_start();
    let op_end = rest
        .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
        .unwrap_or(rest.len());
    let (op, rest) = rest.split_at(op_end);
    let inclusive = match op {
        ">" => false,
        ">=" => true,
        other => return Err(SelectorError::UnsupportedOperator(other.to_owned())),
    };
    let value = value(rest.trim())?;
    interpret(annotation, value, inclusive)
}

/// The annotation a selector names (case-insensitive).
fn annotation(name: &str) -> Result<Annotation, SelectorError> {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    if is("x-opt-offset") {
        Ok(Annotation::Offset)
    } else if is("x-opt-sequence-number") {
        Ok(Annotation::SequenceNumber)
    } else if is("x-opt-enqueued-time") || is("x-opt-enqueuedtimeutc") {
        Ok(Annotation::EnqueuedTime)
    } else {
        Err(SelectorError::UnknownAnnotation(name.to_owned()))
    }
}

/// The value after the operator: quoted (`'…'` or `"…"`, nothing after it) or one bare word.
fn value(text: &str) -> Result<&str, SelectorError> {
    let Some(quote) = text.chars().next() else {
        return Err(SelectorError::MissingValue);
    };
    if quote == '\'' || quote == '"' {
        let inner = &text[1..];
        let end = inner.find(quote).ok_or(SelectorError::UnterminatedQuote)?;
        let after = inner[end + 1..].trim();
        if !after.is_empty() {
            return Err(SelectorError::TrailingText(after.to_owned()));
        }
        return Ok(&inner[..end]);
    }
    match text.split_once(char::is_whitespace) {
        Some((_, after)) => Err(SelectorError::TrailingText(after.trim().to_owned())),
        None => Ok(text),
    }
}

fn interpret(
    annotation: Annotation,
    value: &str,
    inclusive: bool,
) -> Result<EventPosition, SelectorError> {
    let name = match annotation {
        Annotation::Offset => "x-opt-offset",
        Annotation::SequenceNumber => "x-opt-sequence-number",
        Annotation::EnqueuedTime => "x-opt-enqueued-time",
    };
    let bad = || SelectorError::BadValue {
        annotation: name,
        value: value.to_owned(),
    };
    if annotation == Annotation::Offset && value.eq_ignore_ascii_case("@latest") {
        return Ok(EventPosition::Latest);
    }
    let number: i64 = value.trim().parse().map_err(|_| bad())?;
    Ok(match annotation {
        Annotation::Offset if number == -1 => EventPosition::Start,
        Annotation::Offset if number < 0 => return Err(bad()),
        Annotation::Offset => EventPosition::Offset {
            offset: number,
            inclusive,
        },
        Annotation::SequenceNumber => EventPosition::SequenceNumber {
            sequence_number: number,
            inclusive,
        },
        Annotation::EnqueuedTime => EventPosition::EnqueuedTime {
            unix_ms: number,
            inclusive,
        },
    })
}

/// The start position of a source's filter set: its selector entry, found by key or by
/// descriptor (`apache.org:selector-filter:string`, by name or code); no filter set, no
/// selector entry or a null one is [`EventPosition::Start`]. Other filters are ignored.
///
/// # Errors
/// [`SelectorError`] when the selector is not a string or does not parse.
///
/// # Example
/// ```
/// use fe2o3_amqp::types::messaging::FilterSet;
/// use fe2o3_amqp::types::primitives::{Symbol, Value};
/// use iothub_emulator::amqp::selector::{start_filter_of, SELECTOR_FILTER};
/// use iothub_emulator::hub::event_hub::EventPosition;
/// assert_eq!(start_filter_of(None), Ok(EventPosition::Start));
/// let mut filter = FilterSet::new();
/// filter.insert(
///     Symbol::from(SELECTOR_FILTER),
///     Value::String("amqp.annotation.x-opt-offset > '@latest'".into()),
/// );
/// assert_eq!(start_filter_of(Some(&filter)), Ok(EventPosition::Latest));
/// ```
pub fn start_filter_of(source_filter: Option<&FilterSet>) -> Result<EventPosition, SelectorError> {
    let Some(filters) = source_filter else {
        return Ok(EventPosition::Start);
    };
    for (key, value) in filters {
        let (described_as_selector, inner) = match value {
            Value::Described(d) => (is_selector_descriptor(&d.descriptor), &d.value),
            other => (false, other),
        };
        if !(described_as_selector || key.as_str() == SELECTOR_FILTER) {
            continue;
        }
        return match inner {
            Value::Null => Ok(EventPosition::Start),
            Value::String(text) => parse_selector(text),
            _ => Err(SelectorError::NotAString),
        };
    }
    Ok(EventPosition::Start)
}

fn is_selector_descriptor(descriptor: &Descriptor) -> bool {
    match descriptor {
        Descriptor::Name(name) => name.as_str() == SELECTOR_FILTER,
        Descriptor::Code(code) => *code == SELECTOR_FILTER_CODE,
    }
}

/// The selector filter entry a client would send for `filter` (the key and the described
/// value), e.g. for tests and a consumer built on fe2o3-amqp.
#[must_use]
pub fn selector_filter_entry(filter: &EventPosition) -> (Symbol, Value) {
    let described = Described {
        descriptor: Descriptor::Name(Symbol::from(SELECTOR_FILTER)),
        value: Value::String(selector_text(filter)),
    };
    (
        Symbol::from(SELECTOR_FILTER),
        Value::Described(Box::new(described)),
    )
}

/// The selector text azure-eventhub would send for `position`.
///
/// ```
/// use iothub_emulator::amqp::selector::{parse_selector, selector_text};
/// use iothub_emulator::hub::event_hub::EventPosition;
/// let position = EventPosition::SequenceNumber { sequence_number: 7, inclusive: false };
/// assert_eq!(selector_text(&position), "amqp.annotation.x-opt-sequence-number > '7'");
/// assert_eq!(parse_selector(&selector_text(&position)), Ok(position));
/// ```
#[must_use]
pub fn selector_text(position: &EventPosition) -> String {
    let op = |inclusive: bool| if inclusive { ">=" } else { ">" };
    match *position {
        EventPosition::Start => "amqp.annotation.x-opt-offset > '-1'".into(),
        EventPosition::Latest => "amqp.annotation.x-opt-offset > '@latest'".into(),
        EventPosition::Offset { offset, inclusive } => {
            format!("amqp.annotation.x-opt-offset {} '{offset}'", op(inclusive))
        }
        EventPosition::SequenceNumber {
            sequence_number,
            inclusive,
        } => format!(
            "amqp.annotation.x-opt-sequence-number {} '{sequence_number}'",
            op(inclusive)
        ),
        EventPosition::EnqueuedTime { unix_ms, inclusive } => format!(
            "amqp.annotation.x-opt-enqueued-time {} '{unix_ms}'",
            op(inclusive)
        ),
    }
}

#[cfg(test)]
mod tests;
