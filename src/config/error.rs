//! Config diagnostics: every error and lint warning of a run, each naming
//! file, line, column and key path, collected so all are reported together.

use std::fmt;

use serde::de::DeserializeOwned;

use super::yaml::{Kind, Node, Span};

/// Whether a diagnostic fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is invalid.
    Error,
    /// A lint: valid, but likely to hurt the OKR program.
    Warning,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, relative to the working directory as given.
    pub file: String,
    /// Where in the file; line 0 means the value came from the environment.
    pub span: Span,
    /// The key path, e.g. `key_results[1].target`; empty for the document.
    pub path: String,
    /// What is wrong and, where useful, what would be right.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.span.line == 0 {
            write!(f, "{}: {level}: ", self.file)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {level}: ",
                self.file, self.span.line, self.span.col
            )?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if self.span.line == 0 && !self.path.is_empty() {
            write!(f, " (set by {})", env_var_for(&self.path))?;
        }
        Ok(())
    }
}

/// The `OKRD_*` variable that overrides the key at `path`.
pub fn env_var_for(path: &str) -> String {
    format!(
        "OKRD_{}",
        path.replace('.', "__")
            .replace(['[', ']'], "")
            .to_uppercase()
    )
}

/// Collects diagnostics for a run; `set_file` says which file the following
/// ones belong to.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    file: String,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attributes the following diagnostics to `file`.
    pub fn set_file(&mut self, file: impl Into<String>) {
        self.file = file.into();
    }

    /// The file diagnostics are currently attributed to.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records an error at `node`.
    pub fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.error_at(node.span, path, message);
    }

    /// Records an error at an explicit position.
    pub fn error_at(&mut self, span: Span, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, span, path, message.into());
    }

    /// Records a lint warning at `span` in `file`.
    pub fn warn(&mut self, file: &str, span: Span, path: &str, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Warning,
            file: file.to_string(),
            span,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn push(&mut self, severity: Severity, span: Span, path: &str, message: String) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            span,
            path: path.to_string(),
            message,
        });
    }

    /// Deserializes `node` (found at `path`) into `T`, recording errors
    /// with their exact position. An unknown field is recorded and then
    /// left out, so the other errors of the same item (a bad target beside
    /// a misspelt key) are reported too; the value is then returned for
    /// the caller's own checks, with the error already counted. `None` on
    /// any other error.
    pub fn deserialize<T: DeserializeOwned>(&mut self, node: &Node, path: &str) -> Option<T> {
        let mut pruned: Option<Node> = None;
        loop {
            let error = match super::de::from_node(pruned.as_ref().unwrap_or(node), path) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let unknown = error.message.starts_with("unknown field");
            let span = error.span;
            self.error_at(error.span, &error.path, error.message);
            let mut next = pruned.take().unwrap_or_else(|| node.clone());
            if !unknown || !remove_key_at(&mut next, span) {
                return None;
            }
            pruned = Some(next);
        }
    }

    /// How many errors (not warnings) have been recorded.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// All diagnostics, errors first, then by file and position.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.severity, &a.file, a.span.line, a.span.col, &a.path).cmp(&(
                b.severity,
                &b.file,
                b.span.line,
                b.span.col,
                &b.path,
            ))
        });
        self.items
    }
}

/// Removes the mapping entry whose key starts at `span`, wherever it is
/// under `node`; whether one was found.
fn remove_key_at(node: &mut Node, span: Span) -> bool {
    match &mut node.kind {
        Kind::Map(entries) => {
            if let Some(i) = entries.iter().position(|(k, _)| k.span == span) {
                entries.remove(i);
                return true;
            }
            entries.iter_mut().any(|(_, v)| remove_key_at(v, span))
        }
        Kind::Seq(items) => items.iter_mut().any(|v| remove_key_at(v, span)),
        _ => false,
    }
}
