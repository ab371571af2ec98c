//! RESP2 for the Redis tests that speak it raw: a reply type, a parser
//! that takes one reply off the front of a buffer, and an encoder.
#![allow(dead_code)]

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Err(String),
    Int(i64),
    /// Bulk strings as text: every value in these tests is text.
    Bulk(String),
    /// `$-1` or `*-1`.
    Nil,
    Array(Vec<Resp>),
}

impl Resp {
    pub fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.to_string())
    }
    pub fn ok() -> Resp {
        Resp::Simple("OK".into())
    }
    pub fn queued() -> Resp {
        Resp::Simple("QUEUED".into())
    }
    /// The error text; panics on anything else.
    pub fn err(&self) -> &str {
        match self {
            Resp::Err(t) => t,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }
    /// The items of an array reply; panics on anything else.
    pub fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(a) => a,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
    /// A bulk reply as text; panics on anything else.
    pub fn text(&self) -> String {
        match self {
            Resp::Bulk(b) => b.clone(),
            other => panic!("expected a bulk reply, got {other:?}"),
        }
    }
}

/// Parses one reply from the front of `b`: the reply and its length, or
/// `None` while incomplete.
pub fn parse(b: &[u8]) -> Option<(Resp, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&b[1..end]).into_owned();
    let mut pos = end + 2;
    let num = || line.parse::<i64>().expect("RESP length or integer");
    let resp = match b[0] {
        b'+' => Resp::Simple(line),
        b'-' => Resp::Err(line),
        b':' => Resp::Int(num()),
        b'$' | b'*' if num() < 0 => Resp::Nil,
        b'$' => {
            let n = num() as usize;
            if b.len() < pos + n + 2 {
                return None;
            }
            let data = String::from_utf8_lossy(&b[pos..pos + n]).into_owned();
            pos += n + 2;
            Resp::Bulk(data)
        }
        b'*' => {
            let mut items = Vec::new();
            for _ in 0..num() {
                let (r, used) = parse(&b[pos..])?;
                pos += used;
                items.push(r);
            }
            Resp::Array(items)
        }
        other => panic!("unexpected RESP2 type byte {:?}", other as char),
    };
    Some((resp, pos))
}

pub fn encode<S: AsRef<str>>(args: &[S]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}
