//! Parse: one module per protocol, each owning a client session's IO loop.
//! Frontends use `protocols/*` to understand bytes and ask [`crate::core`]
//! for server connections.

pub mod http;
pub mod postgres;
pub mod redis;
