//! Backend: the two facts every failure carries, whatever its layer: who
//! caused it and whether the work may be retried. Failover logic and the
//! client-facing error text both depend on them.

/// Who a failure is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The local client sent something wrong or went away.
    Client,
    /// A server (or the network to it) failed or refused.
    Upstream,
    /// Attaché itself (a limit, a bug, shutdown).
    Internal,
}

/// Whether the failed work may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing reached a server: sending it again cannot duplicate a write.
    Safe,
    /// Some bytes may have reached a server: only the client can decide.
    Unsafe,
}
