//! Test support: the Postgres wire protocol spoken byte by byte, for tests
//! that need what no driver sends (a batch without Sync, a Flush, an
//! unfinished startup). Every read is bounded, so a misbehaving Attaché
//! fails the test instead of hanging it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const READ_BUDGET: Duration = Duration::from_secs(5);

pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const PROTOCOL_3_0: i32 = 3 << 16;

/// An untagged packet: length, then `code` and `rest`.
pub fn untagged(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut out = ((8 + rest.len()) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(rest);
    out
}

pub fn startup_packet(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    untagged(version, &body)
}

/// A tagged message: tag, length, body.
pub fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

pub fn query(sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, sql);
    tagged(b'Q', &b)
}

/// Parse with no parameter types.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, sql);
    b.extend_from_slice(&0i16.to_be_bytes());
    tagged(b'P', &b)
}

/// Bind with no parameters, all results in text.
pub fn bind(portal: &str, statement: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    cstr(&mut b, statement);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    tagged(b'B', &b)
}

pub fn execute(portal: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    b.extend_from_slice(&0i32.to_be_bytes());
    tagged(b'E', &b)
}

/// Close of a statement (`S`) or portal (`P`).
pub fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    cstr(&mut b, name);
    tagged(b'C', &b)
}

pub fn sync() -> Vec<u8> {
    tagged(b'S', &[])
}

pub fn flush() -> Vec<u8> {
    tagged(b'H', &[])
}

pub fn copy_data(data: &[u8]) -> Vec<u8> {
    tagged(b'd', data)
}

pub fn copy_done() -> Vec<u8> {
    tagged(b'c', &[])
}

pub async fn send(s: &mut TcpStream, parts: &[Vec<u8>]) {
    s.write_all(&parts.concat())
        .await
        .expect("write to Attaché");
}

pub async fn read_byte(s: &mut TcpStream) -> u8 {
    tokio::time::timeout(READ_BUDGET, s.read_u8())
        .await
        .expect("Attaché must answer within the read budget")
        .expect("one byte")
}

/// Reads one tagged message; `None` when Attaché closed the connection.
pub async fn read_message(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(READ_BUDGET, read_message_unbounded(s))
        .await
        .expect("Attaché must answer or close within the read budget")
}

/// Reads one tagged message with no time limit of its own (for tests
/// that check nothing comes: wrap it in a short timeout).
pub async fn read_message_unbounded(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let tag = s.read_u8().await.ok()?;
    let len = s.read_i32().await.ok()?;
    assert!((4..1 << 20).contains(&len), "bad length {len}");
    let mut body = vec![0; len as usize - 4];
    s.read_exact(&mut body).await.ok()?;
    Some((tag, body))
}

/// The `C` (SQLSTATE) and `M` fields of an ErrorResponse body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            _ => {}
        }
    }
    (code, message)
}

/// Reads messages up to and including ReadyForQuery; panics on close.
pub async fn read_until_ready(s: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut seen = Vec::new();
    loop {
        let Some((tag, body)) = read_message(s).await else {
            panic!("connection closed after {:?}", tags(&seen));
        };
        seen.push((tag, body));
        if tag == b'Z' {
            return seen;
        }
    }
}

/// Like [`read_until_ready`] for a login: an ErrorResponse fails the test.
pub async fn read_login(s: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let seen = read_until_ready(s).await;
    if let Some((_, body)) = seen.iter().find(|(t, _)| *t == b'E') {
        panic!("login failed: {:?}", error_fields(body));
    }
    seen
}

pub fn tags(seen: &[(u8, Vec<u8>)]) -> String {
    seen.iter().map(|(t, _)| *t as char).collect()
}

/// The first column of the first DataRow among `seen`, as text.
pub fn first_column(seen: &[(u8, Vec<u8>)]) -> Option<String> {
    let (_, body) = seen.iter().find(|(t, _)| *t == b'D')?;
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    Some(String::from_utf8_lossy(body.get(6..6 + len)?).into_owned())
}

/// A simple query over a raw session; returns the first DataRow's first
/// column as text.
pub async fn raw_query_one(s: &mut TcpStream, sql: &str) -> String {
    s.write_all(&query(sql)).await.unwrap();
    let seen = read_until_ready(s).await;
    if let Some((_, body)) = seen.iter().find(|(t, _)| *t == b'E') {
        panic!("query failed: {:?}", error_fields(body));
    }
    first_column(&seen).expect("a row")
}

/// Connects and logs in as `user` to `database` with trust auth.
pub async fn raw_login(addr: std::net::SocketAddr, user: &str, database: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect to Attaché");
    let p = startup_packet(PROTOCOL_3_0, &[("user", user), ("database", database)]);
    s.write_all(&p).await.unwrap();
    read_login(&mut s).await;
    s
}
