//! Duplicate detection (design "Duplicate Detection"; issue 3, item 3):
//! an exact known-set with `TransactionCacheTTL` expiry in front of the
//! design's bloom filter, salted per node and rotated in two generations.
//!
//! Pure: no IO, no clock. Every time is Unix milliseconds passed in as `now`.
//!
//! # The rule that keeps gossip loss-free
//!
//! A bloom filter has false positives. **A bloom positive must never make a
//! node skip a transaction.** [`Dedupe::check`] therefore answers in three
//! ways, and only [`Seen::Known`] may be trusted on its own:
//!
//! - [`Seen::New`]: the bloom is negative, so this `Dedupe` was never given
//!   the hash (within the last one to two reset intervals). Pull it.
//! - [`Seen::Known`]: the hash is in the exact set, so it was `insert`ed,
//!   which the caller does only after the transaction is durably stored.
//!   Skip it.
//! - [`Seen::MaybeKnown`]: the bloom is positive but the exact set does not
//!   hold it. This may be a false positive. **The caller must confirm against
//!   its durable transaction store and pull the transaction if it is absent.**
//!   [`Seen::should_pull`] encodes this rule.
//!
//! Call [`Dedupe::insert`] only once the transaction is durably stored, never
//! on receipt of an announcement: a pull that then failed would leave the
//! hash `Known` while the node lacks the transaction.
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::TransactionDistributionConfig;

/// SHA-256 digest of a transaction's bytes.
pub type TxHash = [u8; 32];

/// Per-node secret mixed into every bloom index, so two nodes (or an
/// attacker grinding transaction contents) never share false positives.
pub type Salt = [u8; 32];

/// A fresh random salt from the OS-seeded CSPRNG; one per node start.
pub fn random_salt() -> Salt {
    let mut salt = [0u8; 32];
    rand::rng().fill_bytes(&mut salt);
    salt
}

/// What [`Dedupe::check`] knows about a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Definitely never inserted (bloom negative): pull it.
    New,
    /// In the exact set: inserted, so already stored. Safe to skip.
    Known,
    /// Bloom positive, not in the exact set: possibly a false positive. The
    /// caller MUST look the hash up in its durable store and pull it if absent.
    MaybeKnown,
}

impl Seen {
    /// Whether the caller should pull the transaction. `stored` is asked only
    /// for [`Seen::MaybeKnown`] and must consult the durable store.
    pub fn should_pull(self, stored: impl FnOnce() -> bool) -> bool {
        match self {
            Seen::New => true,
            Seen::Known => false,
            Seen::MaybeKnown => !stored(),
        }
    }
}

/// Sizes and intervals; [`DedupeConfig::from_config`] reads them from
/// `TransactionDistribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeConfig {
    /// Bits per bloom generation (`BloomFilterBits`).
    pub bloom_bits: u64,
    /// Hash functions per item (`BloomFilterHashes`).
    pub bloom_hashes: u32,
    /// Generation length in ms (`BloomFilterResetMinutes`).
    pub reset_interval_ms: i64,
    /// How long the exact set remembers a hash, in ms (`TransactionCacheTTL`).
    pub ttl_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl DedupeConfig {
    pub fn from_config(t: &TransactionDistributionConfig) -> Self {
        Self {
            bloom_bits: t.bloom_filter_bits as u64,
            bloom_hashes: t.bloom_filter_hashes,
            reset_interval_ms: millis(t.bloom_filter_reset_minutes),
            ttl_ms: millis(t.transaction_cache_ttl),
        }
    }
}

impl Default for DedupeConfig {
    /// The design's figures: 10,000,000 bits, 3 hashes, 1 h reset, 1 h TTL.
    fn default() -> Self {
        Self::from_config(&TransactionDistributionConfig::default())
    }
}

/// One bloom generation.
///
/// Written here rather than with the `bloomfilter` crate: that crate derives
/// the number of hash functions from an expected item count
/// (`round(bits / items * ln 2)`, so e.g. 3 hashes over 8 bits or 32 hashes
/// over 64 bits cannot be asked for) and sizes the bitmap in whole bytes,
/// while `BloomFilterBits` and `BloomFilterHashes` must be honoured exactly.
/// Indices come from SHA-256(salt ‖ hash) by enhanced double hashing
/// (Dillinger & Manolios), which keeps the k probes distinct even when the
/// bit count is tiny.
#[derive(Debug, Clone)]
struct Bloom {
    words: Vec<u64>,
    bits: u64,
    /// Bits set, kept as we go so the fill ratio is O(1) for metrics.
    ones: u64,
}

impl Bloom {
    fn new(bits: u64) -> Self {
        let bits = bits.max(1);
        let mut words = vec![0u64; bits.div_ceil(64) as usize];
        // A zeroed allocation is mapped lazily: without touching every page
        // now, each of the first thousand or so inserts would take a
        // copy-on-write fault (and a TLB flush on every core) for its
        // probes. One write per page, through `black_box` so it is not
        // optimised away as a store of zero into zeroed memory.
        for w in words.iter_mut().step_by(512) {
            *std::hint::black_box(w) = 0;
        }
        Self {
            words,
            bits,
            ones: 0,
        }
    }

    fn clear(&mut self) {
        self.words.fill(0);
        self.ones = 0;
    }

    fn set(&mut self, probes: &Probes) {
        for i in probes.indices(self.bits) {
            let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
            if self.words[w] & b == 0 {
                self.words[w] |= b;
                self.ones += 1;
            }
        }
    }

    fn contains(&self, probes: &Probes) -> bool {
        probes
            .indices(self.bits)
            .all(|i| self.words[(i / 64) as usize] & (1u64 << (i % 64)) != 0)
    }

    fn fill_ratio(&self) -> f64 {
        self.ones as f64 / self.bits as f64
    }
}

/// The two 64-bit seeds of one (salt, hash) pair and the probe count.
struct Probes {
    h1: u64,
    h2: u64,
    k: u32,
}

impl Probes {
    fn new(salt: &Salt, hash: &TxHash, k: u32) -> Self {
        let d = Sha256::new()
            .chain_update(salt)
            .chain_update(hash)
            .finalize();
        let word = |r: std::ops::Range<usize>| {
            u64::from_le_bytes(d[r].try_into().expect("8 bytes of a 32-byte digest"))
        };
        Self {
            h1: word(0..8),
            h2: word(8..16),
            k,
        }
    }

    /// `g_i = h1 + i*h2 + (i^3 - i)/6 (mod m)`, computed incrementally.
    /// Every term stays below `2m <= 2^35`, so nothing overflows.
    fn indices(&self, m: u64) -> impl Iterator<Item = u64> + '_ {
        let (mut a, mut b) = (self.h1 % m, self.h2 % m);
        (0..self.k).map(move |i| {
            let out = a;
            a = (a + b) % m;
            b = (b + u64::from(i) + 1) % m;
            out
        })
    }
}

/// Figures for the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DedupeStats {
    /// Fraction of bits set in the generation that takes inserts.
    pub current_fill_ratio: f64,
    /// Fraction of bits set in the previous generation (still checked).
    pub previous_fill_ratio: f64,
    /// Hashes in the exact set.
    pub known: usize,
    /// When the current generation started (Unix ms).
    pub generation_started_at: i64,
}

/// Duplicate detection for one node. Not internally synchronised: wrap it
/// in a `Mutex` if several tasks share it (every call is short).
#[derive(Debug, Clone)]
pub struct Dedupe {
    cfg: DedupeConfig,
    salt: Salt,
    current: Bloom,
    previous: Bloom,
    generation_started_at: i64,
    /// Hash -> first seen (ms).
    known: HashMap<TxHash, i64>,
    /// The same entries in insertion order, so expiry costs O(expired)
    /// rather than a scan of the whole set.
    order: VecDeque<(i64, TxHash)>,
}

impl Dedupe {
    /// `salt` should come from [`random_salt`] in production and be fixed in
    /// tests. `now` starts the first bloom generation.
    pub fn new(cfg: DedupeConfig, salt: Salt, now: i64) -> Self {
        Self {
            cfg,
            salt,
            current: Bloom::new(cfg.bloom_bits),
            previous: Bloom::new(cfg.bloom_bits),
            generation_started_at: now,
            known: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &DedupeConfig {
        &self.cfg
    }

    /// See the module docs: only `Known` may be trusted without the store.
    pub fn check(&self, hash: &TxHash) -> Seen {
        if self.known.contains_key(hash) {
            return Seen::Known;
        }
        let probes = self.probes(hash);
        if self.current.contains(&probes) || self.previous.contains(&probes) {
            Seen::MaybeKnown
        } else {
            Seen::New
        }
    }

    /// Records a durably stored transaction. Idempotent: a hash already in
    /// the exact set keeps its first-seen time. Rotates the bloom first if
    /// its interval has elapsed.
    pub fn insert(&mut self, hash: &TxHash, now: i64) {
        self.rotate(now);
        let probes = self.probes(hash);
        self.current.set(&probes);
        if !self.known.contains_key(hash) {
            self.known.insert(*hash, now);
            self.order.push_back((now, *hash));
        }
    }

    /// Drops exact-set entries older than the TTL and rotates the bloom if
    /// due. Call it periodically (e.g. every few seconds); `insert` rotates
    /// too, but only `expire` prunes. Returns how many entries it dropped.
    ///
    /// Entries leave in insertion order: if the clock stepped back, a later
    /// entry with an older time waits for the ones before it. That only
    /// delays its expiry, and a remembered hash is never a loss.
    pub fn expire(&mut self, now: i64) -> usize {
        self.rotate(now);
        let cutoff = now.saturating_sub(self.cfg.ttl_ms);
        let mut dropped = 0;
        while let Some(&(seen, hash)) = self.order.front() {
            if seen > cutoff {
                break;
            }
            self.order.pop_front();
            self.known.remove(&hash);
            dropped += 1;
        }
        dropped
    }

    pub fn stats(&self) -> DedupeStats {
        DedupeStats {
            current_fill_ratio: self.current.fill_ratio(),
            previous_fill_ratio: self.previous.fill_ratio(),
            known: self.known.len(),
            generation_started_at: self.generation_started_at,
        }
    }

    /// Once an interval has passed, the previous generation is dropped and
    /// the current one takes its place; after two or more (an idle node),
    /// both are dropped. A hash is thus remembered for one to two intervals.
    /// The cleared buffer is reused, so rotation allocates nothing.
    fn rotate(&mut self, now: i64) {
        let interval = self.cfg.reset_interval_ms.max(1);
        let elapsed = now.saturating_sub(self.generation_started_at);
        if elapsed < interval {
            return;
        }
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
        if elapsed >= interval.saturating_mul(2) {
            self.previous.clear();
        }
        self.generation_started_at = now;
    }

    fn probes(&self, hash: &TxHash) -> Probes {
        Probes::new(&self.salt, hash, self.cfg.bloom_hashes)
    }

    #[cfg(test)]
    fn current_bits(&self) -> &[u64] {
        &self.current.words
    }
}

#[cfg(test)]
#[path = "dedupe_tests.rs"]
mod tests;
