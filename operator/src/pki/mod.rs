//! PKI for a network: its CA (generated and rotated, or supplied), the
//! trust bundle and one certificate per peer. [`plan`] is pure: the
//! controller reads Secrets and SorchaPeer statuses, calls it, and writes
//! what it returns.
mod certs;
pub mod rotation;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

pub use certs::{
    CertInfo, KeyedCert, PeerRole, bundle, check_ca, generate_ca, inspect, issue_peer_cert,
    normalize_serial, peer_uri, role_uri,
};
pub use rotation::{Facts, Phase};

use crate::Result;

/// A generated CA Secret: the signing CA, and during a rotation the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSet {
    pub current: KeyedCert,
    pub next: Option<KeyedCert>,
}

/// A peer's certificate as stored in its Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    pub cert: KeyedCert,
    /// Fingerprint of the CA that signed it.
    pub issuer_fingerprint: String,
}

/// What one peer reports about its TLS state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerReport {
    pub trusted_ca_fingerprints: Vec<String>,
    pub certificate_serial: Option<String>,
}

/// Everything `plan` looks at.
pub struct PkiInput<'a> {
    pub network: &'a str,
    /// `false`: the CA was supplied (bring your own) and is never rotated.
    pub generated: bool,
    /// The CA Secret's content, if it exists.
    pub ca: Option<CaSet>,
    pub phase: Option<Phase>,
    /// Per ordinal: the peer id and DNS names its certificate must carry.
    pub peers: BTreeMap<i32, (String, Vec<String>)>,
    /// Ordinals below this are bootstrap peers (role `bootstrap` in their
    /// certificate); the others are `full`.
    pub bootstrap_count: i32,
    pub existing: BTreeMap<i32, PeerCert>,
    pub reports: BTreeMap<i32, PeerReport>,
    pub now: Timestamp,
    pub ca_validity: Duration,
    pub cert_validity: Duration,
    pub renew_before: Duration,
}

/// Desired PKI state after this round.
#[derive(Clone, Debug)]
pub struct PkiPlan {
    /// Content of the CA Secret (unchanged for a supplied CA).
    pub ca: CaSet,
    pub signer: CertInfo,
    /// PEM concatenation of the trusted CAs: the `ca.pem` ConfigMap key.
    pub bundle: String,
    pub peer_certs: BTreeMap<i32, PeerCert>,
    /// Ordinals whose certificate was (re)issued this round.
    pub reissued: Vec<i32>,
    pub phase: Option<Phase>,
    /// Fingerprint of the CA being introduced, during a rotation.
    pub new_ca_fingerprint: Option<String>,
    /// `(name, info)` of every CA in the bundle and every peer certificate.
    pub certificates: Vec<(String, CertInfo)>,
    /// Human-readable decisions, for Events.
    pub events: Vec<(&'static str, String)>,
}

fn due(not_after: Timestamp, now: Timestamp, renew_before: Duration) -> bool {
    let secs = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX);
    not_after.as_second().saturating_sub(secs) <= now.as_second()
}

pub fn plan(input: PkiInput) -> Result<PkiPlan> {
    let mut events = Vec::new();
    let mut ca = match input.ca {
        Some(ca) => ca,
        None => {
            events.push((
                "CaCreated",
                format!("generated a CA for network {}", input.network),
            ));
            CaSet {
                current: generate_ca(input.network, input.now, input.ca_validity)?,
                next: None,
            }
        }
    };
    // A rotation without its new CA (someone edited the Secret) starts over.
    // A new CA without a recorded phase (the status was lost) resumes at
    // the wait for trust: both CAs stay trusted, which is safe whatever
    // the peers had already loaded.
    let mut phase = match (input.generated, &ca.next, input.phase) {
        (false, _, _) | (true, None, _) => None,
        (true, Some(_), Some(p)) => Some(p),
        (true, Some(_), None) => Some(Phase::WaitAllPeersTrust),
    };
    if !input.generated {
        ca.next = None;
    }
    let current = inspect(&ca.current.cert_pem)?;
    let next_info = ca.next.as_ref().map(|n| inspect(&n.cert_pem)).transpose()?;

    let ordinals: Vec<i32> = input.peers.keys().copied().collect();
    let all = |f: &dyn Fn(&PeerReport) -> bool| {
        ordinals.iter().all(|o| input.reports.get(o).is_some_and(f))
    };
    let facts = Facts {
        ca_due: input.generated && due(current.not_after, input.now, input.renew_before),
        all_trust_new: next_info
            .as_ref()
            .is_some_and(|n| all(&|r| r.trusted_ca_fingerprints.contains(&n.fingerprint))),
        all_on_new_certs: next_info.as_ref().is_some_and(|n| {
            ordinals
                .iter()
                .all(|o| match (input.existing.get(o), input.reports.get(o)) {
                    (Some(pc), Some(r)) => {
                        pc.issuer_fingerprint == n.fingerprint
                            && match (&r.certificate_serial, inspect(&pc.cert.cert_pem)) {
                                (Some(s), Ok(i)) => normalize_serial(s) == i.serial,
                                _ => false,
                            }
                    }
                    _ => false,
                })
        }),
    };
    let new_phase = rotation::step(phase, facts);
    if new_phase != phase {
        let what = new_phase.map_or("rotation finished", Phase::as_str);
        events.push(("CaRotation", format!("CA rotation: {what}")));
    }
    if new_phase == Some(Phase::AddNewCaToBundle) {
        ca.next = Some(generate_ca(input.network, input.now, input.ca_validity)?);
    }
    phase = new_phase;

    let next_info = ca.next.as_ref().map(|n| inspect(&n.cert_pem)).transpose()?;
    let (signer_cert, signer) = match (phase, &ca.next, &next_info) {
        (Some(p), Some(n), Some(i)) if p.signs_with_new() => (n.clone(), i.clone()),
        _ => (ca.current.clone(), current.clone()),
    };
    let mut cas: Vec<(String, &KeyedCert, CertInfo)> = Vec::new();
    match (phase, &ca.next, &next_info) {
        (Some(p), Some(n), Some(i)) => {
            if p.bundle_keeps_old() {
                cas.push(("ca".into(), &ca.current, current.clone()));
            }
            cas.push(("ca-next".into(), n, i.clone()));
        }
        _ => cas.push(("ca".into(), &ca.current, current.clone())),
    }
    let bundle_pem = bundle(cas.iter().map(|(_, k, _)| k.cert_pem.as_str()));
    let mut certificates: Vec<(String, CertInfo)> =
        cas.iter().map(|(n, _, i)| (n.clone(), i.clone())).collect();

    let mut peer_certs = BTreeMap::new();
    let mut reissued = Vec::new();
    for (ordinal, (peer_id, dns)) in &input.peers {
        let role = if *ordinal < input.bootstrap_count {
            PeerRole::Bootstrap
        } else {
            PeerRole::Full
        };
        let keep = input.existing.get(ordinal).filter(|pc| {
            pc.issuer_fingerprint == signer.fingerprint
                && inspect(&pc.cert.cert_pem).is_ok_and(|i| {
                    // A certificate capped at the CA's expiry is renewed by
                    // the CA rotation, not by reissuing it again and again.
                    !(due(i.not_after, input.now, input.renew_before)
                        && i.not_after < signer.not_after)
                        && i.uris == [peer_uri(peer_id), role_uri(role)]
                        && &i.dns_names == dns
                })
        });
        let pc = match keep {
            Some(pc) => pc.clone(),
            None => {
                reissued.push(*ordinal);
                PeerCert {
                    cert: issue_peer_cert(
                        &signer_cert,
                        peer_id,
                        role,
                        dns,
                        input.now,
                        input.cert_validity,
                    )?,
                    issuer_fingerprint: signer.fingerprint.clone(),
                }
            }
        };
        certificates.push((peer_id.clone(), inspect(&pc.cert.cert_pem)?));
        peer_certs.insert(*ordinal, pc);
    }
    if !reissued.is_empty() {
        events.push((
            "CertificatesIssued",
            format!("issued peer certificates for ordinals {reissued:?}"),
        ));
    }
    if phase == Some(Phase::DropOldCa) {
        // The old CA has left the bundle; the new one becomes the CA.
        if let Some(n) = ca.next.take() {
            ca.current = n;
        }
    }
    Ok(PkiPlan {
        new_ca_fingerprint: next_info.filter(|_| phase.is_some()).map(|i| i.fingerprint),
        ca,
        signer,
        bundle: bundle_pem,
        peer_certs,
        reissued,
        phase,
        certificates,
        events,
    })
}

#[cfg(test)]
mod tests;
