//! The validating JSON scanner under [`JsonValue`](super::JsonValue): finds where a value
//! ends, checking RFC 8259 syntax on the way, without recursion and without storing anything.
//!
//! Strings are delimited here (a backslash skips the next byte) and may not hold raw control
//! characters; their escapes are checked when the text is unescaped
//! ([`JsonText`](super::JsonText)), as before with serde-json-core. Everything else (literals, numbers, commas, colons, brackets) is checked
//! strictly. Nesting is tracked in a 64-bit stack, so at most [`MAX_DEPTH`] levels are read
//! and a hostile payload cannot exhaust the stack.

use super::JsonError;

/// The deepest nesting of objects and arrays accepted (IoT Hub twins allow far less).
pub const MAX_DEPTH: u32 = 64;

/// The index of the first byte at or after `at` that is not JSON whitespace.
pub(super) fn skip_whitespace(text: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = text.get(at) {
        at += 1;
    }
    at
}

/// The index just past the value that starts at `start` (no leading whitespace).
pub(super) fn value_end(text: &[u8], start: usize) -> Result<usize, JsonError> {
    // Bit i of `objects` tells whether open container i (counted from the innermost) is an
    // object; `depth` containers are open.
    let mut objects: u64 = 0;
    let mut depth = 0;
    let mut at = start;
    loop {
        // A value starts at `at`.
        match text.get(at) {
            Some(&open @ (b'{' | b'[')) => {
                if depth == MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                let is_object = open == b'{';
                objects = objects << 1 | u64::from(is_object);
                depth += 1;
                at = skip_whitespace(text, at + 1);
                if text.get(at) == Some(&closing(is_object)) {
                    // An empty container is a complete value: fall through to what follows it.
                    at += 1;
                    objects >>= 1;
                    depth -= 1;
                } else {
                    if is_object {
                        at = member_value_start(text, at)?;
                    }
                    continue;
                }
            }
            Some(b'"') => at = string_end(text, at)?,
            Some(b't') => at = literal_end(text, at, b"true")?,
            Some(b'f') => at = literal_end(text, at, b"false")?,
            Some(b'n') => at = literal_end(text, at, b"null")?,
            Some(b'-' | b'0'..=b'9') => at = number_end(text, at)?,
            _ => return Err(JsonError::Invalid),
        }
        // A value ended at `at`: close containers until one continues with a comma.
        loop {
            if depth == 0 {
                return Ok(at);
            }
            let is_object = objects & 1 == 1;
            at = skip_whitespace(text, at);
            match text.get(at) {
                Some(b',') => {
                    at = skip_whitespace(text, at + 1);
                    if is_object {
                        at = member_value_start(text, at)?;
                    }
                    break;
                }
                Some(&c) if c == closing(is_object) => {
                    at += 1;
                    objects >>= 1;
                    depth -= 1;
                }
                _ => return Err(JsonError::Invalid),
            }
        }
    }
}

/// Reads `"key" :` at `at` and returns where the member's value starts.
fn member_value_start(text: &[u8], at: usize) -> Result<usize, JsonError> {
    if text.get(at) != Some(&b'"') {
        return Err(JsonError::Invalid);
    }
    let at = skip_whitespace(text, string_end(text, at)?);
    if text.get(at) != Some(&b':') {
        return Err(JsonError::Invalid);
    }
    Ok(skip_whitespace(text, at + 1))
}

const fn closing(is_object: bool) -> u8 {
    if is_object { b'}' } else { b']' }
}

/// The index just past the closing quote of the string whose opening quote is at `at`.
pub(super) fn string_end(text: &[u8], at: usize) -> Result<usize, JsonError> {
    let mut at = at + 1;
    loop {
        match text.get(at) {
            Some(b'"') => return Ok(at + 1),
            // The escaped byte is never the closing quote; what it means is checked on unescaping.
            Some(b'\\') => at += 2,
            // RFC 8259 §7: control characters must be escaped.
            Some(0x00..=0x1f) => return Err(JsonError::Invalid),
            Some(_) => at += 1,
            None => return Err(JsonError::Invalid),
        }
    }
}

fn literal_end(text: &[u8], at: usize, word: &[u8]) -> Result<usize, JsonError> {
    let end = at + word.len();
    match text.get(at..end) {
        Some(found) if found == word => Ok(end),
        _ => Err(JsonError::Invalid),
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` (RFC 8259 §6).
fn number_end(text: &[u8], mut at: usize) -> Result<usize, JsonError> {
    if text.get(at) == Some(&b'-') {
        at += 1;
    }
    match text.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at = digits_end(text, at),
        _ => return Err(JsonError::Invalid),
    }
    if text.get(at) == Some(&b'.') {
        at = some_digits_end(text, at + 1)?;
    }
    if let Some(b'e' | b'E') = text.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = text.get(at) {
            at += 1;
        }
        at = some_digits_end(text, at)?;
    }
    Ok(at)
}

fn digits_end(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// Like [`digits_end`], but at least one digit is required.
fn some_digits_end(text: &[u8], at: usize) -> Result<usize, JsonError> {
    match digits_end(text, at) {
        end if end > at => Ok(end),
        _ => Err(JsonError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(text: &str) -> Result<usize, JsonError> {
        value_end(text.as_bytes(), 0)
    }

    #[test]
    fn finds_the_end_of_each_kind_of_value() {
        assert_eq!(end(r#"{"a":[1,2,{"b":null}]} tail"#), Ok(22));
        assert_eq!(end(r#""x\"y" tail"#), Ok(6));
        assert_eq!(end("-12.5e+3,"), Ok(8));
        assert_eq!(end("true]"), Ok(4));
        assert_eq!(end("[ ]"), Ok(3));
        assert_eq!(end("{ }"), Ok(3));
    }

    #[test]
    fn rejects_broken_syntax() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "tru",
            "nul",
            "01x",
            "-",
            "1.",
            "1e",
            ".5",
            "\"open",
            "{\"a\":}",
            "[}",
            "{]",
            ",",
            "\"a\nb\"",
        ] {
            let result = end(bad);
            // "01x" ends after the 0; the caller then finds trailing text
            assert!(result.is_err() || bad == "01x", "{bad:?} gave {result:?}");
        }
    }

    #[test]
    fn limits_nesting() {
        let deep_ok = "[".repeat(64) + &"]".repeat(64);
        assert_eq!(end(&deep_ok), Ok(128));
        let too_deep = "[".repeat(65) + &"]".repeat(65);
        assert_eq!(end(&too_deep), Err(JsonError::TooDeep));
    }
}
