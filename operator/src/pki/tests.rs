use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn t(day: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + day * 86_400).unwrap()
}

fn peers(n: i32) -> BTreeMap<i32, (String, Vec<String>)> {
    (0..n)
        .map(|i| {
            (
                i,
                (
                    format!("alpha-{i}"),
                    vec![format!("alpha-{i}.alpha-peers.ns.svc.cluster.local")],
                ),
            )
        })
        .collect()
}

fn input(
    ca: Option<CaSet>,
    phase: Option<Phase>,
    existing: BTreeMap<i32, PeerCert>,
    reports: BTreeMap<i32, PeerReport>,
    now: Timestamp,
) -> PkiInput<'static> {
    PkiInput {
        network: "alpha",
        generated: true,
        ca,
        phase,
        peers: peers(2),
        bootstrap_count: 1,
        existing,
        reports,
        now,
        ca_validity: 100 * DAY,
        cert_validity: 30 * DAY,
        renew_before: 10 * DAY,
    }
}

fn serial(pc: &PeerCert) -> String {
    inspect(&pc.cert.cert_pem).unwrap().serial
}

#[test]
fn first_round_generates_ca_and_certs() {
    let p = plan(input(None, None, BTreeMap::new(), BTreeMap::new(), t(0))).unwrap();
    assert_eq!(p.phase, None);
    assert_eq!(p.reissued, [0, 1]);
    assert_eq!(p.bundle.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(
        p.peer_certs
            .values()
            .all(|c| c.issuer_fingerprint == p.signer.fingerprint)
    );
    assert!(p.events.iter().any(|(r, _)| *r == "CaCreated"));
}

#[test]
fn unchanged_state_reissues_nothing() {
    let p1 = plan(input(None, None, BTreeMap::new(), BTreeMap::new(), t(0))).unwrap();
    let p2 = plan(input(
        Some(p1.ca.clone()),
        None,
        p1.peer_certs.clone(),
        BTreeMap::new(),
        t(1),
    ))
    .unwrap();
    assert!(p2.reissued.is_empty());
    assert_eq!(p2.bundle, p1.bundle);
    assert!(p2.events.is_empty());
}

#[test]
fn peer_cert_renewed_before_expiry() {
    let p1 = plan(input(None, None, BTreeMap::new(), BTreeMap::new(), t(0))).unwrap();
    // Certs live 30 days, renewed 10 days before: day 21 is inside the window.
    let p2 = plan(input(
        Some(p1.ca.clone()),
        None,
        p1.peer_certs.clone(),
        BTreeMap::new(),
        t(21),
    ))
    .unwrap();
    assert_eq!(p2.reissued, [0, 1]);
    assert_eq!(p2.phase, None, "the CA itself is not due yet");
}

#[test]
fn ca_rotation_goes_through_every_phase() {
    let p0 = plan(input(None, None, BTreeMap::new(), BTreeMap::new(), t(0))).unwrap();
    let old_fp = p0.signer.fingerprint.clone();
    let now = t(91); // CA lives 100 days, renew 10 days before
    let p1 = plan(input(
        Some(p0.ca.clone()),
        None,
        p0.peer_certs.clone(),
        BTreeMap::new(),
        now,
    ))
    .unwrap();
    assert_eq!(p1.phase, Some(Phase::AddNewCaToBundle));
    let new_fp = p1.new_ca_fingerprint.clone().unwrap();
    assert_eq!(p1.bundle.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(
        p1.signer.fingerprint, old_fp,
        "peers still get old-CA certs"
    );

    let p2 = plan(input(
        Some(p1.ca.clone()),
        p1.phase,
        p1.peer_certs.clone(),
        BTreeMap::new(),
        now,
    ))
    .unwrap();
    assert_eq!(p2.phase, Some(Phase::WaitAllPeersTrust));

    // Only one peer trusts the new CA: wait.
    let mut reports = BTreeMap::from([(
        0,
        PeerReport {
            trusted_ca_fingerprints: vec![old_fp.clone(), new_fp.clone()],
            certificate_serial: None,
        },
    )]);
    let p3 = plan(input(
        Some(p2.ca.clone()),
        p2.phase,
        p2.peer_certs.clone(),
        reports.clone(),
        now,
    ))
    .unwrap();
    assert_eq!(p3.phase, Some(Phase::WaitAllPeersTrust));
    assert!(p3.reissued.is_empty());

    reports.insert(1, reports[&0].clone());
    let p4 = plan(input(
        Some(p3.ca.clone()),
        p3.phase,
        p3.peer_certs.clone(),
        reports.clone(),
        now,
    ))
    .unwrap();
    assert_eq!(p4.phase, Some(Phase::ReissuePeerCerts));
    assert_eq!(p4.reissued, [0, 1]);
    assert!(
        p4.peer_certs
            .values()
            .all(|c| c.issuer_fingerprint == new_fp)
    );
    assert_eq!(
        p4.bundle.matches("BEGIN CERTIFICATE").count(),
        2,
        "old CA kept while peers reload"
    );

    // Peers have not reloaded yet: keep both CAs.
    let p5 = plan(input(
        Some(p4.ca.clone()),
        p4.phase,
        p4.peer_certs.clone(),
        reports.clone(),
        now,
    ))
    .unwrap();
    assert_eq!(p5.phase, Some(Phase::ReissuePeerCerts));
    assert!(p5.reissued.is_empty());

    for (o, pc) in &p5.peer_certs {
        // Peers may spell serials as openssl does; they compare normalized.
        let colons = format!("00:{}", serial(pc).to_uppercase());
        reports.get_mut(o).unwrap().certificate_serial = Some(colons);
    }
    let p6 = plan(input(
        Some(p5.ca.clone()),
        p5.phase,
        p5.peer_certs.clone(),
        reports.clone(),
        now,
    ))
    .unwrap();
    assert_eq!(p6.phase, Some(Phase::DropOldCa));
    assert_eq!(p6.bundle.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(p6.ca.next.is_none());
    assert_eq!(
        inspect(&p6.ca.current.cert_pem).unwrap().fingerprint,
        new_fp
    );

    let p7 = plan(input(
        Some(p6.ca.clone()),
        p6.phase,
        p6.peer_certs.clone(),
        reports,
        now,
    ))
    .unwrap();
    assert_eq!(p7.phase, None);
    assert!(p7.reissued.is_empty());
}

#[test]
fn supplied_ca_is_never_rotated() {
    let ca = CaSet {
        current: generate_ca("byo", t(0), 20 * DAY).unwrap(),
        next: None,
    };
    let mut i = input(
        Some(ca.clone()),
        None,
        BTreeMap::new(),
        BTreeMap::new(),
        t(15),
    );
    i.generated = false;
    let p = plan(i).unwrap();
    assert_eq!(p.phase, None);
    assert_eq!(p.ca, ca);
}

#[test]
fn dns_change_reissues() {
    let p1 = plan(input(None, None, BTreeMap::new(), BTreeMap::new(), t(0))).unwrap();
    let mut i = input(
        Some(p1.ca.clone()),
        None,
        p1.peer_certs.clone(),
        BTreeMap::new(),
        t(1),
    );
    i.peers.get_mut(&1).unwrap().1 = vec!["alpha-1.alpha-peers.ns.svc.example.org".into()];
    assert_eq!(plan(i).unwrap().reissued, [1]);
}

#[test]
fn lost_phase_with_new_ca_resumes_waiting_for_trust() {
    let p0 = plan(input(None, None, BTreeMap::new(), BTreeMap::new(), t(0))).unwrap();
    let p1 = plan(input(
        Some(p0.ca.clone()),
        None,
        p0.peer_certs.clone(),
        BTreeMap::new(),
        t(91),
    ))
    .unwrap();
    assert_eq!(p1.phase, Some(Phase::AddNewCaToBundle));
    // The status that recorded the phase is gone; the Secret still has both CAs.
    let p2 = plan(input(
        Some(p1.ca.clone()),
        None,
        p1.peer_certs.clone(),
        BTreeMap::new(),
        t(91),
    ))
    .unwrap();
    assert_eq!(p2.phase, Some(Phase::WaitAllPeersTrust));
    assert_eq!(p2.bundle.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(p2.ca.next.is_some());
}

#[test]
fn the_first_bootstrap_count_peers_get_the_bootstrap_role_the_rest_full() {
    let mut i = input(None, None, BTreeMap::new(), BTreeMap::new(), t(0));
    i.peers = peers(3);
    i.bootstrap_count = 2;
    let p = plan(i).unwrap();
    let uris: Vec<Vec<String>> = p
        .peer_certs
        .values()
        .map(|c| inspect(&c.cert.cert_pem).unwrap().uris)
        .collect();
    assert_eq!(
        uris,
        [
            ["urn:sorcha:peer:alpha-0", "urn:sorcha:role:bootstrap"],
            ["urn:sorcha:peer:alpha-1", "urn:sorcha:role:bootstrap"],
            ["urn:sorcha:peer:alpha-2", "urn:sorcha:role:full"],
        ]
    );
    // Fewer bootstrap peers: the demoted one is reissued as full, the
    // others are kept.
    let mut i = input(None, None, p.peer_certs.clone(), BTreeMap::new(), t(1));
    i.ca = Some(p.ca.clone());
    i.peers = peers(3);
    i.bootstrap_count = 1;
    let q = plan(i).unwrap();
    assert_eq!(q.reissued, [1]);
    let info = inspect(&q.peer_certs[&1].cert.cert_pem).unwrap();
    assert_eq!(info.uris[1], "urn:sorcha:role:full");
}
