//! Parse → route (Redis, `single` mode): a client's consecutive plain
//! commands travel to the server as one batch with one reply slot, so a
//! pipeline costs one channel hop and one wake-up per batch rather than per
//! command. The plain lane copies such commands from the read buffer
//! without splitting them into arguments at all.

use attache_redis_protocol::command::{self, lookup_command, Affinity, RequestLimits};
use attache_redis_protocol::Command;
use bytes::{Buf, BytesMut};
use tokio::time::Instant;

use super::order::Channel;
use super::replies::Slot;
use super::session::Session;

/// Most commands one batch carries.
const MAX_BATCH_COMMANDS: usize = 128;

impl Session {
    /// Adds a plain command to the client's batch (see `batchable`).
    pub(super) fn batch(&mut self, raw: &[u8]) {
        self.batch.extend_from_slice(raw);
        self.batched += 1;
        if self.batched >= MAX_BATCH_COMMANDS {
            self.flush_batch();
        }
    }

    /// Sends the batched commands as one request with one reply slot.
    pub(super) fn flush_batch(&mut self) {
        if self.batched == 0 {
            return;
        }
        let (bytes, count) = (
            self.batch.split().freeze(),
            std::mem::take(&mut self.batched),
        );
        let mux = self.primary_mux();
        // With nothing of its own unanswered, the client's commands may go
        // out on any of the shared connections without losing their order:
        // the one that suits the batch best (see `Mux::pick_lane`).
        self.prune_orphans();
        if !self.unanswered() {
            self.lane = mux.pick_lane(count);
        }
        let rx = mux.send_batch(self.lane, bytes, count);
        let deadline = Some(Instant::now() + self.ctx.config.command_timeout.0);
        self.push_slot(Slot::Wait {
            rx,
            deadline,
            count,
        });
    }

    /// Whether [`Session::take_plain`] may run: what [`Session::batchable`]
    /// asks of the session rather than of the command, and that plain
    /// commands may go to the shared pipes now (see [`Session::claim`]).
    /// Only a command off the plain lane can change it.
    pub(super) fn open_plain_lane(&mut self) -> bool {
        self.authed
            && !self.in_transaction()
            && self.ctx.batches_plain_commands()
            && !self.ctx.denies_any()
            && self.claim(Channel::Shared(self.setup()))
    }

    /// The plain lane: a complete plain command at the front of `rbuf` is
    /// copied into the batch as it is, without being split into arguments
    /// (no allocation, no reference counts). The same commands
    /// [`Session::batchable`] would batch; anything else is left for the
    /// general path.
    pub(super) fn take_plain(&mut self, rbuf: &mut BytesMut, limits: &RequestLimits) -> bool {
        let max = limits.frame.max_frame_size;
        let Some(len) = command::fast::plain_len_from(rbuf, max, &mut self.scan) else {
            return false;
        };
        self.batch(&rbuf[..len]);
        rbuf.advance(len);
        true
    }

    /// Plain commands in `single` mode: forwarded as they are to the
    /// primary's shared connections, so consecutive ones can travel as one
    /// batch. Anything answered locally, gated, stateful or routed
    /// elsewhere is not.
    pub(super) fn batchable(&self, cmd: &Command) -> bool {
        const LOCAL: &[&str] = &[
            "AUTH",
            "HELLO",
            "QUIT",
            "PING",
            "ECHO",
            "CLIENT",
            "SELECT",
            "RESET",
            "SYNC",
            "PSYNC",
            "REPLCONF",
            "ASKING",
            "READONLY",
            "READWRITE",
        ];
        if !self.authed || self.in_transaction() || !self.ctx.batches_plain_commands() {
            return false;
        }
        // One table lookup; plain commands (GET, SET, …) need nothing else.
        let Some(info) = lookup_command(cmd) else {
            return false;
        };
        if !info.special && !self.ctx.denies_any() {
            return true;
        }
        let Some(upper) = cmd.name_upper() else {
            return false;
        };
        let name = upper.as_str().unwrap_or_default();
        !LOCAL.contains(&name)
            && !self.ctx.is_denied(name)
            && command::affinity_of(info, cmd) == Affinity::Shared
    }
}
