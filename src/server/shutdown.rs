//! Accept: the shutdown signal every session listens to, and the drain that
//! waits for sessions to finish (mini-redis style: a watch channel to tell,
//! a channel whose senders are held by sessions to count them).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, watch};

/// Held by each session: tells it to wind down, and its drop tells the
/// trigger it is gone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
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
        Signal(Some(Box::pin(async move {
            let _ = rx.wait_for(|v| *v).await;
        })))
    }
}

/// See [`Shutdown::signal`]. Once fired it stays pending, so a loop that
/// keeps polling it after reacting does not fire twice.
pub struct Signal(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Signal {
    /// Resolves once, when shutdown begins.
    pub async fn fired(&mut self) {
        match self.0.as_mut() {
            Some(f) => {
                f.await;
                self.0 = None;
            }
            None => std::future::pending().await,
        }
    }
}

/// Owned by the process: begins shutdown and waits for the drain.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
    alive_tx: Option<mpsc::Sender<()>>,
    alive_rx: mpsc::Receiver<()>,
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownTrigger {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        let (alive_tx, alive_rx) = mpsc::channel(1);
        Self {
            tx,
            alive_tx: Some(alive_tx),
            alive_rx,
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
            _alive: self.alive_tx.clone().unwrap_or_else(|| mpsc::channel(1).0),
        }
    }

    pub fn trigger(&self) {
        let _ = self.tx.send(true);
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
