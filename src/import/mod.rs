//! Config import: `attache import pgbouncer.ini | nutcracker.yml` turns an
//! incumbent proxy's config into an `attache.toml`, before anything on the
//! accept → parse → route → backend → respond path runs.
//!
//! Why: switching from PgBouncer or twemproxy should not start with a blank
//! page. Everything that maps is written; everything that does not is listed
//! (never silently dropped) as [`Unmapped`], both for stderr and as
//! `# not mapped:` comments at the top of the output. The output is checked
//! with [`crate::config::parse`] before it is handed back, so an import either
//! yields a config Attaché accepts or fails loudly.

mod convert;
mod ini;
pub mod nutcracker;
pub mod pgbouncer;
mod render;
mod yaml;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::config::ConfigError;
use render::Doc;

/// Which incumbent's config a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `pgbouncer.ini` (with its `auth_file`).
    Pgbouncer,
    /// twemproxy's `nutcracker.yml`.
    Nutcracker,
}

impl Format {
    /// From the file name (`.ini`, `.yml`/`.yaml`), else from the text:
    /// PgBouncer's section headers or twemproxy's `servers:` key.
    pub fn detect(path: &Path, text: &str) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ini") => return Some(Format::Pgbouncer),
            Some("yml" | "yaml") => return Some(Format::Nutcracker),
            _ => {}
        }
        let lines = || text.lines().map(str::trim);
        let pgbouncer_header = |l: &str| {
            matches!(
                l.to_ascii_lowercase().as_str(),
                "[databases]" | "[pgbouncer]" | "[users]"
            )
        };
        if lines().any(pgbouncer_header) {
            Some(Format::Pgbouncer)
        } else if lines().any(|l| l.starts_with("servers:")) {
            Some(Format::Nutcracker)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Pgbouncer => "pgbouncer",
            Format::Nutcracker => "nutcracker",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pgbouncer" => Ok(Format::Pgbouncer),
            "nutcracker" | "twemproxy" => Ok(Format::Nutcracker),
            _ => Err(format!(
                "unknown format {s:?} (expected pgbouncer or nutcracker)"
            )),
        }
    }
}

/// A setting of the source file that the output does not carry (or carries
/// only in part). `value` is already redacted when it is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Where it was, e.g. `pgbouncer.admin_users` or `databases.app.user`.
    pub key: String,
    pub value: String,
    /// Why, and what Attaché does instead.
    pub reason: String,
}

impl Unmapped {
    pub(crate) fn new(key: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        let key = key.into();
        let value = if is_secret_key(&key) {
            "<redacted>".to_string()
        } else {
            value.to_string()
        };
        Unmapped {
            key,
            value,
            reason: reason.into(),
        }
    }

    /// An entry whose value is a secret whatever its key.
    pub(crate) fn redacted(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Unmapped {
            key: key.into(),
            value: "<redacted>".into(),
            reason: reason.into(),
        }
    }
}

/// Keys whose values must never reach stderr or a comment.
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.contains("password") || last == "redis_auth"
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} ({})", self.key, self.value, self.reason)
    }
}

/// The result of an import. `Debug` leaves out the TOML: it holds passwords.
#[derive(Clone)]
pub struct Imported {
    pub format: Format,
    /// The `attache.toml` text, `# not mapped:` comments first.
    pub toml: String,
    pub unmapped: Vec<Unmapped>,
    /// Problems the output has only on this machine (a TLS file not found
    /// here); the file may be meant for another one.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imported")
            .field("format", &self.format)
            .field("toml_len", &self.toml.len())
            .field("unmapped", &self.unmapped)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Why an import failed. Messages name the file and line, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot tell whether {} is a pgbouncer.ini or a nutcracker.yml; pass --format",
        path.display()
    )]
    UnknownFormat { path: PathBuf },
    /// The source file is malformed.
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// The source asks for something Attaché cannot do at all.
    #[error("{0}")]
    Unsupported(String),
    /// The generated config was refused by Attaché's own loader.
    #[error("the imported config does not load: {0}")]
    Invalid(String),
}

/// Reads `path` and imports it as `format` (detected when `None`).
pub fn import_file(path: &Path, format: Option<Format>) -> Result<Imported, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = match format.or_else(|| Format::detect(path, &text)) {
        Some(f) => f,
        None => {
            return Err(ImportError::UnknownFormat {
                path: path.to_path_buf(),
            })
        }
    };
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    match format {
        Format::Pgbouncer => pgbouncer::import(&text, base, &name),
        Format::Nutcracker => nutcracker::import(&text, &name),
    }
}

/// Writes the output readable by its owner only: it may hold passwords.
pub fn write_output(path: &Path, text: &str) -> Result<(), ImportError> {
    let err = |source| ImportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)
}

/// Renders `doc` under a header naming `source` and the unmapped settings,
/// then loads the text with Attaché's own loader.
pub(crate) fn finish(
    format: Format,
    source: &str,
    doc: &Doc,
    unmapped: Vec<Unmapped>,
) -> Result<Imported, ImportError> {
    let mut header = vec![format!(
        "Imported from {source} ({}) by `attache import`.",
        format.name()
    )];
    if unmapped.is_empty() {
        header.push("Every setting was mapped.".into());
    }
    header.extend(unmapped.iter().map(|u| format!("not mapped: {u}")));
    let body = doc.render();
    if body.contains("$$") {
        header.push("In values, $$ is a literal $ (${NAME} would read the environment).".into());
    }
    let first = format!("{}\n", render::comments(&header));
    let warnings = check(&format!("{first}\n{body}"))?;
    let mut text = first;
    if !warnings.is_empty() {
        let lines: Vec<String> = warnings.iter().map(|w| format!("warning: {w}")).collect();
        text.push_str(&render::comments(&lines));
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&body);
    Ok(Imported {
        format,
        toml: text,
        unmapped,
        warnings,
    })
}

/// Loads `text` as `attache.toml`. Missing files are warnings (the config may
/// be meant for another machine); anything else fails the import.
fn check(text: &str) -> Result<Vec<String>, ImportError> {
    let err = match crate::config::parse(text) {
        Ok(_) => return Ok(Vec::new()),
        Err(e) => e,
    };
    let problems = err.problems();
    let missing_file = |e: &&ConfigError| matches!(e, ConfigError::Invalid { message, .. } if message.starts_with("file not found:"));
    if problems.iter().all(missing_file) {
        return Ok(problems.iter().map(|p| p.to_string()).collect());
    }
    let shown: Vec<String> = problems
        .iter()
        .map(|p| match p {
            // toml's snippet would quote the offending line, maybe a password.
            ConfigError::Toml(t) => {
                format!("TOML error at line {}: {}", t.line.unwrap_or(0), t.message)
            }
            other => other.to_string(),
        })
        .collect();
    Err(ImportError::Invalid(shown.join("; ")))
}

#[cfg(test)]
mod tests;
