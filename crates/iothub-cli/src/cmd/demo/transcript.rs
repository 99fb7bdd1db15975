//! The demo's transcript: one aligned line per step, coloured only when stdout is a terminal
//! (and `NO_COLOR` is unset, <https://no-color.org>).
//!
//! Line shapes (the integration test matches on the marker and the label):
//! `  ✔ telemetry  …` for a step that worked, `  ✘ telemetry  …` for one that failed, and
//! `    hub        …` for information.

use std::io::{IsTerminal, Write};

/// Width the labels are padded to, so the texts line up.
const LABEL_WIDTH: usize = 10;

/// ANSI styles used by the transcript.
#[derive(Clone, Copy, Debug)]
enum Style {
    Bold,
    Dim,
    Green,
    Red,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Self::Bold => "1",
            Self::Dim => "2",
            Self::Green => "32",
            Self::Red => "31",
            Self::Cyan => "36",
        }
    }
}

/// Prints the transcript to stdout, flushing every line (a person watches it happen).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transcript {
    color: bool,
    /// `--json`: the transcript is not printed, stdout carries JSON only.
    hidden: bool,
}

impl Transcript {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub(crate) fn for_stdout() -> Self {
        Self {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            hidden: false,
        }
    }

    /// Prints nothing (for `--json`).
    pub(crate) fn hidden() -> Self {
        Self {
            color: false,
            hidden: true,
        }
    }

    fn paint(self, style: Style, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_owned()
        }
    }

    fn line(self, text: &str) {
        if self.hidden {
            return;
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the demo (the hub keeps running for the dashboard).
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// The title line.
    pub(crate) fn heading(self, title: &str, subtitle: &str) {
        self.line(&format!(
            "\n{}  {}\n",
            self.paint(Style::Bold, title),
            self.paint(Style::Dim, subtitle)
        ));
    }

    /// An informational line: `    label     text`.
    pub(crate) fn info(self, label: &str, text: &str) {
        self.line(&format!(
            "    {} {text}",
            self.paint(Style::Dim, &format!("{label:<LABEL_WIDTH$}"))
        ));
    }

    /// A step that worked: `  ✔ label     text`.
    pub(crate) fn ok(self, label: &str, text: &str) {
        self.line(&format!(
            "  {} {} {text}",
            self.paint(Style::Green, "✔"),
            self.paint(Style::Bold, &format!("{label:<LABEL_WIDTH$}"))
        ));
    }

    /// A step that failed: `  ✘ label     reason`.
    pub(crate) fn failed(self, label: &str, reason: &str) {
        self.line(&format!(
            "  {} {} {}",
            self.paint(Style::Red, "✘"),
            self.paint(Style::Bold, &format!("{label:<LABEL_WIDTH$}")),
            self.paint(Style::Red, reason)
        ));
    }

    /// A highlighted `label  URL` line.
    pub(crate) fn link(self, label: &str, url: &str) {
        self.line(&format!(
            "\n    {} {}",
            self.paint(Style::Bold, &format!("{label:<LABEL_WIDTH$}")),
            self.paint(Style::Cyan, url)
        ));
    }

    /// A dim note line.
    pub(crate) fn note(self, text: &str) {
        self.line(&format!("    {}", self.paint(Style::Dim, text)));
    }

    /// A blank line.
    pub(crate) fn blank(self) {
        self.line("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_when_colour_is_on() {
        let plain = Transcript::hidden();
        assert_eq!(plain.paint(Style::Green, "✔"), "✔");
        let color = Transcript {
            color: true,
            hidden: false,
        };
        assert_eq!(color.paint(Style::Green, "✔"), "\x1b[32m✔\x1b[0m");
    }
}
