//! Pure gossip decisions: how many peers to tell, which ones, which get the
//! whole transaction pushed, and the anti-entropy bucket digests.
use rand::Rng;
use rand::seq::SliceRandom;

use super::store::TxHash;

/// The round anti-entropy repairs arrive in: above any `GossipRounds`, so
/// a repaired transaction never spreads further (every peer repairs
/// itself), in either gossip mode. It fits the wire's int32.
pub const REPAIR_ROUND: u32 = i32::MAX as u32;

/// The design's fanout: `FanoutFactor` if set, else ceil(sqrt(N)), never
/// more than the peers there are.
pub fn fanout(configured: Option<usize>, peers: usize) -> usize {
    let n = configured.unwrap_or_else(|| (peers as f64).sqrt().ceil() as usize);
    n.min(peers)
}

/// This node's gossip neighbours: the `current` ones still `live`, topped
/// up at random from the other live peers to `want`. Fanout targets are
/// drawn from them, so a node holds connections to about `want` peers
/// instead of, sooner or later, to every peer it knows (1,000 peers would
/// mean 2,000 sockets per node). `rotate` swaps one neighbour for a random
/// other, so the overlay keeps mixing and no partition lasts.
pub fn neighbours<R: Rng>(
    current: &[String],
    live: &[String],
    want: usize,
    rotate: bool,
    rng: &mut R,
) -> Vec<String> {
    let mut kept: Vec<String> = current
        .iter()
        .filter(|c| live.contains(c))
        .take(want)
        .cloned()
        .collect();
    if rotate && !kept.is_empty() && live.len() > kept.len() {
        let i = rng.random_range(0..kept.len());
        kept.swap_remove(i);
    }
    let mut others: Vec<&String> = live.iter().filter(|l| !kept.contains(l)).collect();
    others.shuffle(rng);
    let missing = want.saturating_sub(kept.len());
    kept.extend(others.into_iter().take(missing).cloned());
    kept
}

/// Up to `n` distinct peers chosen at random, never an `excluded` one.
pub fn choose<'a, T, R: Rng>(
    peers: &'a [T],
    excluded: impl Fn(&T) -> bool,
    n: usize,
    rng: &mut R,
) -> Vec<&'a T> {
    let mut eligible: Vec<&T> = peers.iter().filter(|p| !excluded(p)).collect();
    eligible.shuffle(rng);
    eligible.truncate(n);
    eligible
}

/// How a spread splits its targets between pushes and announcements.
#[derive(Debug, Clone, Copy)]
pub struct PushRule {
    /// Later rounds push transactions up to this size (0: never) ...
    pub eager_threshold: u64,
    /// ... to this many of their targets.
    pub eager_peers: usize,
    /// The first round (the origin's own send) pushes to every target
    /// transactions up to this size (the streaming threshold: larger ones
    /// are pulled in chunks).
    pub first_round_max: u64,
}

/// Splits chosen targets into (push whole, announce hash only).
///
/// Round 1 pushes to all of them: they cannot hold a transaction that was
/// only just submitted, so every push carries bytes its target would pull
/// anyway, and the first hop costs one message instead of announce, fetch
/// and answer. From round 2 on a target may hold it already and a push
/// may be wasted, so only small transactions go whole, and only to the
/// first `eager_peers`; everything else is announced and pulled.
pub fn split_push<T>(
    mut targets: Vec<T>,
    size: u64,
    round: u32,
    rule: PushRule,
) -> (Vec<T>, Vec<T>) {
    if size == 0 {
        return (Vec::new(), targets);
    }
    if round == 1 && size <= rule.first_round_max {
        return (targets, Vec::new());
    }
    if size > rule.eager_threshold {
        return (Vec::new(), targets);
    }
    let eager_peers = rule.eager_peers;
    let rest = targets.split_off(eager_peers.min(targets.len()));
    (targets, rest)
}

pub const BUCKETS: usize = 256;

pub fn bucket_of(hash: &TxHash) -> usize {
    usize::from(hash[0])
}

/// XOR of each bucket's hashes' first 8 bytes: order-free and cheap to keep.
pub fn bucket_digests<'a>(hashes: impl IntoIterator<Item = &'a TxHash>) -> Vec<u64> {
    let mut d = vec![0u64; BUCKETS];
    for h in hashes {
        let word = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
        d[bucket_of(h)] ^= word;
    }
    d
}

/// Buckets whose digests differ; a malformed remote list differs everywhere.
pub fn differing(mine: &[u64], theirs: &[u64]) -> Vec<u32> {
    if theirs.len() != BUCKETS {
        return (0..BUCKETS as u32).collect();
    }
    (0..BUCKETS)
        .filter(|&i| mine[i] != theirs[i])
        .map(|i| i as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_kept_topped_up_and_rotated_one_at_a_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let live: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        let first = neighbours(&[], &live, 8, false, &mut rng);
        assert_eq!(first.len(), 8);
        let same = neighbours(&first, &live, 8, false, &mut rng);
        assert_eq!(same, first, "stable while all stay live");
        // One goes away: the other seven stay, one newcomer fills in.
        let fewer: Vec<String> = live.iter().filter(|p| **p != first[0]).cloned().collect();
        let refilled = neighbours(&first, &fewer, 8, false, &mut rng);
        assert_eq!(refilled.len(), 8);
        assert_eq!(refilled.iter().filter(|p| first.contains(p)).count(), 7);
        let rotated = neighbours(&first, &live, 8, true, &mut rng);
        assert_eq!(rotated.iter().filter(|p| first.contains(p)).count(), 7);
        // Fewer live peers than wanted: all of them.
        assert_eq!(neighbours(&first, &live[..3], 8, false, &mut rng).len(), 3);
    }
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn fanout_is_ceil_sqrt_by_default_and_bounded() {
        assert_eq!(fanout(None, 0), 0);
        assert_eq!(fanout(None, 1), 1);
        assert_eq!(fanout(None, 10), 4);
        assert_eq!(fanout(None, 100), 10);
        assert_eq!(fanout(Some(3), 100), 3);
        assert_eq!(fanout(Some(30), 5), 5);
    }

    #[test]
    fn choose_excludes_the_sender_and_is_distinct() {
        let peers: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let c = choose(&peers, |p| p == "p3", 9, &mut rng);
            assert_eq!(c.len(), 9);
            assert!(!c.iter().any(|p| *p == "p3"));
            let set: std::collections::HashSet<_> = c.iter().collect();
            assert_eq!(set.len(), 9);
        }
    }

    #[test]
    fn small_transactions_are_pushed_to_a_few_and_announced_to_the_rest() {
        let rule = PushRule {
            eager_threshold: 4096,
            eager_peers: 2,
            first_round_max: 1 << 20,
        };
        let (push, announce) = split_push(vec![1, 2, 3, 4], 100, 2, rule);
        assert_eq!((push, announce), (vec![1, 2], vec![3, 4]));
        let (push, announce) = split_push(vec![1, 2, 3], 5000, 3, rule);
        assert_eq!((push.len(), announce.len()), (0, 3));
        let off = PushRule {
            eager_threshold: 0,
            ..rule
        };
        let (push, _) = split_push(vec![1], 100, 2, off);
        assert!(push.is_empty(), "threshold 0 turns eager push off");
    }

    #[test]
    fn the_first_round_pushes_to_every_target_up_to_the_streaming_threshold() {
        let rule = PushRule {
            eager_threshold: 0,
            eager_peers: 2,
            first_round_max: 1 << 20,
        };
        let (push, announce) = split_push(vec![1, 2, 3], 1 << 20, 1, rule);
        assert_eq!((push, announce.len()), (vec![1, 2, 3], 0));
        let (push, announce) = split_push(vec![1, 2, 3], (1 << 20) + 1, 1, rule);
        assert_eq!(
            (push.len(), announce),
            (0, vec![1, 2, 3]),
            "streamed instead"
        );
        let (push, _) = split_push(vec![1, 2], 0, 1, rule);
        assert!(push.is_empty());
    }

    #[test]
    fn digests_find_exactly_the_differing_buckets() {
        let a: Vec<TxHash> = (0..50u8).map(|i| [i; 32]).collect();
        let mut b = a.clone();
        b.push([200; 32]);
        b.retain(|h| h[0] != 7);
        let diff = differing(&bucket_digests(&a), &bucket_digests(&b));
        assert_eq!(diff, vec![7, 200]);
        assert!(differing(&bucket_digests(&a), &bucket_digests(a.iter().rev())).is_empty());
        assert_eq!(differing(&bucket_digests(&a), &[1, 2]).len(), BUCKETS);
    }
}
