//! Route (read/write classification): the per-query routing hint, a block
//! comment such as `/* attache: role=replica */`.
//!
//! Comments are found with pg_query's scanner (PostgreSQL's own lexer), so
//! `--` comments, string literals, quoted identifiers and dollar-quoted
//! bodies that merely contain the hint text are not hints. The scanner only
//! runs when the text mentions `attache` at all, keeping the common case a
//! substring check. Text the scanner rejects (an unterminated literal or
//! comment, a NUL byte) carries no hint.

use pg_query::protobuf::Token;

use super::RoleHint;

/// The role named by the first block comment of the form
/// `/* attache: key=value … role=primary|replica … */` in `sql`. Keys and
/// values are case-insensitive, whitespace around `:` and `=` is free, pairs
/// may be separated by spaces or commas, and other keys are ignored. A
/// comment whose role is neither `primary` nor `replica` gives no hint.
pub(super) fn find(sql: &str) -> Option<RoleHint> {
    if !contains_ignore_ascii_case(sql, "attache") {
        return None;
    }
    let tokens = pg_query::scan_tokens(sql).ok()?;
    tokens
        .iter()
        .filter(|t| t.token == Token::CComment as i32)
        .filter_map(|t| {
            let start = usize::try_from(t.start).ok()?;
            let end = usize::try_from(t.end).ok()?;
            sql.get(start..end)
        })
        .find_map(parse_comment)
}

/// Reads one block comment, `/*` and `*/` included.
fn parse_comment(comment: &str) -> Option<RoleHint> {
    let body = comment.strip_prefix("/*")?;
    let body = body.strip_suffix("*/").unwrap_or(body).trim_start();
    let prefix = body.get(..7)?;
    if !prefix.eq_ignore_ascii_case("attache") {
        return None;
    }
    let rest = body.get(7..)?.trim_start().strip_prefix(':')?;
    let mut pairs = Pairs { rest };
    while let Some((key, value)) = pairs.next_pair() {
        if key.eq_ignore_ascii_case("role") {
            return role_value(value);
        }
    }
    None
}

fn role_value(value: &str) -> Option<RoleHint> {
    if value.eq_ignore_ascii_case("primary") {
        Some(RoleHint::Primary)
    } else if value.eq_ignore_ascii_case("replica") {
        Some(RoleHint::Replica)
    } else {
        None
    }
}

/// `key = value` pairs separated by whitespace or commas. A key without `=`
/// yields an empty value.
struct Pairs<'a> {
    rest: &'a str,
}

impl<'a> Pairs<'a> {
    fn next_pair(&mut self) -> Option<(&'a str, &'a str)> {
        let separators = |c: char| c.is_whitespace() || c == ',' || c == ';';
        let rest = self.rest.trim_start_matches(separators);
        if rest.is_empty() {
            return None;
        }
        let key_end = rest
            .find(|c: char| separators(c) || c == '=')
            .unwrap_or(rest.len());
        let (key, after) = rest.split_at(key_end);
        let after_ws = after.trim_start();
        let Some(value_part) = after_ws.strip_prefix('=') else {
            self.rest = after;
            return Some((key, ""));
        };
        let value_part = value_part.trim_start();
        let value_end = value_part.find(separators).unwrap_or(value_part.len());
        let (value, rest) = value_part.split_at(value_end);
        self.rest = rest;
        let value = value.trim_matches(|c| c == '\'' || c == '"');
        Some((key, value))
    }
}

/// ASCII case-insensitive substring test without allocating.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
