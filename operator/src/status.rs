//! Network status: peer counts aggregated from the SorchaPeer statuses the
//! peers write, and conditions per the Kubernetes API conventions.
//! `lastTransitionTime` changes only when a condition's status does, and
//! [`same_ignoring_time`] lets the controller skip a write that would only
//! move timestamps.
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{CertificateInfo, PeerPhase, RolloutStatus, RotationStatus, SorchaNetworkStatus};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const CERTIFICATES_READY: &str = "CertificatesReady";
pub const PAUSED: &str = "Paused";

/// A condition before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

fn cond(type_: &'static str, status: bool, reason: &str, message: impl Into<String>) -> Cond {
    Cond {
        type_,
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

/// Sets `new` in `conds`, keeping `lastTransitionTime` unless the status flips.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    new: Cond,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if new.status { "True" } else { "False" }.to_owned();
    let old = conds.iter().position(|c| c.type_ == new.type_);
    let ltt = match old.map(|i| &conds[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let c = Condition {
        type_: new.type_.into(),
        status,
        reason: new.reason,
        message: new.message,
        observed_generation: generation,
        last_transition_time: ltt,
    };
    match old {
        Some(i) => conds[i] = c,
        None => conds.push(c),
    }
}

/// Whether a peer reporting `phase` is as healthy as it can be: Online, or
/// Offline when it is a lone peer with nobody to reach.
pub fn peer_healthy(phase: Option<PeerPhase>, lone_peer: bool) -> bool {
    match phase {
        Some(PeerPhase::Online) => true,
        Some(PeerPhase::Offline) => lone_peer,
        _ => false,
    }
}

/// What the reconciler saw this round.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub generation: Option<i64>,
    pub replicas: i32,
    pub ready_replicas: i32,
    /// Per ordinal below `replicas`; `None`: the peer has not reported.
    pub peer_phases: Vec<Option<PeerPhase>>,
    /// See `Net::lone_peer`.
    pub lone_peer: bool,
    pub rollout: Option<RolloutStatus>,
    pub rollout_stalled: Option<String>,
    pub rotation: Option<RotationStatus>,
    pub tls_enabled: bool,
    pub ca_not_after: Option<Timestamp>,
    pub certificates: Vec<CertificateInfo>,
    /// A PKI problem the user must fix (e.g. the supplied CA Secret).
    pub tls_problem: Option<String>,
    /// A spec the operator cannot satisfy, naming the field.
    pub spec_problem: Option<String>,
}

/// The new status from `prev` and this round's observations.
pub fn aggregate(
    prev: Option<&SorchaNetworkStatus>,
    o: &Observed,
    now: Timestamp,
) -> SorchaNetworkStatus {
    let count = |p: PeerPhase| o.peer_phases.iter().filter(|x| **x == Some(p)).count() as i32;
    let online = count(PeerPhase::Online);
    let degraded = count(PeerPhase::Degraded);
    // A peer that has not reported yet counts as offline.
    let offline = o.replicas - online - degraded;
    let healthy = o
        .peer_phases
        .iter()
        .filter(|p| peer_healthy(**p, o.lone_peer))
        .count() as i32;

    let rolling = o.rollout.is_some();
    let rotating = o.rotation.is_some();
    let scaling = o.ready_replicas != o.replicas;
    let problem = o.spec_problem.clone().or_else(|| o.tls_problem.clone());

    let ready = match (&problem, &o.rollout_stalled) {
        (Some(p), _) => cond(READY, false, "InvalidSpec", p.clone()),
        (None, Some(s)) => cond(READY, false, "RolloutStalled", s.clone()),
        _ if online == o.replicas => cond(
            READY,
            true,
            "AllPeersOnline",
            format!("{online}/{} peers Online", o.replicas),
        ),
        _ if healthy == o.replicas => cond(
            READY,
            true,
            "LonePeerReporting",
            "the only peer reports Offline, as expected with no other peer and no \
             external bootstrap node (spec.bootstrap.externalNodes) to reach",
        ),
        _ => cond(
            READY,
            false,
            "PeersNotOnline",
            format!(
                "{online}/{} peers Online, {degraded} Degraded, {offline} Offline",
                o.replicas
            ),
        ),
    };
    let progressing = if rolling {
        let r = o.rollout.as_ref().expect("rolling");
        cond(
            PROGRESSING,
            true,
            "RollingUpdate",
            format!(
                "revision {}: pods from ordinal {} updated",
                r.revision, r.partition
            ),
        )
    } else if rotating {
        let r = o.rotation.as_ref().expect("rotating");
        cond(
            PROGRESSING,
            true,
            "CaRotation",
            format!("CA rotation phase {}", r.phase),
        )
    } else if scaling {
        cond(
            PROGRESSING,
            true,
            "Scaling",
            format!("{}/{} pods ready", o.ready_replicas, o.replicas),
        )
    } else {
        cond(
            PROGRESSING,
            false,
            "Stable",
            "all pods run the desired revision",
        )
    };
    let degraded_c = match (&problem, &o.rollout_stalled) {
        (Some(p), _) => cond(DEGRADED, true, "InvalidSpec", p.clone()),
        (None, Some(s)) => cond(DEGRADED, true, "RolloutStalled", s.clone()),
        _ if !rolling && !scaling && healthy < o.replicas => cond(
            DEGRADED,
            true,
            "PeersUnhealthy",
            format!("{degraded} peers Degraded and {offline} Offline"),
        ),
        _ => cond(DEGRADED, false, "AsExpected", ""),
    };
    let certs = match (&o.tls_problem, o.tls_enabled) {
        (_, false) => cond(
            CERTIFICATES_READY,
            true,
            "TlsDisabled",
            "spec.tls.enabled is false",
        ),
        (Some(p), true) => cond(CERTIFICATES_READY, false, "CaSecretInvalid", p.clone()),
        (None, true) => cond(
            CERTIFICATES_READY,
            true,
            "Issued",
            format!(
                "CA valid until {}",
                o.ca_not_after.map_or_else(|| "?".into(), |t| t.to_string())
            ),
        ),
    };

    let mut conditions = prev.map(|p| p.conditions.clone()).unwrap_or_default();
    conditions.retain(|c| c.type_ != PAUSED);
    for c in [ready, progressing, degraded_c, certs] {
        set_condition(&mut conditions, c, o.generation, now);
    }
    SorchaNetworkStatus {
        observed_generation: o.generation,
        replicas: o.replicas,
        ready_replicas: o.ready_replicas,
        peers_online: online,
        peers_degraded: degraded,
        peers_offline: offline,
        ca_not_after: o.ca_not_after.map(|t| t.to_string()),
        certificates: o.certificates.clone(),
        rotation: o.rotation.clone(),
        rollout: o.rollout.clone(),
        conditions,
    }
}

/// Status of a paused object: everything kept, plus `Paused=True`.
pub fn paused(
    prev: Option<&SorchaNetworkStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> SorchaNetworkStatus {
    let mut s = prev.cloned().unwrap_or_default();
    set_condition(
        &mut s.conditions,
        cond(
            PAUSED,
            true,
            "PausedByAnnotation",
            "sorcha.dev/paused is \"true\": the operator leaves this network alone",
        ),
        generation,
        now,
    );
    s
}

/// Equal apart from conditions' `lastTransitionTime`.
pub fn same_ignoring_time(a: &SorchaNetworkStatus, b: &SorchaNetworkStatus) -> bool {
    let strip = |s: &SorchaNetworkStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn obs(phases: &[Option<PeerPhase>]) -> Observed {
        Observed {
            generation: Some(2),
            replicas: phases.len() as i32,
            ready_replicas: phases.len() as i32,
            peer_phases: phases.to_vec(),
            tls_enabled: true,
            ca_not_after: Some(t(1000)),
            ..Default::default()
        }
    }

    fn get<'a>(s: &'a SorchaNetworkStatus, ty: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == ty).unwrap()
    }

    #[test]
    fn counts_and_ready_when_all_online() {
        use PeerPhase::*;
        let s = aggregate(None, &obs(&[Some(Online), Some(Online)]), t(0));
        assert_eq!(
            (s.peers_online, s.peers_degraded, s.peers_offline),
            (2, 0, 0)
        );
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(get(&s, READY).observed_generation, Some(2));
        assert_eq!(get(&s, PROGRESSING).status, "False");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(get(&s, CERTIFICATES_READY).status, "True");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn a_lone_peer_offline_is_ready_but_not_when_it_has_peers_to_reach() {
        use PeerPhase::*;
        let mut o = obs(&[Some(Offline)]);
        o.lone_peer = true;
        let s = aggregate(None, &o, t(0));
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(get(&s, READY).reason, "LonePeerReporting");
        assert_eq!(get(&s, DEGRADED).status, "False");
        // Not reported yet: not ready, even alone.
        o.peer_phases = vec![None];
        assert_eq!(get(&aggregate(None, &o, t(0)), READY).status, "False");
        // With somebody to reach, Offline is unhealthy.
        let s = aggregate(None, &obs(&[Some(Offline)]), t(0));
        assert_eq!(get(&s, READY).status, "False");
        assert_eq!(get(&s, DEGRADED).reason, "PeersUnhealthy");
    }

    #[test]
    fn unreported_peers_count_offline_and_degrade() {
        use PeerPhase::*;
        let s = aggregate(None, &obs(&[Some(Online), Some(Degraded), None]), t(0));
        assert_eq!(
            (s.peers_online, s.peers_degraded, s.peers_offline),
            (1, 1, 1)
        );
        assert_eq!(get(&s, READY).reason, "PeersNotOnline");
        assert_eq!(get(&s, DEGRADED).reason, "PeersUnhealthy");
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        use PeerPhase::*;
        let s1 = aggregate(None, &obs(&[Some(Online)]), t(0));
        let s2 = aggregate(Some(&s1), &obs(&[Some(Online)]), t(50));
        assert_eq!(get(&s2, READY).last_transition_time, Time(t(0)));
        assert!(same_ignoring_time(&s1, &s2));
        let s3 = aggregate(Some(&s2), &obs(&[Some(Offline)]), t(60));
        assert_eq!(get(&s3, READY).last_transition_time, Time(t(60)));
        assert!(!same_ignoring_time(&s2, &s3));
    }

    #[test]
    fn spec_problem_and_stall_are_degraded_with_message() {
        let mut o = obs(&[None]);
        o.spec_problem = Some("spec.storage.storageClassName: StorageClass \"x\" not found".into());
        let s = aggregate(None, &o, t(0));
        assert_eq!(get(&s, DEGRADED).status, "True");
        assert!(
            get(&s, DEGRADED)
                .message
                .contains("spec.storage.storageClassName")
        );
        let mut o = obs(&[None]);
        o.rollout_stalled = Some("stalled at ordinal 0".into());
        let s = aggregate(None, &o, t(0));
        assert_eq!(get(&s, DEGRADED).reason, "RolloutStalled");
        assert_eq!(get(&s, READY).status, "False");
    }

    #[test]
    fn progressing_reasons() {
        let mut o = obs(&[None, None]);
        o.ready_replicas = 1;
        assert_eq!(
            get(&aggregate(None, &o, t(0)), PROGRESSING).reason,
            "Scaling"
        );
        o.rotation = Some(RotationStatus {
            phase: "WaitAllPeersTrust".into(),
            ..Default::default()
        });
        assert_eq!(
            get(&aggregate(None, &o, t(0)), PROGRESSING).reason,
            "CaRotation"
        );
        o.rollout = Some(RolloutStatus {
            revision: "r".into(),
            partition: 1,
            step_started_at: String::new(),
        });
        assert_eq!(
            get(&aggregate(None, &o, t(0)), PROGRESSING).reason,
            "RollingUpdate"
        );
    }

    #[test]
    fn paused_adds_condition_and_unpausing_removes_it() {
        let s = paused(None, Some(1), t(0));
        assert_eq!(get(&s, PAUSED).status, "True");
        let s2 = aggregate(Some(&s), &obs(&[None]), t(1));
        assert!(s2.conditions.iter().all(|c| c.type_ != PAUSED));
    }
}
