//! Route (Redis Sentinel): the current primary, as the sentinels say, and
//! failover shielding. A watcher subscribes to `+switch-master` on a
//! sentinel (and asks `SENTINEL get-master-addr-by-name` every second in
//! case a message is missed). Requests that provably did not run — the
//! connection was refused, or the old primary answered READONLY or LOADING
//! — wait for the new primary (up to `failover_timeout`) and are sent
//! again, so clients ride through a failover without errors.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use attache_redis_protocol::frame::{Frame, Version};
use bytes::Bytes;
use tokio::sync::watch;
use tracing::{info, warn};

use super::conn::{self, RedisBackendError, Setup};
use super::mux::Reply;
use super::topology::{Node, TargetTemplate};

pub struct Sentinel {
    template: TargetTemplate,
    sentinels: Vec<String>,
    master: String,
    primary: RwLock<Option<Arc<Node>>>,
    /// Bumped whenever the primary changes, so waiting requests retry.
    changed: watch::Sender<u64>,
}

impl Sentinel {
    pub fn start(template: TargetTemplate, sentinels: Vec<String>) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let master = template.cfg.master_name.clone().unwrap_or_default();
        let s = Arc::new(Self {
            template,
            sentinels,
            master,
            primary: RwLock::new(None),
            changed,
        });
        tokio::spawn(watch_sentinels(Arc::downgrade(&s)));
        s
    }

    /// The current primary; before the first answer, a node nobody
    /// listens on, whose refused connections make requests wait.
    pub fn primary(&self) -> Arc<Node> {
        if let Some(n) = self.primary.read().ok().and_then(|p| p.clone()) {
            return n;
        }
        Arc::new(Node::new(self.template.target("127.0.0.1:0".into()), 1))
    }

    fn set_primary(&self, addr: String) {
        let same = self
            .primary
            .read()
            .ok()
            .and_then(|p| p.as_ref().map(|n| n.addr == addr))
            .unwrap_or(false);
        if same {
            return;
        }
        info!(master = %self.master, primary = %addr, "Redis primary is now {addr}");
        let node = Arc::new(Node::new(
            self.template.target(addr),
            self.template.cfg.connections_per_node,
        ));
        if let Ok(mut p) = self.primary.write() {
            *p = Some(node);
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Sends to the primary, waiting out a failover for requests that did
    /// not run.
    pub async fn request(self: Arc<Self>, lane: usize, raw: Bytes, setup: Setup) -> Reply {
        let deadline = tokio::time::Instant::now() + self.template.cfg.failover_timeout.0;
        let mut changes = self.changed.subscribe();
        loop {
            let rx = self.primary().mux(setup).send(lane, raw.clone());
            let reply = rx.await.unwrap_or(Err(RedisBackendError::Lost));
            let retry = match &reply {
                Err(RedisBackendError::Unavailable { .. }) => true,
                Ok(bytes) => {
                    bytes.starts_with(b"-READONLY")
                        || bytes.starts_with(b"-LOADING")
                        || bytes.starts_with(b"-MASTERDOWN")
                }
                Err(_) => false,
            };
            if !retry || tokio::time::Instant::now() >= deadline {
                return reply;
            }
            // Wait for the sentinels to name a primary, or poll again soon.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(200)),
                changes.changed(),
            )
            .await;
        }
    }

    async fn ask(&self, sentinel: &str) -> Result<String, RedisBackendError> {
        let target = sentinel_target(&self.template, sentinel);
        let args: [&[u8]; 3] = [
            b"SENTINEL",
            b"get-master-addr-by-name",
            self.master.as_bytes(),
        ];
        match conn::one_shot(&target, &args).await? {
            Frame::Array(a) if a.len() == 2 => {
                let part = |f: &Frame| {
                    f.as_bytes()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                match (part(&a[0]), part(&a[1])) {
                    (Some(ip), Some(port)) => Ok(format!("{ip}:{port}")),
                    _ => Err(RedisBackendError::Protocol(
                        "bad get-master-addr-by-name reply".into(),
                    )),
                }
            }
            other => Err(RedisBackendError::Refused(format!(
                "sentinel does not know master {:?}: {other:?}",
                self.master
            ))),
        }
    }
}

/// Sentinels are reached without the data nodes' credentials.
fn sentinel_target(template: &TargetTemplate, addr: &str) -> conn::RedisTarget {
    let mut t = template.target(addr.to_owned());
    t.username = None;
    t.password = None;
    t
}

/// Follows the sentinels until the view is dropped: ask for the primary,
/// then listen for `+switch-master`, re-asking every second.
async fn watch_sentinels(view: Weak<Sentinel>) {
    let mut i = 0usize;
    loop {
        let Some(s) = view.upgrade() else { return };
        let addr = s.sentinels[i % s.sentinels.len().max(1)].clone();
        i += 1;
        match s.ask(&addr).await {
            Ok(primary) => s.set_primary(primary),
            Err(error) => {
                warn!(sentinel = %addr, %error, "sentinel did not answer");
                drop(s);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let result = listen(&s, &addr).await;
        drop(s);
        if let Err(error) = result {
            warn!(sentinel = %addr, %error, "lost the sentinel subscription");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Subscribes to `+switch-master` and applies switches; every second
/// without one, asks again (a message may have been missed).
async fn listen(s: &Arc<Sentinel>, addr: &str) -> Result<(), RedisBackendError> {
    let target = sentinel_target(&s.template, addr);
    let (mut tcp, mut buf) = conn::open_with(&target, &[b"SUBSCRIBE", b"+switch-master"]).await?;
    loop {
        let next = tokio::time::timeout(
            Duration::from_secs(1),
            conn::read_frame(&mut tcp, &mut buf, Version::Resp2, &target.limits),
        )
        .await;
        match next {
            Err(_) => {
                let primary = s.ask(addr).await?;
                s.set_primary(primary);
            }
            Ok(frame) => {
                if let Some(new) = switch_target(&frame?, &s.master) {
                    s.set_primary(new);
                }
            }
        }
    }
}

/// `message +switch-master "<name> <old-ip> <old-port> <new-ip> <new-port>"`
fn switch_target(frame: &Frame, master: &str) -> Option<String> {
    let Frame::Array(parts) = frame else {
        return None;
    };
    let payload = parts.get(2)?.as_bytes()?;
    let text = std::str::from_utf8(payload).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [name, _, _, ip, port] if *name == master => Some(format!("{ip}:{port}")),
        _ => None,
    }
}
