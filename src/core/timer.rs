//! Backend → respond: one session's deadline timer, for what it waits on
//! one thing after another (a Redis session's oldest reply, an HTTP app
//! connection's upstream tries).
//!
//! Why not `timeout_at` per wait: each new tokio timer is inserted into the
//! runtime's timer wheel and removed again, and when the wheel was empty (a
//! lone client, whose previous timer was just cancelled) the insert wakes
//! the runtime's driver through its eventfd: one extra `write` syscall and
//! one extra event per command, on the path a single client waits on. This
//! timer is armed once and moved forward only when it fires before the
//! deadline it guards, so a steady stream of requests re-arms it about once
//! per timeout period, not once per request.

use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// A lazily re-armed deadline timer.
#[derive(Default)]
pub struct LazyTimer {
    /// Made on first use (inside the runtime).
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where the timer is armed, while it has not fired.
    armed: Option<Instant>,
}

impl LazyTimer {
    /// Resolves once `deadline` has passed. An earlier arming is kept (it
    /// fires first and is then moved to `deadline`); a later one is pulled
    /// in.
    pub async fn until(&mut self, deadline: Instant) {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            let at = match self.armed {
                Some(at) if at <= deadline => at,
                _ => {
                    sleep.as_mut().reset(deadline);
                    self.armed = Some(deadline);
                    deadline
                }
            };
            sleep.as_mut().await;
            self.armed = None;
            if at >= deadline {
                return;
            }
        }
    }

    /// `fut`, or `None` once `deadline` has passed first.
    pub async fn within<F: std::future::Future>(
        &mut self,
        deadline: Instant,
        fut: F,
    ) -> Option<F::Output> {
        tokio::select! {
            biased;
            v = fut => Some(v),
            () = self.until(deadline) => None,
        }
    }

    /// Where the timer is armed now (tests).
    #[cfg(test)]
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }
}

#[cfg(test)]
mod tests;
