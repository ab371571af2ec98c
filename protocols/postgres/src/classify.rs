//! Route: the little SQL a pooler must understand inside a simple Query —
//! where one statement ends and the next begins, and which statements change
//! session state (SET, RESET, DISCARD, DEALLOCATE, LISTEN) so that the router
//! can track, replay or pin a backend session.
//!
//! This is a lexer plus a handful of grammar rules, not a SQL parser: anything
//! not recognised is [`SessionCommand::Other`]. Strings follow
//! `standard_conforming_strings = on` (the default since PostgreSQL 9.1):
//! backslashes escape only inside `E'…'` literals.

/// The value of a `SET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    /// `DEFAULT` (or `LOCAL` for `SET TIME ZONE`, or a bare `SET NAMES`).
    Default,
    /// The raw SQL text after `TO`/`=`, trimmed, comments and a trailing `;`
    /// excluded — e.g. `'UTC'`, `public, "My Schema"`, `10`. Replaying
    /// `SET <name> TO <value>` reproduces the setting.
    Value(String),
}

/// What one statement does to session state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// `SET [SESSION] name {TO|=} value`, plus `SET TIME ZONE` (`timezone`),
    /// `SET SCHEMA` (`search_path`), `SET NAMES` (`client_encoding`) and
    /// `SET XML OPTION` (`xmloption`). Unquoted names are lower-cased.
    Set { name: String, value: SetValue },
    /// `RESET name` (also `RESET TIME ZONE`, `RESET ROLE`,
    /// `RESET SESSION AUTHORIZATION` as `session_authorization`).
    Reset { name: String },
    /// `RESET ALL`.
    ResetAll,
    /// `DISCARD ALL`.
    DiscardAll,
    /// `DEALLOCATE [PREPARE] name` (`Some`) or `… ALL` (`None`).
    Deallocate { name: Option<String> },
    /// `LISTEN channel`.
    Listen,
    /// `UNLISTEN channel` or `UNLISTEN *`.
    Unlisten,
    /// Settings scoped to the transaction, which need no tracking: `SET
    /// LOCAL`, `SET TRANSACTION`, `SET SESSION CHARACTERISTICS`, `SET
    /// CONSTRAINTS`, `RESET TRANSACTION ISOLATION LEVEL` and the
    /// `transaction_*` parameters.
    SetLocalOrTransaction,
    /// `SET [SESSION] ROLE` and `SET SESSION AUTHORIZATION` (also via
    /// `SET role = …`): who the session is. `RESET ALL` leaves them, so
    /// they cannot be replayed and undone like other settings; a router
    /// pins the session instead.
    SetIdentity,
    /// Anything else, including statements PostgreSQL would reject.
    Other,
}

/// Splits a simple-Query string into statements on `;` outside literals,
/// quoted identifiers, dollar quotes and comments.
///
/// Pieces are trimmed; pieces holding only whitespace and comments are
/// dropped (PostgreSQL treats them as empty queries). Unterminated quotes or
/// comments run to the end of the input, as PostgreSQL would read them.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut piece_start = 0;
    let mut has_code = false;
    for token in Lexer::new(sql) {
        match token.kind {
            Kind::Punct(b';') => {
                if has_code {
                    out.push(trim_sql(&sql[piece_start..token.start]));
                }
                piece_start = token.end;
                has_code = false;
            }
            Kind::Comment => {}
            _ => has_code = true,
        }
    }
    if has_code {
        out.push(trim_sql(&sql[piece_start..]));
    }
    out
}

/// Classifies ONE statement (see [`split_statements`]). Leading comments and
/// whitespace are skipped and keywords are case-insensitive; input after a
/// top-level `;` is ignored. Never panics.
pub fn classify_session(stmt: &str) -> SessionCommand {
    let tokens: Vec<Token> = Lexer::new(stmt)
        .filter(|t| t.kind != Kind::Comment)
        .take_while(|t| t.kind != Kind::Punct(b';'))
        .collect();
    // PostgreSQL rejects unterminated quotes and comments, so nothing changes.
    if tokens.iter().any(|t| t.kind == Kind::Unterminated) {
        return SessionCommand::Other;
    }
    let mut p = Parser {
        src: stmt,
        tokens: &tokens,
        pos: 0,
    };
    let command = if p.eat_kw("SET") {
        p.set()
    } else if p.eat_kw("RESET") {
        p.reset()
    } else if p.eat_kw("DISCARD") {
        p.discard()
    } else if p.eat_kw("DEALLOCATE") {
        p.deallocate()
    } else if p.eat_kw("LISTEN") {
        p.listen()
    } else if p.eat_kw("UNLISTEN") {
        p.unlisten()
    } else {
        None
    };
    command.unwrap_or(SessionCommand::Other)
}

/// PostgreSQL's whitespace: space, tab, newline, carriage return, vertical
/// tab, form feed. Unicode spaces are identifier characters to its lexer.
fn is_sql_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn trim_sql(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_sql_space(c as u8))
}

/// `sql` from its first token on: leading whitespace, `-- …` lines and
/// (nested) `/* … */` blocks skipped. For the cheap first-keyword checks
/// that run on every query before anything is tokenized; an unterminated
/// comment leaves nothing (PostgreSQL rejects it).
pub fn skip_leading_comments(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_sql_space(c as u8));
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if rest.starts_with("/*") {
            rest = after_block_comment(rest);
        } else {
            return rest;
        }
    }
}

/// What follows the block comment `s` starts with ("" if unterminated).
fn after_block_comment(s: &str) -> &str {
    let b = s.as_bytes();
    let (mut depth, mut i) = (0usize, 0);
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return &s[i..];
                }
            }
            _ => i += 1,
        }
    }
    ""
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unquoted identifier or keyword.
    Word,
    /// `"…"`, closed.
    QuotedIdent,
    /// A closed string literal: `'…'`, `E'…'`, `$tag$…$tag$`.
    Literal,
    Number,
    Comment,
    /// A quote, dollar quote or block comment that never closes.
    Unterminated,
    /// Any other single ASCII byte (operators, parentheses, `;`, `.`, `=`…).
    Punct(u8),
}

/// A token as a byte span of the source; spans always fall on char
/// boundaries because every stop condition is an ASCII byte or the end.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    /// Scans a token starting at `start` (not whitespace) → (kind, end).
    fn scan_token(&self, start: usize) -> (Kind, usize) {
        let b = self.at(start);
        match b {
            b'-' if self.at(start + 1) == b'-' => (Kind::Comment, self.line_comment_end(start)),
            b'/' if self.at(start + 1) == b'*' => self.block_comment_end(start),
            b'\'' => self.quoted_end(start, b'\'', false, Kind::Literal),
            b'"' => self.quoted_end(start, b'"', false, Kind::QuotedIdent),
            b'$' => match self.dollar_tag_end(start) {
                Some(tag_end) => self.dollar_quoted_end(start, tag_end),
                None => (Kind::Punct(b'$'), start + 1),
            },
            b'0'..=b'9' => (
                Kind::Number,
                self.run_end(start, |c| {
                    c.is_ascii_alphanumeric() || c == b'.' || c == b'_'
                }),
            ),
            _ if is_ident_start(b) => {
                let end = self.run_end(start, is_ident_cont);
                // `E'…'`: the one literal form where backslash escapes a quote.
                if end == start + 1 && b.eq_ignore_ascii_case(&b'e') && self.at(end) == b'\'' {
                    self.quoted_end(end, b'\'', true, Kind::Literal)
                } else {
                    (Kind::Word, end)
                }
            }
            _ => (Kind::Punct(b), start + 1),
        }
    }

    fn run_end(&self, start: usize, keep: impl Fn(u8) -> bool) -> usize {
        let mut i = start + 1;
        while i < self.bytes.len() && keep(self.bytes[i]) {
            i += 1;
        }
        i
    }

    fn line_comment_end(&self, start: usize) -> usize {
        self.bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.bytes.len(), |p| start + p)
    }

    /// Block comments nest in PostgreSQL, unlike the SQL standard says.
    fn block_comment_end(&self, start: usize) -> (Kind, usize) {
        let (mut i, mut depth) = (start + 2, 1usize);
        while i < self.bytes.len() {
            match (self.bytes[i], self.at(i + 1)) {
                (b'/', b'*') => (depth, i) = (depth + 1, i + 2),
                (b'*', b'/') => {
                    (depth, i) = (depth - 1, i + 2);
                    if depth == 0 {
                        return (Kind::Comment, i);
                    }
                }
                _ => i += 1,
            }
        }
        (Kind::Unterminated, self.bytes.len())
    }

    /// A quote at `start` closed by the same byte; doubling it escapes it.
    fn quoted_end(&self, start: usize, quote: u8, backslash: bool, kind: Kind) -> (Kind, usize) {
        let mut i = start + 1;
        while i < self.bytes.len() {
            let b = self.bytes[i];
            let escaped = (backslash && b == b'\\') || (b == quote && self.at(i + 1) == quote);
            if escaped {
                i += 2;
            } else if b == quote {
                return (kind, i + 1);
            } else {
                i += 1;
            }
        }
        (Kind::Unterminated, self.bytes.len())
    }

    /// `$$` or `$tag$` at `start` → index of the closing `$` of the tag.
    /// `$1` (a parameter) is not a tag.
    fn dollar_tag_end(&self, start: usize) -> Option<usize> {
        let mut i = start + 1;
        if is_ident_start(self.at(i)) {
            i = self.run_end(i, |c| is_ident_cont(c) && c != b'$');
        }
        (self.at(i) == b'$').then_some(i)
    }

    fn dollar_quoted_end(&self, start: usize, tag_end: usize) -> (Kind, usize) {
        let tag = &self.bytes[start..=tag_end];
        let body = tag_end + 1;
        match self.bytes[body..].windows(tag.len()).position(|w| w == tag) {
            Some(p) => (Kind::Literal, body + p + tag.len()),
            None => (Kind::Unterminated, self.bytes.len()),
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        while self.pos < self.bytes.len() && is_sql_space(self.bytes[self.pos]) {
            self.pos += 1;
        }
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let (kind, end) = self.scan_token(start);
        self.pos = end.min(self.bytes.len());
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }
}

/// Recursive-descent over the tokens of one statement. Each rule returns
/// `None` when the text is not the form it recognises (→ `Other`).
struct Parser<'a> {
    src: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

/// Parameters that only live for the current transaction.
const TRANSACTION_SCOPED: &[&str] = &[
    "transaction_isolation",
    "transaction_read_only",
    "transaction_deferrable",
];

/// Parameters that change who the session is.
const IDENTITY: &[&str] = &["role", "session_authorization"];

impl Parser<'_> {
    fn text(&self, token: &Token) -> &str {
        self.src.get(token.start..token.end).unwrap_or("")
    }

    fn kw_at(&self, offset: usize, kw: &str) -> bool {
        self.tokens
            .get(self.pos + offset)
            .is_some_and(|t| t.kind == Kind::Word && self.text(t).eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.kw_at(0, kw);
        if found {
            self.pos += 1;
        }
        found
    }

    fn punct_at(&self, offset: usize, c: u8) -> bool {
        self.tokens
            .get(self.pos + offset)
            .is_some_and(|t| t.kind == Kind::Punct(c))
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    /// Whether the token at `offset` makes the word before it a parameter
    /// name (`SET time_zone_thing TO`, `SET role = x`, `SET a.b …`) rather
    /// than a keyword of a special form.
    fn name_follows_at(&self, offset: usize) -> bool {
        self.kw_at(offset, "TO") || self.punct_at(offset, b'=') || self.punct_at(offset, b'.')
    }

    /// An identifier: unquoted ones fold to lower case, quoted ones keep
    /// their case with `""` unescaped.
    fn ident(&mut self) -> Option<String> {
        let token = self.tokens.get(self.pos)?;
        let text = self.text(token);
        let name = match token.kind {
            Kind::Word => text.to_ascii_lowercase(),
            Kind::QuotedIdent => text
                .get(1..text.len().saturating_sub(1))?
                .replace("\"\"", "\""),
            _ => return None,
        };
        self.pos += 1;
        Some(name)
    }

    /// `ident ('.' ident)*`, e.g. `attache.role`.
    fn var_name(&mut self) -> Option<String> {
        let mut name = self.ident()?;
        while self.punct_at(0, b'.') {
            self.pos += 1;
            name.push('.');
            name.push_str(&self.ident()?);
        }
        Some(name)
    }

    /// The rest of the statement as a value; a lone keyword from
    /// `defaults` means [`SetValue::Default`]. `None` if nothing is left.
    fn value(&self, defaults: &[&str]) -> Option<SetValue> {
        let first = self.tokens.get(self.pos)?;
        let last = self.tokens.last()?;
        if self.pos + 1 == self.tokens.len() && defaults.iter().any(|d| self.kw_at(0, d)) {
            return Some(SetValue::Default);
        }
        let raw = self.src.get(first.start..last.end)?;
        Some(SetValue::Value(raw.to_owned()))
    }

    fn set_of(name: &str, value: Option<SetValue>) -> Option<SessionCommand> {
        value.map(|value| SessionCommand::Set {
            name: name.to_owned(),
            value,
        })
    }

    fn set(&mut self) -> Option<SessionCommand> {
        if self.eat_kw("LOCAL") {
            return Some(SessionCommand::SetLocalOrTransaction);
        }
        if self.kw_at(0, "SESSION") && !self.name_follows_at(1) {
            self.pos += 1;
            if self.kw_at(0, "CHARACTERISTICS") {
                return Some(SessionCommand::SetLocalOrTransaction);
            }
            if self.kw_at(0, "AUTHORIZATION") {
                return Some(SessionCommand::SetIdentity);
            }
        }
        if !self.name_follows_at(1) {
            if let Some(special) = self.set_special() {
                return special;
            }
        }
        self.generic_set()
    }

    /// The keyword forms of SET. Outer `None`: not a special form.
    fn set_special(&mut self) -> Option<Option<SessionCommand>> {
        let slot = Some(Some(SessionCommand::SetLocalOrTransaction));
        if ["TRANSACTION", "CONSTRAINTS"]
            .iter()
            .any(|k| self.kw_at(0, k))
        {
            return slot;
        }
        let identity =
            self.kw_at(0, "ROLE") || (self.kw_at(0, "SESSION") && self.kw_at(1, "AUTHORIZATION"));
        if identity {
            return Some(Some(SessionCommand::SetIdentity));
        }
        if self.kw_at(0, "TIME") && self.kw_at(1, "ZONE") {
            self.pos += 2;
            return Some(Self::set_of("timezone", self.value(&["LOCAL", "DEFAULT"])));
        }
        if self.eat_kw("SCHEMA") {
            return Some(Self::set_of("search_path", self.value(&[])));
        }
        if self.eat_kw("NAMES") {
            let value = self.value(&["DEFAULT"]).unwrap_or(SetValue::Default);
            return Some(Self::set_of("client_encoding", Some(value)));
        }
        if self.kw_at(0, "XML") && self.kw_at(1, "OPTION") {
            self.pos += 2;
            return Some(Self::set_of("xmloption", self.value(&[])));
        }
        None
    }

    fn generic_set(&mut self) -> Option<SessionCommand> {
        let name = self.var_name()?;
        if !self.eat_kw("TO") && !self.punct_at(0, b'=') {
            return None;
        }
        if self.punct_at(0, b'=') {
            self.pos += 1;
        }
        let value = self.value(&["DEFAULT"])?;
        if is_one_of(&name, TRANSACTION_SCOPED) {
            return Some(SessionCommand::SetLocalOrTransaction);
        }
        if is_one_of(&name, IDENTITY) {
            return Some(SessionCommand::SetIdentity);
        }
        Some(SessionCommand::Set { name, value })
    }

    fn reset(&mut self) -> Option<SessionCommand> {
        let command = if self.eat_kw("ALL") {
            SessionCommand::ResetAll
        } else if self.kw_at(0, "TIME") && self.kw_at(1, "ZONE") {
            self.pos += 2;
            reset_of("timezone")
        } else if ["TRANSACTION", "ISOLATION", "LEVEL"]
            .iter()
            .enumerate()
            .all(|(i, k)| self.kw_at(i, k))
        {
            self.pos += 3;
            SessionCommand::SetLocalOrTransaction
        } else if self.kw_at(0, "SESSION") && self.kw_at(1, "AUTHORIZATION") {
            self.pos += 2;
            reset_of("session_authorization")
        } else {
            let name = self.var_name()?;
            if is_one_of(&name, TRANSACTION_SCOPED) {
                SessionCommand::SetLocalOrTransaction
            } else {
                SessionCommand::Reset { name }
            }
        };
        self.at_end().then_some(command)
    }

    fn discard(&mut self) -> Option<SessionCommand> {
        (self.eat_kw("ALL") && self.at_end()).then_some(SessionCommand::DiscardAll)
    }

    fn deallocate(&mut self) -> Option<SessionCommand> {
        // `DEALLOCATE prepare` deallocates a statement named "prepare".
        if self.kw_at(0, "PREPARE") && self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        let name = if self.eat_kw("ALL") {
            None
        } else {
            Some(self.ident()?)
        };
        self.at_end().then_some(SessionCommand::Deallocate { name })
    }

    fn listen(&mut self) -> Option<SessionCommand> {
        self.ident()?;
        self.at_end().then_some(SessionCommand::Listen)
    }

    fn unlisten(&mut self) -> Option<SessionCommand> {
        if self.punct_at(0, b'*') {
            self.pos += 1;
        } else {
            self.ident()?;
        }
        self.at_end().then_some(SessionCommand::Unlisten)
    }
}

fn reset_of(name: &str) -> SessionCommand {
    SessionCommand::Reset {
        name: name.to_owned(),
    }
}

/// PostgreSQL looks parameters up case-insensitively, so `"Role"` is `role`.
fn is_one_of(name: &str, set: &[&str]) -> bool {
    set.iter().any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests;
