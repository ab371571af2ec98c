//! Config import → the text formats around PgBouncer: its INI dialect, the
//! libpq-style connection strings of `[databases]`, and `userlist.txt`.
//! Read once by `attache import`, nowhere near accept → parse → route →
//! backend → respond.
//!
//! Why hand-written: the dialect is small but specific (`;` and `#`
//! comments only at the start of a line, SQL-quoted database names,
//! `%include`), and a general INI crate gets these subtly wrong.

use super::ImportError;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// One `[name]` section, name in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ini {
    pub sections: Vec<Section>,
    /// `%include FILE` directives: (line, file). Not followed.
    pub includes: Vec<(usize, String)>,
}

fn syntax(file: &str, line: usize, message: impl Into<String>) -> ImportError {
    ImportError::Syntax {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// Parses PgBouncer's INI dialect. Errors name the line but never quote it:
/// a line may hold a password.
pub(crate) fn parse_ini(text: &str, file: &str) -> Result<Ini, ImportError> {
    let mut ini = Ini::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with(';') || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix('%') {
            match rest.split_once(char::is_whitespace) {
                Some(("include", f)) => ini.includes.push((line, f.trim().to_string())),
                _ => return Err(syntax(file, line, "unknown % directive")),
            }
            continue;
        }
        if let Some(name) = l.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| syntax(file, line, "section header without closing ]"))?;
            ini.sections.push(Section {
                name: name.trim().to_ascii_lowercase(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let (key, value) = split_key(l).map_err(|m| syntax(file, line, m))?;
        let section = ini
            .sections
            .last_mut()
            .ok_or_else(|| syntax(file, line, "setting before the first [section]"))?;
        section.entries.push(Entry {
            key,
            value: unquote_value(value),
            line,
        });
    }
    Ok(ini)
}

/// `key = value` where key may be SQL-quoted (`"my db"`, `""` for `"`).
fn split_key(l: &str) -> Result<(String, &str), String> {
    let (key, rest) = if let Some(quoted) = l.strip_prefix('"') {
        let mut key = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                key.push(c);
            } else if chars.peek().is_some_and(|(_, n)| *n == '"') {
                key.push('"');
                chars.next();
            } else {
                end = Some(i + 1);
                break;
            }
        }
        let end = end.ok_or("quoted name without closing \"")?;
        (key, &quoted[end..])
    } else {
        let end = l.find('=').ok_or("expected key = value")?;
        (l[..end].trim().to_string(), &l[end..])
    };
    let value = rest
        .trim_start()
        .strip_prefix('=')
        .ok_or("expected = after the name")?;
    if key.is_empty() {
        return Err("empty name before =".into());
    }
    Ok((key, value.trim()))
}

/// A value wholly in `"…"` or `'…'` loses its quotes (doubled quote = one).
fn unquote_value(v: &str) -> String {
    for q in ['"', '\''] {
        let inner = v
            .strip_prefix(q)
            .and_then(|r| r.strip_suffix(q))
            .filter(|_| v.len() >= 2);
        if let Some(inner) = inner {
            let doubled = format!("{q}{q}");
            return inner.replace(&doubled, &q.to_string());
        }
    }
    v.to_string()
}

/// A libpq-style connection string: `key=value` pairs separated by spaces,
/// values optionally in single quotes, `\` escaping the next character.
pub(crate) fn parse_connstring(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected = after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = conn_value(&mut chars).map_err(|m| format!("{key}: {m}"))?;
        out.push((key, value));
    }
}

fn conn_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut value = String::new();
    if chars.peek() == Some(&'\'') {
        chars.next();
        loop {
            match chars.next() {
                None => return Err("unterminated quoted value".into()),
                Some('\'') => return Ok(value),
                Some('\\') => value.push(chars.next().ok_or("trailing backslash")?),
                Some(c) => value.push(c),
            }
        }
    }
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            break;
        }
        chars.next();
        if c == '\\' {
            value.push(chars.next().ok_or("trailing backslash")?);
        } else {
            value.push(c);
        }
    }
    Ok(value)
}

/// One `"user" "password"` line of PgBouncer's `auth_file`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UserLine {
    pub user: String,
    pub password: String,
    pub line: usize,
}

impl std::fmt::Debug for UserLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserLine")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("line", &self.line)
            .finish()
    }
}

/// Parses `userlist.txt`: two double-quoted fields per line (`""` is a
/// quote inside one); anything after them is ignored, as PgBouncer does.
pub(crate) fn parse_userlist(text: &str, file: &str) -> Result<Vec<UserLine>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with(';') || l.starts_with('#') {
            continue;
        }
        let bad = || syntax(file, line, "expected \"user\" \"password\"");
        let (user, rest) = quoted_field(l).ok_or_else(bad)?;
        let (password, _) = quoted_field(rest.trim_start()).ok_or_else(bad)?;
        out.push(UserLine {
            user,
            password,
            line,
        });
    }
    Ok(out)
}

/// A leading `"…"` field and what follows it.
fn quoted_field(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            out.push(c);
        } else if chars.peek().is_some_and(|(_, n)| *n == '"') {
            out.push('"');
            chars.next();
        } else {
            return Some((out, &body[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests;
