//! Attaché: a connection ambassador. The library holds the runtime; the binary
//! in `main.rs` only parses the command line and calls into it.
//!
//! accept ([`server`]) → parse ([`frontend`], using `protocols/*`) → route and
//! pool ([`core`]) → backend connections ([`core`], over [`net`]) → respond.
//! [`app`] wires them together from a [`config`]; [`admin`] serves health,
//! metrics and status over HTTP; [`demo`] shows them off.

pub mod admin;
pub mod app;
pub mod config;
pub mod core;
pub mod demo;
pub mod frontend;
pub mod import;
pub mod live;
pub mod net;
pub mod reload;
pub mod server;
