//! Declarative configuration: RabbitMQ's definitions format, in JSON or YAML.
//!
//! * [`model`]: the format as serde types (a RabbitMQ 3.x export loads unchanged).
//! * [`validate`]: the whole-file checks run before anything is applied, each
//!   problem naming its entry; a bad file changes nothing.
//! * [`apply`]: import (create what is missing, report what differs, as at boot
//!   and `POST /api/definitions`) and apply (make the broker match the file,
//!   optionally pruning what it does not mention).
//! * [`export`]: the broker's state in RabbitMQ's format.
//! * [`plan`]: the difference between the broker and a file, as a diff.

pub(crate) mod apply;
pub(crate) mod export;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod validate;

use std::fmt;
use std::path::Path;

use thiserror::Error;

pub(crate) use model::Definitions;

/// The version of RabbitMQ whose definitions format Warren writes.
pub(crate) const RABBIT_VERSION: &str = "3.10.8";

/// One problem in a definitions file: which entry, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// `queues[3]`, `permissions[0]`, ...
    pub(crate) entry: String,
    pub(crate) problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.problem)
    }
}

#[derive(Debug, Error)]
pub(crate) enum DefinitionsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not valid JSON/YAML, or an entry of the wrong shape (with line and column).
    #[error("{0}")]
    Parse(String),
    /// Entries that cannot be applied; nothing was.
    #[error("invalid definitions ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" },
            .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// A failure while applying a validated file (a race with a client).
    #[error("applying definitions failed: {0}")]
    Apply(String),
}

/// The two spellings of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Yaml,
}

impl Format {
    /// YAML for `.yaml` / `.yml`, JSON otherwise.
    pub(crate) fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") => {
                Self::Yaml
            }
            _ => Self::Json,
        }
    }
}

/// Drops serde's " at line L column C" suffix (we print the position ourselves).
fn bare_message(text: &str) -> &str {
    text.find(" at line ").map_or(text, |i| &text[..i])
}

/// Parses a document; errors give the line, the column and the entry's path.
pub(crate) fn parse(text: &str, format: Format) -> Result<Definitions, DefinitionsError> {
    let at = |path: &serde_path_to_error::Path| {
        let path = path.to_string();
        if path.is_empty() || path == "." {
            String::new()
        } else {
            format!(" (in {path})")
        }
    };
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let result: Result<Definitions, _> = serde_path_to_error::deserialize(&mut de);
            let defs = result.map_err(|e| {
                let path = at(e.path());
                let inner = e.into_inner();
                DefinitionsError::Parse(format!(
                    "invalid JSON at line {}, column {}: {}{path}",
                    inner.line(),
                    inner.column(),
                    bare_message(&inner.to_string())
                ))
            })?;
            de.end().map_err(|e| {
                DefinitionsError::Parse(format!(
                    "invalid JSON at line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    bare_message(&e.to_string())
                ))
            })?;
            Ok(defs)
        }
        Format::Yaml => {
            if text.trim().is_empty() {
                return Ok(Definitions::default());
            }
            let de = serde_norway::Deserializer::from_str(text);
            let result: Result<Definitions, _> = serde_path_to_error::deserialize(de);
            result.map_err(|e| {
                let path = at(e.path());
                let inner = e.into_inner();
                let position = inner
                    .location()
                    .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                    .unwrap_or_default();
                DefinitionsError::Parse(format!(
                    "invalid YAML{position}: {}{path}",
                    bare_message(&inner.to_string())
                ))
            })
        }
    }
}

/// Reads and parses a file (YAML for `.yaml`/`.yml`, JSON otherwise).
pub(crate) fn load_file(path: &Path) -> Result<Definitions, DefinitionsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DefinitionsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, Format::from_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_give_line_and_column() {
        let err = parse(
            "{\n  \"queues\": [\n    {\"name\": \"q\",}\n  ]\n}",
            Format::Json,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("invalid JSON at line 3, column"), "{err}");
    }

    #[test]
    fn json_type_errors_name_the_entry() {
        let err = parse(
            r#"{"queues": [{"name": "q", "durable": "yes"}]}"#,
            Format::Json,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("queues[0].durable"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn yaml_with_comments() {
        let text = "# the shop\nvhosts:\n  - name: shop # comment\nqueues:\n  - name: orders\n    vhost: shop\n    arguments:\n      x-max-length: 10\n";
        let d = parse(text, Format::Yaml).unwrap();
        assert_eq!(d.vhosts[0].name, "shop");
        assert_eq!(d.queues[0].arguments["x-max-length"], 10);
    }

    #[test]
    fn yaml_errors_give_line_and_column() {
        let err = parse("queues:\n  - name: q\n    durable: [\n", Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid YAML at line"), "{err}");
        let err = parse("queues:\n  - name: q\n    durable: maybe\n", Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("queues[0].durable"), "{err}");
    }
}
