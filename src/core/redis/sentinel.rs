//! Route (Redis Sentinel): the current primary, as the sentinels say, and
//! failover shielding. A watcher subscribes to `+switch-master` on a
//! sentinel (and asks `SENTINEL get-master-addr-by-name` every second in
//! case a message is missed). Requests that provably did not run — the
//! connection was refused, or the old primary answered READONLY or LOADING
//! — wait for the new primary (up to `failover_timeout`) and are sent
//! again, so clients ride through a failover without errors.
//!
//! With `read_from` other than `primary`, the watcher also asks
//! `SENTINEL REPLICAS` (every second, after `+switch-master` and when a
//! replica of this primary is added or goes down or up) and keeps the
//! healthy ones; read-only commands go there as in `single` mode, and back
//! to the primary when a replica cannot answer.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use attache_redis_protocol::frame::{Frame, Version};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use super::conn::{self, RedisBackendError, Setup};
use super::mux::Reply;
use super::topology::{Node, Replicas, TargetTemplate};
use super::LaneChoice;
use crate::config::redis::ReadFrom;
use order::Retrying;
pub use order::{Again, Order, Settled};

mod fence;
mod order;

/// A request queued by [`Sentinel::send`], awaiting [`Sentinel::finish`].
pub struct Sent {
    rx: oneshot::Receiver<Reply>,
    /// The lane it went out on.
    pub lane: usize,
    /// The replica it went to, for a read.
    replica: Option<String>,
    /// Primary changes since it was sent.
    changes: watch::Receiver<u64>,
}

pub struct Sentinel {
    template: TargetTemplate,
    sentinels: Vec<String>,
    master: String,
    primary: RwLock<Option<Arc<Node>>>,
    /// The primary's healthy replicas, for reads; replaced as a whole when
    /// the sentinels' list changes (nodes that stay keep their connections).
    replicas: RwLock<Arc<Replicas>>,
    /// Bumped whenever the primary changes, so waiting requests retry.
    changed: watch::Sender<u64>,
    /// Set while a failover is promoting a replica (see [`fence`]).
    fence: fence::Fence,
}

impl Sentinel {
    pub fn start(template: TargetTemplate, sentinels: Vec<String>) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let master = template.cfg.master_name.clone().unwrap_or_default();
        let replicas = Replicas::new(Vec::new(), template.cfg.read_from);
        let discovery = tokio::time::Instant::now() + template.cfg.failover_timeout.0;
        let s = Arc::new(Self {
            template,
            sentinels,
            master,
            primary: RwLock::new(None),
            replicas: RwLock::new(Arc::new(replicas)),
            changed,
            // Until the sentinels first name a primary, commands wait as
            // they do for a failover (transactions included).
            fence: watch::channel(Some(fence::Raised {
                until: discovery,
                by: None,
            }))
            .0,
        });
        tokio::spawn(watch_sentinels(Arc::downgrade(&s)));
        for addr in &s.sentinels {
            tokio::spawn(fence::watch_fence(Arc::downgrade(&s), addr.clone()));
        }
        s
    }

    /// Whether read-only commands may go to replicas (`read_from`).
    pub fn reads_from_replicas(&self) -> bool {
        self.template.cfg.read_from != ReadFrom::Primary
    }

    /// The replicas reads may use now (healthy, as the sentinels say).
    pub fn replicas(&self) -> Vec<Arc<Node>> {
        self.replica_set().nodes.clone()
    }

    fn replica_set(&self) -> Arc<Replicas> {
        match self.replicas.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The replica for this client's next read, or `None` for the primary
    /// (see [`Replicas::pick`]).
    pub fn replica_for_read(&self, lane: usize) -> Option<Arc<Node>> {
        self.replica_set().pick(lane)
    }

    /// Replaces the replica set when its addresses changed.
    pub(crate) fn set_replicas(&self, mut addrs: Vec<String>) {
        addrs.sort();
        addrs.dedup();
        let current = self.replica_set();
        let mut now: Vec<&str> = current.nodes.iter().map(|n| n.addr.as_str()).collect();
        now.sort_unstable();
        if now == addrs {
            return;
        }
        info!(master = %self.master, replicas = ?addrs, "Redis replicas for reads changed");
        let nodes = addrs
            .into_iter()
            .map(|addr| match current.nodes.iter().find(|n| n.addr == addr) {
                Some(n) => n.clone(),
                None => Arc::new(Node::new(
                    self.template.target(addr),
                    self.template.cfg.connections_per_node,
                )),
            })
            .collect();
        let next = Arc::new(Replicas::new(nodes, self.template.cfg.read_from));
        match self.replicas.write() {
            Ok(mut r) => *r = next,
            Err(p) => *p.into_inner() = next,
        }
    }

    /// Queues `raw` now: a read-only command (`read`) on a replica when
    /// `read_from` says so, anything else on the primary (on the
    /// connection that suits it best when the client is free to move, see
    /// [`LaneChoice`]). Queued here, in the session's own order, a
    /// client's commands reach a connection in the order it sent them;
    /// [`Sentinel::finish`] then waits for the reply and handles what went
    /// wrong.
    pub fn send(
        &self,
        primary: &Arc<Node>,
        choice: LaneChoice,
        raw: &Bytes,
        setup: Setup,
        read: bool,
    ) -> Sent {
        // Subscribed before sending: a primary named meanwhile is news.
        let changes = self.changed.subscribe();
        if let Some(replica) = read.then(|| self.replica_for_read(choice.spread)).flatten() {
            let rx = replica.mux(setup).send(choice.lane, raw.clone());
            return Sent {
                rx,
                lane: choice.lane,
                replica: Some(replica.addr.clone()),
                changes,
            };
        }
        let (lane, rx) = choice.send(&primary.mux(setup), raw.clone(), true);
        Sent {
            rx,
            lane,
            replica: None,
            changes,
        }
    }

    /// The reply to what [`Sentinel::send`] queued. Resending a read is
    /// harmless, so a replica that fails, even mid-request, or is loading
    /// or cut off from its primary sends the read to the primary; on the
    /// primary, a request that did not run waits out a failover. Nothing is
    /// sent again before the client's earlier commands settle, nor after
    /// `again.deadline` (see [`order`]).
    pub async fn finish(self: Arc<Self>, sent: Sent, mut again: Again) -> Reply {
        let Sent {
            rx,
            lane,
            replica,
            changes,
        } = sent;
        let Some(replica) = replica else {
            return self.settle(rx, changes, lane, again).await;
        };
        let reply = rx.await.unwrap_or(Err(RedisBackendError::Lost));
        match &reply {
            Ok(b) if !b.starts_with(b"-LOADING") && !b.starts_with(b"-MASTERDOWN") => return reply,
            Ok(_) => debug!(%replica, "replica not serving reads"),
            Err(error) => debug!(%replica, %error, "replica read failed"),
        }
        if !self.turn_again(&mut again).await {
            return reply;
        }
        let rx = self
            .primary()
            .mux(again.setup)
            .send(lane, again.raw.clone());
        self.settle(rx, changes, lane, again).await
    }

    /// Waits until a command may be sent again: the client's earlier
    /// commands settled and the fence down. False once its deadline passed.
    async fn turn_again(&self, again: &mut Again) -> bool {
        let prev = again.prev.take();
        let ready = async {
            if let Some(prev) = prev {
                prev.wait().await;
            }
            self.unfenced().await;
        };
        tokio::time::timeout_at(again.deadline, ready).await.is_ok()
    }

    /// How long a request may wait out a failover.
    pub fn failover_timeout(&self) -> Duration {
        self.template.cfg.failover_timeout.0
    }

    /// A primary other than `old`, once the sentinels name one and the
    /// fence is down; `None` if that does not happen within `limit`.
    pub async fn primary_after(&self, old: &Arc<Node>, limit: Duration) -> Option<Arc<Node>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.changed.subscribe();
        loop {
            let now = self.primary();
            if !Arc::ptr_eq(&now, old) && !self.fenced() {
                return Some(now);
            }
            let wait = async {
                match self.fenced() {
                    true => self.unfenced().await,
                    false => {
                        let _ = changes.changed().await;
                    }
                }
            };
            tokio::time::timeout_at(deadline, wait).await.ok()?;
        }
    }

    /// The current primary; before the first answer, a node nobody
    /// listens on, whose refused connections make requests wait.
    pub fn primary(&self) -> Arc<Node> {
        if let Some(n) = self.primary.read().ok().and_then(|p| p.clone()) {
            return n;
        }
        Arc::new(Node::new(self.template.target("127.0.0.1:0".into()), 1))
    }

    pub(crate) fn set_primary(&self, addr: String) {
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
        self.lower_fence();
        self.changed.send_modify(|v| *v += 1);
    }

    /// Waits for the primary's reply on `rx`; a request that did not run
    /// (no primary reachable, or one that is read-only, loading or cut
    /// off) is sent again once the sentinels name a primary, until its
    /// deadline.
    async fn settle(
        self: Arc<Self>,
        mut rx: oneshot::Receiver<Reply>,
        mut changes: watch::Receiver<u64>,
        lane: usize,
        mut again: Again,
    ) -> Reply {
        let mut retrying = None;
        loop {
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
            if !retry || tokio::time::Instant::now() >= again.deadline {
                return reply;
            }
            // Counted until this returns: the client's next commands wait
            // their turn instead of going straight out.
            retrying.get_or_insert_with(|| Retrying::new(again.retrying.clone()));
            // Wait for the sentinels to name a primary, or poll again soon.
            let _ = tokio::time::timeout_at(
                again
                    .deadline
                    .min(tokio::time::Instant::now() + Duration::from_millis(200)),
                changes.changed(),
            )
            .await;
            // Sent again only after the client's earlier commands, which
            // may be waiting to be sent again themselves.
            if !self.turn_again(&mut again).await {
                return reply;
            }
            rx = self
                .primary()
                .mux(again.setup)
                .send(lane, again.raw.clone());
        }
    }

    /// Asks one sentinel for the primary (and the replicas, when reads
    /// use them) on one connection, and applies the answers.
    async fn refresh(&self, sentinel: &str) -> Result<(), RedisBackendError> {
        let target = sentinel_target(&self.template, sentinel);
        let name = self.master.as_bytes();
        let mut commands: Vec<Vec<&[u8]>> =
            vec![vec![b"SENTINEL", b"get-master-addr-by-name", name]];
        if self.reads_from_replicas() {
            commands.push(vec![b"SENTINEL", b"REPLICAS", name]);
        }
        let mut replies = query(&target, &commands).await?.into_iter();
        let primary = self.primary_from(replies.next())?;
        self.set_primary(primary);
        if let Some(mut list) = replies.next() {
            if list.is_error() {
                // Sentinels before Redis 5 know only the old name.
                let older = vec![vec![&b"SENTINEL"[..], b"SLAVES", name]];
                list = query(&target, &older).await?.pop().unwrap_or(Frame::Null);
            }
            match healthy_replicas(&list) {
                Some(addrs) => self.set_replicas(addrs),
                None => {
                    return Err(RedisBackendError::Protocol(format!(
                        "bad SENTINEL REPLICAS reply: {list:?}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The primary's address from a `get-master-addr-by-name` reply.
    fn primary_from(&self, reply: Option<Frame>) -> Result<String, RedisBackendError> {
        match reply {
            Some(Frame::Array(a)) if a.len() == 2 => {
                let part = |f: &Frame| {
                    f.as_bytes()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                match (part(&a[0]), part(&a[1])) {
                    (Some(ip), Some(port)) => Ok(host_port(&ip, &port)),
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

/// Follows the sentinels until the view is dropped: ask for the primary
/// (and replicas), then listen for `+switch-master`, re-asking every second.
async fn watch_sentinels(view: Weak<Sentinel>) {
    let mut i = 0usize;
    loop {
        let Some(s) = view.upgrade() else { return };
        let addr = s.sentinels[i % s.sentinels.len().max(1)].clone();
        i += 1;
        if let Err(error) = s.refresh(&addr).await {
            warn!(sentinel = %addr, %error, "sentinel did not answer");
            drop(s);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let result = listen(&s, &addr).await;
        drop(s);
        if let Err(error) = result {
            warn!(sentinel = %addr, %error, "lost the sentinel subscription");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Events that may change which replicas can serve reads: one added, one
/// down or up again, an old primary turned into a replica.
const REPLICA_EVENTS: [&[u8]; 4] = [b"+slave", b"+sdown", b"-sdown", b"+convert-to-slave"];

/// Subscribes to `+switch-master` (and replica events when reads use
/// replicas) and applies them; every second, asks again (a message may
/// have been missed, and a replica's link status has no event).
async fn listen(s: &Arc<Sentinel>, addr: &str) -> Result<(), RedisBackendError> {
    let target = sentinel_target(&s.template, addr);
    let mut channels: Vec<&[u8]> = vec![b"SUBSCRIBE", b"+switch-master"];
    if s.reads_from_replicas() {
        channels.extend_from_slice(&REPLICA_EVENTS);
    }
    let (mut tcp, mut buf) = conn::open_with(&target, &channels).await?;
    let every = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Reading a frame is cancel-safe: partial input stays in `buf`.
        tokio::select! {
            _ = tick.tick() => s.refresh(addr).await?,
            frame = conn::read_frame(&mut tcp, &mut buf, Version::Resp2, &target.limits) => {
                match event(&frame?, &s.master) {
                    Some(Event::Switch(new)) => {
                        s.set_primary(new);
                        // The promoted replica left the replica list and
                        // the old primary may join it: ask now.
                        if s.reads_from_replicas() {
                            s.refresh(addr).await?;
                        }
                    }
                    Some(Event::Replicas) => s.refresh(addr).await?,
                    None => {}
                }
            }
        }
    }
}

/// What a sentinel message means for this primary.
#[derive(Debug, PartialEq)]
enum Event {
    /// `+switch-master`: the new primary's address.
    Switch(String),
    /// A replica of this primary changed state.
    Replicas,
}

/// `message <channel> <payload>`: `+switch-master` carries
/// `<name> <old-ip> <old-port> <new-ip> <new-port>`; replica events carry
/// `slave <name> <ip> <port> @ <master-name> <master-ip> <master-port>`.
fn event(frame: &Frame, master: &str) -> Option<Event> {
    let Frame::Array(parts) = frame else {
        return None;
    };
    let channel = parts.get(1)?.as_bytes()?;
    let text = std::str::from_utf8(parts.get(2)?.as_bytes()?).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if &channel[..] == b"+switch-master" {
        return match words.as_slice() {
            [name, _, _, ip, port] if *name == master => Some(Event::Switch(host_port(ip, port))),
            _ => None,
        };
    }
    match words.as_slice() {
        ["slave", _, _, _, "@", name, ..] if *name == master => Some(Event::Replicas),
        _ => None,
    }
}

/// `ip:port`, with brackets around an IPv6 address.
fn host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The replicas in a `SENTINEL REPLICAS` reply that can serve reads: not
/// flagged down or disconnected, and with their link to the primary up
/// (a replica without it serves stale data, or none). `None` when the
/// reply is not such a list.
fn healthy_replicas(reply: &Frame) -> Option<Vec<String>> {
    let Frame::Array(replicas) = reply else {
        return None;
    };
    let mut healthy = Vec::new();
    for replica in replicas {
        // RESP2: each replica is a flat list of field names and values.
        let Frame::Array(fields) = replica else {
            return None;
        };
        let field = |name: &str| {
            fields.chunks(2).find_map(|kv| match kv {
                [k, v] if k.as_bytes().is_some_and(|k| &k[..] == name.as_bytes()) => v
                    .as_bytes()
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                _ => None,
            })
        };
        let (Some(ip), Some(port)) = (field("ip"), field("port")) else {
            continue;
        };
        let flags = field("flags").unwrap_or_default();
        let down = flags
            .split(',')
            .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"));
        if !down && field("master-link-status").as_deref() == Some("ok") {
            healthy.push(host_port(&ip, &port));
        }
    }
    Some(healthy)
}

/// Runs `commands` on one fresh control connection (RESP2, no data-node
/// credentials in `target`) and returns their replies in order; bounded by
/// the connect timeout so a stuck sentinel cannot stall the watcher.
async fn query(
    target: &conn::RedisTarget,
    commands: &[Vec<&[u8]>],
) -> Result<Vec<Frame>, RedisBackendError> {
    let setup = Setup {
        version: Version::Resp2,
        db: 0,
    };
    let exchange = async {
        let (mut stream, mut buf) = conn::connect(target, setup).await?;
        let mut out = bytes::BytesMut::new();
        for c in commands {
            conn::encode_command(&mut out, c);
        }
        stream
            .write_all(&out)
            .await
            .map_err(|_| RedisBackendError::Lost)?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            replies.push(
                conn::read_frame(&mut stream, &mut buf, Version::Resp2, &target.limits).await?,
            );
        }
        Ok(replies)
    };
    tokio::time::timeout(target.connect_timeout * 2, exchange)
        .await
        .map_err(|_| RedisBackendError::Unavailable {
            addr: target.addr.clone(),
            reason: "sentinel query timed out".into(),
        })?
}

#[cfg(test)]
mod tests;
