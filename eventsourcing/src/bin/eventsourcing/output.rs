//! Standard output: text lines, or JSON values one per line with `--json`.

use std::io::{self, Write};

use eventsourcing::json::Value;

use crate::failure::Failure;

/// Where results go, and in which form.
pub(crate) struct Output {
    json: bool,
    out: io::Stdout,
}

impl Output {
    /// Standard output; JSON when `json`.
    pub(crate) fn stdout(json: bool) -> Output {
        Output {
            json,
            out: io::stdout(),
        }
    }

    /// Whether results are printed as JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints a line of text.
    pub(crate) fn line(&mut self, text: &str) -> Result<(), Failure> {
        writeln!(self.out.lock(), "{text}").map_err(|e| Failure::io(&e, "standard output"))
    }

    /// Prints a JSON value on one line.
    pub(crate) fn json(&mut self, value: &Value) -> Result<(), Failure> {
        self.line(&value.to_string())
    }

    /// Prints `value` with `--json`, else the text `text()` makes.
    pub(crate) fn either(
        &mut self,
        value: impl FnOnce() -> Value,
        text: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if self.json {
            self.json(&value())
        } else {
            self.line(&text())
        }
    }

    /// Pushes what was printed out now (a follower of the log reads it).
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        self.out
            .flush()
            .map_err(|e| Failure::io(&e, "standard output"))
    }
}
