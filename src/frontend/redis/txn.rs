//! Route (Redis): MULTI/EXEC/WATCH on a private connection. A transaction
//! runs on the node of its first key (WATCH's keys, or the first keyed
//! command after MULTI), so `MULTI` itself is answered here and sent to the
//! server only together with that first command. A later command for
//! another node poisons the transaction: EXEC then discards it with
//! EXECABORT, as Redis does after a queueing error.

use std::sync::{Arc, Weak};

use attache_redis_protocol::frame::encode;
use attache_redis_protocol::Command;
use bytes::{Bytes, BytesMut};

use super::session::Session;
use crate::core::redis::conn::encode_command;
use crate::core::redis::{Mux, Node};

pub(super) struct Txn {
    /// The private connection and its shard, once the shard is known.
    conn: Option<(usize, Arc<Mux>)>,
    /// The server of that connection, to notice a failover under it.
    server: Option<Weak<Node>>,
    /// MULTI was answered here and must be sent before the first command.
    multi_pending: bool,
    in_multi: bool,
    poisoned: bool,
}

const CROSS: &str = "CROSSSLOT Keys in request don't hash to the same slot";

impl Session {
    pub(super) fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Inside MULTI (not only WATCH): PING and friends are queued too.
    pub(super) fn in_multi(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| t.in_multi)
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    pub(super) fn transaction(&mut self, cmd: &Command, raw: Bytes) {
        let Some(txn) = self.txn.as_mut() else {
            if cmd.is("MULTI") || cmd.is("WATCH") {
                // A new private connection: see `Channel::Private`.
                self.transactions = self.transactions.wrapping_add(1);
            }
            if cmd.is("MULTI") {
                self.txn = Some(Txn {
                    conn: None,
                    server: None,
                    multi_pending: true,
                    in_multi: true,
                    poisoned: false,
                });
                return self.ready(Bytes::from_static(b"+OK\r\n"));
            }
            if cmd.is("WATCH") {
                self.txn = Some(Txn {
                    conn: None,
                    server: None,
                    multi_pending: false,
                    in_multi: false,
                    poisoned: false,
                });
                return self.in_txn(cmd, raw);
            }
            // EXEC/DISCARD/UNWATCH outside a transaction: Redis's answers.
            return match () {
                _ if cmd.is("UNWATCH") => self.ready(Bytes::from_static(b"+OK\r\n")),
                _ if cmd.is("EXEC") => self.error("ERR EXEC without MULTI"),
                _ => self.error("ERR DISCARD without MULTI"),
            };
        };
        if cmd.is("MULTI") {
            if txn.in_multi {
                return self.error("ERR MULTI calls can not be nested");
            }
            txn.in_multi = true;
            return self.in_txn(cmd, raw);
        }
        let ends = cmd.is("EXEC") || cmd.is("DISCARD") || (cmd.is("UNWATCH") && !txn.in_multi);
        // Sentinel mode: the old primary would take the EXEC and lose it
        // when it becomes the new one's replica.
        let moved = cmd.is("EXEC")
            && match (&txn.server, self.ctx.topology.sentinel()) {
                (Some(server), Some(s)) => {
                    !std::ptr::eq(server.as_ptr(), Arc::as_ptr(&s.primary()))
                }
                _ => false,
            };
        if cmd.is("EXEC") && (txn.poisoned || moved) {
            if let Some((_, mux)) = &txn.conn {
                // Its +OK is not the client's: nobody waits for it.
                drop(mux.send(0, Bytes::from(discard())));
            }
            self.txn = None;
            return self.error(match moved {
                true => "EXECABORT Transaction discarded because the primary changed (failover); nothing ran",
                false => "EXECABORT Transaction discarded because of previous errors.",
            });
        }
        if txn.conn.is_none() {
            // Nothing reached a server yet: answer as Redis would.
            self.txn = None;
            return match () {
                _ if cmd.is("EXEC") => {
                    let mut b = BytesMut::new();
                    encode::array_header(&mut b, 0);
                    self.ready(b.freeze())
                }
                _ => self.ready(Bytes::from_static(b"+OK\r\n")),
            };
        }
        self.send_txn(raw, None);
        if ends {
            self.txn = None;
        }
    }

    /// Ends an open transaction without running it (RESET): its private
    /// connection is told to drop what it queued and watched. Nobody waits
    /// for that reply.
    pub(super) fn end_transaction(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        if let Some((_, mux)) = &txn.conn {
            let end = match txn.in_multi && !txn.multi_pending {
                true => discard(),
                false => unwatch(),
            };
            drop(mux.send(0, Bytes::from(end)));
        }
    }

    /// A command inside a transaction: onto its node's private connection.
    pub(super) fn in_txn(&mut self, cmd: &Command, raw: Bytes) {
        let node = self.node_for(cmd);
        let setup = self.setup();
        let ctx = self.ctx.clone();
        let Some(txn) = self.txn.as_mut() else { return };
        let node = match (node, &txn.conn) {
            (Err(()), _) => {
                txn.poisoned = true;
                return self.error(CROSS);
            }
            (Ok(Some(n)), Some((m, _))) if n != *m => {
                txn.poisoned = true;
                return self.error(CROSS);
            }
            (Ok(Some(n)), None) => n,
            (_, Some((m, _))) => *m,
            (Ok(None), None) => 0,
        };
        if txn.conn.is_none() {
            let n = ctx.topology.node_for_shard(node);
            let mux = Arc::new(Mux::single_use(n.target.clone(), setup, n.stats.clone()));
            txn.conn = Some((node, mux));
            txn.server = Some(Arc::downgrade(&n));
        }
        let prefix = std::mem::take(&mut txn.multi_pending).then(multi);
        self.send_txn(raw, prefix);
    }

    fn send_txn(&mut self, raw: Bytes, prefix: Option<Vec<u8>>) {
        let Some((_, mux)) = self.txn.as_ref().and_then(|t| t.conn.clone()) else {
            return;
        };
        let rx = match prefix {
            Some(mut p) => {
                p.extend_from_slice(&raw);
                mux.send_n(0, Bytes::from(p), 2)
            }
            None => mux.send(0, raw),
        };
        self.wait_reply(rx);
    }
}

fn multi() -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_command(&mut b, &[b"MULTI"]);
    b.to_vec()
}

fn discard() -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_command(&mut b, &[b"DISCARD"]);
    b.to_vec()
}

fn unwatch() -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_command(&mut b, &[b"UNWATCH"]);
    b.to_vec()
}
