//! Leader election against the fake API server: one holder at a time, and
//! a takeover only after the holder stops renewing.
mod common;

use std::time::Duration;

use common::Harness;
use kube::api::Api;
use sorcha_operator::controller::lease::{LeaseConfig, try_hold};

fn cfg(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "sorcha-operator".into(),
        namespace: "sorcha-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn one_leader_and_takeover_after_expiry() {
    let h = Harness::new();
    let api = Api::namespaced(h.ctx.client.clone(), "sorcha-system");
    let (a, b) = (cfg("a"), cfg("b"));
    assert!(try_hold(&api, &a, h.clock.now()).await.unwrap());
    assert!(
        !try_hold(&api, &b, h.clock.now()).await.unwrap(),
        "b must wait while a holds"
    );
    h.clock.advance(Duration::from_secs(10));
    assert!(try_hold(&api, &a, h.clock.now()).await.unwrap(), "a renews");
    h.clock.advance(Duration::from_secs(10));
    assert!(
        !try_hold(&api, &b, h.clock.now()).await.unwrap(),
        "renewed 10s ago: still a's"
    );
    h.clock.advance(Duration::from_secs(10));
    assert!(
        try_hold(&api, &b, h.clock.now()).await.unwrap(),
        "a stopped renewing: b takes over"
    );
    let lease = h
        .fake
        .get(
            "coordination.k8s.io/v1",
            "leases",
            "sorcha-system",
            "sorcha-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(!try_hold(&api, &a, h.clock.now()).await.unwrap());
}
