//! Tests of `limits.rs`, driven by a manual clock.
use super::*;
use crate::security::clock::ManualClock;

const MIN: Duration = Duration::from_secs(60);

fn setup(limits: PeerLimits) -> (Arc<ManualClock>, PeerRateLimiter) {
    let clock = Arc::new(ManualClock::default());
    (clock.clone(), PeerRateLimiter::new(limits, clock, 1000))
}

fn req(bytes: u64, transactions: u64) -> RequestCost {
    RequestCost {
        bytes,
        transactions,
    }
}

#[test]
fn bucket_bursts_then_refills_at_the_steady_rate() {
    let mut b = TokenBucket::new(60, Duration::ZERO);
    for _ in 0..60 {
        b.try_take(1, Duration::ZERO).unwrap();
    }
    // Empty: one token per second comes back.
    assert_eq!(
        b.try_take(1, Duration::ZERO),
        Err(Some(Duration::from_secs(1)))
    );
    assert_eq!(
        b.try_take(1, Duration::from_millis(400)),
        Err(Some(Duration::from_millis(600)))
    );
    b.try_take(1, Duration::from_secs(1)).unwrap();
    assert_eq!(b.available(Duration::from_secs(1)), 0);
    // Refill stops at the capacity.
    assert_eq!(b.available(Duration::from_secs(3600)), 60);
    // More than the whole allowance never passes.
    assert_eq!(b.try_take(61, Duration::from_secs(3600)), Err(None));
    // A clock reading from before the last one adds nothing.
    assert_eq!(b.available(Duration::ZERO), 60);
}

#[test]
fn design_defaults() {
    let d = PeerLimits::default();
    assert_eq!(d.requests_per_minute, 1000);
    assert_eq!(d.bytes_per_minute, 104_857_600);
    assert_eq!(d.transactions_per_minute, 100);
}

#[test]
fn each_limit_is_enforced_per_peer() {
    let (clock, l) = setup(PeerLimits {
        requests_per_minute: 10,
        bytes_per_minute: 1000,
        transactions_per_minute: 3,
    });
    for _ in 0..3 {
        l.check("a", req(10, 1)).unwrap();
    }
    let e = l.check("a", req(10, 1)).unwrap_err();
    assert_eq!(e.kind, LimitKind::Transactions);
    assert_eq!(e.retry_after, Some(Duration::from_secs(20)));
    assert!(e.to_string().contains("transactions limit of 3/min"), "{e}");
    // The refused request took nothing: requests and bytes remain.
    for _ in 0..7 {
        l.check("a", req(10, 0)).unwrap();
    }
    assert_eq!(
        l.check("a", req(0, 0)).unwrap_err().kind,
        LimitKind::Requests
    );
    // Another peer is unaffected.
    l.check("b", req(990, 3)).unwrap();
    assert_eq!(l.check("b", req(20, 0)).unwrap_err().kind, LimitKind::Bytes);
    // Bigger than a minute's allowance: never.
    assert_eq!(l.check("c", req(1001, 0)).unwrap_err().retry_after, None);
    clock.advance(MIN);
    l.check("a", req(10, 3)).unwrap();
}

#[test]
fn a_peer_sending_tenfold_is_held_to_its_rate() {
    let (clock, l) = setup(PeerLimits::default());
    let (mut ok, mut refused) = (0, 0);
    // 10,000 requests/min spread over ten minutes, one every 6 ms.
    for _ in 0..100_000 {
        clock.advance(Duration::from_millis(6));
        match l.check("flood", req(100, 0)) {
            Ok(()) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    // One minute of burst plus the steady rate for ten minutes.
    assert_eq!(ok, 1000 + 10 * 1000 - 1, "{ok} {refused}");
    assert_eq!(ok + refused, 100_000);
}

#[test]
fn idle_peers_are_pruned_and_memory_is_bounded() {
    let clock = Arc::new(ManualClock::default());
    let limits = PeerLimits {
        requests_per_minute: 10,
        ..PeerLimits::default()
    };
    let l = PeerRateLimiter::new(limits, clock.clone(), 3);
    for p in ["a", "b", "c"] {
        l.check(p, req(1, 0)).unwrap();
        clock.advance(Duration::from_millis(500));
    }
    // Full and nobody idle: "a", the least recently active, makes room.
    l.check("d", req(1, 0)).unwrap();
    assert_eq!(l.tracked(), 3);
    assert!(!l.is_tracked("a") && l.is_tracked("d"));
    // A minute later every bucket is full again: all forgotten.
    clock.advance(MIN);
    l.prune();
    assert_eq!(l.tracked(), 0);
    // Idle peers are forgotten before active ones when room is needed.
    for p in ["a", "b", "c"] {
        l.check(p, req(1, 0)).unwrap();
    }
    clock.advance(Duration::from_secs(6));
    l.check("c", req(1, 0)).unwrap();
    l.check("d", req(1, 0)).unwrap();
    assert!(l.is_tracked("c") && l.is_tracked("d"));
    assert_eq!(l.tracked(), 2);
}

#[test]
fn connection_rate_per_source() {
    let clock = Arc::new(ManualClock::default());
    let c = ConnectionRateLimiter::new(2, clock.clone(), 100);
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    c.allow(ip).unwrap();
    c.allow(ip).unwrap();
    let e = c.allow(ip).unwrap_err();
    assert_eq!(e.kind, LimitKind::Connections);
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
    c.allow("10.0.0.2".parse().unwrap()).unwrap();
    clock.advance(Duration::from_secs(30));
    c.allow(ip).unwrap();
    // Addresses of one IPv6 /64 share a bucket; a mapped IPv4 is the IPv4.
    c.allow("2001:db8::1".parse().unwrap()).unwrap();
    c.allow("2001:db8::ffff:2".parse().unwrap()).unwrap();
    assert!(c.allow("2001:db8:0:0:1::3".parse().unwrap()).is_err());
    c.allow("2001:db8:0:1::1".parse().unwrap()).unwrap();
    assert_eq!(
        source_key("::ffff:10.0.0.9".parse().unwrap()),
        "10.0.0.9".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn connection_limiter_memory_is_bounded() {
    let clock = Arc::new(ManualClock::default());
    let c = ConnectionRateLimiter::new(5, clock.clone(), 2);
    for i in 1..=10u8 {
        clock.advance(Duration::from_millis(1));
        c.allow(IpAddr::from([10, 0, 0, i])).unwrap();
        assert!(c.tracked() <= 2);
    }
}
