//! Backend (Redis): commands that cannot share a connection. Blocking
//! commands get a connection of their own for as long as they block;
//! pub/sub, MONITOR and client tracking turn the session into a byte relay
//! to a connection of its own for the rest of the session, so pushes of
//! either RESP version reach the client as the server sent them.

use std::sync::Arc;

use crate::net::Stream;
use attache_redis_protocol::command::DedicatedReason;
use attache_redis_protocol::frame::Version;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::session::{RedisSessionError, Session};
use crate::core::redis::sentinel::Sentinel;
use crate::core::redis::topology::Node;
use crate::core::redis::{Mux, RedisBackendError, Reply, Setup};

/// How long a blocking command cut off by its server waits to hear of a
/// new primary before the client gets the error: sentinels cut a demoted
/// primary's clients right after they announce the switch.
const SWITCH_NEWS: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs one blocking command on a connection of its own.
///
/// With sentinels, a command cut off because its server stopped being the
/// primary is sent again to the new one. Sentinels end every client
/// connection of a primary they demote (and Redis unblocks a demoted
/// primary's waiters with `-UNBLOCKED`). A pop the old primary made after
/// the promotion is undone when it becomes the new primary's replica, so
/// that element is still on the new primary for the command sent again.
///
/// When the client leaves, the session drops the receiver: the task then
/// stops waiting and drops its connection, which is what makes Redis stop
/// blocking for a client nobody will answer (`BLPOP k 0` would otherwise
/// hold the task, the connection and Redis's blocked client for good).
pub(super) fn blocking(
    node: Arc<Node>,
    sentinel: Option<Arc<Sentinel>>,
    version: Version,
    db: u32,
    raw: Bytes,
) -> oneshot::Receiver<Reply> {
    let (mut tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let setup = Setup { version, db };
        let reply = tokio::select! {
            reply = run_blocking(node, sentinel, setup, raw) => reply,
            () = tx.closed() => {
                tracing::debug!("client gone: blocking command abandoned");
                return;
            }
        };
        let _ = tx.send(reply);
    });
    rx
}

/// Sends `raw` on a connection of its own until it is answered, sending
/// it again to a new primary when a failover cut it off (see
/// [`blocking`]).
async fn run_blocking(
    mut node: Arc<Node>,
    sentinel: Option<Arc<Sentinel>>,
    setup: Setup,
    raw: Bytes,
) -> Reply {
    loop {
        // Dropped with this future, it closes its connection at once.
        let mux = Mux::abandonable(node.target.clone(), setup, node.stats.clone());
        let reply = mux
            .send(0, raw.clone())
            .await
            .unwrap_or(Err(RedisBackendError::Lost));
        let cut = match &reply {
            Err(RedisBackendError::Lost | RedisBackendError::Unavailable { .. }) => true,
            Ok(b) => b.starts_with(b"-UNBLOCKED") || b.starts_with(b"-READONLY"),
            Err(_) => false,
        };
        // A failover under way may take `failover_timeout`; otherwise
        // the news of a switch that cut the connection is due at once.
        let next = match (&sentinel, cut) {
            (Some(s), true) => {
                let limit = match s.fenced() {
                    true => s.failover_timeout(),
                    false => SWITCH_NEWS,
                };
                s.primary_after(&node, limit).await
            }
            _ => None,
        };
        match next {
            Some(primary) => node = primary,
            None => return reply,
        }
    }
}

/// Relays bytes both ways between the client and a dedicated server
/// connection until either side closes.
pub(super) async fn relay(
    s: &Session,
    mut client: Stream,
    rest: BytesMut,
    reason: DedicatedReason,
) -> Result<(), RedisSessionError> {
    let setup = Setup {
        version: s.version,
        db: s.db,
    };
    // Sharded pub/sub (SSUBSCRIBE) must reach the node of its channel.
    let node = match s.pending_relay.as_ref().and_then(|(_, shard)| *shard) {
        Some(shard) => s.ctx.topology.node_for_shard(shard),
        None => s.ctx.topology.first(),
    };
    let (mut server, leftover) = match crate::core::redis::conn::connect(&node.target, setup).await
    {
        Ok(c) => c,
        Err(e) => {
            let line = format!("-{}\r\n", e.reply_text());
            client.write_all(line.as_bytes()).await?;
            return Ok(());
        }
    };
    tracing::debug!(?reason, "client switched to a dedicated server connection");
    if let Some((first, _)) = &s.pending_relay {
        server.write_all(first).await?;
    }
    if !leftover.is_empty() {
        client.write_all(&leftover).await?;
    }
    if !s.ctx.denies_any() {
        if !rest.is_empty() {
            server.write_all(&rest).await?;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return Ok(());
    }
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut server_rd, server_wr) = tokio::io::split(server);
    let to_client = tokio::io::copy(&mut server_rd, &mut client_wr);
    let to_server = guarded_copy(s, &mut client_rd, server_wr, rest);
    // Either side ending ends the relay.
    tokio::select! {
        _ = to_client => {}
        _ = to_server => {}
    }
    Ok(())
}

/// Client to server for a relay while `deny_commands` is set: the bytes
/// are cut into requests and a denied command is swapped for one the
/// server does not know (`ATTACHE-DENIED-<NAME>`), so the client gets an
/// error for it in its place among the replies, from the one writer the
/// client side has (the server's copy). Without this, a client could pass
/// the list once relayed (after `CLIENT REPLY ON`, a full UNSUBSCRIBE, or
/// any command in RESP3 pub/sub).
async fn guarded_copy<R, W>(
    s: &Session,
    client: &mut R,
    mut server: W,
    mut buf: BytesMut,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use attache_redis_protocol::command::{self, RequestLimits};
    use attache_redis_protocol::frame::Limits;
    use tokio::io::AsyncReadExt;
    let limits = RequestLimits {
        frame: Limits {
            max_frame_size: s.ctx.config.max_request_size.0 as usize,
            ..Limits::default()
        },
        ..RequestLimits::default()
    };
    let mut out = BytesMut::new();
    let mut progress = command::fast::Progress::default();
    loop {
        while let Some(req) = command::next_command_from(&mut buf, &limits, &mut progress)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
        {
            let denied = req
                .command
                .as_ref()
                .and_then(|c| c.name_upper())
                .filter(|n| n.as_str().is_some_and(|n| s.ctx.is_denied(n)));
            match denied {
                Some(name) => {
                    let swapped = format!("ATTACHE-DENIED-{}", name.as_str().unwrap_or(""));
                    out.extend_from_slice(format!("*1\r\n${}\r\n", swapped.len()).as_bytes());
                    out.extend_from_slice(swapped.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(&req.raw),
            }
        }
        if !out.is_empty() {
            server.write_all(&out).await?;
            out.clear();
        }
        buf.reserve(16 * 1024);
        if client.read_buf(&mut buf).await? == 0 {
            return server.shutdown().await;
        }
    }
}
