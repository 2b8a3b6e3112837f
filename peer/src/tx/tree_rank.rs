//! Which broadcast-tree link a duplicate push may prune without cutting
//! the tree.
//!
//! Plain Plumtree prunes every link that delivers a duplicate. With
//! transactions from several origins in flight, duplicates of different
//! transactions prune different links of one cycle at once, and the tree
//! falls apart (a median of 8 to 19 pieces when it formed under the
//! benchmark's heavy load).
//!
//! Here every link has a rank that both ends compute alike (a hash of the
//! two peer ids), and a pushed copy carries the highest rank of the links
//! it crossed. A node that receives a second copy knows both copies'
//! maxima. The two paths share a prefix from the origin, then split and
//! meet at this node: if the maxima differ, the higher one lies on the
//! cycle and is its highest-ranked link. Only that link is pruned, and only
//! when it is one of this node's: the one the second copy crossed (its
//! sender hears so in the push's answer) or the one the first copy crossed
//! (its sender gets a prune request). A link that is the highest of some cycle is never
//! in the minimum spanning tree by rank (the cycle property), so any set of
//! such prunes, however concurrent, leaves the graph connected. Cycles whose
//! highest link is elsewhere wait for a copy that meets on that link.
use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use super::store::TxHash;

/// The rank of the link between peers `a` and `b`, the same at both ends.
pub fn edge_rank(a: &str, b: &str) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Sha256::new();
    h.update(lo.as_bytes());
    h.update([0]);
    h.update(hi.as_bytes());
    let d = h.finalize();
    // Never 0: a push without ranks carries 0 and must prune nothing.
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes")).max(1)
}

/// How this node's first copy of a transaction arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstCopy {
    /// The path maximum it carried (0: submitted here).
    pub max: u64,
    /// The peer that pushed it and that link's rank (none: submitted here).
    pub from: Option<(String, u64)>,
}

/// Which of this node's links, if any, is the highest-ranked of the cycle
/// that a duplicate closed.
#[derive(Debug, PartialEq, Eq)]
pub enum CycleTop {
    /// The link the duplicate crossed.
    Duplicates,
    /// The link the first copy crossed, to this peer.
    FirstCopy(String),
    /// A link elsewhere on the cycle (or unknown): nothing is pruned here.
    Elsewhere,
}

/// Judges a duplicate push that crossed a link of rank `link` carrying path
/// maximum `second` (that link included), given how the first copy came
/// (`None`: not known, e.g. it was pulled). A push without ranks (`second`
/// 0, from a sender that does not rank links) prunes its link as in plain
/// Plumtree.
pub fn cycle_top(first: Option<&FirstCopy>, second: u64, link: u64) -> CycleTop {
    if second == 0 {
        return CycleTop::Duplicates;
    }
    let Some(first) = first else {
        return CycleTop::Elsewhere;
    };
    if second > first.max && second == link {
        return CycleTop::Duplicates;
    }
    match &first.from {
        Some((peer, rank)) if first.max > second && first.max == *rank => {
            CycleTop::FirstCopy(peer.clone())
        }
        _ => CycleTop::Elsewhere,
    }
}

/// How each recent transaction's first copy came here. Bounded; the oldest
/// go first, and a forgotten one only means its duplicates prune nothing.
#[derive(Debug, Default)]
pub struct PathMaxima {
    map: HashMap<TxHash, FirstCopy>,
    order: VecDeque<TxHash>,
}

impl PathMaxima {
    pub const MAX: usize = 65_536;

    /// The first copy's; later ones are ignored.
    pub fn note(&mut self, hash: TxHash, first: FirstCopy) {
        if self.map.contains_key(&hash) {
            return;
        }
        if self.order.len() == Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(hash, first);
        self.order.push_back(hash);
    }

    pub fn get(&self, hash: &TxHash) -> Option<&FirstCopy> {
        self.map.get(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_rank_a_link_alike_and_links_differ() {
        assert_eq!(edge_rank("a", "b"), edge_rank("b", "a"));
        assert_ne!(edge_rank("a", "b"), edge_rank("a", "c"));
        assert_ne!(edge_rank("ab", "c"), edge_rank("a", "bc"));
    }

    fn first(max: u64, from: Option<(&str, u64)>) -> FirstCopy {
        FirstCopy {
            max,
            from: from.map(|(p, r)| (p.to_owned(), r)),
        }
    }

    #[test]
    fn only_the_cycles_highest_link_is_pruned() {
        use CycleTop::*;
        let via = |max, rank| first(max, Some(("z", rank)));
        // The second copy's last link is the highest on both paths.
        assert_eq!(cycle_top(Some(&via(5, 3)), 9, 9), Duplicates);
        // Its path has a higher link further back: that one is the
        // cycle's highest (or the paths' shared one), not this.
        assert_eq!(cycle_top(Some(&via(5, 3)), 9, 7), Elsewhere);
        // The first copy's last link is the highest: its sender is asked.
        assert_eq!(cycle_top(Some(&via(9, 9)), 7, 7), FirstCopy("z".into()));
        // The first copy's path holds the highest link further back.
        assert_eq!(cycle_top(Some(&via(9, 4)), 7, 7), Elsewhere);
        // Submitted here: no first link.
        assert_eq!(cycle_top(Some(&first(0, None)), 7, 3), Elsewhere);
        // Equal maxima: the highest link is in the shared prefix.
        assert_eq!(cycle_top(Some(&via(9, 9)), 9, 9), Elsewhere);
        // First copy pulled: its path is unknown.
        assert_eq!(cycle_top(None, 9, 9), Elsewhere);
        // A sender that does not rank links: plain Plumtree.
        assert_eq!(cycle_top(Some(&first(0, None)), 0, 5), Duplicates);
        assert_eq!(cycle_top(None, 0, 5), Duplicates);
    }

    #[test]
    fn path_maxima_keep_the_first_copy_and_forget_the_oldest() {
        let mut m = PathMaxima::default();
        m.note([1; 32], first(4, None));
        m.note([1; 32], first(9, None));
        assert_eq!(m.get(&[1; 32]).map(|f| f.max), Some(4));
        for i in 0..PathMaxima::MAX as u32 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            h[31] = 7;
            m.note(h, first(1, None));
        }
        assert!(m.get(&[1; 32]).is_none());
        assert_eq!(m.map.len(), PathMaxima::MAX);
    }

    /// Copies of concurrent transactions flood a random graph with random
    /// hop delays; each duplicate may prune the link it crossed. Returns
    /// whether the links left connect every node, and how many are left.
    fn flood(seed: u64, ranked: bool) -> (bool, usize) {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        use std::cmp::Reverse;
        use std::collections::{BTreeSet, BinaryHeap, HashMap};

        const NODES: usize = 60;
        let mut rng = StdRng::seed_from_u64(seed);
        let id = |i: usize| format!("n{i}");
        let mut links: BTreeSet<(usize, usize)> = BTreeSet::new();
        // Each node links to 3 random others, as seeded links do.
        for a in 0..NODES {
            for _ in 0..3 {
                let b = (a + rng.random_range(1..NODES)) % NODES;
                links.insert((a.min(b), a.max(b)));
            }
        }
        let start = links.len();
        let rank = |a: usize, b: usize| edge_rank(&id(a), &id(b));
        // (time, transaction, from, to, path maximum)
        let mut queue = BinaryHeap::new();
        for tx in 0..40usize {
            let origin = rng.random_range(0..NODES);
            queue.push(Reverse((tx as u64, tx, origin, origin, 0u64)));
        }
        let mut first: HashMap<(usize, usize), FirstCopy> = HashMap::new();
        while let Some(Reverse((t, tx, from, to, max))) = queue.pop() {
            if let Some(copy) = first.get(&(tx, to)) {
                let prune = match cycle_top(Some(copy), max, rank(from, to)) {
                    _ if !ranked => Some(from),
                    CycleTop::Duplicates => Some(from),
                    CycleTop::FirstCopy(peer) => peer[1..].parse().ok(),
                    CycleTop::Elsewhere => None,
                };
                if let Some(p) = prune {
                    links.remove(&(p.min(to), p.max(to)));
                }
                continue;
            }
            let came = (from != to).then(|| (id(from), rank(from, to)));
            first.insert((tx, to), FirstCopy { max, from: came });
            let next: Vec<usize> = links
                .iter()
                .filter_map(|&(a, b)| (a == to).then_some(b).or((b == to).then_some(a)))
                .filter(|&n| n != from)
                .collect();
            for n in next {
                let delay = rng.random_range(1..20u64);
                queue.push(Reverse((t + delay, tx, to, n, max.max(rank(to, n)))));
            }
        }
        let mut reached = [false; NODES];
        let mut stack = vec![0];
        reached[0] = true;
        while let Some(a) = stack.pop() {
            for &(x, y) in &links {
                for (p, q) in [(x, y), (y, x)] {
                    if p == a && !reached[q] {
                        reached[q] = true;
                        stack.push(q);
                    }
                }
            }
        }
        assert!(
            links.len() < start || !ranked,
            "seed {seed}: nothing pruned"
        );
        (reached.iter().all(|r| *r), links.len())
    }

    #[test]
    fn concurrent_prunes_of_the_highest_ranked_links_never_cut_the_tree() {
        let mut naive_cut = 0;
        for seed in 0..30 {
            let (connected, left) = flood(seed, true);
            assert!(connected, "seed {seed}: ranked pruning cut the tree");
            assert!(left >= 59);
            if !flood(seed, false).0 {
                naive_cut += 1;
            }
        }
        // The same traffic with every duplicate pruning its link (plain
        // Plumtree) does cut it: the test can tell the rules apart.
        assert!(naive_cut > 0, "plain pruning never cut the tree here");
    }
}
