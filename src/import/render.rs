//! Config import → the TOML text of the imported `attache.toml`, written by
//! hand rather than serialized from `config::Config`.
//!
//! Why by hand: `Secret` serializes as `<redacted>` (so `attache check`
//! never shows one), but an imported config must carry the real passwords;
//! and each value may get a comment saying where it came from. Every string
//! has `$` doubled, because the loader substitutes `${NAME}` in the whole
//! text and a SCRAM verifier is full of `$`.

/// A TOML value as the importer writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
    Array(Vec<Value>),
    /// `{ key = value, … }` in this order.
    Inline(Vec<(String, Value)>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    fn render(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&quote(s)),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.render(out);
                }
                out.push(']');
            }
            Value::Inline(fields) => {
                out.push_str("{ ");
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(" = ");
                    v.render(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// One `[a.b."c"]` table and its `key = value  # comment` lines.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    path: Vec<String>,
    entries: Vec<(String, Value, Option<String>)>,
}

impl Table {
    pub fn new(path: &[&str]) -> Table {
        Table {
            path: path.iter().map(|s| s.to_string()).collect(),
            entries: Vec::new(),
        }
    }

    pub fn set(&mut self, k: &str, v: Value) {
        self.set_noted(k, v, None);
    }

    /// Sets `k`, with a trailing comment when `note` is given.
    pub fn set_noted(&mut self, k: &str, v: Value, note: Option<&str>) {
        let note = note.map(str::to_string);
        match self.entries.iter_mut().find(|(name, _, _)| name == k) {
            Some(e) => *e = (k.to_string(), v, note),
            None => self.entries.push((k.to_string(), v, note)),
        }
    }
}

/// Tables in output order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Doc {
    pub tables: Vec<Table>,
}

impl Doc {
    pub fn push(&mut self, t: Table) {
        self.tables.push(t);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, t) in self.tables.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let header: Vec<String> = t.path.iter().map(|p| key(p)).collect();
            out.push_str(&format!("[{}]\n", header.join(".")));
            for (k, v, note) in &t.entries {
                out.push_str(&key(k));
                out.push_str(" = ");
                v.render(&mut out);
                if let Some(note) = note {
                    out.push_str("  # ");
                    out.push_str(&one_line(note));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// `# line` for each line, each on one physical line.
pub(crate) fn comments(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("# {}", one_line(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// A bare key when TOML allows one, else a quoted one.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A TOML basic string, `$` doubled for the loader's `${NAME}` substitution.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
