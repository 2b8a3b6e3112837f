//! What the operator reads from the peers' pods: whether each runs the
//! update revision and is Ready (the rollout gate), and image pull failures
//! (a spec problem reported with the field that names the image).
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::crd::{SorchaNetworkSpec, SorchaPeerStatus};

const PULL_FAILURES: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

fn ordinal(pod: &Pod, network: &str) -> Option<i32> {
    pod.name_any()
        .strip_prefix(&format!("{network}-"))?
        .parse()
        .ok()
}

/// Per ordinal: the pod runs `update_revision`, is Ready, and its peer
/// reports Online from that very pod (a lone peer: any healthy phase, see
/// `status::peer_healthy`).
pub fn rollout_gate(
    pods: &[Pod],
    network: &str,
    update_revision: Option<&str>,
    peers: &BTreeMap<i32, SorchaPeerStatus>,
    lone_peer: bool,
) -> BTreeMap<i32, bool> {
    let Some(rev) = update_revision else {
        return BTreeMap::new();
    };
    pods.iter()
        .filter_map(|pod| {
            let o = ordinal(pod, network)?;
            let on_rev = pod
                .labels()
                .get("controller-revision-hash")
                .map(String::as_str)
                == Some(rev);
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let online = peers.get(&o).is_some_and(|s| {
                crate::status::peer_healthy(s.phase, lone_peer)
                    // A status without podUid comes from a peer that does not
                    // report it; the revision and readiness checks still hold.
                    && s.pod_uid.as_ref().is_none_or(|u| Some(u) == pod.metadata.uid.as_ref())
            });
            Some((o, on_rev && ready && online))
        })
        .collect()
}

/// The first image pull failure among the pods, naming the spec field.
pub fn image_pull_problem(pods: &[Pod], spec: &SorchaNetworkSpec) -> Option<String> {
    for pod in pods {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        for cs in statuses.into_iter().flatten() {
            let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = w.reason.as_deref().unwrap_or_default();
            if !PULL_FAILURES.contains(&reason) {
                continue;
            }
            let field = if cs.name == "peer" {
                "spec.image".to_owned()
            } else {
                spec.pod_template
                    .extra_containers
                    .iter()
                    .position(|c| c.name == cs.name)
                    .map_or_else(
                        || format!("container {}", cs.name),
                        |i| format!("spec.podTemplate.extraContainers[{i}].image"),
                    )
            };
            return Some(format!(
                "{field}: image {:?} cannot be pulled on pod {} ({reason}: {})",
                cs.image,
                pod.name_any(),
                w.message.as_deref().unwrap_or("no message")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::PeerPhase;
    use serde_json::json;

    fn pod(name: &str, rev: &str, ready: bool, uid: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": uid, "labels": {"controller-revision-hash": rev}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    fn online(uid: Option<&str>) -> SorchaPeerStatus {
        SorchaPeerStatus {
            phase: Some(PeerPhase::Online),
            pod_uid: uid.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn gate_needs_revision_readiness_and_online_from_this_pod() {
        let pods = [
            pod("alpha-0", "new", true, "u0"),
            pod("alpha-1", "old", true, "u1"),
            pod("alpha-2", "new", false, "u2"),
            pod("alpha-3", "new", true, "u3"),
            pod("alpha-4", "new", true, "u4"),
        ];
        let peers = BTreeMap::from([
            (0, online(Some("u0"))),
            (1, online(Some("u1"))),
            (2, online(Some("u2"))),
            (3, online(Some("replaced-pod"))),
            (4, online(None)),
        ]);
        let g = rollout_gate(&pods, "alpha", Some("new"), &peers, false);
        assert_eq!(
            g.values().copied().collect::<Vec<_>>(),
            [true, false, false, false, true]
        );
        assert!(rollout_gate(&pods, "alpha", None, &peers, false).is_empty());
    }

    #[test]
    fn a_lone_peer_passes_the_gate_offline_but_not_degraded() {
        let pods = [pod("solo-0", "new", true, "u0")];
        let with = |phase| {
            let peers = BTreeMap::from([(
                0,
                SorchaPeerStatus {
                    phase: Some(phase),
                    pod_uid: Some("u0".into()),
                    ..Default::default()
                },
            )]);
            rollout_gate(&pods, "solo", Some("new"), &peers, true)[&0]
        };
        assert!(with(PeerPhase::Offline));
        assert!(with(PeerPhase::Online));
        assert!(!with(PeerPhase::Degraded));
        let offline = BTreeMap::from([(
            0,
            SorchaPeerStatus {
                phase: Some(PeerPhase::Offline),
                ..Default::default()
            },
        )]);
        assert!(!rollout_gate(&pods, "solo", Some("new"), &offline, false)[&0]);
    }

    #[test]
    fn pull_failure_names_the_image_field() {
        let spec: SorchaNetworkSpec = serde_json::from_value(json!({
            "image": "peer:1",
            "podTemplate": {"extraContainers": [{"name": "app", "image": "app:nope"}]}
        }))
        .unwrap();
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "alpha-0"},
            "status": {"containerStatuses": [
                {"name": "peer", "image": "peer:1", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}},
                {"name": "app", "image": "app:nope", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
            ]}
        }))
        .unwrap();
        let m = image_pull_problem(std::slice::from_ref(&p), &spec).unwrap();
        assert!(
            m.starts_with("spec.podTemplate.extraContainers[0].image"),
            "{m}"
        );
        assert!(
            m.contains("app:nope") && m.contains("ImagePullBackOff"),
            "{m}"
        );
        p.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()
            .pop();
        assert_eq!(image_pull_problem(&[p], &spec), None);
    }
}
