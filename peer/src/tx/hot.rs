//! The most recently accepted transactions, in memory. Relays forward a
//! transaction before its local commit finishes (the network already holds
//! it, so only this node's copy waits on the disk), and the peers that pull
//! it are served from here rather than from SQLite. Bounded in bytes;
//! oldest out first, but never one still being committed: until then this
//! is the only place that says the node holds it.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

use super::store::TxHash;

/// Transactions below this size are copied into their own allocation when
/// cached: a decoded transaction is a slice of its message's receive
/// buffer, and a small one kept for minutes would pin a buffer many times
/// its size, past the cache's byte budget. Larger ones are most of their
/// buffer and are kept as they are.
const SHARED_FROM: usize = 64 * 1024;

/// Transactions from this size on are large: the tree announces them for
/// a pull instead of pushing them (`TREE_PUSH_MAX`).
pub const LARGE_FROM: usize = super::spread::TREE_PUSH_MAX as usize + 1;

/// Bytes for small and for large transactions, each evicted on its own.
/// Large ones get a small share: their pullers (the tree's children) ask
/// within moments, later ones read the file. Holding every large copy
/// made each new one land in freshly faulted memory; on the 100-peer
/// 1 MiB benchmark a 64 MiB share cost 10–70% more CPU per transaction
/// than 4–16 MiB (alternating runs, 369–406 against 427–672 ms).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub small: usize,
    pub large: usize,
}

pub struct HotCache {
    map: HashMap<TxHash, Entry>,
    small: Shelf,
    large: Shelf,
}

struct Entry {
    data: Bytes,
    /// Accepted and not yet committed: not evicted.
    committing: bool,
}

/// One size class: its budget and its entries, oldest first.
struct Shelf {
    capacity: usize,
    bytes: usize,
    order: VecDeque<TxHash>,
}

impl Shelf {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            bytes: 0,
            order: VecDeque::new(),
        }
    }

    /// Drops the oldest committed entries while over budget, keeping the
    /// newest even if it alone is over. Stops at one still committing:
    /// commits finish in about the order they began.
    fn evict(&mut self, map: &mut HashMap<TxHash, Entry>) {
        while self.bytes > self.capacity && self.order.len() > 1 {
            let Some(oldest) = self.order.front() else {
                break;
            };
            match map.get(oldest) {
                Some(e) if e.committing => break,
                Some(e) => self.bytes -= e.data.len(),
                // Removed after a failed commit; its place goes now.
                None => {}
            }
            map.remove(oldest);
            self.order.pop_front();
        }
    }
}

impl HotCache {
    pub fn new(budget: Budget) -> Self {
        Self {
            map: HashMap::new(),
            small: Shelf::new(budget.small),
            large: Shelf::new(budget.large),
        }
    }

    /// The shelf for an entry of `len` bytes, with the map it evicts from.
    fn shelf(&mut self, len: usize) -> (&mut Shelf, &mut HashMap<TxHash, Entry>) {
        let Self { map, small, large } = self;
        (if len < LARGE_FROM { small } else { large }, map)
    }

    /// Adds `hash` as being committed (see `committed`); false (and
    /// nothing changes) if it is already here.
    pub fn insert(&mut self, hash: TxHash, data: Bytes) -> bool {
        if self.map.contains_key(&hash) {
            return false;
        }
        let data = if data.len() < SHARED_FROM {
            Bytes::copy_from_slice(&data)
        } else {
            data
        };
        let len = data.len();
        self.map.insert(
            hash,
            Entry {
                data,
                committing: true,
            },
        );
        let (shelf, map) = self.shelf(len);
        shelf.bytes += len;
        shelf.order.push_back(hash);
        shelf.evict(map);
        true
    }

    /// `hash` is on disk now (or its commit was abandoned): it may go.
    pub fn committed(&mut self, hash: &TxHash) {
        if let Some(e) = self.map.get_mut(hash) {
            e.committing = false;
            let len = e.data.len();
            let (shelf, map) = self.shelf(len);
            shelf.evict(map);
        }
    }

    pub fn get(&self, hash: &TxHash) -> Option<Bytes> {
        self.map.get(hash).map(|e| e.data.clone())
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.map.contains_key(hash)
    }

    /// Drops `hash` (its commit failed: the node does not hold it after
    /// all). Its place in the eviction order goes when it comes up.
    pub fn remove(&mut self, hash: &TxHash) {
        if let Some(e) = self.map.remove(hash) {
            let len = e.data.len();
            self.shelf(len).0.bytes -= len;
        }
    }
}

/// Marks an inserted entry committed when dropped, so an `accept` whose
/// caller went away mid-commit (a cancelled call) cannot pin it forever.
pub struct Committing<'a> {
    pub cache: &'a Mutex<HotCache>,
    pub hash: TxHash,
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .committed(&self.hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: u8, len: usize) -> (TxHash, Bytes) {
        ([n; 32], Bytes::from(vec![0u8; len]))
    }

    fn cache(small: usize, large: usize) -> HotCache {
        HotCache::new(Budget { small, large })
    }

    /// Inserts and commits at once.
    fn put(c: &mut HotCache, (hash, data): (TxHash, Bytes)) -> bool {
        let fresh = c.insert(hash, data);
        c.committed(&hash);
        fresh
    }

    #[test]
    fn keeps_the_newest_within_its_byte_budget() {
        let mut c = cache(10, 0);
        assert!(put(&mut c, small(1, 4)));
        assert!(!put(&mut c, small(1, 4)), "already present");
        assert!(put(&mut c, small(2, 4)));
        assert!(put(&mut c, small(3, 4)));
        assert!(c.get(&[1; 32]).is_none(), "oldest evicted past 10 bytes");
        assert!(c.get(&[2; 32]).is_some() && c.get(&[3; 32]).is_some());
        // One oversized entry is still kept (it is the newest).
        assert!(put(&mut c, small(4, 50)));
        assert_eq!(c.get(&[4; 32]).unwrap().len(), 50);
        assert!(c.get(&[3; 32]).is_none());
        c.remove(&[4; 32]);
        assert!(!c.contains(&[4; 32]));
        assert!(put(&mut c, small(4, 5)), "back after a failed commit");
    }

    #[test]
    fn an_entry_being_committed_is_never_evicted() {
        let mut c = cache(10, 0);
        assert!(c.insert([1; 32], Bytes::from(vec![0u8; 8])));
        assert!(put(&mut c, small(2, 8)));
        assert!(put(&mut c, small(3, 8)));
        assert!(
            c.contains(&[1; 32]) && c.contains(&[2; 32]),
            "nothing behind the uncommitted oldest goes"
        );
        c.committed(&[1; 32]);
        assert!(!c.contains(&[1; 32]) && !c.contains(&[2; 32]));
        assert!(c.contains(&[3; 32]));
    }

    #[test]
    fn large_transactions_have_their_own_share() {
        let mut c = cache(100, 2 * LARGE_FROM);
        assert!(put(&mut c, small(1, 50)));
        for n in 10..14 {
            assert!(put(&mut c, small(n, LARGE_FROM)));
        }
        assert!(c.contains(&[1; 32]), "large ones never push out small ones");
        let large: Vec<bool> = (10..14).map(|n| c.contains(&[n; 32])).collect();
        assert_eq!(large, [false, false, true, true], "two fit in the share");
        assert!(put(&mut c, small(2, 60)));
        assert!(!c.contains(&[1; 32]) && c.contains(&[12; 32]));
    }

    #[test]
    fn a_dropped_commit_guard_releases_its_entry() {
        let cache = Mutex::new(HotCache::new(Budget {
            small: 10,
            large: 0,
        }));
        assert!(
            cache
                .lock()
                .unwrap()
                .insert([1; 32], Bytes::from(vec![0u8; 8]))
        );
        drop(Committing {
            cache: &cache,
            hash: [1; 32],
        });
        assert!(put(&mut cache.lock().unwrap(), small(2, 8)));
        assert!(!cache.lock().unwrap().contains(&[1; 32]));
    }
}
