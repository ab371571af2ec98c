//! Route (read/write classification): the session-wide routing override,
//! `SET attache.role = 'primary' | 'replica' | 'auto'` and
//! `RESET attache.role`, which the proxy answers itself.
//!
//! Recognised with a small exact tokenizer instead of the SQL parser: the
//! command is only ours when it is the whole query string, and it must be
//! cheap to rule out for every other query.

use super::RoleHint;

/// The configuration parameter name the proxy claims.
const PARAMETER: &str = "attache.role";

/// `Some(Ok(None))`: back to automatic routing (`auto`, `DEFAULT`, or
/// `RESET`); `Some(Ok(Some(role)))`: force `role` for the session;
/// `Some(Err(message))`: the command names `attache.role` but is not valid
/// (bad value, `SET LOCAL`, malformed), to be reported to the client as an
/// error; `None`: not such a command (including when other statements share
/// the query string).
///
/// Accepted: `SET [SESSION] attache.role {= | TO} value [;]` with `value`
/// quoted or bare, any case, and `RESET attache.role [;]`.
pub fn session_role_command(sql: &str) -> Option<Result<Option<RoleHint>, String>> {
    // Every query passes here: rule out all but SET and RESET before the
    // tokenizer allocates.
    let head = sql.trim_start();
    let first = &head[..head.find(|c: char| !is_word_char(c)).unwrap_or(head.len())];
    if !(is_kw(first, "set") || is_kw(first, "reset")) {
        return None;
    }
    let tokens = tokenize(sql)?;
    let mut rest = tokens.as_slice();
    if let Some((Tok::Semicolon, init)) = rest.split_last() {
        rest = init;
    }
    match rest {
        [Tok::Word(reset), Tok::Word(name)] if is_kw(reset, "reset") && is_kw(name, PARAMETER) => {
            Some(Ok(None))
        }
        [Tok::Word(set), tail @ ..] if is_kw(set, "set") => set_command(tail),
        _ => None,
    }
}

/// Everything after `SET`.
fn set_command(tail: &[Tok<'_>]) -> Option<Result<Option<RoleHint>, String>> {
    let (local, tail) = match tail {
        [Tok::Word(scope), tail @ ..] if is_kw(scope, "session") => (false, tail),
        [Tok::Word(scope), tail @ ..] if is_kw(scope, "local") => (true, tail),
        _ => (false, tail),
    };
    let [Tok::Word(name), assign, values @ ..] = tail else {
        return None;
    };
    if !is_kw(name, PARAMETER) {
        return None;
    }
    let assigns =
        matches!(assign, Tok::Equals) || matches!(assign, Tok::Word(to) if is_kw(to, "to"));
    if !assigns {
        return Some(Err(format!("syntax error in SET {PARAMETER}")));
    }
    if local {
        return Some(Err(format!(
            "SET LOCAL {PARAMETER} is not supported; use SET {PARAMETER} or a /* attache: role=… */ comment"
        )));
    }
    Some(match values {
        [Tok::Word(value)] if is_kw(value, "default") => Ok(None),
        [Tok::Word(value)] | [Tok::Quoted(value)] => role(value),
        [] => Err(format!("SET {PARAMETER} requires a value")),
        _ => Err(format!(
            "{PARAMETER} takes a single value: primary, replica or auto"
        )),
    })
}

fn role(value: &str) -> Result<Option<RoleHint>, String> {
    if value.eq_ignore_ascii_case("primary") {
        Ok(Some(RoleHint::Primary))
    } else if value.eq_ignore_ascii_case("replica") {
        Ok(Some(RoleHint::Replica))
    } else if value.eq_ignore_ascii_case("auto") {
        Ok(None)
    } else {
        Err(format!(
            "invalid value for parameter \"{PARAMETER}\": \"{}\" (expected primary, replica or auto)",
            value.escape_debug()
        ))
    }
}

fn is_kw(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// A bare word: letters, digits, `_`, `$` and `.` (so `attache.role` is
    /// one word).
    Word(&'a str),
    /// The contents of a single-quoted literal without doubled-quote escapes.
    Quoted(&'a str),
    Equals,
    Comma,
    Semicolon,
}

/// Splits `sql` into the few token kinds the command needs. `None` at the
/// first character that cannot belong to such a command (comments, double
/// quotes, escapes, operators, a second `;`…): the string is then not ours.
fn tokenize(sql: &str) -> Option<Vec<Tok<'_>>> {
    let mut tokens = Vec::with_capacity(6);
    let mut rest = sql.trim_start();
    while let Some(c) = rest.chars().next() {
        let (token, len) = match c {
            '=' => (Tok::Equals, 1),
            ',' => (Tok::Comma, 1),
            ';' => (Tok::Semicolon, 1),
            '\'' => {
                let body = &rest[1..];
                let end = body.find('\'')?;
                if body[end + 1..].starts_with('\'') {
                    return None;
                }
                (Tok::Quoted(&body[..end]), end + 2)
            }
            c if is_word_char(c) => {
                let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                (Tok::Word(&rest[..end]), end)
            }
            _ => return None,
        };
        if tokens.len() >= 8 || tokens.last() == Some(&Tok::Semicolon) {
            return None;
        }
        tokens.push(token);
        rest = rest[len..].trim_start();
    }
    Some(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.'
}
