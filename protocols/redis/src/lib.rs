//! Parse and route (sans-IO): the Redis protocol pieces Attaché needs, with
//! no sockets and no tasks, so that every piece is table-tested.
//!
//! - [`frame`]: RESP2/RESP3 framing with raw bytes kept for forwarding, and
//!   the encoders for replies the proxy writes itself.
//! - [`inline`]: the space-separated command form telnet and health checks send.
//! - [`command`]: commands, the Redis 7.0 command table, key extraction,
//!   blocking commands and connection affinity.
//! - [`slot`]: Redis Cluster hash slots (CRC16 and `{hash tags}`).
//! - [`ketama`]: twemproxy-compatible consistent hashing and key hashes.
//! - [`split`]: splitting multi-key commands across shards and merging replies.

pub mod command;
pub mod frame;
pub mod inline;
pub mod ketama;
pub mod slot;
pub mod split;

pub use command::Command;
pub use frame::{Frame, Version};
