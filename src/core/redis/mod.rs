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
pub use mux::{Mux, Reply};
pub use topology::{Node, Topology, TopologyError};
