//! A minimal blocking RESP2 client the harness uses to steer its Redis *backends* (readiness,
//! cluster slot moves, sentinel queries) without spawning `redis-cli` per call and without
//! putting passwords on any command line.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::RedisError;

/// Per-operation socket budget; harness commands are tiny, so a stall means a wedged server.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest bulk string or array the parser accepts (no test reply comes close).
const MAX_LEN: usize = 64 << 20;

/// Credentials a connection sends with `AUTH` before its first command.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Auth {
    /// ACL user; `None` means the `default` user.
    pub user: Option<String>,
    /// Password; `None` means no `AUTH` at all.
    pub password: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR …`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n`; `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*n`; `None` is the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Status, error, integer or bulk reply as text (lossy); None for arrays and nulls.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) | Reply::Error(s) => Some(s.clone()),
            Reply::Int(n) => Some(n.to_string()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Bulk(None) | Reply::Array(_) => None,
        }
    }

    /// Elements of an array reply; empty for anything else.
    pub(crate) fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            _ => &[],
        }
    }

    /// The value after `key` in a flat `[key, value, key, value, …]` array (SENTINEL replies).
    pub(crate) fn field(&self, key: &str) -> Option<String> {
        let items = self.items();
        items
            .chunks(2)
            .find(|pair| pair[0].text().as_deref() == Some(key))
            .and_then(|pair| pair.get(1))
            .and_then(Reply::text)
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply; malformed input is an `InvalidData` error.
pub(crate) fn parse(input: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(input)?;
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" => Ok(Reply::Status(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Int(number(rest)?)),
        "$" => {
            let Some(len) = length(rest)? else {
                return Ok(Reply::Bulk(None));
            };
            let mut data = vec![0; len + 2];
            input.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(invalid("bulk string not terminated by CRLF"));
            }
            data.truncate(len);
            Ok(Reply::Bulk(Some(data)))
        }
        "*" => {
            let Some(len) = length(rest)? else {
                return Ok(Reply::Array(None));
            };
            let items = (0..len).map(|_| parse(input)).collect::<Result<_, _>>()?;
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(invalid("unknown RESP type byte")),
    }
}

fn read_line(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") || line.len() < 3 {
        return Err(if line.is_empty() {
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
        } else {
            invalid("reply line not terminated by CRLF")
        });
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid("reply line is not UTF-8"))
}

fn number(text: &str) -> std::io::Result<i64> {
    text.parse().map_err(|_| invalid("bad integer in reply"))
}

/// A bulk or array length; `-1` is null.
fn length(text: &str) -> std::io::Result<Option<usize>> {
    match number(text)? {
        -1 => Ok(None),
        n if n >= 0 && (n as u64) <= MAX_LEN as u64 => Ok(Some(n as usize)),
        _ => Err(invalid("reply length out of range")),
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Command text for error messages, cut before any credential-bearing argument.
pub(crate) fn describe(args: &[&[u8]]) -> String {
    let mut words = Vec::new();
    for arg in args {
        let word = String::from_utf8_lossy(arg);
        if word.eq_ignore_ascii_case("AUTH") || word.eq_ignore_ascii_case("AUTH2") {
            words.push("…".to_string());
            break;
        }
        words.push(word.into_owned());
    }
    words.join(" ")
}

/// One authenticated connection to `127.0.0.1:port`.
pub(crate) struct Conn {
    port: u16,
    stream: BufReader<TcpStream>,
}

impl Conn {
    /// Connects and, if `auth` has a password, authenticates.
    pub(crate) fn open(port: u16, auth: &Auth) -> Result<Conn, RedisError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let context = || format!("connecting to Redis at {addr}");
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .map_err(|e| RedisError::io(context(), e))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| RedisError::io(context(), e))?;
        let mut conn = Conn {
            port,
            stream: BufReader::new(stream),
        };
        if let Some(password) = &auth.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &auth.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.ok(&args)?;
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply; error replies are returned, not raised.
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let context = || format!("`{}` on port {}", describe(args), self.port);
        self.stream
            .get_mut()
            .write_all(&encode(args))
            .map_err(|e| RedisError::io(context(), e))?;
        parse(&mut self.stream).map_err(|e| RedisError::io(context(), e))
    }

    /// Like [`Conn::call`] but an error reply becomes [`RedisError::Reply`].
    pub(crate) fn ok(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        match self.call(args)? {
            Reply::Error(reply) => Err(RedisError::Reply {
                command: describe(args),
                port: self.port,
                reply,
            }),
            reply => Ok(reply),
        }
    }

    /// [`Conn::ok`] for commands whose arguments are all text.
    pub(crate) fn cmd(&mut self, args: &[&str]) -> Result<Reply, RedisError> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.ok(&args)
    }
}

/// Opens a connection and runs one text command (see [`Conn::cmd`]).
pub(crate) fn command(port: u16, auth: &Auth, args: &[&str]) -> Result<Reply, RedisError> {
    Conn::open(port, auth)?.cmd(args)
}

/// True once `PING` answers `PONG` (a loading or unreachable server is simply not ready).
pub(crate) fn pings(port: u16, auth: &Auth) -> bool {
    matches!(command(port, auth, &["PING"]), Ok(Reply::Status(s)) if s == "PONG")
}

/// The value of `field` in the `field:value` lines of an `INFO` reply.
pub(crate) fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(k, _)| *k == field)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests;
