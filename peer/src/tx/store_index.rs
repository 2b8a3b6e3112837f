//! The store's hash → row index, kept in memory instead of in SQLite.
//!
//! A SQLite index on a random 32-byte hash makes every insert dirty a
//! random leaf page of that index, so a commit of a few hundred
//! transactions wrote a few hundred index pages to the WAL: that, not the
//! data, was most of the durable-ingest cost. Rows are now appended in
//! arrival order with no index on `hash`, and this map (rebuilt from the
//! table when the store opens) answers "is it stored, and where". The
//! writer thread is its only mutator and enforces uniqueness through it.
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use super::store::TxHash;

/// Where a stored transaction lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// SQLite rowid.
    pub id: i64,
    pub size: u64,
    /// Unix ms.
    pub received_at: i64,
    /// Sent to a peer at least once (or received from one).
    pub distributed: bool,
    /// The bytes are in a file (`store_files`), not in the row.
    pub in_file: bool,
}

/// foldhash is seeded per process, so peers cannot pick transactions whose
/// hashes pile into one bucket.
type Map<V> = HashMap<TxHash, V, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct HashIndex {
    rows: RwLock<Map<Entry>>,
}

impl HashIndex {
    /// An index over `rows` (hash, entry) read from the table; the first
    /// row of a hash wins.
    pub fn from_rows(rows: impl IntoIterator<Item = (TxHash, Entry)>) -> Self {
        let mut map = Map::default();
        for (hash, entry) in rows {
            map.entry(hash).or_insert(entry);
        }
        Self {
            rows: RwLock::new(map),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map<Entry>> {
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, hash: &TxHash) -> Option<Entry> {
        self.read().get(hash).copied()
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.read().contains_key(hash)
    }

    pub fn contains_each(&self, hashes: &[TxHash]) -> Vec<bool> {
        let rows = self.read();
        hashes.iter().map(|h| rows.contains_key(h)).collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Hash and size of every distributed transaction received within
    /// `received` (Unix ms), oldest first (in arrival order).
    pub fn distributed_in(&self, received: std::ops::Range<i64>) -> Vec<(TxHash, u64)> {
        let mut rows: Vec<(i64, TxHash, u64)> = self
            .read()
            .iter()
            .filter(|(_, e)| e.distributed && received.contains(&e.received_at))
            .map(|(h, e)| (e.id, *h, e.size))
            .collect();
        rows.sort_unstable_by_key(|(id, _, _)| *id);
        rows.into_iter().map(|(_, h, size)| (h, size)).collect()
    }

    /// Publishes one committed batch: its removals, then its additions.
    pub fn apply(&self, changes: Changes) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        for hash in changes.removed {
            rows.remove(&hash);
        }
        rows.extend(changes.added);
    }
}

/// What one batch changes, kept aside until its commit succeeds: a batch
/// that fails to commit leaves the index as it was, like the table.
#[derive(Default)]
pub struct Changes {
    added: Map<Entry>,
    removed: HashSet<TxHash, foldhash::fast::RandomState>,
}

impl Changes {
    /// The entry for `hash` as this batch has left it so far.
    pub fn get(&self, index: &HashIndex, hash: &TxHash) -> Option<Entry> {
        if let Some(e) = self.added.get(hash) {
            return Some(*e);
        }
        if self.removed.contains(hash) {
            return None;
        }
        index.get(hash)
    }

    pub fn add(&mut self, hash: TxHash, entry: Entry) {
        self.added.insert(hash, entry);
    }

    pub fn remove(&mut self, hash: TxHash) {
        self.added.remove(&hash);
        self.removed.insert(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: i64) -> Entry {
        Entry {
            id,
            size: 1,
            received_at: id,
            distributed: id % 2 == 0,
            in_file: false,
        }
    }

    #[test]
    fn a_batch_is_seen_by_itself_at_once_and_by_readers_only_when_applied() {
        let index = HashIndex::from_rows([([1; 32], e(1)), ([2; 32], e(2)), ([1; 32], e(9))]);
        assert_eq!(index.get(&[1; 32]), Some(e(1)), "the first row wins");
        let mut batch = Changes::default();
        batch.add([3; 32], e(3));
        batch.remove([2; 32]);
        assert_eq!(batch.get(&index, &[3; 32]), Some(e(3)));
        assert_eq!(batch.get(&index, &[2; 32]), None);
        assert_eq!(batch.get(&index, &[1; 32]), Some(e(1)));
        assert!(!index.contains(&[3; 32]) && index.contains(&[2; 32]));
        // Removed and then stored again in the same batch: present.
        batch.add([2; 32], e(4));
        index.apply(batch);
        assert_eq!(
            index.contains_each(&[[1; 32], [2; 32], [3; 32], [5; 32]]),
            [true, true, true, false]
        );
        assert_eq!(index.get(&[2; 32]), Some(e(4)));
        assert_eq!(index.len(), 3);
        index.apply({
            let mut more = Changes::default();
            more.add([6; 32], e(6));
            more
        });
        assert_eq!(
            index.distributed_in(2..i64::MAX),
            vec![([2; 32], 1), ([6; 32], 1)],
            "[1] is older, [3] undistributed; in arrival order"
        );
        assert_eq!(
            index.distributed_in(2..6),
            vec![([2; 32], 1)],
            "[6] is younger"
        );
    }

    #[test]
    fn an_addition_removed_later_in_its_batch_is_gone() {
        let index = HashIndex::default();
        let mut batch = Changes::default();
        batch.add([7; 32], e(7));
        batch.remove([7; 32]);
        assert_eq!(batch.get(&index, &[7; 32]), None);
        index.apply(batch);
        assert_eq!(index.len(), 0);
    }
}
