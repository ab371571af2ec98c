//! Backend (Postgres): one connection to a server, opened, authenticated and
//! ready for queries. The session loop reads and writes its stream directly;
//! the helpers here serve login and pool hygiene, where speed does not matter.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_postgres_protocol::frame::{self, FrameError, Message};
use attache_postgres_protocol::messages::{self, ErrorFields};
use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::cancel::CancelTarget;
use crate::config::types::{Secret, SslMode};
use crate::core::error::{ErrorSource, Retry};
use crate::net::tls::{self, TlsError};
use crate::net::Stream;

/// Where and as whom to connect. Shared by every connection of one pool.
#[derive(Debug, Clone)]
pub struct ServerTarget {
    /// `host:port` as configured.
    pub addr: String,
    pub host: String,
    pub dbname: String,
    pub user: String,
    pub sslmode: SslMode,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub connect_timeout: Duration,
    pub max_message_size: usize,
}

/// What Attaché proves itself to the server with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSecret {
    Plain(Secret),
    /// `md5…` as stored by PostgreSQL: enough for md5 auth, not for SCRAM.
    Md5Hash(Secret),
}

impl ServerSecret {
    pub fn from_configured(s: &Secret) -> Option<Self> {
        let v = s.expose();
        if attache_postgres_protocol::auth::scram::ScramVerifier::is_verifier(v) {
            None
        } else if attache_postgres_protocol::auth::md5::is_md5_hash(v) {
            Some(Self::Md5Hash(s.clone()))
        } else {
            Some(Self::Plain(s.clone()))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to server {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to server {addr} after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("TLS to server {addr}: {source}")]
    Tls { addr: String, source: TlsError },
    #[error("server {addr} does not accept TLS, and sslmode={mode:?} requires it")]
    TlsRefused { addr: String, mode: SslMode },
    #[error("server {addr} refused login: {} ({})", .fields.message, .fields.code)]
    Refused { addr: String, fields: ErrorFields },
    #[error("server asks for a password and none is configured for this user")]
    PasswordRequired,
    #[error(
        "server {addr} asks for an authentication method Attaché does not support (code {code})"
    )]
    UnsupportedAuth { addr: String, code: i32 },
    #[error("authentication with server {addr}: {detail}")]
    Auth { addr: String, detail: String },
    #[error("server connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("server sent a malformed message: {0}")]
    Protocol(String),
    #[error("server message too large: {0}")]
    Frame(#[from] FrameError),
}

impl BackendError {
    pub fn source_kind(&self) -> ErrorSource {
        match self {
            Self::PasswordRequired => ErrorSource::Internal,
            _ => ErrorSource::Upstream,
        }
    }

    /// Login failures happen before any client byte reached the server.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Io(_) | Self::Closed | Self::Protocol(_) | Self::Frame(_) => Retry::Unsafe,
            _ => Retry::Safe,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An authenticated server connection and what Attaché knows of its state.
pub struct ServerConn {
    pub stream: Stream,
    pub rbuf: BytesMut,
    pub id: u64,
    pub addr: Arc<str>,
    /// The server's own BackendKeyData (set at login) with its in-flight
    /// cancel count, handed to the cancel slot of each client that holds
    /// this connection.
    pub cancel: Arc<CancelTarget>,
    /// ParameterStatus values reported at login.
    pub params: Vec<(String, String)>,
    /// Session settings Attaché applied on top of the login defaults
    /// (lowercase name → SQL value text).
    pub settings: BTreeMap<String, String>,
    /// Server-side prepared statement names and their last-use tick.
    pub prepared: HashMap<Arc<str>, u64>,
    pub prepared_tick: u64,
    /// Set when the protocol state is unknown; the pool then discards it.
    pub broken: bool,
    /// An extended-protocol message went out after the last Sync: the
    /// server may hold an implicit transaction, or skip everything after an
    /// error, until a Sync comes, so the connection belongs to this client
    /// until it sends one (and it is answered), whatever the last
    /// ReadyForQuery said.
    pub unsynced: bool,
    /// The server failed the batch not synced yet (an ErrorResponse came
    /// and no Sync has been sent since): it ignores everything up to that
    /// Sync, and has already told the client why.
    pub skipping: bool,
    pub created: Instant,
    pub max_message_size: usize,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("pid", &self.cancel.pid)
            .finish_non_exhaustive()
    }
}

impl ServerConn {
    /// Opens TCP (and TLS per sslmode), then logs in.
    pub async fn connect(
        target: &ServerTarget,
        secret: Option<&ServerSecret>,
    ) -> Result<Self, BackendError> {
        let fut = Self::connect_inner(target, secret);
        match tokio::time::timeout(target.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::ConnectTimeout {
                addr: target.addr.clone(),
                after: target.connect_timeout,
            }),
        }
    }

    async fn connect_inner(
        target: &ServerTarget,
        secret: Option<&ServerSecret>,
    ) -> Result<Self, BackendError> {
        let tcp =
            TcpStream::connect(&target.addr)
                .await
                .map_err(|source| BackendError::Connect {
                    addr: target.addr.clone(),
                    source,
                })?;
        let _ = tcp.set_nodelay(true);
        let stream = negotiate_tls(tcp, target).await?;
        let addr: Arc<str> = Arc::from(target.addr.as_str());
        let mut conn = ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            addr: addr.clone(),
            cancel: CancelTarget::new(addr, 0, Arc::from(&[][..])),
            params: Vec::new(),
            settings: BTreeMap::new(),
            prepared: HashMap::new(),
            prepared_tick: 0,
            broken: false,
            unsynced: false,
            skipping: false,
            created: Instant::now(),
            max_message_size: target.max_message_size,
        };
        super::login::login(&mut conn, target, secret).await?;
        Ok(conn)
    }

    /// Reads one whole message (login and hygiene paths only).
    pub async fn read_message(&mut self) -> Result<Message, BackendError> {
        loop {
            if let Some(m) = frame::next_message(&mut self.rbuf, self.max_message_size)? {
                return Ok(m);
            }
            self.rbuf.reserve(8192);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(BackendError::Closed);
            }
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Runs a simple query and waits for ReadyForQuery, returning the first
    /// error the server reported. Used for reset queries between clients.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Option<ErrorFields>, BackendError> {
        let mut out = BytesMut::new();
        messages::query(&mut out, sql);
        self.write_all(&out).await?;
        let mut first_error = None;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'E' if first_error.is_none() => {
                    first_error = Some(messages::read_error_fields(m.body()));
                }
                b'Z' => return Ok(first_error),
                _ => {}
            }
        }
    }

    /// Runs a simple query and returns its first row as text columns, or
    /// the server's error. Health probes only.
    pub async fn query_row(
        &mut self,
        sql: &str,
    ) -> Result<Result<Vec<Option<String>>, ErrorFields>, BackendError> {
        let mut out = BytesMut::new();
        messages::query(&mut out, sql);
        self.write_all(&out).await?;
        let mut row = None;
        let mut error = None;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'D' if row.is_none() => {
                    let cols = messages::read_data_row(m.body())
                        .map_err(|e| BackendError::Protocol(e.to_string()))?;
                    let text = cols
                        .into_iter()
                        .map(|c| c.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect();
                    row = Some(text);
                }
                b'E' if error.is_none() => error = Some(messages::read_error_fields(m.body())),
                b'Z' => {
                    return Ok(match error {
                        Some(e) => Err(e),
                        None => Ok(row.unwrap_or_default()),
                    })
                }
                _ => {}
            }
        }
    }

    /// Forgets statements and settings after `DISCARD ALL` or `RESET ALL`.
    pub fn forget_session_state(&mut self, statements: bool) {
        self.settings.clear();
        if statements {
            self.prepared.clear();
        }
    }
}

async fn negotiate_tls(mut tcp: TcpStream, target: &ServerTarget) -> Result<Stream, BackendError> {
    let Some((config, name)) = &target.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let mut req = BytesMut::new();
    messages::ssl_request(&mut req);
    tcp.write_all(&req).await?;
    let answer = tcp.read_u8().await?;
    match answer {
        b'S' => {
            let tls = tls::connect(config.clone(), name.clone(), tcp)
                .await
                .map_err(|source| BackendError::Tls {
                    addr: target.addr.clone(),
                    source,
                })?;
            Ok(Stream::ClientTls(Box::new(tls)))
        }
        b'N' if target.sslmode == SslMode::Prefer => Ok(Stream::Plain(tcp)),
        b'N' => Err(BackendError::TlsRefused {
            addr: target.addr.clone(),
            mode: target.sslmode,
        }),
        other => Err(BackendError::Protocol(format!(
            "unexpected answer {other:#x} to SSLRequest"
        ))),
    }
}
