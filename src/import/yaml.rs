//! Config import → the YAML subset `nutcracker.yml` is written in: pools at
//! the top level, each a mapping of scalars plus the `servers:` list. Read
//! once by `attache import`, nowhere near accept → parse → route → backend
//! → respond.
//!
//! Why not a YAML crate: twemproxy's files use block mappings, block or flow
//! lists of scalars and comments, nothing else; a few dozen lines read that
//! exactly, and anything beyond it (anchors, nested mappings, multi-line
//! scalars) is refused by line rather than guessed at.

use super::ImportError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum YValue {
    Scalar(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YEntry {
    pub key: String,
    pub value: YValue,
    pub line: usize,
}

/// One top-level key (a twemproxy server pool) and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pool {
    pub name: String,
    pub line: usize,
    pub entries: Vec<YEntry>,
}

fn syntax(file: &str, line: usize, message: impl Into<String>) -> ImportError {
    ImportError::Syntax {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// Parses the pools. Errors name the line but never quote it: a line may
/// hold `redis_auth`.
pub(crate) fn parse_pools(text: &str, file: &str) -> Result<Vec<Pool>, ImportError> {
    let mut pools: Vec<Pool> = Vec::new();
    let mut key_indent = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |m: &str| syntax(file, line, m);
        let l = strip_comment(raw).trim_end();
        if l.trim().is_empty() || l == "---" || l == "..." {
            continue;
        }
        if l.starts_with('\t') {
            return Err(err("tabs are not allowed for indentation in YAML"));
        }
        let indent = l.len() - l.trim_start().len();
        let body = l.trim_start();
        if indent == 0 {
            let (name, value) = split_key(body).ok_or_else(|| err("expected `pool_name:`"))?;
            if !value.is_empty() {
                return Err(err("a top-level key must hold a pool's settings"));
            }
            pools.push(Pool {
                name: name.to_string(),
                line,
                entries: Vec::new(),
            });
            key_indent = None;
            continue;
        }
        let pool = pools
            .last_mut()
            .ok_or_else(|| err("indented line before the first pool"))?;
        if let Some(item) = body.strip_prefix("- ").or((body == "-").then_some("")) {
            let list = match pool.entries.last_mut() {
                Some(YEntry {
                    value: YValue::List(items),
                    ..
                }) => items,
                _ => return Err(err("list item outside a list")),
            };
            list.push(scalar(item.trim()).map_err(|m| err(&m))?);
            continue;
        }
        if *key_indent.get_or_insert(indent) != indent {
            return Err(err("nested mappings are not supported in nutcracker.yml"));
        }
        let (key, value) = split_key(body).ok_or_else(|| err("expected `key: value`"))?;
        let value = entry_value(value).map_err(|m| err(&m))?;
        pool.entries.push(YEntry {
            key: key.to_string(),
            value,
            line,
        });
    }
    Ok(pools)
}

/// `key: value` or `key:`; `None` when there is no such colon.
fn split_key(body: &str) -> Option<(&str, &str)> {
    if let Some(key) = body.strip_suffix(':') {
        return Some((key.trim(), ""));
    }
    let (key, value) = body.split_once(": ")?;
    Some((key.trim(), value.trim()))
}

/// The value after `key:`: empty (a block list follows), a flow list or a
/// scalar.
fn entry_value(v: &str) -> Result<YValue, String> {
    if v.is_empty() {
        return Ok(YValue::List(Vec::new()));
    }
    if let Some(inner) = v.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("a flow list must end on its line with ]")?;
        let items = split_flow(inner)?;
        return items
            .iter()
            .map(|s| scalar(s.trim()))
            .collect::<Result<_, _>>()
            .map(YValue::List);
    }
    scalar(v).map(YValue::Scalar)
}

/// Splits a flow list's inside at commas outside quotes.
fn split_flow(s: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let (mut cur, mut quote) = (String::new(), None);
    for c in s.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (',', None) => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if quote.is_some() {
        return Err("unterminated quote in a flow list".into());
    }
    if !cur.trim().is_empty() {
        items.push(cur);
    }
    Ok(items)
}

/// A plain, `'single'` or `"double"` quoted scalar.
fn scalar(s: &str) -> Result<String, String> {
    if let Some(body) = s.strip_prefix('\'') {
        let inner = body.strip_suffix('\'').ok_or("unterminated ' quote")?;
        return Ok(inner.replace("''", "'"));
    }
    if let Some(body) = s.strip_prefix('"') {
        return double_quoted(body);
    }
    match s.chars().next() {
        Some('{' | '&' | '*' | '|' | '>' | '!' | '%' | '@' | '`') => {
            Err("this YAML construct is not supported in nutcracker.yml".into())
        }
        _ => Ok(s.to_string()),
    }
}

fn double_quoted(body: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return match chars.as_str().trim() {
                    "" => Ok(out),
                    _ => Err("text after a closing quote".into()),
                }
            }
            '\\' => {
                let e = chars.next().ok_or("trailing backslash")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    '0' => out.push('\0'),
                    'x' | 'u' => {
                        let len = if e == 'x' { 2 } else { 4 };
                        let hex: String = chars.by_ref().take(len).collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == len)
                            .and_then(char::from_u32)
                            .ok_or("bad \\x or \\u escape")?;
                        out.push(ch);
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated \" quote".into())
}

/// The line without a `#` comment (one at the start or after a space,
/// outside quotes). A quote opens a quoted scalar only where one can start
/// (after a space, `[` or `,`), so `it's` in a plain scalar is just text;
/// inside quotes, `''` and `\"` do not close them.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_start = prev.is_whitespace() || prev == '[' || prev == ',';
        match (c, quote) {
            ('\\', Some('"')) => {
                chars.next();
            }
            ('\'', Some('\'')) if chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            ('#', None) if prev.is_whitespace() => return &line[..i],
            ('"' | '\'', None) if at_start => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            _ => {}
        }
        prev = c;
    }
    line
}

#[cfg(test)]
mod tests;
