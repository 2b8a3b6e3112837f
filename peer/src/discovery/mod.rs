//! Peer discovery and membership: the shared peer list (`Membership`), the
//! three discovery phases (`engine`), the pure list rules (`membership`) and
//! the Online/Degraded/Offline machine (`state`).
pub mod engine;
pub mod membership;
pub mod state;
pub mod wire;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::Serialize;
use tokio::sync::watch;

use crate::Result;
use crate::clock::now_ms;
use crate::config::PeerDiscoveryConfig;
use crate::events::{EventKind, EventLog};
use crate::metrics::Metrics;
use crate::store::Store;
use membership::{Failure, IgnoreReason, Merge, PeerDescription, PeerRecord, PeerTable, Source};
use state::NodeState;

/// The node's view of the network, shared by the servers (which learn of
/// peers when they call us) and the discovery engine (which calls them).
///
/// Changes reach SQLite write-behind: `flush` (run every `FLUSH_INTERVAL`
/// by the node, and at shutdown) writes every row touched since the last
/// flush in one transaction. Writing each ping result through cost a third
/// of the 100-peer convergence time; a crash loses at most one interval of
/// peer-list updates, which the next discovery round re-learns.
pub struct Membership {
    /// This node as advertised; the address follows address discovery.
    /// This node's id (fixed for its life).
    id: String,
    /// What this node advertises; the address may change at runtime.
    advertised: crate::address::Advertised,
    pub cfg: PeerDiscoveryConfig,
    table: Mutex<PeerTable>,
    store: Store,
    pending: Mutex<Pending>,
    pub events: EventLog,
    pub metrics: Metrics,
    state: watch::Sender<NodeState>,
    last_discovery_ms: AtomicI64,
    started_ms: i64,
    ready: AtomicBool,
}

pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Peer ids changed or removed since the last flush.
#[derive(Default)]
struct Pending {
    touched: HashSet<String>,
    removed: HashSet<String>,
}

/// What `merge` did, for callers that continue discovery from new peers.
#[derive(Debug, Default)]
pub struct MergeReport {
    pub added: Vec<String>,
    pub ignored: Vec<(String, IgnoreReason)>,
}

/// Snapshot served by the status API and shown by the devnet dashboard.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node_id: String,
    pub address: String,
    pub port: u16,
    pub state: String,
    pub known_peers: usize,
    pub active_peers: usize,
    pub min_healthy_peers: usize,
    /// Unix milliseconds; 0 if no discovery round has reached a peer yet.
    pub last_successful_discovery: i64,
    pub uptime_seconds: u64,
    pub version: String,
    /// Address discovery: external address, NAT type, method, reachability.
    #[serde(default)]
    pub network_address: crate::address::AddressStatus,
}

/// Long enough for every neighbour to notice the failure too: they ping on
/// the same interval and remove after the same number of failures.
fn tombstone_ms(cfg: &PeerDiscoveryConfig) -> i64 {
    let ms = cfg.refresh_interval_minutes.as_millis() as i64;
    ms.saturating_mul(i64::from(cfg.failure_threshold) + 2)
}

impl Membership {
    pub fn new(me: PeerDescription, cfg: PeerDiscoveryConfig, store: Store) -> Result<Self> {
        let mut table = PeerTable::new(
            me.peer_id.clone(),
            (me.address.clone(), me.port),
            cfg.max_peers_in_list,
            cfg.failure_threshold,
            tombstone_ms(&cfg),
        );
        let rejected = table.load(store.load_peers()?);
        store.apply(&[], &rejected)?;
        let metrics = Metrics::new();
        metrics.peers_known.set(table.len() as i64);
        Ok(Self {
            id: me.peer_id.clone(),
            advertised: crate::address::Advertised::new(me),
            cfg,
            table: Mutex::new(table),
            store,
            pending: Mutex::new(Pending::default()),
            events: EventLog::new(1000),
            metrics,
            state: watch::channel(NodeState::Offline).0,
            last_discovery_ms: AtomicI64::new(0),
            started_ms: now_ms(),
            ready: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// This node's description as advertised right now.
    pub fn me(&self) -> std::sync::Arc<PeerDescription> {
        self.advertised.current()
    }

    /// This node's description for the wire, stamped now.
    pub fn self_info(&self) -> sorcha_proto::discovery::PeerInfo {
        let mut info = wire::description_to_info(&self.me());
        info.last_seen = now_ms();
        info
    }

    /// Advertises `address` from now on (and keeps it out of the peer list,
    /// like the old one); false if it already was.
    pub fn set_advertised_address(&self, address: &str) -> bool {
        let mut table = self.lock();
        let changed = self.advertised.set_address(address);
        if changed {
            table.set_self_endpoint((address.to_owned(), self.me().port));
        }
        changed
    }

    pub fn address_status(&self) -> crate::address::AddressStatus {
        self.advertised.status()
    }

    pub fn set_address_status(&self, status: crate::address::AddressStatus) {
        self.advertised.set_status(status);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a table change, queues what it touched for the next flush,
    /// then refreshes gauges and the state machine.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut PeerTable, &mut Vec<String>, &mut Vec<String>) -> T,
    ) -> Result<T> {
        let mut table = self.lock();
        let (mut touched, mut removed) = (Vec::new(), Vec::new());
        let out = f(&mut table, &mut touched, &mut removed);
        let (known, active) = (table.len(), table.active_count());
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for id in removed {
                pending.touched.remove(&id);
                pending.removed.insert(id);
            }
            for id in touched {
                pending.removed.remove(&id);
                pending.touched.insert(id);
            }
        }
        drop(table);
        self.metrics.peers_known.set(known as i64);
        self.metrics.peers_active.set(active as i64);
        self.evaluate_state(active);
        Ok(out)
    }

    /// Writes every change since the last flush to SQLite.
    pub fn flush(&self) -> Result<()> {
        // The table lock orders flushes with changes: rows are read as of
        // the moment the pending set is taken.
        let table = self.lock();
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let rows: Vec<PeerRecord> = pending
            .touched
            .iter()
            .filter_map(|id| table.get(id).cloned())
            .collect();
        let removed: Vec<String> = pending.removed.into_iter().collect();
        self.store.apply(&rows, &removed)
    }

    /// Merges descriptions of peers; `Direct` ones are alive right now.
    pub fn merge(&self, peers: &[PeerDescription], source: Source) -> Result<MergeReport> {
        let now = now_ms();
        let report = self.change(|table, touched, removed| {
            let mut report = MergeReport::default();
            for d in peers {
                match table.merge(d, source, now) {
                    Merge::Added => report.added.push(d.peer_id.clone()),
                    Merge::Updated => {}
                    Merge::Known => continue,
                    Merge::Replaced { old_peer_id } => {
                        removed.push(old_peer_id);
                        report.added.push(d.peer_id.clone());
                    }
                    Merge::Ignored(why) => {
                        report.ignored.push((d.peer_id.clone(), why));
                        continue;
                    }
                }
                touched.push(d.peer_id.clone());
            }
            report
        })?;
        for id in &report.added {
            self.events.record(
                EventKind::PeerAdded,
                Some(id),
                format!("peer {id} joined the list"),
            );
        }
        Ok(report)
    }

    pub fn mark_bootstrap(&self, peer_id: &str) -> Result<()> {
        self.change(|t, touched, _| {
            t.mark_bootstrap(peer_id);
            touched.push(peer_id.to_owned());
        })
    }

    pub fn record_success(&self, peer_id: &str) -> Result<()> {
        let now = now_ms();
        self.change(|t, touched, _| {
            if t.record_success(peer_id, now) {
                touched.push(peer_id.to_owned());
            }
        })
    }

    /// Counts a failed call; removes the peer past the threshold.
    pub fn record_failure(&self, peer_id: &str, operation: &str) -> Result<Option<Failure>> {
        self.metrics
            .connection_errors
            .with_label_values(&[operation])
            .inc();
        let now = now_ms();
        let outcome = self.change(|t, touched, removed| {
            let f = t.record_failure(peer_id, now);
            match f {
                Some(Failure::Removed(_)) => removed.push(peer_id.to_owned()),
                Some(Failure::Counted(_)) => touched.push(peer_id.to_owned()),
                None => {}
            }
            f
        })?;
        if let Some(Failure::Removed(n)) = outcome {
            self.metrics.peers_removed.inc();
            self.events.record(
                EventKind::PeerRemoved,
                Some(peer_id),
                format!(
                    "peer {peer_id} removed after {n} consecutive failures (threshold {})",
                    self.cfg.failure_threshold
                ),
            );
        }
        Ok(outcome)
    }

    /// Administrative removal.
    pub fn remove(&self, peer_id: &str) -> Result<bool> {
        let removed = self.change(|t, _, removed| {
            let found = t.remove(peer_id).is_some();
            if found {
                removed.push(peer_id.to_owned());
            }
            found
        })?;
        if removed {
            self.events.record(
                EventKind::PeerRemoved,
                Some(peer_id),
                format!("peer {peer_id} removed"),
            );
        }
        Ok(removed)
    }

    /// Up to `max` peers as wire messages, built under the lock without
    /// intermediate copies (this serves every GetPeerList).
    pub fn list_infos(
        &self,
        max: usize,
        exclude: Option<&str>,
    ) -> Vec<sorcha_proto::discovery::PeerInfo> {
        let table = self.lock();
        table
            .list(max, exclude)
            .into_iter()
            .map(wire::record_to_info)
            .collect()
    }

    /// Every listed peer, responsive first.
    pub fn records(&self) -> Vec<PeerRecord> {
        let table = self.lock();
        table.list(usize::MAX, None).into_iter().cloned().collect()
    }

    /// See `PeerTable::fingerprint`.
    pub fn fingerprint(&self) -> u64 {
        self.lock().fingerprint()
    }

    pub fn get(&self, peer_id: &str) -> Option<PeerRecord> {
        self.lock().get(peer_id).cloned()
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().ids()
    }

    pub fn counts(&self) -> (usize, usize) {
        let t = self.lock();
        (t.len(), t.active_count())
    }

    pub fn is_full(&self) -> bool {
        self.lock().is_full()
    }

    fn evaluate_state(&self, active: usize) {
        let current = *self.state.borrow();
        let steps = state::evaluate(current, active, self.cfg.min_healthy_peers);
        let Some(last) = steps.last() else { return };
        for t in &steps {
            self.metrics
                .state_transitions
                .with_label_values(&[t.from.as_str(), t.to.as_str()])
                .inc();
            self.events.record(
                EventKind::StateChanged,
                None,
                format!(
                    "{} -> {} ({}; {active} active, minimum {})",
                    t.from, t.to, t.trigger, self.cfg.min_healthy_peers
                ),
            );
        }
        self.metrics.set_state(last.to);
        // send_replace: the value changes even with no receiver alive.
        self.state.send_replace(last.to);
    }

    pub fn state(&self) -> NodeState {
        *self.state.borrow()
    }

    pub fn subscribe_state(&self) -> watch::Receiver<NodeState> {
        self.state.subscribe()
    }

    pub fn discovery_succeeded(&self) {
        let now = now_ms();
        self.last_discovery_ms.store(now, Ordering::Relaxed);
        self.metrics
            .last_successful_discovery
            .set(now as f64 / 1000.0);
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Ready once the first discovery pass finished, whatever its outcome.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> NodeStatus {
        let (known, active) = self.counts();
        let me = self.me();
        NodeStatus {
            node_id: self.id.clone(),
            address: me.address.clone(),
            port: me.port,
            state: self.state().to_string(),
            known_peers: known,
            active_peers: active,
            min_healthy_peers: self.cfg.min_healthy_peers,
            last_successful_discovery: self.last_discovery_ms.load(Ordering::Relaxed),
            uptime_seconds: ((now_ms() - self.started_ms).max(0) / 1000) as u64,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            network_address: self.advertised.status(),
        }
    }
}
