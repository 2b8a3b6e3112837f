//! Which peers a transaction goes to: this node's gossip neighbours (read
//! from the peer table, kept while it does not change) and its
//! broadcast-tree links (see `tree`).
use std::sync::Arc;
use std::time::Instant;

use super::distributor::{Distributor, PeerRef};
use super::gossip::{choose, fanout, neighbours};
use super::store::TxHash;
use super::tree::TreeTargets;

/// How often one gossip neighbour is swapped for another peer.
const NEIGHBOUR_ROTATION: std::time::Duration = std::time::Duration::from_secs(30);

/// How often the peer table is checked for changes to the neighbour
/// reading: reading (and copying) every peer record for each transaction
/// cost a busy 100-node network more CPU than spreading the transaction
/// did. A peer that joined or failed meanwhile is seen at most this much
/// later.
const NEIGHBOUR_REFRESH: std::time::Duration = std::time::Duration::from_millis(250);

/// This node's gossip neighbours as last read from the peer table.
pub(super) struct Neighbours {
    pub(super) peers: Vec<PeerRef>,
    /// Live peers at that reading (the fanout depends on it).
    pub(super) live: usize,
    /// Known peers whose circuit is not open, answering pings or not:
    /// broadcast-tree links stay pushed to while their peer may merely
    /// have missed a ping. Skipping a link at one end only would cut the
    /// tree for every transaction coming from that side.
    pub(super) reachable: Vec<PeerRef>,
    read: Option<Instant>,
    /// The peer table's fingerprint and the open circuits at that reading:
    /// while both stay the same, the reading is kept.
    source: Option<(u64, Vec<String>)>,
    rotated: Instant,
}

/// How many recently pulled hashes are remembered (32 bytes each).
const PULLED_REMEMBERED: usize = 65_536;

impl Neighbours {
    pub(super) fn new() -> Self {
        Self {
            peers: Vec::new(),
            live: 0,
            reachable: Vec::new(),
            read: None,
            source: None,
            rotated: Instant::now(),
        }
    }
}

impl Distributor {
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
        self.ask_links(&g.reachable, &seeds, true);
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
        self.ask_links(&g.reachable, &self.tree_links(), true);
    }

    /// Drops the tree link to `peer` and asks it to drop its end (a
    /// prune not carried by a push's answer).
    pub(super) fn prune_and_tell(self: &Arc<Self>, peer: &str) {
        self.tree_link(peer, TreeLink::Prune);
        let g = self.neighbours();
        self.ask_links(&g.reachable, &[peer.to_owned()], false);
    }

    /// Asks each of `ids` that is reachable to graft (or prune) its link.
    fn ask_links(self: &Arc<Self>, reachable: &[PeerRef], ids: &[String], graft: bool) {
        for id in ids {
            if let Some(peer) = reachable.iter().find(|p| &p.id == id) {
                tokio::spawn(self.clone().ask_link(peer.clone(), graft));
            }
        }
    }

    /// `peer` dropped its tree link to this node (see `FetchRequest.prune`).
    pub fn pruned_by(&self, peer: &str) {
        self.tree_link(peer, TreeLink::Prune);
    }

    /// A peer pulled `hashes` from this node; `graft`: because the
    /// broadcast tree failed to bring it the transaction, so push to it
    /// from now on. A graft naming no transaction re-asserts a link (see
    /// `reassert_tree`).
    pub fn pulled_by(&self, peer: &str, graft: bool, hashes: usize) {
        match (graft, hashes) {
            (false, _) => {}
            (true, 0) => self.tree_link(peer, TreeLink::Reasserted),
            (true, _) => self.tree_link(peer, TreeLink::Graft),
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
            TreeLink::Reasserted => {
                let was = tree.is_eager(peer);
                if tree.reasserted(peer, Instant::now()) && !was {
                    metrics.tree_grafts.inc();
                }
            }
            TreeLink::Prune => {
                if tree.prune(peer, Instant::now()) {
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
    /// Asked to push to it: a re-assertion of the link by its other end.
    Reasserted,
    /// A push on this link met a transaction already held: stop pushing.
    Prune,
}
