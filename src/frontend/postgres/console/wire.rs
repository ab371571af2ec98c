//! Respond (Postgres admin console): a result set and the messages that
//! carry it to the client: RowDescription, DataRow, CommandComplete.
//! Proxied sessions never build rows, so these live here rather than in
//! the protocol crate.

use bytes::{BufMut, BytesMut};

/// `text`: every value Attaché shows that is not a count.
const TEXT_OID: u32 = 25;
/// `int8`: counts, so clients that look at types can sum them.
const INT8_OID: u32 = 20;

/// A column's wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Int,
}

/// One value; `Null` where Attaché has no such concept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Text(String),
    Int(i64),
    Null,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Self {
        s.map_or(Value::Null, Value::Text)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Int(n.into())
    }
}

impl From<bool> for Value {
    /// PgBouncer shows flags as 1 and 0.
    fn from(b: bool) -> Self {
        Value::Int(i64::from(b))
    }
}

/// Columns and rows of one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RowSet {
    pub columns: Vec<(&'static str, Kind)>,
    pub rows: Vec<Vec<Value>>,
}

impl RowSet {
    pub fn new(columns: &[(&'static str, Kind)]) -> Self {
        RowSet {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; a row shorter than the columns is padded with NULL
    /// and a longer one cut, so a bug cannot desynchronise the wire.
    pub fn push(&mut self, mut row: Vec<Value>) {
        row.resize(self.columns.len(), Value::Null);
        self.rows.push(row);
    }

    /// The value of `column` in row `i`.
    #[cfg(test)]
    pub fn get(&self, i: usize, column: &str) -> Option<&Value> {
        let c = self.columns.iter().position(|(n, _)| *n == column)?;
        self.rows.get(i)?.get(c)
    }

    /// RowDescription, the DataRows and CommandComplete `tag`.
    pub fn encode(&self, out: &mut BytesMut, tag: &str) {
        row_description(out, &self.columns);
        for row in &self.rows {
            data_row(out, row);
        }
        command_complete(out, tag);
    }
}

fn frame(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(body);
}

fn row_description(out: &mut BytesMut, columns: &[(&'static str, Kind)]) {
    let mut body = BytesMut::new();
    body.put_i16(i16::try_from(columns.len()).unwrap_or(i16::MAX));
    for (name, kind) in columns {
        body.put_slice(name.as_bytes());
        body.put_u8(0);
        body.put_u32(0); // no table
        body.put_i16(0); // no column number
        let (oid, len) = match kind {
            Kind::Text => (TEXT_OID, -1),
            Kind::Int => (INT8_OID, 8),
        };
        body.put_u32(oid);
        body.put_i16(len);
        body.put_i32(-1); // no type modifier
        body.put_i16(0); // text format
    }
    frame(out, b'T', &body);
}

fn data_row(out: &mut BytesMut, row: &[Value]) {
    let mut body = BytesMut::new();
    body.put_i16(i16::try_from(row.len()).unwrap_or(i16::MAX));
    for value in row {
        let text = match value {
            Value::Text(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Null => {
                body.put_i32(-1);
                continue;
            }
        };
        body.put_i32(i32::try_from(text.len()).unwrap_or(i32::MAX));
        body.put_slice(text.as_bytes());
    }
    frame(out, b'D', &body);
}

pub(super) fn command_complete(out: &mut BytesMut, tag: &str) {
    let mut body = BytesMut::with_capacity(tag.len() + 1);
    body.put_slice(tag.as_bytes());
    body.put_u8(0);
    frame(out, b'C', &body);
}

/// The answer to a query string with no command in it.
pub(super) fn empty_query(out: &mut BytesMut) {
    frame(out, b'I', &[]);
}
