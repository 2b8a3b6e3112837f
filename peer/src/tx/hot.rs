//! The most recently accepted transactions, in memory. Relays forward a
//! transaction before its local commit finishes (the network already holds
//! it, so only this node's copy waits on the disk), and the peers that pull
//! it are served from here rather than from SQLite. Bounded in bytes;
//! oldest out first.
use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::store::TxHash;

/// Transactions below this size are copied into their own allocation when
/// cached: a decoded transaction is a slice of its message's receive
/// buffer, and a small one kept for minutes would pin a buffer many times
/// its size, past the cache's byte budget. Larger ones are most of their
/// buffer and are kept as they are.
const SHARED_FROM: usize = 64 * 1024;

pub struct HotCache {
    capacity: usize,
    bytes: usize,
    map: HashMap<TxHash, Bytes>,
    order: VecDeque<TxHash>,
}

impl HotCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity: capacity_bytes,
            bytes: 0,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// False (and nothing changes) if `hash` is already here.
    pub fn insert(&mut self, hash: TxHash, data: Bytes) -> bool {
        if self.map.contains_key(&hash) {
            return false;
        }
        let data = if data.len() < SHARED_FROM {
            Bytes::copy_from_slice(&data)
        } else {
            data
        };
        self.bytes += data.len();
        self.map.insert(hash, data);
        self.order.push_back(hash);
        while self.bytes > self.capacity && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front()
                && let Some(d) = self.map.remove(&old)
            {
                self.bytes -= d.len();
            }
        }
        true
    }

    pub fn get(&self, hash: &TxHash) -> Option<Bytes> {
        self.map.get(hash).cloned()
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.map.contains_key(hash)
    }

    /// Drops `hash` (its commit failed: the node does not hold it after
    /// all). Its place in the eviction order goes when it comes up.
    pub fn remove(&mut self, hash: &TxHash) {
        if let Some(d) = self.map.remove(hash) {
            self.bytes -= d.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_its_byte_budget() {
        let mut c = HotCache::new(10);
        assert!(c.insert([1; 32], Bytes::from_static(&[0u8; 4])));
        assert!(
            !c.insert([1; 32], Bytes::from_static(&[0u8; 4])),
            "already present"
        );
        assert!(c.insert([2; 32], Bytes::from_static(&[0u8; 4])));
        assert!(c.insert([3; 32], Bytes::from_static(&[0u8; 4])));
        assert!(c.get(&[1; 32]).is_none(), "oldest evicted past 10 bytes");
        assert!(c.get(&[2; 32]).is_some() && c.get(&[3; 32]).is_some());
        // One oversized entry is still kept (it is the newest).
        assert!(c.insert([4; 32], Bytes::from_static(&[0u8; 50])));
        assert_eq!(c.get(&[4; 32]).unwrap().len(), 50);
        assert!(c.get(&[3; 32]).is_none());
        c.remove(&[4; 32]);
        assert!(!c.contains(&[4; 32]));
        assert!(
            c.insert([4; 32], Bytes::from_static(&[0u8; 5])),
            "back after a failed commit"
        );
    }
}
