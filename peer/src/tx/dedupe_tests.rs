//! Tests of `dedupe.rs` (kept apart to keep each file short).
use std::collections::HashSet;

use super::*;

const SALT_A: Salt = [1; 32];
const SALT_B: Salt = [2; 32];

/// Deterministic, realistic hashes: SHA-256 of a counter.
fn h(i: u64) -> TxHash {
    Sha256::digest(i.to_le_bytes()).into()
}

fn mk_cfg(bits: u64, hashes: u32, reset_ms: i64, ttl_ms: i64) -> DedupeConfig {
    DedupeConfig {
        bloom_bits: bits,
        bloom_hashes: hashes,
        reset_interval_ms: reset_ms,
        ttl_ms,
    }
}

fn false_positives(d: &Dedupe, fresh: std::ops::Range<u64>) -> usize {
    fresh
        .filter(|&i| {
            let seen = d.check(&h(i));
            assert_ne!(seen, Seen::Known, "hash {i} was never inserted");
            seen == Seen::MaybeKnown
        })
        .count()
}

#[test]
fn defaults_come_from_the_design_via_config() {
    let c = DedupeConfig::default();
    assert_eq!(c, mk_cfg(10_000_000, 3, 3_600_000, 3_600_000));
}

#[test]
fn random_salts_differ() {
    assert_ne!(random_salt(), random_salt());
}

#[test]
fn should_pull_confirms_only_maybe_known() {
    assert!(Seen::New.should_pull(|| unreachable!("New needs no lookup")));
    assert!(!Seen::Known.should_pull(|| unreachable!("Known needs no lookup")));
    assert!(Seen::MaybeKnown.should_pull(|| false));
    assert!(!Seen::MaybeKnown.should_pull(|| true));
}

#[test]
fn no_false_negatives_at_100k() {
    // A TTL shorter than the bloom interval, so after `expire` only the
    // bloom answers and its negatives are what is tested.
    let mut d = Dedupe::new(mk_cfg(10_000_000, 3, 3_600_000, 1_000), SALT_A, 0);
    for i in 0..100_000 {
        d.insert(&h(i), 0);
    }
    assert!((0..100_000).all(|i| d.check(&h(i)) == Seen::Known));
    assert_eq!(d.expire(1_000), 100_000);
    assert_eq!(d.stats().known, 0);
    for i in 0..100_000 {
        assert_eq!(d.check(&h(i)), Seen::MaybeKnown, "false negative for {i}");
    }
}

#[test]
fn false_positive_rate_with_defaults_is_below_one_in_a_thousand() {
    let mut d = Dedupe::new(DedupeConfig::default(), SALT_A, 0);
    for i in 0..100_000 {
        d.insert(&h(i), 0);
    }
    let probes = 200_000;
    let fp = false_positives(&d, 1_000_000..1_000_000 + probes);
    let rate = fp as f64 / probes as f64;
    println!("one generation of 100k: {fp} false positives in {probes} ({rate:.6})");
    assert!(rate < 0.001, "{rate}");

    // Worst case for lookups: both generations hold 100k.
    for i in 100_000..200_000 {
        d.insert(&h(i), 3_600_000);
    }
    let fp = false_positives(&d, 2_000_000..2_000_000 + probes);
    let rate = fp as f64 / probes as f64;
    println!("two generations of 100k: {fp} false positives in {probes} ({rate:.6})");
    assert!(rate < 0.001, "{rate}");
}

#[test]
fn generations_rotate_and_forget_after_two_intervals() {
    // TTL 1 ms: `expire` empties the exact set, leaving the bloom alone.
    let mut d = Dedupe::new(mk_cfg(1 << 16, 3, 1_000, 1), SALT_A, 0);
    let (a, b) = (h(1), h(2));
    d.insert(&a, 0);
    d.expire(999);
    assert_eq!(d.check(&a), Seen::MaybeKnown, "current generation");

    d.insert(&b, 1_000); // rotates: `a` now sits in the previous generation
    assert_eq!(d.stats().generation_started_at, 1_000);
    d.expire(1_999);
    assert_eq!(d.check(&a), Seen::MaybeKnown, "previous generation");
    assert_eq!(d.check(&b), Seen::MaybeKnown);

    d.expire(2_000); // second rotation drops `a`'s generation
    assert_eq!(d.check(&a), Seen::New);
    assert_eq!(d.check(&b), Seen::MaybeKnown);
    d.expire(3_000);
    assert_eq!(d.check(&b), Seen::New);
    assert_eq!(d.stats().current_fill_ratio, 0.0);
    assert_eq!(d.stats().previous_fill_ratio, 0.0);
}

#[test]
fn an_idle_node_drops_both_generations_at_once() {
    let mut d = Dedupe::new(mk_cfg(1 << 16, 3, 1_000, 1), SALT_A, 0);
    d.insert(&h(1), 500);
    d.expire(2_500);
    assert_eq!(d.check(&h(1)), Seen::New);
    assert_eq!(d.stats().generation_started_at, 2_500);
}

#[test]
fn exact_set_expires_after_ttl_and_keeps_first_seen() {
    let mut d = Dedupe::new(mk_cfg(1 << 16, 3, 3_600_000, 1_000), SALT_A, 0);
    let (a, b) = (h(1), h(2));
    d.insert(&a, 0);
    d.insert(&b, 500);
    d.insert(&a, 900); // a duplicate does not renew `a`
    assert_eq!(d.stats().known, 2);
    assert_eq!(d.expire(999), 0);
    assert_eq!(d.expire(1_000), 1);
    assert_eq!(d.check(&a), Seen::MaybeKnown, "the bloom still remembers");
    assert_eq!(d.check(&b), Seen::Known);
    assert_eq!(d.expire(1_500), 1);
    assert_eq!(d.stats().known, 0);
    d.insert(&a, 2_000); // re-learnt after expiry
    assert_eq!(d.check(&a), Seen::Known);
    assert_eq!(d.stats().known, 1);
}

/// Issue 3's proof: with 8 bits and 3 hashes nearly every fresh hash is a
/// bloom positive, yet a node that follows `should_pull` loses nothing,
/// because `check` never claims `Known` for a hash it was not given.
#[test]
fn forced_collisions_lose_nothing() {
    let mut d = Dedupe::new(mk_cfg(8, 3, 3_600_000, 3_600_000), SALT_A, 0);
    for i in 0..32 {
        d.insert(&h(i), 0);
    }
    assert!(d.stats().current_fill_ratio > 0.99);
    let fresh = 10_000;
    let fp = false_positives(&d, 1_000..1_000 + fresh);
    assert!(fp as f64 > 0.99 * fresh as f64, "only {fp} of {fresh}");

    // A receiver: the store is the durable truth, `d` the fast path.
    let mut store: HashSet<TxHash> = (0..32).map(h).collect();
    let mut pulls = 0;
    for round in 0..3 {
        for i in 1_000..2_000 {
            let hash = h(i);
            if d.check(&hash).should_pull(|| store.contains(&hash)) {
                pulls += 1;
                store.insert(hash); // pulled and stored ...
                d.insert(&hash, round); // ... then remembered
            }
        }
    }
    assert_eq!(pulls, 1_000, "every transaction pulled exactly once");
    assert!((1_000..2_000).all(|i| store.contains(&h(i))));
}

#[test]
fn different_salts_give_different_bits_and_false_positives() {
    let cfg = mk_cfg(4_096, 3, 3_600_000, 3_600_000);
    let fill = |salt| {
        let mut d = Dedupe::new(cfg, salt, 0);
        for i in 0..1_000 {
            d.insert(&h(i), 0);
        }
        d
    };
    let (a, a2, b) = (fill(SALT_A), fill(SALT_A), fill(SALT_B));
    assert_eq!(
        a.current_bits(),
        a2.current_bits(),
        "deterministic per salt"
    );
    assert_ne!(a.current_bits(), b.current_bits());

    let positives = |d: &Dedupe| -> HashSet<u64> {
        (10_000..30_000)
            .filter(|&i| d.check(&h(i)) == Seen::MaybeKnown)
            .collect()
    };
    let (pa, pb) = (positives(&a), positives(&b));
    let shared = pa.intersection(&pb).count();
    // ~8% each; independent salts share ~0.6%, identical ones would share all.
    assert!(
        pa.len() > 500 && pb.len() > 500,
        "{} {}",
        pa.len(),
        pb.len()
    );
    assert!(shared * 4 < pa.len().min(pb.len()), "{shared} shared");
}

#[test]
fn stats_report_fill_and_size() {
    let mut d = Dedupe::new(mk_cfg(1 << 20, 3, 1_000, 3_600_000), SALT_A, 0);
    assert_eq!(d.stats().current_fill_ratio, 0.0);
    d.insert(&h(1), 10);
    let s = d.stats();
    assert_eq!(s.known, 1);
    assert!(s.current_fill_ratio > 0.0 && s.current_fill_ratio <= 3.0 / (1 << 20) as f64);
    d.insert(&h(2), 1_000);
    let s = d.stats();
    assert!(s.previous_fill_ratio > 0.0 && s.current_fill_ratio > 0.0);
    assert_eq!(s.known, 2);
}

#[test]
fn odd_bit_counts_stay_in_range() {
    // Not a multiple of 64: every index must land below `bits`.
    let mut d = Dedupe::new(mk_cfg(67, 32, 3_600_000, 1), SALT_A, 0);
    for i in 0..10 {
        d.insert(&h(i), 0);
    }
    d.expire(1);
    assert!((0..10).all(|i| d.check(&h(i)) == Seen::MaybeKnown));
    assert_eq!(d.current_bits()[1] >> 3, 0, "a bit at or above 67 is set");
    assert!(d.stats().current_fill_ratio <= 1.0);
}
