use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::security::clock::ManualClock;
use crate::security::limits::{LimitKind, PeerLimits};
use crate::security::reputation::ReputationConfig;
use crate::security::test_pki::Ca;

fn policy(role: PeerRole, requests_per_minute: u64) -> (Arc<ManualClock>, Policy) {
    let clock = Arc::new(ManualClock::default());
    let limits = PeerLimits {
        requests_per_minute,
        bytes_per_minute: 10_000,
        transactions_per_minute: 5,
    };
    let rep = ReputationConfig {
        ban_duration: Duration::from_secs(60),
        ..ReputationConfig::default()
    };
    let p = Policy {
        limiter: PeerRateLimiter::new(limits, clock.clone(), 100),
        reputation: Reputation::new(rep, clock.clone()),
        own_role: role,
    };
    (clock, p)
}

fn remote() -> IpAddr {
    "10.0.0.7".parse().unwrap()
}

fn facts<'a>(cert: Option<&'a PeerCertificate>, claimed: Option<&'a str>) -> CallerFacts<'a> {
    CallerFacts {
        remote: remote(),
        certificate: cert,
        claimed,
    }
}

fn cert(id: &str, role: Option<PeerRole>) -> PeerCertificate {
    let ca = Ca::new("policy");
    let mut b = ca.leaf(id);
    if let Some(r) = role {
        b = b.extra_uri(&crate::security::role_uri(r));
    }
    PeerCertificate::from_der(&b.issue().der).unwrap()
}

const FREE: RequestCost = RequestCost {
    bytes: 0,
    transactions: 0,
};

fn unknown(_: &str) -> Option<PeerRole> {
    None
}

#[test]
fn identity_prefers_certificate_then_claim_then_address() {
    let c = cert("node-1", None);
    assert_eq!(
        identify(&facts(Some(&c), None)).unwrap(),
        Identity::Authenticated("node-1".into())
    );
    assert_eq!(
        identify(&facts(Some(&c), Some("node-1"))).unwrap(),
        Identity::Authenticated("node-1".into())
    );
    assert_eq!(
        identify(&facts(None, Some("node-2"))).unwrap(),
        Identity::Claimed("node-2".into())
    );
    let anon = identify(&facts(None, Some(""))).unwrap();
    assert_eq!(anon, Identity::Address(remote()));
    assert_eq!(anon.key(), "ip:10.0.0.7");
}

#[test]
fn a_claim_that_contradicts_the_certificate_is_refused_naming_both_ids() {
    let (_, p) = policy(PeerRole::Full, 100);
    let c = cert("node-1", None);
    let r = p
        .admit(
            &facts(Some(&c), Some("node-2")),
            Action::Distribute,
            FREE,
            unknown,
        )
        .unwrap_err();
    assert_eq!(r.reason(), "peer_id_mismatch");
    assert_eq!(r.class(), RefusalClass::PermissionDenied);
    let msg = r.to_string();
    assert!(
        msg.contains("\"node-2\"") && msg.contains("\"node-1\""),
        "{msg}"
    );
    // The matching claim passes.
    p.admit(
        &facts(Some(&c), Some("node-1")),
        Action::Distribute,
        FREE,
        unknown,
    )
    .unwrap();
}

#[test]
fn limits_throttle_then_repeated_violations_ban_until_the_ban_expires() {
    let (clock, p) = policy(PeerRole::Full, 3);
    let f = facts(None, Some("flooder"));
    for _ in 0..3 {
        p.admit(&f, Action::Fetch, FREE, unknown).unwrap();
    }
    let r = p.admit(&f, Action::Fetch, FREE, unknown).unwrap_err();
    assert_eq!(r.reason(), "requests");
    assert_eq!(r.class(), RefusalClass::ResourceExhausted);
    assert!(
        r.retry_after()
            .is_some_and(|d| d <= Duration::from_secs(20))
    );
    // Violations at least a cooldown apart drain the score: 50 → below 10.
    let mut banned = None;
    for _ in 0..20 {
        clock.advance(Duration::from_millis(1100));
        // Refill is 3/min: 1.1 s adds no whole token after the burst.
        if let Err(Refusal::Limited { ban: Some(b), .. }) =
            p.admit(&f, Action::Fetch, FREE, unknown)
        {
            banned = Some(b);
            break;
        }
        while p.admit(&f, Action::Fetch, FREE, unknown).is_ok() {}
    }
    let ban = banned.expect("a ban after repeated violations");
    assert!(ban.automatic);
    let r = p.admit(&f, Action::Fetch, FREE, unknown).unwrap_err();
    assert_eq!(r.reason(), "banned");
    assert!(r.to_string().contains("flooder"), "{r}");
    assert!(r.retry_after().is_some());
    // Others are unaffected.
    p.admit(&facts(None, Some("honest")), Action::Fetch, FREE, unknown)
        .unwrap();
    assert_eq!(p.reputation.active_bans(), 1);
    clock.advance(Duration::from_secs(61));
    assert_eq!(p.reputation.active_bans(), 0);
    p.admit(&f, Action::Fetch, FREE, unknown).unwrap();
}

#[test]
fn bytes_and_transactions_are_charged_per_request() {
    let (_, p) = policy(PeerRole::Full, 100);
    let f = facts(None, Some("pusher"));
    let big = RequestCost {
        bytes: 20_000,
        transactions: 1,
    };
    let r = p.admit(&f, Action::Distribute, big, unknown).unwrap_err();
    assert_eq!(r.reason(), "bytes");
    assert_eq!(r.retry_after(), None, "larger than the whole allowance");
    let one = RequestCost {
        bytes: 10,
        transactions: 1,
    };
    for _ in 0..5 {
        p.admit(&f, Action::Distribute, one, unknown).unwrap();
    }
    let r = p.admit(&f, Action::Distribute, one, unknown).unwrap_err();
    assert!(matches!(
        r,
        Refusal::Limited { exceeded, .. } if exceeded.kind == LimitKind::Transactions
    ));
}

#[test]
fn anonymous_loopback_callers_are_not_charged() {
    let (_, p) = policy(PeerRole::Full, 1);
    let local = CallerFacts {
        remote: "127.0.0.1".parse().unwrap(),
        certificate: None,
        claimed: None,
    };
    for _ in 0..10 {
        let a = p.admit(&local, Action::Submit, FREE, unknown).unwrap();
        assert!(a.local);
        assert_eq!(p.observe(&a, Observation::InvalidMessage), None);
    }
    // A claimed peer on loopback is a peer and is charged.
    let peer = CallerFacts {
        claimed: Some("p"),
        ..local
    };
    p.admit(&peer, Action::Fetch, FREE, unknown).unwrap();
    assert!(p.admit(&peer, Action::Fetch, FREE, unknown).is_err());
}

#[test]
fn read_only_callers_may_fetch_but_not_distribute() {
    let (_, p) = policy(PeerRole::Full, 100);
    // Authenticated: the certificate's role decides, whatever membership says.
    let ro = cert("ro-1", Some(PeerRole::ReadOnly));
    let full = |_: &str| Some(PeerRole::Full);
    for action in [Action::Distribute, Action::Submit] {
        let r = p
            .admit(&facts(Some(&ro), None), action, FREE, full)
            .unwrap_err();
        assert_eq!(r.reason(), "read_only");
        assert_eq!(r.class(), RefusalClass::PermissionDenied);
        assert!(r.to_string().contains("ro-1"), "{r}");
    }
    p.admit(&facts(Some(&ro), None), Action::Fetch, FREE, full)
        .unwrap();
    // A certificate without a role is a full peer.
    let plain = cert("full-1", None);
    let ro_claim = |_: &str| Some(PeerRole::ReadOnly);
    p.admit(
        &facts(Some(&plain), None),
        Action::Distribute,
        FREE,
        ro_claim,
    )
    .unwrap();
    // Claimed: what the peer advertised decides.
    let f = facts(None, Some("ro-2"));
    assert_eq!(
        p.admit(&f, Action::Distribute, FREE, ro_claim)
            .unwrap_err()
            .reason(),
        "read_only"
    );
    p.admit(&f, Action::Fetch, FREE, ro_claim).unwrap();
    p.admit(&f, Action::Distribute, FREE, unknown).unwrap();
}

#[test]
fn only_bootstrap_nodes_accept_registrations_and_read_only_nodes_refuse_submissions() {
    let f = facts(None, Some("newcomer"));
    for (role, register_ok, submit_ok) in [
        (PeerRole::Bootstrap, true, true),
        (PeerRole::Full, false, true),
        (PeerRole::ReadOnly, false, false),
    ] {
        let (_, p) = policy(role, 100);
        let reg = p.admit(&f, Action::Register, FREE, unknown);
        assert_eq!(reg.is_ok(), register_ok, "{role:?}");
        if let Err(r) = reg {
            assert_eq!(r.reason(), "not_bootstrap");
            assert_eq!(r.class(), RefusalClass::FailedPrecondition);
        }
        let sub = p.admit(&f, Action::Submit, FREE, unknown);
        assert_eq!(sub.is_ok(), submit_ok, "{role:?}");
        if let Err(r) = sub {
            assert_eq!(r, Refusal::ReadOnlyNode);
            assert_eq!(r.reason(), "read_only");
        }
    }
}

#[test]
fn invalid_messages_lead_to_a_ban() {
    let (_, p) = policy(PeerRole::Full, 100);
    let a = p
        .admit(&facts(None, Some("liar")), Action::Fetch, FREE, unknown)
        .unwrap();
    let mut ban = None;
    for _ in 0..5 {
        ban = ban.or(p.observe(&a, Observation::InvalidMessage));
    }
    assert!(ban.is_some(), "50 - 5×10 is below the threshold");
    let r = p
        .admit(&facts(None, Some("liar")), Action::Fetch, FREE, unknown)
        .unwrap_err();
    assert_eq!(r.reason(), "banned");
}
