//! Backend (Redis): commands that cannot share a connection. Blocking
//! commands get a connection of their own for as long as they block;
//! pub/sub, MONITOR and client tracking turn the session into a byte relay
//! to a connection of its own for the rest of the session, so pushes of
//! either RESP version reach the client as the server sent them.

use crate::net::Stream;
use attache_redis_protocol::command::DedicatedReason;
use attache_redis_protocol::frame::Version;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::session::{RedisSessionError, Session};
use crate::core::redis::topology::Node;
use crate::core::redis::{Mux, Reply, Setup};

/// Runs one blocking command on a connection of its own.
pub(super) fn blocking(
    node: &Node,
    version: Version,
    db: u32,
    raw: Bytes,
) -> oneshot::Receiver<Reply> {
    let (tx, rx) = oneshot::channel();
    let (target, stats) = (node.target.clone(), node.stats.clone());
    tokio::spawn(async move {
        let mux = Mux::with_stats(target, Setup { version, db }, 1, stats);
        let reply = mux
            .send(0, raw)
            .await
            .unwrap_or(Err(crate::core::redis::RedisBackendError::Lost));
        let _ = tx.send(reply);
    });
    rx
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
    if !rest.is_empty() {
        server.write_all(&rest).await?;
    }
    if !leftover.is_empty() {
        client.write_all(&leftover).await?;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    Ok(())
}
