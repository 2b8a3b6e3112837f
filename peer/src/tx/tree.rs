//! The broadcast tree (`GossipMode: Tree`): pure bookkeeping of which
//! peers get every new transaction pushed whole ("eager" links) and how
//! many others only hear its hash ("lazy" announcements).
//!
//! This is the Plumtree scheme (Leitão, Pereira, Rodrigues, SRDS 2007),
//! written by hand because no maintained crate offers it apart from a
//! transport. Links start eager; a link that delivers a transaction
//! the receiver already holds is pruned (both ends stop pushing on it)
//! when it is the highest-ranked link of the cycle it closed (see
//! `tree_rank`: concurrent prunes then cannot cut the tree), so the eager
//! links settle into a tree: each transaction then crosses
//! each node once, one message per hop and no pull round trip. A node
//! that misses one because the tree broke hears its hash from a lazy
//! announcement, pulls it after a delay and grafts the announcer back in.
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;

use super::gossip::choose;
use super::store::TxHash;
use super::tree_rank::{CycleTop, FirstCopy, PathMaxima, cycle_top, edge_rank};

/// Eager links a node opens to random neighbours when it first spreads a
/// transaction, and again whenever every link it had was pruned or
/// failed. A random graph where every node brings 2 links is connected
/// with high probability once there are a few dozen nodes, and pruning
/// removes the cycles. (3 made half again as many cycles, each costing
/// duplicates until ranked pruning found its highest link: heavy-load
/// p50 to 100% 328-388 ms against 16-55 ms with 2; see README "Stop 16".)
pub const SEED_LINKS: usize = 2;

/// Links seeded among fewer than `SMALL_NETWORK` neighbours: 2 each left
/// a 6-node network in two pieces often enough to fail a test in 3 runs.
pub const SEED_LINKS_SMALL: usize = 3;
const SMALL_NETWORK: usize = 16;

/// How many links a node with `neighbours` gossip neighbours seeds.
pub fn seed_links(neighbours: usize) -> usize {
    if neighbours < SMALL_NETWORK {
        SEED_LINKS_SMALL
    } else {
        SEED_LINKS
    }
}

/// Prune times kept before old ones are dropped.
const PRUNES_REMEMBERED: usize = 1024;

/// How long after pruning a link this node ignores the other end's
/// re-assertion of it (see `Tree::reasserted`).
pub const REASSERT_QUIET: Duration = Duration::from_secs(2);

/// The eager links, by peer id.
#[derive(Debug, Default)]
pub struct Tree {
    eager: HashSet<String>,
    /// Whether this node opened its own `SEED_LINKS` yet (links other
    /// peers opened to it do not make it part of a connected tree).
    seeded: bool,
    /// When each link was last pruned.
    pruned_at: HashMap<String, Instant>,
    /// Each recent transaction's path maximum (see `tree_rank`).
    paths: PathMaxima,
}

/// Where one transaction goes: pushed (or, when large, announced for an
/// immediate pull) to `eager`; announced lazily to `lazy`.
#[derive(Debug, PartialEq, Eq)]
pub struct TreeTargets<T> {
    pub eager: Vec<T>,
    pub lazy: Vec<T>,
}

impl Tree {
    pub fn eager_links(&self) -> usize {
        self.eager.len()
    }

    /// The eager links' peer ids, sorted.
    pub fn eager(&self) -> Vec<String> {
        let mut v: Vec<String> = self.eager.iter().cloned().collect();
        v.sort();
        v
    }

    pub fn is_eager(&self, peer: &str) -> bool {
        self.eager.contains(peer)
    }

    /// `peer` delivered a transaction this node did not hold (a push, or a
    /// pull it answered): the link is part of the tree, in both directions.
    pub fn delivered_new(&mut self, peer: &str) {
        if !self.eager.contains(peer) {
            self.eager.insert(peer.to_owned());
        }
    }

    /// `peer` asked this node to push to it again (it pulled something the
    /// tree failed to bring).
    pub fn graft(&mut self, peer: &str) {
        self.delivered_new(peer);
    }

    /// `peer` re-asserted its link to this node (it re-asserts all its
    /// links periodically, see `Distributor::reassert_tree`). Ignored
    /// within `REASSERT_QUIET` of this node pruning that link: the
    /// re-assertion was sent before the prune reached it. Taking it
    /// reopened the link at this end only, the next re-assertion from here
    /// reopened the other, and the cycle's next duplicate pruned it again;
    /// under load that churn never settled. Returns whether it was taken.
    pub fn reasserted(&mut self, peer: &str, now: Instant) -> bool {
        let quiet = self
            .pruned_at
            .get(peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < REASSERT_QUIET);
        if !quiet {
            self.graft(peer);
        }
        !quiet
    }

    /// A push crossed this link to a node that already held the
    /// transaction (seen from either end): the link closes a cycle.
    /// Returns whether it was eager.
    pub fn prune(&mut self, peer: &str, now: Instant) -> bool {
        if self.pruned_at.len() > PRUNES_REMEMBERED {
            self.pruned_at
                .retain(|_, t| now.saturating_duration_since(*t) < REASSERT_QUIET);
        }
        self.pruned_at.insert(peer.to_owned(), now);
        self.eager.remove(peer)
    }

    /// A transaction's first copy arrived here pushed by `from` with path
    /// maximum `max` (`None` and 0: submitted here).
    pub fn first_copy(&mut self, hash: TxHash, max: u64, me: &str, from: Option<&str>) {
        let from = from.map(|p| (p.to_owned(), edge_rank(me, p)));
        self.paths.note(hash, FirstCopy { max, from });
    }

    /// The path maximum a push of `hash` from `me` to `peer` carries:
    /// the first copy's, raised to this link's rank. Unknown (the copy was
    /// pulled): the highest, so its duplicates prune nothing.
    pub fn path_max(&self, hash: &TxHash, me: &str, peer: &str) -> u64 {
        self.paths
            .get(hash)
            .map_or(u64::MAX, |f| f.max)
            .max(edge_rank(me, peer))
    }

    /// Which of this node's links, if any, is the highest-ranked of the
    /// cycle a duplicate of `hash` pushed by `peer` with path maximum `max`
    /// closed (see `tree_rank`): the only link of that cycle safe to prune.
    pub fn cycle_top(&self, hash: &TxHash, max: u64, me: &str, peer: &str) -> CycleTop {
        cycle_top(self.paths.get(hash), max, edge_rank(me, peer))
    }

    /// Opens `SEED_LINKS` links to random `neighbours` if this node has
    /// not yet, or has no link to a `live` peer left; returns the new
    /// links' peer ids (the caller tells those peers, so the links carry
    /// transactions both ways at once). Links to peers not live now are
    /// kept: a link dropped at one end only would cut the tree for every
    /// transaction coming from the other.
    pub fn seed<T, R: Rng>(
        &mut self,
        live: &[T],
        neighbours: &[T],
        id: impl Fn(&T) -> &str,
        rng: &mut R,
    ) -> Vec<String> {
        let any_live = live.iter().any(|n| self.eager.contains(id(n)));
        if self.seeded && any_live {
            return Vec::new();
        }
        let eager = &self.eager;
        let seeds: Vec<String> = choose(
            neighbours,
            |n| eager.contains(id(n)),
            seed_links(neighbours.len()),
            rng,
        )
        .into_iter()
        .map(|n| id(n).to_owned())
        .collect();
        self.eager.extend(seeds.iter().cloned());
        self.seeded = !seeds.is_empty();
        seeds
    }

    /// Targets for a new transaction: the eager links to `live` peers, and
    /// `lazy` random `neighbours` that are neither eager nor `holders`
    /// (peers known to hold it). `id` names a peer.
    pub fn targets<'a, T, R: Rng>(
        &self,
        live: &'a [T],
        neighbours: &'a [T],
        id: impl Fn(&T) -> &str,
        holders: &[String],
        lazy: usize,
        rng: &mut R,
    ) -> TreeTargets<&'a T> {
        let held = |n: &T| holders.iter().any(|h| h == id(n));
        let eager = live
            .iter()
            .filter(|n| self.eager.contains(id(n)) && !held(n))
            .collect();
        let lazy = choose(
            neighbours,
            |n| self.eager.contains(id(n)) || held(n),
            lazy,
            rng,
        );
        TreeTargets { eager, lazy }
    }
}

/// Tree arrivals within one lazy delay that mark a busy node (see
/// `LazyNotices::busy`).
pub const BUSY_PUSHES: u64 = 8;

/// Lazy notices of transactions not yet held, and when the tree then
/// brought them. A node whose tree keeps bringing transactions that were
/// announced *before* the one it misses is behind, not cut off: the
/// missing one is probably queued behind them, so its lazy notice waits
/// again rather than pull a copy that is on its way. At light load every
/// transaction has arrived long before the next is announced, so a missing
/// one is pulled after one delay (see `Distributor::pull_missed`).
#[derive(Debug, Default)]
pub struct LazyNotices {
    heard: HashMap<TxHash, Instant>,
    /// The latest tree arrivals of noticed transactions: (arrived, noticed).
    arrivals: VecDeque<(Instant, Instant)>,
    /// Everything the tree brought, noticed or not, copies included.
    pushes: u64,
}

impl LazyNotices {
    /// Most notices remembered; all are dropped when full (a forgotten
    /// notice only goes uncounted).
    pub const MAX: usize = 65_536;

    /// Most arrivals remembered.
    const ARRIVALS: usize = 4096;

    /// A lazy notice named `hash` (the first one counts).
    pub fn heard(&mut self, hash: TxHash, now: Instant) {
        if self.heard.len() >= Self::MAX {
            self.heard.clear();
        }
        self.heard.entry(hash).or_insert(now);
    }

    /// The tree brought `hash`.
    pub fn arrived(&mut self, hash: &TxHash, now: Instant) {
        self.pushes += 1;
        if let Some(noticed) = self.heard.remove(hash) {
            if self.arrivals.len() == Self::ARRIVALS {
                self.arrivals.pop_front();
            }
            self.arrivals.push_back((now, noticed));
        }
    }

    /// Stops watching `hash` (pulled instead: not the tree's delivery).
    pub fn forget(&mut self, hash: &TxHash) {
        self.heard.remove(hash);
    }

    /// Tree arrivals so far (see `busy`).
    pub fn pushes(&self) -> u64 {
        self.pushes
    }

    /// Whether the tree brought `BUSY_PUSHES` or more transactions since
    /// the count was `then`. Saturated cores delay every hop about alike,
    /// lazy notices included, so a missing transaction there is usually
    /// queued, not lost; at light load (one transaction per 200 ms in the
    /// benchmark) a lazy delay sees one or two.
    pub fn busy(&self, then: u64) -> bool {
        self.pushes.saturating_sub(then) >= BUSY_PUSHES
    }

    /// Whether, since `since`, the tree brought a transaction noticed
    /// before `noticed`.
    pub fn behind(&self, noticed: Instant, since: Instant) -> bool {
        self.arrivals
            .iter()
            .rev()
            .take_while(|(arrived, _)| *arrived >= since)
            .any(|(_, n)| *n < noticed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A tree that opened its own links already (none left).
    fn seeded() -> Tree {
        Tree {
            seeded: true,
            ..Tree::default()
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i}")).collect()
    }

    fn targets(
        t: &mut Tree,
        peers: &[String],
        holders: &[&str],
        lazy: usize,
    ) -> TreeTargets<String> {
        t.seed(peers, peers, |p| p.as_str(), &mut StdRng::seed_from_u64(3));
        let holders: Vec<String> = holders.iter().map(|h| h.to_string()).collect();
        let got = t.targets(
            peers,
            peers,
            |p| p.as_str(),
            &holders,
            lazy,
            &mut StdRng::seed_from_u64(7),
        );
        let mut eager: Vec<String> = got.eager.into_iter().cloned().collect();
        eager.sort();
        TreeTargets {
            eager,
            lazy: got.lazy.into_iter().cloned().collect(),
        }
    }

    #[test]
    fn a_fresh_node_seeds_a_few_eager_links_and_announces_to_others() {
        let peers = ids(20);
        let mut t = Tree::default();
        let got = targets(&mut t, &peers, &[], 2);
        assert_eq!(got.eager.len(), SEED_LINKS);
        assert_eq!(got.lazy.len(), 2);
        assert!(got.lazy.iter().all(|l| !got.eager.contains(l)));
        // The seed is kept, not redrawn per transaction.
        assert_eq!(targets(&mut t, &peers, &[], 2).eager, got.eager);
    }

    #[test]
    fn links_opened_by_others_do_not_replace_a_nodes_own_seed() {
        let peers = ids(20);
        let mut t = Tree::default();
        t.delivered_new("p1");
        let got = targets(&mut t, &peers, &["p1"], 0);
        assert_eq!(got.eager.len(), SEED_LINKS);
        assert!(!got.eager.contains(&"p1".to_string()), "p1 holds it");
        assert_eq!(t.eager_links(), SEED_LINKS + 1);
    }

    #[test]
    fn pruned_links_stop_getting_pushes_and_grafted_ones_start() {
        let peers = ids(10);
        let mut t = seeded();
        t.delivered_new("p1");
        t.delivered_new("p2");
        let now = Instant::now();
        assert!(t.prune("p1", now));
        assert!(!t.prune("p1", now), "already lazy");
        t.graft("p5");
        let got = targets(&mut t, &peers, &[], 0);
        assert_eq!(got.eager, vec!["p2".to_string(), "p5".to_string()]);
        assert!(got.lazy.is_empty());
    }

    #[test]
    fn holders_and_peers_not_live_get_nothing() {
        let peers = ids(6);
        let mut t = seeded();
        t.delivered_new("p1");
        t.delivered_new("p2");
        t.delivered_new("gone");
        let got = targets(&mut t, &peers, &["p1", "p3"], 10);
        assert_eq!(got.eager, vec!["p2".to_string()]);
        let mut lazy = got.lazy.clone();
        lazy.sort();
        assert_eq!(lazy, vec!["p0", "p4", "p5"]);
        // Kept for when it is live again.
        assert!(t.is_eager("gone"));
    }

    #[test]
    fn a_node_whose_links_were_all_pruned_seeds_new_ones() {
        let peers = ids(8);
        let mut t = seeded();
        t.delivered_new("p1");
        t.prune("p1", Instant::now());
        assert_eq!(
            targets(&mut t, &peers, &[], 0).eager.len(),
            SEED_LINKS_SMALL,
            "8 neighbours: a small network"
        );
    }

    #[test]
    fn a_reassertion_soon_after_a_prune_is_ignored() {
        let mut t = seeded();
        let t0 = Instant::now();
        t.delivered_new("p1");
        t.prune("p1", t0);
        assert!(!t.reasserted("p1", t0 + Duration::from_millis(500)));
        assert!(!t.is_eager("p1"), "it crossed the prune");
        assert!(t.reasserted("p2", t0), "never pruned: taken");
        assert!(t.reasserted("p1", t0 + REASSERT_QUIET), "a lasting claim");
        assert!(t.is_eager("p1") && t.is_eager("p2"));
        // A real graft (the peer pulled what the tree failed to bring)
        // is taken at once.
        t.prune("p2", t0);
        t.graft("p2");
        assert!(t.is_eager("p2"));
    }

    #[test]
    fn a_node_is_behind_while_older_announcements_are_still_arriving() {
        let ms = |n| Duration::from_millis(n);
        let t0 = Instant::now();
        let mut n = LazyNotices::default();
        n.heard([1; 32], t0);
        n.heard([1; 32], t0 + ms(5)); // a second notice: the first counts
        n.heard([2; 32], t0 + ms(10));
        n.heard([3; 32], t0 + ms(20));
        // [3] is missing from t0+20ms. Light load: [1] and [2] arrived
        // before it was announced, so it is not behind anything.
        n.arrived(&[1; 32], t0 + ms(12));
        n.arrived(&[2; 32], t0 + ms(15));
        assert!(!n.behind(t0 + ms(20), t0 + ms(20)));
        // Heavy load: [4], announced before [3], arrives during its wait.
        n.heard([4; 32], t0 + ms(18));
        n.arrived(&[4; 32], t0 + ms(200));
        assert!(n.behind(t0 + ms(20), t0 + ms(20)));
        assert!(
            !n.behind(t0 + ms(20), t0 + ms(201)),
            "only since the wait began"
        );
        assert!(!n.behind(t0 + ms(18), t0 + ms(20)), "not older than itself");
        // A second copy, or a pulled transaction, is not the tree's.
        n.heard([5; 32], t0);
        n.forget(&[5; 32]);
        n.arrived(&[5; 32], t0 + ms(300));
        n.arrived(&[4; 32], t0 + ms(300));
        assert!(!n.behind(t0 + ms(20), t0 + ms(250)));
        let then = n.pushes();
        for i in 0..BUSY_PUSHES {
            assert!(!n.busy(then));
            n.arrived(&[i as u8; 32], t0 + ms(400));
        }
        assert!(n.busy(then));
    }
}
