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
use super::CROSSSLOT;
use crate::core::redis::conn::encode_command;
use crate::core::redis::{Mux, Node};

pub(super) struct Txn {
    /// The private connection and its shard, once the shard is known.
    conn: Option<(usize, Arc<Mux>)>,
    /// The server of that connection, to notice a failover under it.
    server: Option<Weak<Node>>,
    /// MULTI was answered here and must be sent before the first command.
    multi_pending: bool,
    /// Keyless commands queued (answered `+QUEUED` here) before any keyed
    /// one said which node the transaction runs on; sent after MULTI.
    deferred: Vec<Bytes>,
    in_multi: bool,
    poisoned: bool,
}

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
                    deferred: Vec::new(),
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
                    deferred: Vec::new(),
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
        if cmd.is("WATCH") && txn.in_multi {
            // Redis's answer; the transaction stays open and unharmed.
            return self.error("ERR WATCH inside MULTI is not allowed");
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
            if !ends {
                // UNWATCH inside MULTI: queued, like any keyless command.
                return self.in_txn(cmd, raw);
            }
            if cmd.is("EXEC") && !txn.deferred.is_empty() {
                // Only keyless commands: any node runs them.
                self.open_txn_conn(0);
                self.send_txn(raw);
                self.txn = None;
                return;
            }
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
        self.send_txn(raw);
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

    /// A command refused before it could be queued (unknown, denied, not
    /// possible through a proxy): inside MULTI it makes EXEC fail with
    /// EXECABORT, as Redis flags a transaction on a rejected command.
    pub(super) fn reject(&mut self, text: &str) {
        if let Some(t) = self.txn.as_mut().filter(|t| t.in_multi) {
            t.poisoned = true;
        }
        self.error(text);
    }

    /// A command inside a transaction: onto its node's private connection.
    /// Between WATCH and MULTI commands run at once, as on any connection:
    /// one for another node (or spanning nodes) takes its usual route
    /// there. Inside MULTI, a keyless command before any keyed one waits
    /// (queued) for the node to be known.
    pub(super) fn in_txn(&mut self, cmd: &Command, raw: Bytes) {
        let node = self.node_for(cmd);
        let sharded = self.ctx.topology.is_sharded();
        let Some(txn) = self.txn.as_mut() else { return };
        let elsewhere = match (&node, &txn.conn) {
            (Err(()), Some(_)) => true,
            (Ok(Some(n)), Some((m, _))) => n != m,
            _ => false,
        };
        if elsewhere && !txn.in_multi && !cmd.is("WATCH") {
            return super::route::route(self, cmd, raw);
        }
        let node = match (node, &txn.conn) {
            (Err(()), _) => {
                txn.poisoned = true;
                return self.error(CROSSSLOT);
            }
            (Ok(Some(n)), Some((m, _))) if n != *m => {
                txn.poisoned = true;
                return self.error(CROSSSLOT);
            }
            (Ok(Some(n)), None) => n,
            (_, Some((m, _))) => *m,
            // With one node there is nothing to wait for: the transaction
            // starts at once (so a failover under it is noticed at EXEC).
            (Ok(None), None) if txn.in_multi && sharded => return self.defer(raw),
            (Ok(None), None) => 0,
        };
        if txn.conn.is_none() {
            self.open_txn_conn(node);
        }
        self.send_txn(raw);
    }

    /// Queues a keyless command until the transaction's node is known;
    /// held in memory here, so bounded like a pipeline.
    fn defer(&mut self, raw: Bytes) {
        let max = self.ctx.config.max_pipeline;
        let Some(txn) = self.txn.as_mut() else { return };
        if txn.deferred.len() >= max {
            return self.reject(&format!(
                "ERR attache: more than {max} keyless commands queued before the transaction's first key (max_pipeline)"
            ));
        }
        txn.deferred.push(raw);
        self.ready(Bytes::from_static(QUEUED));
    }

    /// The transaction's private connection, to `node`'s server.
    fn open_txn_conn(&mut self, node: usize) {
        let setup = self.setup();
        let n = self.ctx.topology.node_for_shard(node);
        let Some(txn) = self.txn.as_mut() else { return };
        let mux = Arc::new(Mux::single_use(n.target.clone(), setup, n.stats.clone()));
        txn.conn = Some((node, mux));
        txn.server = Some(Arc::downgrade(&n));
    }

    /// Sends `raw` on the transaction's connection, after a MULTI still
    /// owed to the server and the commands deferred behind it, whose
    /// replies were given here already (only `raw`'s reaches the client).
    fn send_txn(&mut self, raw: Bytes) {
        let Some(txn) = self.txn.as_mut() else { return };
        let Some((_, mux)) = txn.conn.clone() else {
            return;
        };
        let mut prefix = Vec::new();
        let mut replies = 1;
        if std::mem::take(&mut txn.multi_pending) {
            prefix = multi();
            replies += 1;
        }
        for d in std::mem::take(&mut txn.deferred) {
            prefix.extend_from_slice(&d);
            replies += 1;
        }
        let rx = match replies {
            1 => mux.send(0, raw),
            n => {
                prefix.extend_from_slice(&raw);
                mux.send_n(0, Bytes::from(prefix), n)
            }
        };
        self.wait_reply(rx);
    }
}

const QUEUED: &[u8] = b"+QUEUED\r\n";

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
