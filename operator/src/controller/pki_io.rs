//! Reads the network's Secrets and peer reports, runs `pki::plan`, writes
//! the result: CA Secret, trust-bundle ConfigMap, one TLS Secret per peer.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

use super::apply::{Applied, apply};
use crate::crd::{CertificateInfo, RotationStatus, SorchaPeerStatus};
use crate::pki::{self, CaSet, KeyedCert, PeerCert, PeerReport, Phase, PkiInput};
use crate::resources::{self, ISSUER_ANNOTATION, Net};
use crate::{Error, Result, duration};

/// What the rest of the reconcile needs from the PKI step.
pub struct PkiOutcome {
    pub ca_not_after: jiff::Timestamp,
    pub certificates: Vec<CertificateInfo>,
    pub rotation: Option<RotationStatus>,
    pub events: Vec<(&'static str, String)>,
    /// The state changed this round and should be looked at again soon.
    pub in_progress: bool,
}

fn text(s: &Secret, key: &str) -> Option<String> {
    let bytes = s.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn keyed(s: &Secret, cert: &str, key: &str) -> Option<KeyedCert> {
    Some(KeyedCert {
        cert_pem: text(s, cert)?,
        key_pem: text(s, key)?,
    })
}

pub async fn reconcile_pki(
    client: &kube::Client,
    net: &Net<'_>,
    peer_status: &BTreeMap<i32, SorchaPeerStatus>,
    previous: Option<&RotationStatus>,
    now: jiff::Timestamp,
) -> Result<PkiOutcome> {
    let tls = &net.spec().tls;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &net.namespace);
    let generated = tls.ca_secret_name.is_none();
    let ca_name = net.ca_secret_name();
    let ca = match secrets.get_opt(&ca_name).await? {
        Some(s) => {
            let current = keyed(&s, "tls.crt", "tls.key").ok_or_else(|| Error::CaSecret {
                name: ca_name.clone(),
                message: "needs keys tls.crt and tls.key (PEM)".into(),
            })?;
            if !generated {
                pki::check_ca(&current).map_err(|message| Error::CaSecret {
                    name: ca_name.clone(),
                    message,
                })?;
            }
            Some(CaSet {
                current,
                next: keyed(&s, "next.crt", "next.key"),
            })
        }
        None if generated => None,
        None => {
            return Err(Error::CaSecret {
                name: ca_name,
                message: "not found in the network's namespace".into(),
            });
        }
    };

    let mut peers = BTreeMap::new();
    let mut existing = BTreeMap::new();
    for i in 0..net.replicas() {
        peers.insert(i, (net.pod_name(i), vec![net.pod_dns(i)]));
        if let Some(s) = secrets.get_opt(&net.peer_tls_secret_name(i)).await?
            && let (Some(cert), Some(issuer)) = (
                keyed(&s, "tls.crt", "tls.key"),
                s.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ISSUER_ANNOTATION)),
            )
        {
            existing.insert(
                i,
                PeerCert {
                    cert,
                    issuer_fingerprint: issuer.clone(),
                },
            );
        }
    }
    let reports = peer_status
        .iter()
        .map(|(o, s)| {
            (
                *o,
                PeerReport {
                    trusted_ca_fingerprints: s.trusted_ca_fingerprints.clone(),
                    certificate_serial: s.certificate_serial.clone(),
                },
            )
        })
        .collect();
    let phase = previous.and_then(|r| r.phase.parse::<Phase>().ok());
    let plan = pki::plan(PkiInput {
        network: &net.name,
        generated,
        ca,
        phase,
        peers,
        bootstrap_count: resources::bootstrap_count(net),
        existing,
        reports,
        now,
        ca_validity: duration::parse("spec.tls.caValidity", &tls.ca_validity)?,
        cert_validity: duration::parse("spec.tls.certValidity", &tls.cert_validity)?,
        renew_before: duration::parse("spec.tls.renewBefore", &tls.renew_before)?,
    })?;

    let mut changed = false;
    if generated {
        changed |=
            apply(&secrets, &resources::ca_secret(net, &plan.ca)).await? != Applied::Unchanged;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &net.namespace);
    changed |=
        apply(&cms, &resources::trust_bundle(net, &plan.bundle)).await? != Applied::Unchanged;
    let signer_pem = if plan.phase.is_some_and(Phase::signs_with_new) {
        plan.ca
            .next
            .as_ref()
            .map_or(&plan.ca.current.cert_pem, |n| &n.cert_pem)
    } else {
        &plan.ca.current.cert_pem
    };
    for (ordinal, pc) in &plan.peer_certs {
        let s = resources::peer_tls_secret(net, *ordinal, pc, signer_pem);
        changed |= apply(&secrets, &s).await? != Applied::Unchanged;
    }

    let rotation = plan.phase.map(|p| RotationStatus {
        phase: p.as_str().into(),
        new_ca_fingerprint: plan.new_ca_fingerprint.clone().unwrap_or_default(),
        started_at: previous
            .map(|r| r.started_at.clone())
            .unwrap_or_else(|| now.to_string()),
    });
    Ok(PkiOutcome {
        ca_not_after: plan.signer.not_after,
        certificates: plan
            .certificates
            .iter()
            .map(|(name, i)| CertificateInfo {
                name: name.clone(),
                fingerprint: i.fingerprint.clone(),
                not_after: i.not_after.to_string(),
            })
            .collect(),
        in_progress: changed || plan.phase.is_some(),
        rotation,
        events: plan.events,
    })
}
