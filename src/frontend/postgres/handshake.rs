//! Accept → parse (Postgres): the untagged opening of a connection. Answers
//! SSLRequest (upgrading with the local certificate when configured) and
//! GSSENCRequest, forwards CancelRequests, and returns the startup packet.

use std::time::Duration;

use attache_postgres_protocol::frame::{self, Message};
use attache_postgres_protocol::sqlstate;
use attache_postgres_protocol::startup::{self, Startup, StartupPacket};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::context::PgContext;
use super::error::FrontendError;
use super::send_fatal;
use crate::net::{tls, Stream};

/// A client that does not finish its opening in this time is dropped, so
/// idle sockets cannot hold client slots.
const OPENING_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the opening. `None` means the connection was a cancel request and
/// is done.
pub(super) async fn open(
    ctx: &PgContext,
    tcp: TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<(Stream, Startup)>, FrontendError> {
    let mut stream = Stream::Plain(tcp);
    for _ in 0..3 {
        let packet = match read_startup(&mut stream, buf).await {
            Ok(p) => p,
            Err(e) => {
                send_fatal(&mut stream, e.sqlstate(), &e.to_string()).await;
                return Err(e);
            }
        };
        match packet {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest if !buf.is_empty() => {
                // Bytes sent before the upgrade answer could be injected by a
                // man in the middle; PostgreSQL refuses them too.
                let e = FrontendError::protocol("data received after an encryption request");
                send_fatal(&mut stream, e.sqlstate(), &e.to_string()).await;
                return Err(e);
            }
            StartupPacket::SslRequest => stream = upgrade(ctx, stream).await?,
            StartupPacket::GssEncRequest => stream.write_all(b"N").await?,
            StartupPacket::Cancel { pid, secret } => {
                ctx.cancel.cancel(pid, &secret).await;
                return Ok(None);
            }
            StartupPacket::Startup(s) => return Ok(Some((stream, s))),
        }
    }
    let e = FrontendError::protocol("too many encryption requests before startup");
    send_fatal(&mut stream, e.sqlstate(), &e.to_string()).await;
    Err(e)
}

async fn upgrade(ctx: &PgContext, mut stream: Stream) -> Result<Stream, FrontendError> {
    match (&ctx.state().local_tls, stream) {
        (Some(config), Stream::Plain(mut tcp)) => {
            tcp.write_all(b"S").await?;
            // Bounded like the rest of the opening: a client that stops
            // mid-handshake must not hold its slot.
            let tls = tokio::time::timeout(OPENING_TIMEOUT, tls::accept(config.clone(), tcp))
                .await
                .map_err(|_| FrontendError::ClientTimeout)??;
            Ok(Stream::ServerTls(Box::new(tls)))
        }
        (None, Stream::Plain(mut tcp)) => {
            tcp.write_all(b"N").await?;
            Ok(Stream::Plain(tcp))
        }
        (_, s) => {
            stream = s;
            let e = FrontendError::protocol("SSLRequest on an encrypted connection");
            send_fatal(&mut stream, e.sqlstate(), &e.to_string()).await;
            Err(e)
        }
    }
}

async fn read_startup(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<StartupPacket, FrontendError> {
    let read = async {
        loop {
            let packet = frame::next_startup(buf)
                .map_err(|_| FrontendError::protocol("invalid length of startup packet"))?;
            if let Some(body) = packet {
                return startup::parse(&body).map_err(|e| FrontendError::protocol(e.to_string()));
            }
            buf.reserve(1024);
            if stream.read_buf(buf).await? == 0 {
                return Err(FrontendError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    };
    tokio::time::timeout(OPENING_TIMEOUT, read)
        .await
        .map_err(|_| FrontendError::ClientTimeout)?
}

/// Reads one tagged message during login, bounded in time and size.
pub(super) async fn read_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Message, FrontendError> {
    let read = async {
        loop {
            if let Some(m) = frame::next_message(buf, max)? {
                return Ok(m);
            }
            buf.reserve(1024);
            if stream.read_buf(buf).await? == 0 {
                return Err(FrontendError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    };
    tokio::time::timeout(OPENING_TIMEOUT, read)
        .await
        .map_err(|_| FrontendError::ClientTimeout)?
}

/// Answers a client over `max_client_connections` with 53300 once it has
/// said who it is, as PostgreSQL does, so drivers show the usual message.
pub(super) async fn reject_too_many(tcp: TcpStream, max: usize) {
    let mut stream = Stream::Plain(tcp);
    let mut buf = BytesMut::new();
    for _ in 0..3 {
        match read_startup(&mut stream, &mut buf).await {
            Ok(StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {
                if stream.write_all(b"N").await.is_err() {
                    return;
                }
            }
            Ok(StartupPacket::Startup(_)) => break,
            _ => return,
        }
    }
    let message = format!("sorry, too many clients already (max_client_connections = {max})");
    send_fatal(&mut stream, sqlstate::TOO_MANY_CONNECTIONS, &message).await;
}

/// Tells a client asking for a newer minor version or `_pq_.` options what
/// we speak, as PostgreSQL does, instead of failing the connection.
pub(super) async fn negotiate(
    client: &mut Stream,
    startup: &attache_postgres_protocol::startup::Startup,
) -> Result<(), FrontendError> {
    let unknown: Vec<String> = startup
        .params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.clone())
        .collect();
    if startup.minor > 0 || !unknown.is_empty() {
        let mut out = BytesMut::new();
        attache_postgres_protocol::messages::negotiate_protocol_version(&mut out, &unknown);
        client.write_all(&out).await?;
    }
    Ok(())
}

/// The user a startup packet names; PostgreSQL's error when it names none.
pub(super) fn startup_user(
    startup: &attache_postgres_protocol::startup::Startup,
) -> Result<&str, FrontendError> {
    startup
        .param("user")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            FrontendError::refused(
                attache_postgres_protocol::sqlstate::INVALID_AUTHORIZATION,
                "no PostgreSQL user name specified in startup packet",
            )
        })
}
