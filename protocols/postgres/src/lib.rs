//! Parse (sans-IO): the PostgreSQL v3 wire protocol pieces Attaché needs, with
//! no sockets and no tasks, so that every piece is table-tested and fuzzable.
//!
//! - [`frame`]: splitting a byte stream into messages, with a size limit.
//! - [`startup`]: the untagged first packet (startup, SSL/GSS requests, cancel).
//! - [`messages`]: building and reading the few messages the proxy touches.
//! - [`auth`]: SCRAM-SHA-256 and MD5, both as server and as client.
//! - [`classify`]: the little SQL the proxy must understand (SET, RESET, …).
//! - [`readwrite`]: read/write statement classification for replica routing.
//! - [`sqlstate`]: error codes Attaché itself answers with.

pub mod auth;
pub mod classify;
pub mod frame;
pub mod messages;
pub mod readwrite;
pub mod sqlstate;
pub mod startup;
