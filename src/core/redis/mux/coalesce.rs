//! Backend (Redis), writing to a pipe: whether a small batch waits one
//! scheduler turn for other clients' commands to join it.

/// Yields in a row that brought no other command before the writer stops
/// yielding.
pub(super) const MISSES_BEFORE_SKIP: u32 = 32;
/// While skipping, one batch in this many still yields, to notice that
/// other clients have arrived.
pub(super) const PROBE_EVERY: u32 = 16;

/// Decides whether a small batch waits one scheduler turn for company.
///
/// The turn pays off under concurrency (fifty clients' commands leave in
/// one write) and is pure cost for a single client (a deferred wake-up and
/// an extra `epoll_wait` per command, about a tenth of a round trip on
/// loopback). It adapts from what the last turns brought.
#[derive(Debug, Default)]
pub(super) struct Coalesce {
    /// Turns in a row that brought nothing.
    misses: u32,
    /// Batches written without a turn since the last probe.
    skipped: u32,
}

impl Coalesce {
    pub(super) fn try_now(&mut self) -> bool {
        if self.misses < MISSES_BEFORE_SKIP {
            return true;
        }
        self.skipped += 1;
        if self.skipped >= PROBE_EVERY {
            self.skipped = 0;
            return true;
        }
        false
    }

    pub(super) fn record(&mut self, helped: bool) {
        self.misses = if helped {
            0
        } else {
            self.misses.saturating_add(1)
        };
    }
}
