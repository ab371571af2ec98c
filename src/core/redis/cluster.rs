//! Route (Redis Cluster): the slot map, kept fresh, and requests that
//! follow MOVED, ASK and TRYAGAIN inside Attaché so clients never see them.
//!
//! The map comes from `CLUSTER SLOTS` on any known node: at start, every few
//! seconds, and promptly after a MOVED (which means the map is stale). Until
//! it is known, requests go to a seed and are redirected like any other.
//!
//! A redirect is followed only to a member of the cluster. A client can make
//! a node answer with any error text (`EVAL "return
//! redis.error_reply('MOVED 1 evil:6379')" 0`), and following that would
//! hand the upstream password to whoever listens there. So an address not
//! in the slot map (or the seeds) is checked against a fresh `CLUSTER SLOTS`
//! and, failing that, `CLUSTER NODES` (which also lists a node added but not
//! yet owning slots, the target of ASK during a scale-out); an address
//! neither lists is handed back to the client as the error reply it is.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use attache_redis_protocol::frame::Frame;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::conn::{self, RedisBackendError, Setup};
use super::mux::Reply;
use super::topology::{Node, TargetTemplate};

mod prune;
use super::LaneChoice;
use crate::config::redis::ReadFrom;

const SLOTS: usize = 16384;
const MAX_REDIRECTS: usize = 5;
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// Least time between two checks of an unknown redirect target against the
/// cluster: a client sending fake redirects in a loop must not turn each
/// one into a `CLUSTER SLOTS` and a `CLUSTER NODES`.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Which node owns each slot (an index into `nodes`; `u16::MAX` = unknown).
struct SlotMap {
    owner: Vec<u16>,
    nodes: Vec<Arc<Node>>,
    /// Replicas of each node in `nodes` (READONLY connections).
    replicas: Vec<Vec<Arc<Node>>>,
}

pub struct Cluster {
    template: TargetTemplate,
    seeds: Vec<String>,
    map: RwLock<Arc<SlotMap>>,
    /// The nodes in use, by address, so their connections survive map
    /// refreshes; those a refresh no longer lists are forgotten (see
    /// [`prune`]).
    known: RwLock<HashMap<String, Arc<Node>>>,
    nudge: mpsc::Sender<()>,
    /// The node that last sent MOVED: it knows the new owner, so the next
    /// refresh asks it first.
    hint: std::sync::Mutex<Option<String>>,
    /// Round-robin position for `read_from = "round-robin"`.
    turn: std::sync::atomic::AtomicUsize,
    /// The addresses `CLUSTER NODES` listed when last asked (see
    /// [`Cluster::member`]): nodes without slots too, which the slot map
    /// leaves out.
    members: RwLock<HashSet<String>>,
    /// Serializes the checks of unknown redirect targets, so a burst of
    /// redirects to a new node costs one refresh; holds when the last
    /// check ran, for [`CHECK_EVERY`].
    checked: tokio::sync::Mutex<Option<Instant>>,
}

/// A request queued by [`Cluster::send`], awaiting [`Cluster::follow`].
pub struct Sent {
    rx: tokio::sync::oneshot::Receiver<Reply>,
    /// The lane it went out on (and redirects keep).
    pub lane: usize,
    /// The slot's owner when it was sent.
    primary: Arc<Node>,
    /// Where it went (the owner, or one of its replicas).
    node: Arc<Node>,
    on_replica: bool,
}

enum Redirect {
    Moved(String),
    Ask(String),
    TryAgain,
}

impl Cluster {
    /// Builds the cluster view and starts its refresher.
    pub fn start(template: TargetTemplate, seeds: Vec<String>) -> Arc<Self> {
        let (nudge, rx) = mpsc::channel(1);
        let cluster = Arc::new(Self {
            template,
            seeds,
            map: RwLock::new(Arc::new(SlotMap {
                owner: vec![u16::MAX; SLOTS],
                nodes: Vec::new(),
                replicas: Vec::new(),
            })),
            turn: std::sync::atomic::AtomicUsize::new(0),
            hint: std::sync::Mutex::new(None),
            known: RwLock::new(HashMap::new()),
            nudge,
            members: RwLock::new(HashSet::new()),
            checked: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(refresher(Arc::downgrade(&cluster), rx));
        cluster
    }

    fn map(&self) -> Arc<SlotMap> {
        match self.map.read() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The node for `addr`, created on first sight. Only for addresses
    /// from the configuration or the cluster itself, never from a reply a
    /// client could have shaped (see [`Cluster::member`]).
    fn node_by_addr(&self, addr: &str) -> Arc<Node> {
        self.known_node(addr, false)
    }

    /// Whether `addr` belongs to the cluster as far as Attaché knows: a
    /// seed, a primary or replica in the slot map, or a node `CLUSTER
    /// NODES` listed.
    fn member(&self, addr: &str) -> bool {
        let map = self.map();
        self.seeds.iter().any(|s| s == addr)
            || map.nodes.iter().any(|n| n.addr == addr)
            || map.replicas.iter().flatten().any(|n| n.addr == addr)
            || self.members.read().is_ok_and(|m| m.contains(addr))
    }

    /// The node a redirect to `addr` may go to: a member at once; an
    /// unknown address after asking the cluster (one check at a time, at
    /// most one per [`CHECK_EVERY`]); `None` when the cluster does not
    /// know it, so the redirect is not followed.
    async fn redirect_target(&self, addr: &str) -> Option<Arc<Node>> {
        if self.member(addr) {
            return Some(self.node_by_addr(addr));
        }
        let mut last = self.checked.lock().await;
        // Another request may have checked while this one waited.
        if !self.member(addr) && !last.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
            *last = Some(Instant::now());
            if let Err(error) = self.refresh().await {
                warn!(%error, "could not refresh the Redis Cluster slot map");
            }
            if !self.member(addr) {
                self.refresh_members().await;
            }
        }
        drop(last);
        if self.member(addr) {
            return Some(self.node_by_addr(addr));
        }
        warn!(
            redirect.to = %addr,
            "redirect to an address outside the cluster not followed; the client gets it as an error"
        );
        None
    }

    fn known_node(&self, addr: &str, readonly: bool) -> Arc<Node> {
        let key = if readonly {
            prune::readonly_key(addr)
        } else {
            addr.to_owned()
        };
        if let Some(n) = self.known.read().ok().and_then(|k| k.get(&key).cloned()) {
            return n;
        }
        let mut known = match self.known.write() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        known
            .entry(key)
            .or_insert_with(|| {
                let mut target = self.template.target(addr.to_owned());
                target.readonly = readonly;
                Arc::new(Node::new(target, self.template.cfg.connections_per_node))
            })
            .clone()
    }

    pub fn node_for_slot(&self, slot: u16) -> Arc<Node> {
        let map = self.map();
        match map
            .owner
            .get(slot as usize)
            .and_then(|i| map.nodes.get(*i as usize))
        {
            Some(n) => n.clone(),
            None => self.any_node(),
        }
    }

    pub fn reads_from_replicas(&self) -> bool {
        self.template.cfg.read_from != ReadFrom::Primary
    }

    /// A replica of `slot`'s primary for a read, by the read policy.
    pub fn replica_for_slot(&self, slot: u16, lane: usize) -> Option<Arc<Node>> {
        let map = self.map();
        let owner = *map.owner.get(slot as usize)? as usize;
        let replicas = map.replicas.get(owner).filter(|r| !r.is_empty())?;
        match self.template.cfg.read_from {
            ReadFrom::Primary => None,
            ReadFrom::PreferReplica | ReadFrom::Replica => {
                Some(replicas[lane % replicas.len()].clone())
            }
            ReadFrom::RoundRobin => {
                let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    % (replicas.len() + 1);
                i.checked_sub(1).map(|r| replicas[r].clone())
            }
        }
    }

    pub fn primaries(&self) -> Vec<Arc<Node>> {
        let map = self.map();
        if map.nodes.is_empty() {
            vec![self.any_node()]
        } else {
            map.nodes.clone()
        }
    }

    pub fn any_node(&self) -> Arc<Node> {
        let map = self.map();
        match map.nodes.first() {
            Some(n) => n.clone(),
            None => self.node_by_addr(
                self.seeds
                    .first()
                    .map(String::as_str)
                    .unwrap_or("127.0.0.1:6379"),
            ),
        }
    }

    /// Asks the refresher for a new map soon (coalesced).
    pub fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Queues `raw` now for the owner of `slot` (any node without one; a
    /// replica for a read when `read_from` says so). Queued here, in the
    /// session's own order, a client's commands reach a connection in the
    /// order it sent them; [`Cluster::follow`] then waits for the reply
    /// and follows redirects.
    /// A client free to move (see [`LaneChoice`]) takes the slot owner's
    /// connection that suits the command best; [`Sent::lane`] says which.
    pub fn send(
        &self,
        choice: LaneChoice,
        slot: Option<u16>,
        raw: &Bytes,
        setup: Setup,
        read: bool,
    ) -> Sent {
        let primary = match slot {
            Some(s) => self.node_for_slot(s),
            None => self.any_node(),
        };
        let replica = slot
            .filter(|_| read)
            .and_then(|s| self.replica_for_slot(s, choice.spread));
        let on_replica = replica.is_some();
        let node = replica.unwrap_or_else(|| primary.clone());
        let (lane, rx) = choice.send(&node.mux(setup), raw.clone(), !on_replica && slot.is_some());
        Sent {
            rx,
            lane,
            primary,
            node,
            on_replica,
        }
    }

    /// The reply to what [`Cluster::send`] queued, following MOVED, ASK and
    /// TRYAGAIN. Connection failures are reported, not retried: the
    /// command may have run. (A command sent again after a redirect is
    /// no longer ordered with the client's later ones: that happens only
    /// while its slot moves.)
    pub async fn follow(self: Arc<Self>, sent: Sent, raw: Bytes, setup: Setup) -> Reply {
        let Sent {
            mut rx,
            lane,
            primary,
            mut node,
            mut on_replica,
        } = sent;
        let mut last = None;
        // Whether the last try went with ASKING: a TRYAGAIN from an
        // importing node must be retried with it again, or the node
        // answers MOVED back to where the ASK came from.
        let mut asked = false;
        for attempt in 0..=MAX_REDIRECTS {
            let reply = match rx.await.unwrap_or(Err(RedisBackendError::Lost)) {
                Ok(r) => r,
                // A replica that cannot be reached: the read never ran, so
                // the primary takes it.
                Err(RedisBackendError::Unavailable { .. }) if on_replica => {
                    on_replica = false;
                    node = primary.clone();
                    self.nudge();
                    if attempt == MAX_REDIRECTS {
                        break;
                    }
                    rx = node.mux(setup).send(lane, raw.clone());
                    continue;
                }
                Err(e) => {
                    self.nudge();
                    return Err(e);
                }
            };
            let Some(redir) = redirect(&reply) else {
                return Ok(reply);
            };
            if matches!(redir, Redirect::Moved(_)) {
                on_replica = false;
            }
            let again = matches!(redir, Redirect::TryAgain);
            let Some((to, asking)) = self.hop(redir, &node, attempt).await else {
                return Ok(reply);
            };
            let asking = asking || (again && asked);
            asked = asking;
            node = to;
            last = Some(reply);
            if attempt == MAX_REDIRECTS {
                break;
            }
            let mux = node.mux(setup);
            rx = if asking {
                let mut b = BytesMut::new();
                conn::encode_command(&mut b, &[b"ASKING"]);
                b.extend_from_slice(&raw);
                mux.send_n(lane, b.freeze(), 2)
            } else {
                mux.send(lane, raw.clone())
            };
        }
        last.ok_or(RedisBackendError::Lost)
    }

    /// Where a redirect sends the request next, and whether it needs
    /// ASKING first; `None` when it is not to be followed.
    async fn hop(
        &self,
        redirect: Redirect,
        node: &Arc<Node>,
        attempt: usize,
    ) -> Option<(Arc<Node>, bool)> {
        match redirect {
            Redirect::Moved(addr) => {
                let to = self.redirect_target(&addr).await?;
                if let Ok(mut h) = self.hint.lock() {
                    *h = Some(node.addr.clone());
                }
                debug!(to = %addr, "MOVED: following and refreshing the slot map");
                self.nudge();
                Some((to, false))
            }
            Redirect::Ask(addr) => Some((self.redirect_target(&addr).await?, true)),
            Redirect::TryAgain => {
                tokio::time::sleep(Duration::from_millis(20 * (attempt as u64 + 1))).await;
                Some((node.clone(), false))
            }
        }
    }

    /// Replaces [`Cluster::members`] with what `CLUSTER NODES` says on the
    /// first node of the map or the seeds that answers.
    async fn refresh_members(&self) {
        let mut candidates: Vec<String> = self.map().nodes.iter().map(|n| n.addr.clone()).collect();
        candidates.extend(self.seeds.iter().cloned());
        for addr in candidates {
            let target = self.template.target(addr.clone());
            match conn::one_shot(&target, &[b"CLUSTER", b"NODES"]).await {
                Ok(reply) => {
                    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
                    let Some(text) = reply.as_bytes() else {
                        continue;
                    };
                    let listed = parse_nodes(&String::from_utf8_lossy(text), host);
                    if let Ok(mut m) = self.members.write() {
                        *m = listed;
                    }
                    return;
                }
                Err(error) => debug!(server.addr = %addr, %error, "CLUSTER NODES failed"),
            }
        }
    }

    /// Fetches `CLUSTER SLOTS` from the first node that answers and
    /// installs the new map.
    async fn refresh(&self) -> Result<(), RedisBackendError> {
        let mut candidates: Vec<String> = self
            .hint
            .lock()
            .ok()
            .and_then(|mut h| h.take())
            .into_iter()
            .collect();
        candidates.extend(self.map().nodes.iter().map(|n| n.addr.clone()));
        candidates.extend(self.seeds.iter().cloned());
        let mut last_err = RedisBackendError::Lost;
        for addr in candidates {
            match self.fetch_slots(&addr).await {
                Ok(map) => {
                    self.install(map);
                    return Ok(());
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    async fn fetch_slots(&self, addr: &str) -> Result<SlotMap, RedisBackendError> {
        let target = self.template.target(addr.to_owned());
        let reply = conn::one_shot(&target, &[b"CLUSTER", b"SLOTS"]).await?;
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        self.parse_slots(reply, host)
    }

    fn parse_slots(&self, reply: Frame, seed_host: &str) -> Result<SlotMap, RedisBackendError> {
        let bad = |what: &str| RedisBackendError::Protocol(format!("CLUSTER SLOTS: {what}"));
        let Frame::Array(ranges) = reply else {
            return Err(match reply {
                Frame::Error(e) => {
                    RedisBackendError::Refused(String::from_utf8_lossy(&e).into_owned())
                }
                _ => bad("not an array"),
            });
        };
        let mut owner = vec![u16::MAX; SLOTS];
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut replicas: Vec<Vec<Arc<Node>>> = Vec::new();
        for range in ranges {
            let Frame::Array(items) = range else {
                return Err(bad("range is not an array"));
            };
            let (
                Some(Frame::Integer(start)),
                Some(Frame::Integer(end)),
                Some(Frame::Array(primary)),
            ) = (items.first(), items.get(1), items.get(2))
            else {
                return Err(bad("range without start, end and primary"));
            };
            let ip = primary
                .first()
                .and_then(Frame::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let Some(Frame::Integer(port)) = primary.get(1) else {
                return Err(bad("node without port"));
            };
            let ip = if ip.is_empty() || ip == "?" {
                seed_host.to_owned()
            } else {
                ip
            };
            let addr = format!("{ip}:{port}");
            let index = match nodes.iter().position(|n| n.addr == addr) {
                Some(i) => i,
                None => {
                    nodes.push(self.node_by_addr(&addr));
                    replicas.push(self.replica_nodes(&items[3..], seed_host));
                    nodes.len() - 1
                }
            };
            let (start, end) = (
                (*start).clamp(0, SLOTS as i64 - 1) as usize,
                (*end).clamp(0, SLOTS as i64 - 1) as usize,
            );
            for slot in owner.iter_mut().take(end + 1).skip(start) {
                *slot = index as u16;
            }
        }
        Ok(SlotMap {
            owner,
            nodes,
            replicas,
        })
    }

    /// The replica entries of a CLUSTER SLOTS range, as READONLY nodes.
    fn replica_nodes(&self, entries: &[Frame], seed_host: &str) -> Vec<Arc<Node>> {
        entries
            .iter()
            .filter_map(|e| {
                let Frame::Array(parts) = e else { return None };
                let ip = parts
                    .first()
                    .and_then(Frame::as_bytes)
                    .map(|b| String::from_utf8_lossy(b).into_owned())?;
                let Some(Frame::Integer(port)) = parts.get(1) else {
                    return None;
                };
                let ip = if ip.is_empty() || ip == "?" {
                    seed_host.to_owned()
                } else {
                    ip
                };
                Some(self.known_node(&format!("{ip}:{port}"), true))
            })
            .collect()
    }
}

/// The `ip:port` of every node in a `CLUSTER NODES` text that is joined
/// (not still in handshake, and with an address); an empty ip is the host
/// the text came from.
fn parse_nodes(text: &str, seed_host: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?.split(['@', ',']).next()?;
            let flags = fields.next()?;
            if flags.split(',').any(|f| f == "handshake" || f == "noaddr") {
                return None;
            }
            let (ip, port) = addr.rsplit_once(':')?;
            let ip = if ip.is_empty() { seed_host } else { ip };
            Some(format!("{ip}:{port}"))
        })
        .collect()
}

fn redirect(reply: &[u8]) -> Option<Redirect> {
    let text = reply.strip_prefix(b"-")?;
    let line = text.split(|b| *b == b'\r').next()?;
    let mut words = line.split(|b| *b == b' ');
    let kind = words.next()?;
    let mut addr = || {
        let _slot = words.next();
        words
            .next()
            .map(|a| String::from_utf8_lossy(a).into_owned())
    };
    match kind {
        b"MOVED" => addr().map(Redirect::Moved),
        b"ASK" => addr().map(Redirect::Ask),
        b"TRYAGAIN" => Some(Redirect::TryAgain),
        _ => None,
    }
}

/// Refreshes the map at start, on a timer and when nudged, until the
/// cluster is dropped.
async fn refresher(cluster: std::sync::Weak<Cluster>, mut nudges: mpsc::Receiver<()>) {
    loop {
        let Some(c) = cluster.upgrade() else { return };
        if let Err(error) = c.refresh().await {
            warn!(%error, "could not refresh the Redis Cluster slot map");
        }
        drop(c);
        // Coalesce bursts of MOVED into one refresh.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::select! {
            n = nudges.recv() => if n.is_none() { return },
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests;
