//! The transaction distribution service: accepts submissions, stores them
//! durably, spreads them by gossip, answers other peers' gossip, and keeps
//! the offline queue. Spreading lives in `spread.rs`, anti-entropy and the
//! queue flush in `sync.rs`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sorcha_proto::transaction::CompactNotification;

use super::dedupe::{Dedupe, DedupeConfig, random_salt};
use super::gossip::{REPAIR_ROUND, choose, fanout, neighbours};
use super::hot::HotCache;
use super::mailbox::Mailboxes;
use super::net::{TxClients, max_message_bytes, worth_compressing};
use super::push::QueuedPush;
use super::queue::OfflineQueue;
use super::store::{TxHash, TxStore, hash_of, to_hex};
use super::tree::{LazyNotices, Tree, TreeTargets};
use crate::clock::now_ms;
use crate::config::{OfflineModeConfig, TransactionDistributionConfig};
use crate::discovery::Membership;
use crate::discovery::membership::PeerRecord;
use crate::discovery::state::NodeState;
use crate::{Error, Result};

/// How often one gossip neighbour is swapped for another peer.
const NEIGHBOUR_ROTATION: std::time::Duration = std::time::Duration::from_secs(30);

/// How long fanout targets are drawn from one reading of the peer table:
/// reading (and copying) every peer record for each transaction cost a
/// busy 100-node network more CPU than spreading the transaction did. A
/// peer that joined or failed meanwhile is seen at most this much later.
const NEIGHBOUR_REFRESH: std::time::Duration = std::time::Duration::from_millis(250);

/// This node's gossip neighbours as last read from the peer table.
pub(super) struct Neighbours {
    peers: Vec<PeerRef>,
    /// Live peers at that reading (the fanout depends on it).
    live: usize,
    /// Known peers whose circuit is not open, answering pings or not:
    /// broadcast-tree links stay pushed to while their peer may merely
    /// have missed a ping. Skipping a link at one end only would cut the
    /// tree for every transaction coming from that side.
    reachable: Vec<PeerRef>,
    read: Option<Instant>,
    /// The peer table's fingerprint and the open circuits at that reading:
    /// while both stay the same, the reading is kept.
    source: Option<(u64, Vec<String>)>,
    rotated: Instant,
}

/// How many recently pulled hashes are remembered (32 bytes each).
const PULLED_REMEMBERED: usize = 65_536;

/// Memory for recently accepted transactions (see `hot`).
const HOT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A peer to talk to: its id (for exclusion and logs) and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRef {
    pub id: String,
    pub url: String,
}

impl PeerRef {
    pub fn new(p: PeerRecord, connector: &crate::comm::Connector) -> Self {
        PeerRef {
            url: connector.url(&p.address, p.port),
            id: p.peer_id,
        }
    }
}

/// What a submission became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub hash: String,
    pub queued: bool,
    pub already_known: bool,
}

pub struct Distributor {
    pub cfg: TransactionDistributionConfig,
    pub(super) m: Arc<Membership>,
    pub store: TxStore,
    pub queue: OfflineQueue,
    pub(super) dedupe: Mutex<Dedupe>,
    pub(super) clients: TxClients,
    /// Per-peer announcement batches waiting to be sent.
    pub(super) announce_boxes: Mailboxes<CompactNotification>,
    /// Per-peer eager pushes waiting to be sent.
    pub(super) push_boxes: Mailboxes<QueuedPush>,
    /// Peers that refused this node's pushes, and until when they get
    /// announcements instead.
    pub(super) push_refused: Mutex<HashMap<String, Instant>>,
    /// Transactions being pulled, with other peers that announced them
    /// meanwhile (where to retry if this pull fails or is corrupt).
    pub(super) pulling: Mutex<HashMap<TxHash, Vec<PeerRef>>>,
    /// Submission time at this origin, for the distribution latency metric.
    pub(super) submitted_at: Mutex<HashMap<TxHash, Instant>>,
    /// Serialises queue flushes.
    pub(super) flushing: tokio::sync::Mutex<()>,
    pub(super) hot: Mutex<HotCache>,
    /// Lazy notices and the tree's late arrivals (see `pull_missed`).
    pub(super) lazy_notices: Mutex<LazyNotices>,
    neighbours: Mutex<Neighbours>,
    /// Broadcast-tree links (`GossipMode: Tree`).
    tree: Mutex<Tree>,
    /// Recent transactions this node pulled rather than had pushed (tree
    /// mode; see `on_push`). Cleared whole when full.
    pulled: Mutex<std::collections::HashSet<TxHash>>,
    /// Hashes of newly stored transactions, for live observers (the
    /// dashboard, benchmarks). Lagging receivers lose the oldest.
    stored: tokio::sync::broadcast::Sender<TxHash>,
    /// Told about peers that sent invalid data (the caller policy's
    /// reputation table); set once at start.
    observer: std::sync::OnceLock<Arc<dyn crate::security::PeerObserver>>,
}

impl Distributor {
    pub fn open(
        cfg: TransactionDistributionConfig,
        offline: &OfflineModeConfig,
        data_dir: &std::path::Path,
        m: Arc<Membership>,
        comm: Arc<crate::comm::Comm>,
        faults: &crate::node::Faults,
    ) -> Result<Arc<Self>> {
        let store = TxStore::open(data_dir)?;
        let queue = OfflineQueue::from_config(offline, data_dir)?;
        let mut dedupe = Dedupe::new(DedupeConfig::from_config(&cfg), random_salt(), now_ms());
        // Seed with what is stored within the TTL, so a restarted node does
        // not pull again what it already holds.
        let since = now_ms() - cfg.transaction_cache_ttl.as_millis() as i64;
        for t in store.received_since(since)? {
            dedupe.insert(&t.hash, t.received_at);
        }
        let clients = TxClients::new(
            comm,
            cfg.enable_compression,
            cfg.notification_timeout
                .max(std::time::Duration::from_secs(30)),
            max_message_bytes(cfg.max_transaction_size),
            faults.drop_tx_messages,
        );
        m.metrics.tx_queue_size.set(queue.len() as i64);
        Ok(Arc::new(Self {
            cfg,
            m,
            store,
            queue,
            dedupe: Mutex::new(dedupe),
            clients,
            announce_boxes: Mailboxes::default(),
            push_boxes: Mailboxes::default(),
            push_refused: Mutex::new(HashMap::new()),
            pulling: Mutex::new(HashMap::new()),
            submitted_at: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
            hot: Mutex::new(HotCache::new(HOT_CACHE_BYTES)),
            lazy_notices: Mutex::new(LazyNotices::default()),
            neighbours: Mutex::new(Neighbours {
                peers: Vec::new(),
                live: 0,
                reachable: Vec::new(),
                read: None,
                source: None,
                rotated: Instant::now(),
            }),
            tree: Mutex::new(Tree::default()),
            pulled: Mutex::new(std::collections::HashSet::new()),
            stored: tokio::sync::broadcast::channel(4096).0,
            observer: std::sync::OnceLock::new(),
        }))
    }

    /// Where invalid data from peers is reported (at most once; later
    /// calls are ignored).
    pub fn set_peer_observer(&self, o: Arc<dyn crate::security::PeerObserver>) {
        let _ = self.observer.set(o);
    }

    pub(super) fn observe_peer(&self, peer: &str, obs: crate::security::Observation) {
        if let Some(o) = self.observer.get() {
            o.observe_peer(peer, obs);
        }
    }

    pub fn me(&self) -> &str {
        self.m.id()
    }

    /// Size checks shared by every entry point.
    pub fn check_size(&self, size: u64) -> Result<()> {
        if size == 0 {
            return Err(Error::InvalidTransaction(
                "transaction_data: must not be empty".into(),
            ));
        }
        if size > self.cfg.max_transaction_size {
            return Err(Error::TransactionTooLarge {
                size,
                max: self.cfg.max_transaction_size,
            });
        }
        Ok(())
    }

    /// A client's submission. Answers once the transaction is durable: in
    /// the store (and spreading), or, while Offline, in the queue too.
    pub async fn submit(self: &Arc<Self>, data: Vec<u8>) -> Result<Submitted> {
        self.check_size(data.len() as u64)?;
        let hash = hash_of(&data);
        let hex = to_hex(&hash);
        if self.holds(&hash)? {
            return Ok(Submitted {
                hash: hex,
                queued: false,
                already_known: true,
            });
        }
        if self.m.state() == NodeState::Offline {
            // Queue first: a full queue refuses before anything is stored.
            self.queue
                .enqueue_batched(hex.clone(), data.clone(), now_ms())
                .await?;
            self.m.metrics.tx_queue_size.set(self.queue.len() as i64);
            self.store.insert(hash, data, now_ms()).await?;
            self.remember(&hash);
            return Ok(Submitted {
                hash: hex,
                queued: true,
                already_known: false,
            });
        }
        self.submitted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, Instant::now());
        self.accept(hash, data, 0, None, None).await?;
        Ok(Submitted {
            hash: hex,
            queued: false,
            already_known: false,
        })
    }

    pub(super) fn remember(&self, hash: &TxHash) {
        self.remember_all(std::slice::from_ref(hash));
    }

    pub(super) fn remember_all(&self, hashes: &[TxHash]) {
        let now = now_ms();
        let mut dedupe = self.dedupe.lock().unwrap_or_else(|e| e.into_inner());
        for h in hashes {
            dedupe.insert(h, now);
        }
    }

    /// True when this node holds `hash`: the bloom filter answers fast for
    /// hashes never seen; its positives are confirmed against the store, so
    /// a false positive costs a lookup, never a lost transaction.
    pub fn holds(&self, hash: &TxHash) -> Result<bool> {
        let seen = self
            .dedupe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(hash);
        let mut store_err = None;
        let pull = seen.should_pull(|| match self.store.contains(hash) {
            Ok(found) => found,
            Err(e) => {
                store_err = Some(e);
                false
            }
        });
        match store_err {
            Some(e) => Err(e),
            None => Ok(!pull),
        }
    }

    /// Stores a transaction received in `round` (0 = submitted here) and
    /// spreads it on if rounds remain. `compressible` is what the origin
    /// found (sampled here when unknown). Returns whether it was new.
    pub(super) async fn accept(
        self: &Arc<Self>,
        hash: TxHash,
        data: Vec<u8>,
        round: u32,
        from: Option<&str>,
        compressible: Option<bool>,
    ) -> Result<bool> {
        let size = data.len() as u64;
        let data: Arc<[u8]> = data.into();
        let fresh = self
            .hot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, data.clone());
        let metrics = &self.m.metrics;
        if !fresh || self.holds(&hash)? {
            metrics.tx_duplicates.inc();
            return Ok(false);
        }
        if let Some(f) = from
            && round != REPAIR_ROUND
        {
            self.tree_link(f, TreeLink::DeliveredNew);
            self.tree_arrival(&hash);
        }
        // Relays forward before their own commit; the origin's answer to
        // its client still waits for the commit below. On the tree a
        // transaction goes on until it meets nodes that hold it; rounds
        // stop after `GossipRounds`.
        let spreads = if self.tree_mode() {
            round != REPAIR_ROUND
        } else {
            round < self.cfg.gossip_rounds
        };
        if spreads {
            // Sampled once at the origin, so pullers know whether gzip
            // pays off.
            let compressible = self.cfg.enable_compression
                && compressible.unwrap_or_else(|| worth_compressing(&data));
            self.spread(
                hash,
                size,
                round + 1,
                &self.holders(&hash, from),
                compressible,
            );
        }
        // A received transaction is already out in the network (stored as
        // distributed); only this node's own submissions wait for a first
        // successful send.
        if from.is_some() {
            self.store
                .insert_relayed(hash, data.to_vec(), now_ms())
                .await?;
            metrics.bandwidth_received.inc_by(size);
        } else {
            self.store.insert(hash, data.to_vec(), now_ms()).await?;
            // No spreading, or the first send succeeded before the commit
            // (its mark may have reached the writer ahead of the row).
            let sent = !self
                .submitted_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&hash);
            if !spreads || sent {
                self.store.mark_distributed(&[hash])?;
            }
        }
        self.remember(&hash);
        metrics.tx_stored.inc();
        let _ = self.stored.send(hash);
        Ok(true)
    }

    /// Peers known to hold `hash`: the one it came `from` and those that
    /// announced it while it was being pulled. Telling them is waste.
    fn holders(&self, hash: &TxHash, from: Option<&str>) -> Vec<String> {
        let pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
        from.map(str::to_owned)
            .into_iter()
            .chain(
                pulling
                    .get(hash)
                    .into_iter()
                    .flatten()
                    .map(|p| p.id.clone()),
            )
            .collect()
    }

    pub fn subscribe_stored(&self) -> tokio::sync::broadcast::Receiver<TxHash> {
        self.stored.subscribe()
    }

    /// Serves a stored transaction to a peer or client.
    pub fn get(&self, hash: &TxHash) -> Result<Option<Vec<u8>>> {
        let found = self.data(hash)?;
        if let Some(data) = &found {
            self.m.metrics.tx_pulls_served.inc();
            self.m.metrics.bandwidth_sent.inc_by(data.len() as u64);
        }
        Ok(found)
    }

    /// A transaction's bytes: recent ones from memory, others from disk.
    pub(super) fn data(&self, hash: &TxHash) -> Result<Option<Vec<u8>>> {
        let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner()).get(hash);
        match hot {
            Some(d) => Ok(Some(d.to_vec())),
            None => self.store.get(hash),
        }
    }

    /// Peers to gossip with: those that answer, with their URLs.
    /// Responsive peers whose circuit is not open.
    pub(super) fn live_peers(&self) -> Vec<PeerRef> {
        self.reachable_peers(&self.clients.comm.open_circuits())
            .into_iter()
            .filter_map(|(p, responsive)| responsive.then_some(p))
            .collect()
    }

    /// Every known peer whose circuit is not open, and whether it answered
    /// its last ping.
    fn reachable_peers(&self, open: &[String]) -> Vec<(PeerRef, bool)> {
        self.m
            .records()
            .into_iter()
            .map(|p| {
                let responsive = p.responsive;
                (PeerRef::new(p, self.clients.connector()), responsive)
            })
            .filter(|(p, _)| !open.contains(&p.url))
            .collect()
    }

    pub(super) fn peer_by_id(&self, id: &str) -> Option<PeerRef> {
        self.m
            .get(id)
            .map(|p| PeerRef::new(p, self.clients.connector()))
    }

    /// This node's gossip neighbours and live peers, read again from the
    /// peer table when the last reading is older than `NEIGHBOUR_REFRESH`
    /// and the table or the open circuits changed since (or the neighbours
    /// are due to rotate). A reading copies every peer record: done per
    /// transaction it was a tenth of a 100-node network's CPU.
    fn neighbours(&self) -> std::sync::MutexGuard<'_, Neighbours> {
        let mut g = self.neighbours.lock().unwrap_or_else(|e| e.into_inner());
        let stale = g.read.is_none_or(|t| t.elapsed() >= NEIGHBOUR_REFRESH);
        if !stale && !g.peers.is_empty() {
            return g;
        }
        let source = (self.m.fingerprint(), self.clients.comm.open_circuits());
        let due = g.rotated.elapsed() >= NEIGHBOUR_ROTATION;
        g.read = Some(Instant::now());
        if g.peers.is_empty() || due || g.source.as_ref() != Some(&source) {
            let reachable = self.reachable_peers(&source.1);
            g.source = Some(source);
            let live: Vec<PeerRef> = reachable
                .iter()
                .filter(|(_, responsive)| *responsive)
                .map(|(p, _)| p.clone())
                .collect();
            g.reachable = reachable.into_iter().map(|(p, _)| p).collect();
            let ids: Vec<String> = live.iter().map(|p| p.id.clone()).collect();
            if due {
                g.rotated = Instant::now();
            }
            let want = fanout(self.cfg.fanout_factor, ids.len()) * 2;
            let current: Vec<String> = g.peers.iter().map(|p| p.id.clone()).collect();
            let kept = neighbours(&current, &ids, want, due, &mut rand::rng());
            g.peers = live
                .iter()
                .filter(|p| kept.contains(&p.id))
                .cloned()
                .collect();
            g.live = ids.len();
        }
        g
    }

    /// A random fanout drawn from this node's gossip neighbours (twice the
    /// fanout among the live peers; see `gossip::neighbours`), never one of
    /// `exclude` (peers known to hold the transaction).
    pub(super) fn fanout_targets(&self, exclude: &[String]) -> Vec<PeerRef> {
        let g = self.neighbours();
        let n = fanout(self.cfg.fanout_factor, g.live);
        choose(&g.peers, |p| exclude.contains(&p.id), n, &mut rand::rng())
            .into_iter()
            .cloned()
            .collect()
    }

    /// Where a new transaction goes on the broadcast tree, never to
    /// `holders` (see `tree`).
    pub(super) fn tree_targets(self: &Arc<Self>, holders: &[String]) -> TreeTargets<PeerRef> {
        let g = self.tend_tree();
        let tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        let t = tree.targets(
            &g.reachable,
            &g.peers,
            |p| p.id.as_str(),
            holders,
            self.cfg.lazy_announce_peers,
            &mut rand::rng(),
        );
        TreeTargets {
            eager: t.eager.into_iter().cloned().collect(),
            lazy: t.lazy.into_iter().cloned().collect(),
        }
    }

    /// Opens this node's own tree links when it has none to a reachable
    /// peer (at start, or after all were pruned or failed), and tells
    /// those peers, so the links carry transactions both ways at once: a
    /// node that has nothing to spread yet must still be reachable.
    pub(super) fn tend_tree(self: &Arc<Self>) -> std::sync::MutexGuard<'_, Neighbours> {
        let (g, seeds) = self.seed_tree();
        self.ask_grafts(&g.reachable, &seeds);
        g
    }

    /// Opens this node's own tree links if it needs them (see
    /// `Tree::seed`); returns the neighbours and the new links.
    fn seed_tree(&self) -> (std::sync::MutexGuard<'_, Neighbours>, Vec<String>) {
        let g = self.neighbours();
        let seeds = {
            let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
            let seeds = tree.seed(&g.reachable, &g.peers, |p| p.id.as_str(), &mut rand::rng());
            self.m
                .metrics
                .tree_eager_links
                .set(tree.eager_links() as i64);
            seeds
        };
        (g, seeds)
    }

    /// Re-asserts every tree link at its other end. Prune and graft travel
    /// as separate calls, so a graft can overtake the push whose answer
    /// prunes the link, leaving it open at one end only; the end without
    /// it would then never pass transactions across. Asking again closes
    /// such gaps (a redundant link is pruned again by its next duplicate).
    pub(super) fn reassert_tree(self: &Arc<Self>) {
        // New seeds are among the links: each is asked once.
        let (g, _) = self.seed_tree();
        self.ask_grafts(&g.reachable, &self.tree_links());
    }

    fn ask_grafts(self: &Arc<Self>, reachable: &[PeerRef], ids: &[String]) {
        for id in ids {
            if let Some(peer) = reachable.iter().find(|p| &p.id == id) {
                tokio::spawn(self.clone().ask_graft(peer.clone()));
            }
        }
    }

    /// A peer pulled from this node; `graft`: because the broadcast tree
    /// failed to bring it the transaction, so push to it from now on.
    pub fn pulled_by(&self, peer: &str, graft: bool) {
        if graft {
            self.tree_link(peer, TreeLink::Graft);
        }
    }

    /// Remembers that `hash` is being stored from a pull (tree mode).
    pub(super) fn note_pulled(&self, hash: &TxHash) {
        if self.tree_mode() {
            let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
            if pulled.len() >= PULLED_REMEMBERED {
                pulled.clear();
            }
            pulled.insert(*hash);
        }
    }

    /// Whether this node's copy of `hash` came by a pull.
    pub(super) fn was_pulled(&self, hash: &TxHash) -> bool {
        self.pulled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(hash)
    }

    /// Peers this node pushes every new transaction to (tree mode).
    pub fn tree_links(&self) -> Vec<String> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).eager()
    }

    /// Whether transactions spread along the broadcast tree.
    pub(super) fn tree_mode(&self) -> bool {
        self.cfg.gossip_mode == crate::config::GossipMode::Tree
    }

    /// Updates the broadcast tree after what `peer` did (tree mode only).
    pub(super) fn tree_link(&self, peer: &str, link: TreeLink) {
        if !self.tree_mode() {
            return;
        }
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = &self.m.metrics;
        match link {
            TreeLink::DeliveredNew => tree.delivered_new(peer),
            TreeLink::Graft => {
                if !tree.is_eager(peer) {
                    metrics.tree_grafts.inc();
                }
                tree.graft(peer);
            }
            TreeLink::Prune => {
                if tree.prune(peer) {
                    metrics.tree_prunes.inc();
                }
            }
        }
        metrics.tree_eager_links.set(tree.eager_links() as i64);
    }
}

/// What a peer did on a broadcast-tree link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TreeLink {
    /// Brought a transaction this node lacked: keep pushing to it.
    DeliveredNew,
    /// Pulled what the tree failed to bring it, or was pulled from for
    /// that reason: push to it again.
    Graft,
    /// A push on this link met a transaction already held: stop pushing.
    Prune,
}
