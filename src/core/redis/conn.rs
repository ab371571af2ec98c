//! Backend (Redis): opening a server connection and preparing it: AUTH,
//! HELLO 3 for RESP3 clients, SELECT for another database. Each step's
//! error is returned as the server's own text, so clients see the reason.

use std::time::Duration;

use attache_redis_protocol::frame::{self, Frame, Limits, Version};
use bytes::{BufMut, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::TcpStream;

use crate::config::types::Secret;
use crate::net::Stream;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub addr: String,
    /// TLS client config and the name to verify, when TLS is on.
    pub tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub connect_timeout: Duration,
    pub limits: Limits,
    /// A Redis Cluster replica serving reads: send READONLY first.
    pub readonly: bool,
}

/// Per-connection state that clients depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setup {
    pub version: Version,
    pub db: u32,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisBackendError {
    #[error("upstream {addr} unavailable: {reason}")]
    Unavailable { addr: String, reason: String },
    /// The server refused a setup step; the text is its error reply.
    #[error("{0}")]
    Refused(String),
    #[error("upstream connection lost before the reply")]
    Lost,
    #[error("upstream timeout after {0:?}")]
    Timeout(Duration),
    #[error("upstream sent a malformed reply: {0}")]
    Protocol(String),
}

impl RedisBackendError {
    /// The client-facing error line (without the leading `-`).
    pub fn reply_text(&self) -> String {
        match self {
            Self::Refused(t) => t.clone(),
            other => format!("ERR attache: {other}"),
        }
    }
}

/// Connects and runs the setup commands, returning the ready stream and any
/// bytes read past the setup replies.
pub async fn connect(
    target: &RedisTarget,
    setup: Setup,
) -> Result<(Stream, BytesMut), RedisBackendError> {
    let unavailable = |reason: String| RedisBackendError::Unavailable {
        addr: target.addr.clone(),
        reason,
    };
    let tcp = tokio::time::timeout(target.connect_timeout, TcpStream::connect(&target.addr))
        .await
        .map_err(|_| {
            unavailable(format!(
                "connect timed out after {:?}",
                target.connect_timeout
            ))
        })?
        .map_err(|e| unavailable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let tcp = match &target.tls {
        Some((config, name)) => {
            let tls = crate::net::tls::connect(config.clone(), name.clone(), tcp)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            Stream::ClientTls(Box::new(tls))
        }
        None => Stream::Plain(tcp),
    };
    let mut steps: Vec<(Vec<&[u8]>, Version)> = Vec::new();
    if let Some(pw) = &target.password {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(u) = &target.username {
            args.push(u.as_bytes());
        }
        args.push(pw.expose().as_bytes());
        steps.push((args, Version::Resp2));
    }
    if setup.version == Version::Resp3 {
        steps.push((vec![b"HELLO", b"3"], Version::Resp3));
    }
    if target.readonly {
        steps.push((vec![b"READONLY"], setup.version));
    }
    let db = setup.db.to_string();
    if setup.db != 0 {
        steps.push((vec![b"SELECT", db.as_bytes()], setup.version));
    }
    // Always end with a round trip: a server that is dying (its listener
    // still accepting after a crash) fails here, as `Unavailable`, before
    // any client command is written to it and lost.
    steps.push((vec![b"PING"], setup.version));
    let mut out = BytesMut::new();
    for (args, _) in &steps {
        encode_command(&mut out, args);
    }
    let mut tcp = tcp;
    let mut buf = BytesMut::with_capacity(4096);
    let exchange = async {
        tcp.write_all(&out)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        for (_, version) in &steps {
            let reply = read_frame(&mut tcp, &mut buf, *version, &target.limits).await?;
            if let Frame::Error(text) | Frame::BulkError(text) = reply {
                return Err(RedisBackendError::Refused(
                    String::from_utf8_lossy(&text).into_owned(),
                ));
            }
        }
        Ok(())
    };
    tokio::time::timeout(target.connect_timeout, exchange)
        .await
        .map_err(|_| unavailable("setup timed out".into()))??;
    Ok((tcp, buf))
}

pub(crate) async fn read_frame(
    tcp: &mut Stream,
    buf: &mut BytesMut,
    version: Version,
    limits: &Limits,
) -> Result<Frame, RedisBackendError> {
    loop {
        match frame::decode(buf, version, limits) {
            Ok(Some(d)) => return Ok(d.frame),
            Ok(None) => {}
            Err(e) => return Err(RedisBackendError::Protocol(e.to_string())),
        }
        buf.reserve(4096);
        match tcp.read_buf(buf).await {
            Ok(0) => return Err(RedisBackendError::Lost),
            Ok(_) => {}
            Err(e) => {
                return Err(RedisBackendError::Unavailable {
                    addr: String::new(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// RESP array of bulk strings.
pub fn encode_command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.put_slice(format!("${}\r\n", a.len()).as_bytes());
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// A control connection (RESP2, database 0) with `args` already sent: for
/// CLUSTER SLOTS, SENTINEL queries and subscriptions, not client traffic.
pub async fn open_with(
    target: &RedisTarget,
    args: &[&[u8]],
) -> Result<(Stream, BytesMut), RedisBackendError> {
    let setup = Setup {
        version: Version::Resp2,
        db: 0,
    };
    let (mut stream, buf) = connect(target, setup).await?;
    let mut req = BytesMut::new();
    encode_command(&mut req, args);
    stream
        .write_all(&req)
        .await
        .map_err(|_| RedisBackendError::Lost)?;
    Ok((stream, buf))
}

/// Runs one command on a fresh control connection and returns its reply.
pub async fn one_shot(target: &RedisTarget, args: &[&[u8]]) -> Result<Frame, RedisBackendError> {
    let (mut stream, mut buf) = open_with(target, args).await?;
    read_frame(&mut stream, &mut buf, Version::Resp2, &target.limits).await
}
