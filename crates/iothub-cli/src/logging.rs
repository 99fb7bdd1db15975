//! The emulator's log on stderr: human-readable by default, JSON on request.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// What is logged when neither `--log-level` nor `RUST_LOG` says: the emulator's connection
/// and refusal events at info, the libraries under it only when something is wrong.
const DEFAULT_DIRECTIVES: &str = "warn,iothub_emulator=info,iothub=info";

/// Installs the global log subscriber. `level` (from `--log-level`) wins over `RUST_LOG`; a
/// bare level such as `debug` applies to the emulator only, so the TLS and HTTP libraries
/// stay quiet unless named.
pub(crate) fn init(level: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let directives = match level {
        Some(level) if is_bare_level(level) => {
            format!("warn,iothub_emulator={level},iothub={level}")
        }
        Some(directives) => directives.to_owned(),
        None => std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DIRECTIVES.to_owned()),
    };
    let filter = EnvFilter::try_new(&directives)
        .with_context(|| format!("invalid log level or directives `{directives}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

fn is_bare_level(text: &str) -> bool {
    ["trace", "debug", "info", "warn", "error", "off"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_levels_are_recognised_and_directives_are_not() {
        assert!(is_bare_level("DEBUG"));
        assert!(!is_bare_level("info,iothub_emulator=trace"));
    }
}
