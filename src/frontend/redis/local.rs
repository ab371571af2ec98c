//! Route → respond (Redis): what Attaché answers itself. Connection-level
//! commands (PING, ECHO, QUIT, AUTH, HELLO, RESET, CLIENT
//! SETNAME/GETNAME/ID, SELECT) describe the client's connection to
//! Attaché, not a server's, so they never reach a shared connection. Also
//! the gates: authentication, the deny-list and unknown commands.

use attache_redis_protocol::command::lookup_command;
use attache_redis_protocol::frame::{encode, Version};
use attache_redis_protocol::Command;
use bytes::BytesMut;

use super::session::Session;

pub(super) enum Local {
    Answered,
    Forward,
}

/// SYNC/PSYNC/REPLCONF turn the connection they arrive on into a
/// replication link: forwarded to a shared connection, every other client
/// on it would get the RDB stream and the command stream instead of replies.
const REPLICATION: &str =
    "ERR attache: replication commands (SYNC, PSYNC, REPLCONF) cannot go through a proxy; connect the replica to the server";

/// Redis's version as reported in HELLO; clients use it to pick features.
const SERVER_VERSION: &str = "7.0.0";

pub(super) fn classify(s: &mut Session, cmd: &Command) -> Local {
    let Some(upper) = cmd.name_upper() else {
        unknown(s, cmd);
        return Local::Answered;
    };
    let name = upper.as_str().unwrap_or_default();
    match name {
        "AUTH" => auth(s, cmd),
        "HELLO" => hello(s, cmd),
        "QUIT" => {
            s.ready(bytes::Bytes::from_static(b"+OK\r\n"));
            s.quit = true;
        }
        // Allowed before AUTH and run at once even inside MULTI, as by Redis.
        "RESET" if !s.ctx.is_denied("RESET") => reset(s),
        _ if !s.authed => s.error("NOAUTH Authentication required."),
        _ if s.ctx.is_denied(name) => s.reject(&format!(
            "ERR command '{name}' is disabled by Attaché's configuration"
        )),
        // They would make a shared connection a replication link (see
        // `REPLICATION`), as twemproxy and Envoy refuse them too.
        "SYNC" | "PSYNC" | "REPLCONF" => s.reject(REPLICATION),
        // Flags on the connection for the next command, which on a shared
        // connection is another client's. Attaché follows ASK itself, and
        // `read_from` decides where reads go.
        "ASKING" => s.reject(
            "ERR attache: ASKING cannot go through a proxy; Attaché follows ASK redirects itself",
        ),
        _ if lookup_command(cmd).is_none() => unknown(s, cmd),
        // Inside MULTI these are queued by the server like any command
        // (on the transaction's own connection: READONLY there harms no one).
        _ if s.in_multi() => return Local::Forward,
        "READONLY" | "READWRITE" => s.ready(bytes::Bytes::from_static(b"+OK\r\n")),
        "PING" => match cmd.arg(1) {
            None => s.ready(bytes::Bytes::from_static(b"+PONG\r\n")),
            Some(msg) => bulk(s, msg),
        },
        "ECHO" => match cmd.arg(1) {
            Some(msg) if cmd.args.len() == 2 => bulk(s, msg),
            _ => wrong_arity(s, "echo"),
        },
        "CLIENT" => return client(s, cmd),
        _ => return Local::Forward,
    }
    Local::Answered
}

/// RESET: the client's connection to Attaché goes back to a new one's
/// state (database 0, RESP2, no name, no transaction; authenticated only
/// when Attaché asks for no password). Forwarded, it would reset a shared
/// server connection (its database, protocol and login) under every other
/// client on it.
fn reset(s: &mut Session) {
    s.end_transaction();
    s.db = 0;
    s.version = Version::Resp2;
    s.name = None;
    s.authed = s.ctx.config.client_password.is_none() && s.ctx.config.client_users.is_empty();
    s.ready(bytes::Bytes::from_static(b"+RESET\r\n"));
}

fn bulk(s: &mut Session, data: &[u8]) {
    let mut b = BytesMut::new();
    encode::bulk(&mut b, data);
    s.ready(b.freeze());
}

fn wrong_arity(s: &mut Session, name: &str) {
    s.error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ));
}

/// Most bytes of client input an error reply echoes, as Redis: a reply
/// must not grow with whatever a client (even one not authenticated yet)
/// cares to send.
const ECHO_MAX: usize = 128;

/// Up to `max` bytes of `input` as text for an error line: cut at a
/// character boundary, CR and LF made spaces (as Redis does) so that the
/// echo cannot end the line.
fn echo(input: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&input[..input.len().min(max)]);
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if out.len() + ch.len_utf8() > max {
            break;
        }
        out.push(if ch == '\r' || ch == '\n' { ' ' } else { ch });
    }
    out
}

/// Redis's exact wording, so clients and humans recognise it, and its
/// bounds: the name and the arguments are echoed up to 128 bytes each.
fn unknown(s: &mut Session, cmd: &Command) {
    let name = echo(cmd.name(), ECHO_MAX);
    let mut args = String::new();
    for a in cmd.args.iter().skip(1) {
        if args.len() >= ECHO_MAX {
            break;
        }
        args.push_str(&format!("'{}' ", echo(a, ECHO_MAX - args.len())));
    }
    s.reject(&format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ));
}

/// Checks `AUTH [user] password` against `client_password` (the
/// `default` user) and `client_users`.
fn check_password(s: &Session, user: Option<&[u8]>, password: &[u8]) -> bool {
    let cfg = &s.ctx.config;
    if !auth_required(s) {
        return true;
    }
    let expected = match user {
        None | Some(b"default") => cfg.client_password.as_ref(),
        Some(name) => std::str::from_utf8(name)
            .ok()
            .and_then(|n| cfg.client_users.get(n)),
    };
    let Some(expected) = expected else {
        return false;
    };
    let e = expected.expose().as_bytes();
    e.len() == password.len() && e.iter().zip(password).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

pub(super) fn auth_required(s: &Session) -> bool {
    s.ctx.config.client_password.is_some() || !s.ctx.config.client_users.is_empty()
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn auth(s: &mut Session, cmd: &Command) {
    let (user, pass) = match cmd.args.len() {
        2 => (None, &cmd.args[1]),
        3 => (Some(&cmd.args[1][..]), &cmd.args[2]),
        _ => return wrong_arity(s, "auth"),
    };
    if !auth_required(s) {
        return s.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    if check_password(s, user, pass) {
        s.authed = true;
        s.ready(bytes::Bytes::from_static(b"+OK\r\n"));
    } else {
        s.error(WRONGPASS);
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`
fn hello(s: &mut Session, cmd: &Command) {
    let mut version = s.version;
    let mut i = 1;
    if let Some(v) = cmd.arg(1) {
        version = match &v[..] {
            b"2" => Version::Resp2,
            b"3" => Version::Resp3,
            _ => return s.error("NOPROTO unsupported protocol version"),
        };
        i = 2;
    }
    let mut name = None;
    while i < cmd.args.len() {
        let opt = &cmd.args[i];
        if opt.eq_ignore_ascii_case(b"AUTH") && i + 2 < cmd.args.len() {
            if !check_password(s, Some(&cmd.args[i + 1]), &cmd.args[i + 2]) {
                return s.error(WRONGPASS);
            }
            s.authed = true;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && i + 1 < cmd.args.len() {
            name = Some(cmd.args[i + 1].clone());
            i += 2;
        } else {
            return s.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                echo(opt, ECHO_MAX)
            ));
        }
    }
    if !s.authed {
        return s.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    s.version = version;
    if name.is_some() {
        s.name = name;
    }
    let mut b = BytesMut::new();
    let fields: [(&str, HelloValue); 7] = [
        ("server", HelloValue::Str("redis")),
        ("version", HelloValue::Str(SERVER_VERSION)),
        (
            "proto",
            HelloValue::Int(if version == Version::Resp3 { 3 } else { 2 }),
        ),
        ("id", HelloValue::Int(0)),
        ("mode", HelloValue::Str("standalone")),
        ("role", HelloValue::Str("master")),
        ("modules", HelloValue::Empty),
    ];
    encode::map_header(&mut b, fields.len(), version);
    for (k, v) in fields {
        encode::bulk(&mut b, k.as_bytes());
        match v {
            HelloValue::Str(t) => encode::bulk(&mut b, t.as_bytes()),
            HelloValue::Int(n) => encode::integer(&mut b, n),
            HelloValue::Empty => encode::array_header(&mut b, 0),
        }
    }
    s.ready(b.freeze());
}

enum HelloValue {
    Str(&'static str),
    Int(i64),
    Empty,
}

fn client(s: &mut Session, cmd: &Command) -> Local {
    let sub = cmd
        .arg(1)
        .map(|a| a.to_ascii_uppercase())
        .unwrap_or_default();
    match &sub[..] {
        b"SETNAME" if cmd.args.len() == 3 => {
            s.name = Some(cmd.args[2].clone());
            s.ready(bytes::Bytes::from_static(b"+OK\r\n"));
        }
        b"GETNAME" => match s.name.clone() {
            Some(n) => bulk(s, &n),
            None => {
                let mut b = BytesMut::new();
                encode::null(&mut b, s.version);
                s.ready(b.freeze());
            }
        },
        b"ID" => {
            let mut b = BytesMut::new();
            encode::integer(&mut b, 0);
            s.ready(b.freeze());
        }
        _ => return Local::Forward,
    }
    Local::Answered
}

/// SELECT: later commands use shared connections set to that database. An
/// index past `databases` is refused before anything is made for it: each
/// database gets its own set of shared connections, kept for good, so any
/// index let through would cost a mux per value a client cares to try.
/// The new database is then checked with a PING through its connections.
pub(super) async fn select(s: &mut Session, cmd: &Command) {
    let db = cmd
        .arg(1)
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|a| a.parse::<u32>().ok());
    let Some(db) = db else {
        return s.error("ERR value is not an integer or out of range");
    };
    if s.ctx.topology.cluster().is_some() && db != 0 {
        return s.error("ERR SELECT is not allowed in cluster mode");
    }
    if db >= s.ctx.config.databases {
        return s.error("ERR DB index is out of range");
    }
    if s.in_transaction() {
        return s.reject("ERR attache: SELECT inside a transaction is not supported");
    }
    let mux = s.ctx.first_mux(s.version, db);
    let mut ping = BytesMut::new();
    crate::core::redis::conn::encode_command(&mut ping, &[b"PING"]);
    // Bounded like any command: a stuck server must not hang the session.
    let limit = s.ctx.config.command_timeout.0;
    match tokio::time::timeout(limit, mux.send(s.lane, ping.freeze())).await {
        Ok(Ok(Ok(_))) => {
            s.db = db;
            s.ready(bytes::Bytes::from_static(b"+OK\r\n"));
        }
        Ok(Ok(Err(e))) => s.error(&e.reply_text()),
        Ok(Err(_)) => s.error("ERR attache: upstream connection lost"),
        Err(_) => s.error(&format!("ERR attache: upstream timeout after {limit:?}")),
    }
}
