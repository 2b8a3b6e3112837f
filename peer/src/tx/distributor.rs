//! The transaction distribution service: accepts submissions, stores them
//! durably, spreads them by gossip, answers other peers' gossip, and keeps
//! the offline queue. Spreading lives in `spread.rs`, anti-entropy and the
//! queue flush in `sync.rs`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use sorcha_proto::transaction::CompactNotification;

use super::dedupe::{Dedupe, DedupeConfig, random_salt};
use super::gossip::REPAIR_ROUND;
use super::hot::{Budget, Committing, HotCache};
use super::links::Neighbours;
pub(super) use super::links::TreeLink;
use super::mailbox::Mailboxes;
use super::net::{TxClients, max_message_bytes, worth_compressing};
use super::push::QueuedPush;
use super::queue::OfflineQueue;
use super::store::{TxHash, TxStore, hash_of, to_hex};
use super::tree::{LazyNotices, Tree};
use crate::clock::now_ms;
use crate::config::{OfflineModeConfig, TransactionDistributionConfig};
use crate::discovery::Membership;
use crate::discovery::membership::PeerRecord;
use crate::discovery::state::NodeState;
use crate::{Error, Result};

/// Memory for recently accepted transactions (see `hot`).
const HOT_CACHE: Budget = Budget {
    small: 56 * 1024 * 1024,
    large: 8 * 1024 * 1024,
};

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
    /// Lazy notices per peer (see `spread::Outbox::Lazy`).
    pub(super) lazy_boxes: Mailboxes<CompactNotification>,
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
    pub(super) neighbours: Mutex<Neighbours>,
    /// Broadcast-tree links (`GossipMode: Tree`).
    pub(super) tree: Mutex<Tree>,
    /// Recent transactions this node pulled rather than had pushed (tree
    /// mode; see `on_push`). Cleared whole when full.
    pub(super) pulled: Mutex<std::collections::HashSet<TxHash>>,
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
            lazy_boxes: Mailboxes::default(),
            push_refused: Mutex::new(HashMap::new()),
            pulling: Mutex::new(HashMap::new()),
            submitted_at: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
            hot: Mutex::new(HotCache::new(HOT_CACHE)),
            lazy_notices: Mutex::new(LazyNotices::default()),
            neighbours: Mutex::new(Neighbours::new()),
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

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.m.metrics
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
    pub async fn submit(self: &Arc<Self>, data: impl Into<Bytes>) -> Result<Submitted> {
        let data: Bytes = data.into();
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
                .enqueue_batched(hex.clone(), data.to_vec(), now_ms())
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

    /// True when this node holds `hash`: stored, or accepted and still
    /// being committed. (Counting only stored ones, a node whose disk was
    /// slow took lazy notices of what it had just received for misses, and
    /// pulled and grafted.)
    pub fn holds(&self, hash: &TxHash) -> Result<bool> {
        if self
            .hot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(hash)
        {
            return Ok(true);
        }
        self.stored(hash)
    }

    /// Whether `hash` is stored: the bloom filter answers fast for hashes
    /// never seen; its positives are confirmed against the store, so a
    /// false positive costs a lookup, never a lost transaction.
    fn stored(&self, hash: &TxHash) -> Result<bool> {
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
        data: Bytes,
        round: u32,
        from: Option<&str>,
        compressible: Option<bool>,
    ) -> Result<bool> {
        let size = data.len() as u64;
        let fresh = self
            .hot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, data.clone());
        let metrics = &self.m.metrics;
        if !fresh {
            metrics.tx_duplicates.inc();
            return Ok(false);
        }
        let committing = Committing {
            cache: &self.hot,
            hash,
        };
        if self.stored(&hash)? {
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
        let committed = if from.is_some() {
            self.store.insert_relayed(hash, data, now_ms()).await
        } else {
            self.store.insert(hash, data, now_ms()).await
        };
        if let Err(e) = committed {
            self.hot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hash);
            return Err(e);
        }
        if from.is_some() {
            metrics.bandwidth_received.inc_by(size);
        } else {
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
        // Evictable only now: until `remember`, the cache is what says
        // this node holds it.
        drop(committing);
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
    pub fn get(&self, hash: &TxHash) -> Result<Option<Bytes>> {
        let found = self.data(hash)?;
        if let Some(data) = &found {
            self.m.metrics.tx_pulls_served.inc();
            self.m.metrics.bandwidth_sent.inc_by(data.len() as u64);
        }
        Ok(found)
    }

    /// A transaction's bytes: recent ones from memory, others from disk.
    pub(super) fn data(&self, hash: &TxHash) -> Result<Option<Bytes>> {
        let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner()).get(hash);
        match hot {
            Some(d) => Ok(Some(d)),
            None => Ok(self.store.get(hash)?.map(Bytes::from)),
        }
    }
}
