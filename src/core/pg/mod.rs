//! Backend (Postgres): server connections, their authentication, the pools
//! that share them between clients, and cancel routing.

pub mod cancel;
pub mod cluster;
pub mod conn;
pub mod login;
pub mod pool;
pub mod slots;

pub use cancel::{CancelRegistry, CancelTarget};
pub use cluster::{Cluster, ReadTarget};
pub use conn::{BackendError, ServerConn, ServerTarget};
pub use pool::{PgPool, PoolKey, PoolStats, Pools};
