use super::*;
use serde_json::json;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const T0: u64 = 1_800_000_000;

fn mk_snapshot() -> Snapshot {
    Snapshot {
        peer_id: "alpha-0".into(),
        pod_uid: Some("uid-0".into()),
        state: NodeState::Online,
        discovery_started: true,
        known_peers: 3,
        active_peers: 2,
        min_healthy_peers: 2,
        external_address: "alpha-0.alpha-peers.ledger.svc.cluster.local".into(),
        queue_size: 4,
        transactions_seen: Some(10),
        last_discovery_ms: 1_799_999_990_500,
        version: "0.1.0".into(),
        certificate: Some(Ok(CertificateFacts {
            serial: "8f1a".into(),
            not_after: at(T0 + 86_400),
        })),
        trusted_cas: Some(Ok(vec!["aa".repeat(32), "bb".repeat(32)])),
    }
}

fn cond<'a>(s: &'a PeerStatus, ty: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("no {ty} condition in {:?}", s.conditions))
}

#[test]
fn every_field_is_reported_under_the_operators_names() {
    let s = build(&mk_snapshot(), None, at(T0));
    let v = serde_json::to_value(&s).unwrap();
    let t0 = "2027-01-15T08:00:00Z";
    assert_eq!(rfc3339(at(T0)), t0);
    assert_eq!(
        v,
        json!({
            "phase": "Online",
            "peerId": "alpha-0",
            "podUid": "uid-0",
            "knownPeers": 3,
            "activePeers": 2,
            "externalAddress": "alpha-0.alpha-peers.ledger.svc.cluster.local",
            "queueSize": 4,
            // Milliseconds are dropped: metav1.Time has seconds precision.
            "lastDiscovery": "2027-01-15T07:59:50Z",
            "transactionsSeen": 10,
            "version": "0.1.0",
            "certificateSerial": "8f1a",
            "certificateNotAfter": "2027-01-16T08:00:00Z",
            "trustedCaFingerprints": ["aa".repeat(32), "bb".repeat(32)],
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Online",
                 "message": "2 of 3 known peers respond; MinHealthyPeers is 2",
                 "lastTransitionTime": t0},
                {"type": "CertificatesReady", "status": "True", "reason": "Loaded",
                 "message": "certificate serial 8f1a valid until 2027-01-16T08:00:00Z; 2 trusted CA(s)",
                 "lastTransitionTime": t0},
            ]
        })
    );
}

#[test]
fn optional_fields_are_left_out_when_unknown() {
    let snap = Snapshot {
        pod_uid: None,
        external_address: String::new(),
        last_discovery_ms: 0,
        transactions_seen: None,
        certificate: None,
        trusted_cas: None,
        ..mk_snapshot()
    };
    let v = serde_json::to_value(build(&snap, None, at(T0))).unwrap();
    for absent in [
        "podUid",
        "externalAddress",
        "lastDiscovery",
        "transactionsSeen",
        "certificateSerial",
        "certificateNotAfter",
        "trustedCaFingerprints",
    ] {
        assert!(v.get(absent).is_none(), "{absent} present in {v}");
    }
    // No TLS configured: no CertificatesReady condition at all.
    let types: Vec<_> = v["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Ready"]);
}

#[test]
fn unchanged_node_builds_a_status_that_is_not_resent() {
    let snap = mk_snapshot();
    let first = build(&snap, None, at(T0));
    let later = build(&snap, Some(&first), at(T0 + 60));
    assert_eq!(later, first, "transition times kept, nothing else moves");
    assert!(same_ignoring_timestamps(&first, &later));
}

#[test]
fn comparison_ignores_only_transition_times() {
    let a = build(&mk_snapshot(), None, at(T0));
    let b = build(&mk_snapshot(), None, at(T0 + 5));
    assert_ne!(a, b);
    assert!(same_ignoring_timestamps(&a, &b));
    for change in [
        Snapshot {
            known_peers: 4,
            ..mk_snapshot()
        },
        Snapshot {
            queue_size: 5,
            ..mk_snapshot()
        },
        Snapshot {
            last_discovery_ms: 1_800_000_100_000,
            ..mk_snapshot()
        },
        Snapshot {
            trusted_cas: Some(Ok(vec!["aa".repeat(32)])),
            ..mk_snapshot()
        },
        Snapshot {
            pod_uid: Some("uid-1".into()),
            ..mk_snapshot()
        },
    ] {
        let c = build(&change, Some(&a), at(T0));
        assert!(!same_ignoring_timestamps(&a, &c), "{change:?}");
    }
}

#[test]
fn transition_time_moves_only_when_the_status_flips() {
    let online = build(&mk_snapshot(), None, at(T0));
    // More peers: message changes, Ready stays True with its old time.
    let more = Snapshot {
        known_peers: 5,
        active_peers: 5,
        ..mk_snapshot()
    };
    let s1 = build(&more, Some(&online), at(T0 + 10));
    assert_eq!(cond(&s1, READY).status, "True");
    assert_ne!(cond(&s1, READY).message, cond(&online, READY).message);
    assert_eq!(
        cond(&s1, READY).last_transition_time,
        rfc3339(at(T0)),
        "same status, same transition time"
    );
    // Too few peers: Ready flips to False now.
    let fewer = Snapshot {
        state: NodeState::Degraded,
        active_peers: 1,
        ..mk_snapshot()
    };
    let s2 = build(&fewer, Some(&s1), at(T0 + 20));
    assert_eq!(s2.phase, "Degraded");
    let r = cond(&s2, READY);
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "TooFewPeers")
    );
    assert_eq!(r.last_transition_time, rfc3339(at(T0 + 20)));
    // All lost: still False, time kept, reason updated.
    let gone = Snapshot {
        state: NodeState::Offline,
        active_peers: 0,
        ..mk_snapshot()
    };
    let s3 = build(&gone, Some(&s2), at(T0 + 30));
    let r = cond(&s3, READY);
    assert_eq!(r.reason, "NoActivePeers");
    assert_eq!(r.last_transition_time, rfc3339(at(T0 + 20)));
    // CertificatesReady never flipped: its time is the first one.
    assert_eq!(
        cond(&s3, CERTIFICATES_READY).last_transition_time,
        rfc3339(at(T0))
    );
}

#[test]
fn offline_before_first_discovery_says_so() {
    let snap = Snapshot {
        state: NodeState::Offline,
        discovery_started: false,
        known_peers: 0,
        active_peers: 0,
        ..mk_snapshot()
    };
    let s = build(&snap, None, at(T0));
    assert_eq!(s.phase, "Offline");
    assert_eq!(cond(&s, READY).reason, "DiscoveryPending");
}

#[test]
fn certificate_problems_become_a_false_condition_naming_the_cause() {
    let unreadable = Snapshot {
        certificate: Some(Err("cannot read certificate file /tls/tls.crt: gone".into())),
        ..mk_snapshot()
    };
    let s = build(&unreadable, None, at(T0));
    let c = cond(&s, CERTIFICATES_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "CertificateUnreadable")
    );
    assert!(c.message.contains("/tls/tls.crt"), "{}", c.message);
    assert_eq!(s.certificate_serial, None);
    // The trust bundle still reports what it holds.
    assert_eq!(s.trusted_ca_fingerprints.len(), 2);

    let bad_bundle = Snapshot {
        trusted_cas: Some(Err(
            "trust bundle (TrustedCAs) file /trust/ca.pem: empty".into()
        )),
        ..mk_snapshot()
    };
    let s = build(&bad_bundle, None, at(T0));
    assert_eq!(cond(&s, CERTIFICATES_READY).reason, "TrustBundleUnreadable");
    assert!(s.trusted_ca_fingerprints.is_empty());

    let s = build(&mk_snapshot(), None, at(T0 + 86_400));
    let c = cond(&s, CERTIFICATES_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "CertificateExpired")
    );
    assert!(c.message.contains("8f1a"), "{}", c.message);
}

#[test]
fn unreadable_transaction_count_keeps_the_last_known_one() {
    let first = build(&mk_snapshot(), None, at(T0));
    let snap = Snapshot {
        transactions_seen: None,
        ..mk_snapshot()
    };
    let s = build(&snap, Some(&first), at(T0 + 5));
    assert_eq!(s.transactions_seen, Some(10));
    assert!(same_ignoring_timestamps(&first, &s));
}
