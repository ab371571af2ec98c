//! Raw RESP for the sentinel tests: a client that records every reply,
//! error replies included (the reply type, parser and encoder are
//! `tests/support/resp.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use super::wire::{encode, parse, Resp};

/// Longest any single test request may take before it counts as a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A raw RESP connection to Attaché, one request at a time.
pub struct Client {
    pub tcp: TcpStream,
    pub buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect to attache");
        tcp.set_nodelay(true).unwrap();
        Client {
            tcp,
            buf: BytesMut::new(),
        }
    }

    /// Sends one command and reads its reply; a closed connection or no
    /// reply within [`CALL_TIMEOUT`] is an `Err` describing what happened.
    pub async fn call(&mut self, args: &[&str]) -> Result<Resp, String> {
        self.tcp
            .write_all(&encode(args))
            .await
            .map_err(|e| format!("write to attache failed: {e}"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            if let Some((r, used)) = parse(&self.buf) {
                let _ = self.buf.split_to(used);
                return Ok(r);
            }
            match tokio::time::timeout_at(deadline, self.tcp.read_buf(&mut self.buf)).await {
                Err(_) => return Err(format!("no reply within {CALL_TIMEOUT:?}")),
                Ok(Ok(0)) => return Err("attache closed the connection".into()),
                Ok(Err(e)) => return Err(format!("read from attache failed: {e}")),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Sends every command in one write, then reads all the replies.
    pub async fn pipeline(&mut self, cmds: &[Vec<String>]) -> Vec<Resp> {
        let mut out = Vec::new();
        for cmd in cmds {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            out.extend_from_slice(&encode(&args));
        }
        self.tcp.write_all(&out).await.expect("write to attache");
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut replies = Vec::with_capacity(cmds.len());
        while replies.len() < cmds.len() {
            if let Some((r, used)) = parse(&self.buf) {
                let _ = self.buf.split_to(used);
                replies.push(r);
                continue;
            }
            match tokio::time::timeout_at(deadline, self.tcp.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                other => panic!("pipeline: {} replies, then {other:?}", replies.len()),
            }
        }
        replies
    }

    /// Like [`Client::call`] but any failure panics.
    pub async fn cmd(&mut self, args: &[&str]) -> Resp {
        match self.call(args).await {
            Ok(r) => r,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }
}
