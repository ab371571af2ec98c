//! Config → `${NAME}` substitution in the raw TOML text, the first step of
//! loading, long before accept → parse → route → backend → respond runs.
//!
//! Secrets come from the environment so they never need to be in the file.
//! Rules: `${NAME}` is the variable (an error if unset), `${NAME:-default}`
//! falls back to `default` when it is unset or empty, `$$` is a literal `$`
//! and any other `$` is left alone (SCRAM verifiers contain `$`).
//!
//! The scanner knows TOML's string and comment syntax, for two reasons:
//! comments are copied verbatim (so a comment may mention `${NAME}` without
//! needing it set), and a value landing inside a quoted string is escaped
//! for that string, so a password containing `"` or `\` cannot break or
//! inject TOML.
//!
//! The result remembers where each substitution happened so an error found
//! later in the substituted text can be shown against the original line:
//! toml's error snippet would otherwise print a secret.

use std::env::VarError;
use std::ops::Range;

/// The substituted text plus a map back to offsets in the original. Its
/// `Debug` hides the text: it may hold secrets from the environment.
#[derive(Clone)]
pub struct Substituted {
    pub text: String,
    /// Each `${…}` / `$$`: its byte range in `text` and in the original.
    edits: Vec<(Range<usize>, Range<usize>)>,
}

impl std::fmt::Debug for Substituted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Substituted")
            .field("len", &self.text.len())
            .field("edits", &self.edits.len())
            .finish()
    }
}

impl Substituted {
    /// The offset in the original text that produced byte `offset` of `text`
    /// (the start of the `${…}` when it falls inside a substituted value).
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for (out, orig) in &self.edits {
            if offset < out.start {
                break;
            }
            if offset < out.end {
                return orig.start;
            }
            shift = orig.end as isize - out.end as isize;
        }
        offset.saturating_add_signed(shift)
    }
}

/// Why substitution failed. Each names the line (1-based) it happened on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("line {line}: environment variable {name} is not set (write ${{{name}:-default}} for a fallback)")]
    Unset { name: String, line: usize },
    #[error("line {line}: environment variable {name} is not valid UTF-8")]
    NotUnicode { name: String, line: usize },
    #[error("line {line}: `${{` without a closing `}}`")]
    Unterminated { line: usize },
    #[error("line {line}: {name:?} is not a valid variable name (letters, digits and `_`)")]
    BadName { name: String, line: usize },
    #[error("line {line}: the value of {name} cannot be placed in a '…' literal string (it contains a quote or newline); use a \"…\" string")]
    Unquotable { name: String, line: usize },
}

/// Where in the TOML text the scanner is; decides how a value is inserted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctx {
    Bare,
    Comment,
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

/// Substitutes from the process environment.
pub fn substitute(text: &str) -> Result<Substituted, EnvError> {
    substitute_with(text, |name| std::env::var(name))
}

/// Substitutes using `lookup` (shaped like `std::env::var`), for tests.
pub fn substitute_with<F>(text: &str, lookup: F) -> Result<Substituted, EnvError>
where
    F: Fn(&str) -> Result<String, VarError>,
{
    let mut out = String::with_capacity(text.len());
    let mut edits = Vec::new();
    let mut ctx = Ctx::Bare;
    let mut line = 1;
    let mut rest = text;
    while !rest.is_empty() {
        let at = text.len() - rest.len();
        let out_start = out.len();
        if ctx != Ctx::Comment && rest.starts_with("$$") {
            out.push('$');
            edits.push((out_start..out.len(), at..at + 2));
            rest = &rest[2..];
            continue;
        }
        if ctx != Ctx::Comment && rest.starts_with("${") {
            let (value, name, used) = expand(&rest[2..], line, &lookup)?;
            push_value(&mut out, &value, ctx, &name, line)?;
            edits.push((out_start..out.len(), at..at + 2 + used));
            rest = &rest[2 + used..];
            continue;
        }
        let (next_ctx, used) = step(ctx, rest);
        out.push_str(&rest[..used]);
        line += rest[..used].matches('\n').count();
        ctx = next_ctx;
        rest = &rest[used..];
    }
    Ok(Substituted { text: out, edits })
}

/// Advances the scanner over one token (a char, an escape pair or a quote
/// run) and returns the context after it and how many bytes it took.
fn step(ctx: Ctx, s: &str) -> (Ctx, usize) {
    let one = s.chars().next().map_or(1, char::len_utf8);
    match ctx {
        Ctx::Bare if s.starts_with("\"\"\"") => (Ctx::MultiBasic, 3),
        Ctx::Bare if s.starts_with("'''") => (Ctx::MultiLiteral, 3),
        Ctx::Bare if s.starts_with('"') => (Ctx::Basic, 1),
        Ctx::Bare if s.starts_with('\'') => (Ctx::Literal, 1),
        Ctx::Bare if s.starts_with('#') => (Ctx::Comment, 1),
        Ctx::Comment if s.starts_with('\n') => (Ctx::Bare, 1),
        Ctx::Basic | Ctx::MultiBasic if s.starts_with('\\') => {
            let escaped = s[1..].chars().next().map_or(0, char::len_utf8);
            (ctx, 1 + escaped)
        }
        Ctx::Basic if s.starts_with('"') => (Ctx::Bare, 1),
        // A newline ends a malformed single-line string; toml reports it.
        Ctx::Basic | Ctx::Literal if s.starts_with('\n') => (Ctx::Bare, 1),
        Ctx::Literal if s.starts_with('\'') => (Ctx::Bare, 1),
        // Up to two quotes may precede the closing triple (`""""` is legal).
        Ctx::MultiBasic if s.starts_with("\"\"\"") => (Ctx::Bare, quote_run(s, '"')),
        Ctx::MultiLiteral if s.starts_with("'''") => (Ctx::Bare, quote_run(s, '\'')),
        _ => (ctx, one),
    }
}

fn quote_run(s: &str, q: char) -> usize {
    s.chars().take_while(|&c| c == q).count().min(5)
}

/// Reads `NAME}` or `NAME:-default}` from `s` (just past `${`) and returns
/// the value, the name and the bytes consumed including the `}`.
fn expand<F>(s: &str, line: usize, lookup: &F) -> Result<(String, String, usize), EnvError>
where
    F: Fn(&str) -> Result<String, VarError>,
{
    let close = s
        .find(['}', '\n'])
        .filter(|&i| s[i..].starts_with('}'))
        .ok_or(EnvError::Unterminated { line })?;
    let inner = &s[..close];
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !valid_name(name) {
        return Err(EnvError::BadName {
            name: name.to_string(),
            line,
        });
    }
    let value = match (lookup(name), default) {
        (Ok(v), Some(d)) if v.is_empty() => d.to_string(),
        (Ok(v), _) => v,
        (Err(VarError::NotPresent), Some(d)) => d.to_string(),
        (Err(VarError::NotPresent), None) => {
            return Err(EnvError::Unset {
                name: name.to_string(),
                line,
            })
        }
        (Err(VarError::NotUnicode(_)), _) => {
            return Err(EnvError::NotUnicode {
                name: name.to_string(),
                line,
            })
        }
    };
    Ok((value, name.to_string(), close + 1))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Inserts `value` escaped for the string context it lands in.
fn push_value(
    out: &mut String,
    value: &str,
    ctx: Ctx,
    name: &str,
    line: usize,
) -> Result<(), EnvError> {
    let unquotable = || EnvError::Unquotable {
        name: name.to_string(),
        line,
    };
    match ctx {
        Ctx::Basic | Ctx::MultiBasic => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
        }
        Ctx::Literal if value.contains(['\'', '\n', '\r']) => return Err(unquotable()),
        Ctx::MultiLiteral if value.contains("'''") => return Err(unquotable()),
        Ctx::Bare | Ctx::Comment | Ctx::Literal | Ctx::MultiLiteral => out.push_str(value),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
