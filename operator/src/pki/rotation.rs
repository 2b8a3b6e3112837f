//! CA renewal without outage, as a pure state machine. One phase per
//! reconcile, so each step is written (and visible in status) before the
//! next starts:
//!
//! 1. `AddNewCaToBundle`: a new CA is generated and added to the trust
//!    bundle beside the old one; peers still present old-CA certificates.
//! 2. `WaitAllPeersTrust`: wait until every peer reports (in its SorchaPeer
//!    status) that it has loaded the new CA.
//! 3. `ReissuePeerCerts`: peer certificates are reissued by the new CA;
//!    wait until every peer reports serving its new certificate.
//! 4. `DropOldCa`: the new CA becomes the only CA; the old one leaves the
//!    bundle.
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    AddNewCaToBundle,
    WaitAllPeersTrust,
    ReissuePeerCerts,
    DropOldCa,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::AddNewCaToBundle => "AddNewCaToBundle",
            Phase::WaitAllPeersTrust => "WaitAllPeersTrust",
            Phase::ReissuePeerCerts => "ReissuePeerCerts",
            Phase::DropOldCa => "DropOldCa",
        }
    }

    /// Whether peer certificates are signed by the new CA in this phase.
    pub fn signs_with_new(self) -> bool {
        matches!(self, Phase::ReissuePeerCerts | Phase::DropOldCa)
    }

    /// Whether the old CA is still in the trust bundle.
    pub fn bundle_keeps_old(self) -> bool {
        !matches!(self, Phase::DropOldCa)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Phase::AddNewCaToBundle,
            Phase::WaitAllPeersTrust,
            Phase::ReissuePeerCerts,
            Phase::DropOldCa,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown rotation phase {s:?}"))
    }
}

/// What the reconciler observed this round.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The signing CA is within renew-before of its expiry.
    pub ca_due: bool,
    /// Every peer reports the new CA among its trusted CAs.
    pub all_trust_new: bool,
    /// Every peer reports serving a certificate issued by the new CA.
    pub all_on_new_certs: bool,
}

/// The phase after this round; `None` is steady state.
pub fn step(phase: Option<Phase>, f: Facts) -> Option<Phase> {
    match phase {
        None if f.ca_due => Some(Phase::AddNewCaToBundle),
        None => None,
        Some(Phase::AddNewCaToBundle) => Some(Phase::WaitAllPeersTrust),
        Some(Phase::WaitAllPeersTrust) if f.all_trust_new => Some(Phase::ReissuePeerCerts),
        Some(Phase::WaitAllPeersTrust) => Some(Phase::WaitAllPeersTrust),
        Some(Phase::ReissuePeerCerts) if f.all_on_new_certs => Some(Phase::DropOldCa),
        Some(Phase::ReissuePeerCerts) => Some(Phase::ReissuePeerCerts),
        Some(Phase::DropOldCa) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUE: Facts = Facts {
        ca_due: true,
        all_trust_new: false,
        all_on_new_certs: false,
    };

    #[test]
    fn steady_until_due() {
        assert_eq!(step(None, Facts::default()), None);
        assert_eq!(step(None, DUE), Some(Phase::AddNewCaToBundle));
    }

    #[test]
    fn full_rotation_in_order_and_gated() {
        let mut p = step(None, DUE);
        p = step(p, Facts::default());
        assert_eq!(p, Some(Phase::WaitAllPeersTrust));
        // Not every peer trusts the new CA yet: no reissue.
        assert_eq!(step(p, Facts::default()), Some(Phase::WaitAllPeersTrust));
        p = step(
            p,
            Facts {
                all_trust_new: true,
                ..Default::default()
            },
        );
        assert_eq!(p, Some(Phase::ReissuePeerCerts));
        // Old CA stays until every peer serves its new certificate.
        assert_eq!(
            step(
                p,
                Facts {
                    all_trust_new: true,
                    ..Default::default()
                }
            ),
            p
        );
        p = step(
            p,
            Facts {
                all_on_new_certs: true,
                ..Default::default()
            },
        );
        assert_eq!(p, Some(Phase::DropOldCa));
        assert_eq!(step(p, Facts::default()), None);
    }

    #[test]
    fn phase_semantics_and_names() {
        assert!(!Phase::WaitAllPeersTrust.signs_with_new());
        assert!(Phase::ReissuePeerCerts.signs_with_new());
        assert!(Phase::ReissuePeerCerts.bundle_keeps_old());
        assert!(!Phase::DropOldCa.bundle_keeps_old());
        for p in [
            Phase::AddNewCaToBundle,
            Phase::WaitAllPeersTrust,
            Phase::ReissuePeerCerts,
            Phase::DropOldCa,
        ] {
            assert_eq!(p.as_str().parse::<Phase>().unwrap(), p);
        }
        assert!("Nope".parse::<Phase>().is_err());
    }
}
