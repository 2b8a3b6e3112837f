//! Health-gated rolling update, pure. The StatefulSet uses RollingUpdate
//! with a partition: pods with ordinal >= partition run the new template.
//! A template change starts at the highest ordinal; the partition moves
//! down by one only after the pod at the partition runs the new revision
//! and its peer reports Online. A step that takes longer than the stall
//! timeout stops the rollout where it is and reports it.
use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::crd::RolloutStatus;

pub struct RolloutInput<'a> {
    pub replicas: i32,
    /// Template hash of the desired StatefulSet.
    pub desired_revision: &'a str,
    /// Template hash of the live StatefulSet; `None` when it does not exist.
    pub live_revision: Option<&'a str>,
    /// Replicas of the live StatefulSet.
    pub live_replicas: Option<i32>,
    /// The rollout recorded in the network's status.
    pub previous: Option<&'a RolloutStatus>,
    /// Per ordinal: the pod runs the new revision, is Ready, and its peer
    /// reports Online.
    pub updated_and_online: &'a BTreeMap<i32, bool>,
    pub now: Timestamp,
    pub stall_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutDecision {
    pub partition: i32,
    /// `None` when no rollout is in progress.
    pub status: Option<RolloutStatus>,
    /// Set when the current step exceeded the stall timeout.
    pub stalled: Option<String>,
    pub event: Option<(&'static str, String)>,
}

fn stamp(t: Timestamp) -> String {
    t.to_string()
}

pub fn decide(i: RolloutInput) -> RolloutDecision {
    let top = (i.replicas - 1).max(0);
    let step = |partition: i32, event| RolloutDecision {
        partition,
        status: Some(RolloutStatus {
            revision: i.desired_revision.to_owned(),
            partition,
            step_started_at: stamp(i.now),
        }),
        stalled: None,
        event,
    };
    let steady = |event| RolloutDecision {
        partition: 0,
        status: None,
        stalled: None,
        event,
    };
    let Some(live) = i.live_revision else {
        // A new StatefulSet starts every pod at once.
        return steady(None);
    };
    if live != i.desired_revision {
        // Ordinals added by a scale-up start on the new revision: below the
        // partition they would be created from the old template.
        let start = i.live_replicas.map_or(top, |r| top.min(r - 1)).max(0);
        return step(
            start,
            Some((
                "RolloutStarted",
                format!(
                    "rolling out revision {} from ordinal {start}",
                    i.desired_revision
                ),
            )),
        );
    }
    let Some(prev) = i.previous.filter(|p| p.revision == i.desired_revision) else {
        return steady(None);
    };
    let p = prev.partition.min(top);
    if i.updated_and_online.get(&p).copied().unwrap_or(false) {
        return if p == 0 {
            steady(Some((
                "RolloutComplete",
                format!("all pods run revision {}", i.desired_revision),
            )))
        } else {
            step(
                p - 1,
                Some((
                    "RolloutAdvanced",
                    format!("ordinal {p} is Online; updating ordinal {}", p - 1),
                )),
            )
        };
    }
    let started: Option<Timestamp> = prev.step_started_at.parse().ok();
    let waited = started.map_or(Duration::ZERO, |s| {
        Duration::from_secs(u64::try_from(i.now.as_second() - s.as_second()).unwrap_or(0))
    });
    let stalled = (started.is_none() || waited > i.stall_timeout).then(|| {
        format!(
            "rollout of revision {} stalled: the peer at ordinal {p} has not reported Online \
             within spec.rollout.stallTimeout ({}s); check that pod's events and logs",
            i.desired_revision,
            i.stall_timeout.as_secs()
        )
    });
    RolloutDecision {
        partition: p,
        status: Some(RolloutStatus {
            partition: p,
            ..prev.clone()
        }),
        event: stalled.clone().map(|m| ("RolloutStalled", m)),
        stalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn run(
        live: Option<&str>,
        prev: Option<&RolloutStatus>,
        online: &[i32],
        now: i64,
    ) -> RolloutDecision {
        let map: BTreeMap<i32, bool> = online.iter().map(|o| (*o, true)).collect();
        decide(RolloutInput {
            replicas: 3,
            desired_revision: "new",
            live_revision: live,
            live_replicas: Some(3),
            previous: prev,
            updated_and_online: &map,
            now: t(now),
            stall_timeout: Duration::from_secs(600),
        })
    }

    #[test]
    fn new_statefulset_starts_everything() {
        let d = run(None, None, &[], 0);
        assert_eq!((d.partition, d.status), (0, None));
    }

    #[test]
    fn template_change_advances_one_ordinal_at_a_time() {
        let d = run(Some("old"), None, &[], 0);
        assert_eq!(d.partition, 2);
        assert_eq!(d.event.unwrap().0, "RolloutStarted");
        // Pod 2 not Online yet: hold.
        let d2 = run(Some("new"), d.status.as_ref(), &[], 30);
        assert_eq!(d2.partition, 2);
        assert!(d2.stalled.is_none() && d2.event.is_none());
        let d3 = run(Some("new"), d2.status.as_ref(), &[2], 60);
        assert_eq!(d3.partition, 1);
        let d4 = run(Some("new"), d3.status.as_ref(), &[2, 1], 90);
        assert_eq!(d4.partition, 0);
        let d5 = run(Some("new"), d4.status.as_ref(), &[2, 1, 0], 120);
        assert_eq!((d5.partition, d5.status.clone()), (0, None));
        assert_eq!(d5.event.unwrap().0, "RolloutComplete");
    }

    #[test]
    fn scale_up_starts_new_ordinals_on_the_new_revision() {
        let map = BTreeMap::new();
        let d = decide(RolloutInput {
            replicas: 5,
            desired_revision: "new",
            live_revision: Some("old"),
            live_replicas: Some(3),
            previous: None,
            updated_and_online: &map,
            now: t(0),
            stall_timeout: Duration::from_secs(600),
        });
        assert_eq!(d.partition, 2);
    }

    #[test]
    fn stall_after_timeout_keeps_partition() {
        let d = run(Some("old"), None, &[], 0);
        let s = run(Some("new"), d.status.as_ref(), &[], 601);
        assert_eq!(s.partition, 2);
        assert!(s.stalled.as_ref().unwrap().contains("ordinal 2"));
        assert_eq!(s.event.unwrap().0, "RolloutStalled");
        // The stall clock is not reset by waiting.
        assert_eq!(
            s.status.unwrap().step_started_at,
            d.status.unwrap().step_started_at
        );
    }

    #[test]
    fn steady_state_is_partition_zero() {
        let d = run(Some("new"), None, &[], 0);
        assert_eq!((d.partition, d.status, d.event), (0, None, None));
    }
}
