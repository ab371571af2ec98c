//! Backend (Redis): connections to Redis servers, set up for one protocol
//! version and database, and the multiplexer that lets many clients share a
//! few of them.

pub mod cluster;
pub mod conn;
pub mod mux;
pub mod ring;
pub mod sentinel;
pub mod topology;

pub use conn::{RedisBackendError, RedisTarget, Setup};

/// How one command of a client picks its connections.
#[derive(Debug, Clone, Copy)]
pub struct LaneChoice {
    /// The client's lane: which of a node's shared connections it uses.
    pub lane: usize,
    /// The client has nothing unanswered, so may move to the connection
    /// that suits one command best (`Mux::pick_lane`).
    pub may_move: bool,
    /// Fixed for the client's life: spreads clients' reads over replicas
    /// (the lane cannot: free clients mostly choose the same one).
    pub spread: usize,
}

impl LaneChoice {
    /// Queues `raw` on `mux`: on the client's lane or, when it may move and
    /// the caller allows it (`movable`), on the connection that suits one
    /// command best. Returns the lane used, which becomes the client's.
    pub fn send(
        &self,
        mux: &Mux,
        raw: bytes::Bytes,
        movable: bool,
    ) -> (usize, tokio::sync::oneshot::Receiver<Reply>) {
        let lane = match self.may_move && movable {
            true => mux.pick_lane(1),
            false => self.lane,
        };
        (lane, mux.send(lane, raw))
    }
}
pub use mux::{Mux, Reply};
pub use topology::{Node, Topology, TopologyError};
