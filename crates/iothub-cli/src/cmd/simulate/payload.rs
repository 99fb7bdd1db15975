//! The `--payload` template: placeholders replaced per message.
//!
//! `{device}` the device id, `{seq}` the device's message number (from 1), `{time}` the send
//! time (Unix milliseconds), `{temperature}` a pseudo-random reading 15.00-35.00. Anything else
//! is sent as written, so `{"a":1}` stays valid JSON.

/// The default body: a small JSON reading.
pub(crate) const DEFAULT_TEMPLATE: &str =
    r#"{"deviceId":"{device}","seq":{seq},"temperature":{temperature}}"#;

/// A parsed template: literal text and placeholders, in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Device,
    Seq,
    Time,
    Temperature,
}

impl Template {
    /// Splits `template` at the known placeholders.
    pub(crate) fn parse(template: &str) -> Self {
        const NAMES: [(&str, Part); 4] = [
            ("{device}", Part::Device),
            ("{seq}", Part::Seq),
            ("{time}", Part::Time),
            ("{temperature}", Part::Temperature),
        ];
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        'outer: while !rest.is_empty() {
            for (name, part) in &NAMES {
                if let Some(after) = rest.strip_prefix(name) {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part.clone());
                    rest = after;
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                text.push(c);
            }
            rest = chars.as_str();
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Self { parts }
    }

    /// The body of message `seq` of `device`; `random` drives `{temperature}`.
    pub(crate) fn render(&self, device: &str, seq: u64, time_ms: u128, random: u32) -> String {
        let mut out = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Device => out.push_str(device),
                Part::Seq => out.push_str(&seq.to_string()),
                Part::Time => out.push_str(&time_ms.to_string()),
                Part::Temperature => {
                    let hundredths = 1500 + random % 2001;
                    out.push_str(&format!("{}.{:02}", hundredths / 100, hundredths % 100));
                }
            }
        }
        out
    }
}

/// A small xorshift generator: enough for readings and jitter, no dependency.
#[derive(Clone, Debug)]
pub(crate) struct Xorshift(u32);

impl Xorshift {
    /// Seeds the generator (a zero seed is replaced, xorshift must not start at 0).
    pub(crate) fn new(seed: u32) -> Self {
        Self(if seed == 0 { 0x9E37_79B9 } else { seed })
    }

    /// The next pseudo-random value.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_placeholder() {
        let t = Template::parse(DEFAULT_TEMPLATE);
        let body = t.render("sim-1", 7, 0, 0);
        assert_eq!(body, r#"{"deviceId":"sim-1","seq":7,"temperature":15.00}"#);
        let v: serde_json::Value = serde_json::from_str(&t.render("d", 1, 5, 123_456)).unwrap();
        let temp = v["temperature"].as_f64().unwrap();
        assert!((15.0..=35.0).contains(&temp), "{temp}");
    }

    #[test]
    fn keeps_unknown_braces_and_multibyte_text() {
        let t = Template::parse("{\"a\":{x}} é {time}");
        assert_eq!(t.render("d", 1, 42, 0), "{\"a\":{x}} é 42");
    }

    #[test]
    fn xorshift_never_sticks_at_zero() {
        let mut r = Xorshift::new(0);
        assert_ne!(r.next_u32(), 0);
        assert_ne!(r.next_u32(), r.next_u32());
    }
}
