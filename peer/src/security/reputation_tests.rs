//! Tests of `reputation.rs`, driven by a manual clock.
use super::*;
use crate::security::clock::ManualClock;

const MS: Duration = Duration::from_millis(1);

fn setup() -> (Arc<ManualClock>, Reputation) {
    let clock = Arc::new(ManualClock::default());
    (
        clock.clone(),
        Reputation::new(ReputationConfig::default(), clock),
    )
}

fn ok(ms: u64) -> Observation {
    Observation::Success {
        latency: Duration::from_millis(ms),
    }
}

#[test]
fn score_moves_with_behaviour() {
    let (_, r) = setup();
    assert_eq!(r.score("new"), 50.0);
    r.record("p", ok(10));
    assert_eq!(r.score("p"), 51.0);
    r.record("p", ok(1000));
    assert_eq!(r.score("p"), 51.5);
    r.record("p", ok(5000));
    assert_eq!(r.score("p"), 50.5);
    r.record("p", Observation::Failure);
    assert_eq!(r.score("p"), 48.5);
    r.record("p", Observation::InvalidMessage);
    assert_eq!(r.score("p"), 38.5);
    for _ in 0..200 {
        r.record("p", ok(1));
    }
    assert_eq!(r.score("p"), MAX_SCORE);
    let s = &r.list()[0];
    assert_eq!((s.successes, s.failures, s.invalid_messages), (203, 1, 1));
}

#[test]
fn invalid_messages_lead_to_a_ban_that_expires() {
    let (clock, r) = setup();
    for i in 0..4 {
        assert_eq!(r.record("bad", Observation::InvalidMessage), None, "{i}");
    }
    // 50 - 50 = 0 < 10.
    let ban = r.record("bad", Observation::InvalidMessage).unwrap();
    assert!(ban.automatic);
    assert_eq!(ban.remaining, Some(Duration::from_secs(900)));
    assert!(ban.reason.contains("5 invalid messages"), "{}", ban.reason);
    // Already banned: no second ban event.
    assert_eq!(r.record("bad", Observation::InvalidMessage), None);
    clock.advance(Duration::from_secs(899));
    assert_eq!(
        r.banned("bad").unwrap().remaining,
        Some(Duration::from_secs(1))
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(r.banned("bad"), None);
    assert_eq!(r.score("bad"), 50.0);
}

#[test]
fn repeat_offenders_are_banned_longer() {
    let (clock, r) = setup();
    let mut lengths = vec![];
    for _ in 0..10 {
        let ban = loop {
            if let Some(b) = r.record("x", Observation::InvalidMessage) {
                break b;
            }
        };
        let d = ban.remaining.unwrap();
        lengths.push(d.as_secs() / 60);
        clock.advance(d);
    }
    assert_eq!(
        lengths,
        vec![15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]
    );
}

#[test]
fn limit_violations_count_once_per_cooldown() {
    let (clock, r) = setup();
    let v = Observation::LimitViolation(LimitKind::Requests);
    // A burst of refusals in one instant costs one penalty.
    for _ in 0..100 {
        assert_eq!(r.record("burst", v), None);
    }
    assert_eq!(r.score("burst"), 45.0);
    // Sustained flooding: a penalty per second, banned after 8 more.
    let mut banned_after = None;
    for i in 1..=20 {
        clock.advance(Duration::from_secs(1));
        for _ in 0..10 {
            if r.record("burst", v).is_some() {
                banned_after.get_or_insert(i);
            }
        }
    }
    assert_eq!(banned_after, Some(8));
    assert_eq!(r.list()[0].limit_violations, 300);
    // An honest neighbour is untouched.
    r.record("honest", ok(5));
    assert!(r.banned("honest").is_none());
}

#[test]
fn manual_ban_unban_and_list() {
    let (clock, r) = setup();
    let b = r.ban("p1", Some(Duration::from_secs(60)), "operator request");
    assert_eq!(b.remaining, Some(Duration::from_secs(60)));
    assert!(!b.automatic);
    r.ban("p2", None, "forever");
    r.record("p3", ok(1));
    clock.advance(1000 * MS);
    let list = r.list();
    let ids: Vec<_> = list.iter().map(|s| s.peer_id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2", "p3"]);
    assert_eq!(
        list[0].ban.as_ref().unwrap().remaining,
        Some(Duration::from_secs(59))
    );
    assert_eq!(list[1].ban.as_ref().unwrap().remaining, None);
    assert!(list[2].ban.is_none());
    assert!(r.unban("p2"));
    assert!(!r.unban("p2"));
    assert!(!r.unban("unknown"));
    clock.advance(Duration::from_secs(59));
    assert!(r.banned("p1").is_none());
    assert!(!r.unban("p1"));
}

#[test]
fn memory_is_bounded_but_bans_are_kept() {
    let clock = Arc::new(ManualClock::default());
    let r = Reputation::new(
        ReputationConfig {
            max_tracked: 2,
            ..ReputationConfig::default()
        },
        clock.clone(),
    );
    r.ban("banned", None, "x");
    for i in 0..10 {
        clock.advance(MS);
        r.record(&format!("p{i}"), ok(1));
    }
    let ids: Vec<_> = r.list().into_iter().map(|s| s.peer_id).collect();
    assert_eq!(ids, ["banned", "p9"]);
}
