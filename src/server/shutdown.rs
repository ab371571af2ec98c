//! Accept: the shutdown signal every session listens to, and the drain that
//! waits for sessions to finish (mini-redis style: a watch channel to tell,
//! a channel whose senders are held by sessions to count them).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::{mpsc, watch};

/// Held by each session: tells it to wind down, and its drop tells the
/// trigger it is gone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    /// Set by the trigger just before it sends on `rx`'s channel.
    begun: Arc<AtomicBool>,
    _alive: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }

    /// The signal as one future that lives across a session loop's turns.
    /// A fresh [`Shutdown::wait`] in every `select!` registers with the
    /// channel's waiter list and leaves it again (a lock each way) per
    /// turn, which a pipelined session pays per read; this registers once.
    pub fn signal(&self) -> Signal {
        let mut rx = self.rx.clone();
        Signal {
            // Unconstrained: with the task's budget spent, a cooperative
            // `wait_for` would return Pending without joining the waiter
            // list, and the fast path below would never ask it again.
            wait: Some(Box::pin(tokio::task::unconstrained(async move {
                let _ = rx.wait_for(|v| *v).await;
            }))),
            begun: self.begun.clone(),
            registered: None,
        }
    }
}

/// See [`Shutdown::signal`]. Once fired it stays pending, so a loop that
/// keeps polling it after reacting does not fire twice.
pub struct Signal {
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    begun: Arc<AtomicBool>,
    /// The waker the channel holds for us. Polled again with the same
    /// waker and before the trigger's flag is set, the channel has nothing
    /// new to say: the poll is answered without taking its waiter lock,
    /// which a session loop would otherwise pay on every turn.
    registered: Option<Waker>,
}

impl Signal {
    /// Whether shutdown has begun (no waiting, no lock).
    pub fn begun(&self) -> bool {
        self.begun.load(Ordering::Acquire)
    }

    /// Resolves once, when shutdown begins.
    pub async fn fired(&mut self) {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(wait) = self.wait.as_mut() else {
            return Poll::Pending;
        };
        let same_waker = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker && !self.begun.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        match wait.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.wait = None;
                self.registered = None;
                Poll::Ready(())
            }
            Poll::Pending => {
                if !same_waker {
                    self.registered = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// Owned by the process: begins shutdown and waits for the drain.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
    begun: Arc<AtomicBool>,
    alive_tx: Option<mpsc::Sender<()>>,
    alive_rx: mpsc::Receiver<()>,
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ShutdownTrigger {
    /// Dropped without a trigger, the channel closes, which ends every
    /// wait; the flag lets [`Signal`]'s fast path see that too.
    fn drop(&mut self) {
        self.begun.store(true, Ordering::Release);
    }
}

impl ShutdownTrigger {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        let (alive_tx, alive_rx) = mpsc::channel(1);
        Self {
            tx,
            begun: Arc::new(AtomicBool::new(false)),
            alive_tx: Some(alive_tx),
            alive_rx,
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
            begun: self.begun.clone(),
            _alive: self.alive_tx.clone().unwrap_or_else(|| mpsc::channel(1).0),
        }
    }

    pub fn trigger(&self) {
        // The flag first: a session polled between the two steps finds
        // the flag set and asks the channel, whose send then wakes it.
        self.begun.store(true, Ordering::Release);
        // `send` would drop the value while no session is subscribed, and
        // one subscribing after that would never see shutdown begin.
        self.tx.send_replace(true);
    }

    /// Signals shutdown and waits until every session has ended, or until
    /// `timeout`; returns whether the drain completed.
    pub async fn drain(mut self, timeout: std::time::Duration) -> bool {
        self.trigger();
        self.alive_tx = None;
        tokio::time::timeout(timeout, self.alive_rx.recv())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests;
