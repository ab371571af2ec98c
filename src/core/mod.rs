//! Route and backend: what every frontend shares to reach the remote cluster.
//! Core never imports a frontend; frontends ask core for connections.
//!
//! - [`error`]: where a failure came from and whether retrying is safe.
//! - [`pg`]: PostgreSQL server connections, their pools and cancel routing.
//! - [`http`]: HTTP upstream clusters: balancing, ejection, retry budgets.
//! - [`timer`]: a session's lazily re-armed deadline timer.

pub mod error;
pub mod gauge;
pub mod http;
pub mod pg;
pub mod redis;
pub mod timer;

pub use error::{ErrorSource, Retry};
