//! Route and backend for HTTP egress: each upstream cluster's endpoints,
//! how one is picked for a try, when one is ejected, how many retries the
//! cluster can afford, and the pooled connections to it.
//!
//! - [`endpoint`]: one resolved address, its load and its outlier state.
//! - [`balance`]: round-robin, least-request and P2C over EWMA latency.
//! - [`outlier`]: passive ejection after consecutive failures.
//! - [`budget`]: the retry budget.

pub mod balance;
pub mod budget;
pub mod cluster;
pub mod endpoint;
pub mod h1;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod route;
pub mod stats;

pub use cluster::{Cluster, ClusterError, Overflow};
pub use pool::{Body, BoxError, ConnectError};
