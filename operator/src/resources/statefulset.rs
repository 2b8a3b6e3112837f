//! The peers' StatefulSet: stable identity (pod name = peer id), a data
//! volume per pod, the shared config, each pod's own TLS Secret.
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, SeccompProfile, SecretProjection, SecurityContext, Volume, VolumeMount,
    VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CONFIG_DIR, CONFIG_KEY, DATA_DIR, Net, PEER_PORT, TLS_DIR, TRUST_DIR, short_hash};

/// Hash of the pod template, on the StatefulSet: the rollout compares it
/// with the desired one to notice a spec or image change.
pub const TEMPLATE_HASH_ANNOTATION: &str = "sorcha.dev/template-hash";
/// Hash of the peer config, on the pod template: a config change rolls the
/// pods (the peer reads its file at start).
pub const CONFIG_HASH_ANNOTATION: &str = "sorcha.dev/config-hash";
const PORT_NAME: &str = "peer";

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn probe(path: &str, tls: bool, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(PORT_NAME.into()),
            scheme: Some(if tls { "HTTPS" } else { "HTTP" }.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(name != "data"),
        ..Default::default()
    }
}

fn peer_container(net: &Net) -> Container {
    let spec = net.spec();
    let tls = spec.tls.enabled;
    // Downward API first: later values refer to them as $(POD_NAME).
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_UID", "metadata.uid"),
        env("SORCHA_CONFIG", format!("{CONFIG_DIR}/{CONFIG_KEY}")),
        // The SorchaPeer whose status this peer writes: named after the pod,
        // or the standalone peer this network runs.
        env(
            "SORCHA_PEER_NAME",
            net.standalone_peer
                .clone()
                .unwrap_or_else(|| "$(POD_NAME)".into()),
        ),
        // The pod name is the peer id: stable across restarts and the same
        // string the peer's certificate carries as urn:sorcha:peer:<id>.
        env("SORCHA__NODEID", "$(POD_NAME)"),
        env(
            "SORCHA__NETWORKADDRESS__EXTERNALADDRESS",
            format!(
                "$(POD_NAME).{}.$(POD_NAMESPACE).svc.{}",
                net.headless_name(),
                net.cluster_domain
            ),
        ),
    ];
    let mut mounts = vec![mount("data", DATA_DIR), mount("config", CONFIG_DIR)];
    if tls {
        env.push(env_cert_path());
        mounts.push(mount("tls", TLS_DIR));
        mounts.push(mount("trust", TRUST_DIR));
    }
    Container {
        name: "peer".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        args: Some(vec!["run".into()]),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: PEER_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: spec.resources.clone(),
        liveness_probe: Some(probe("/healthz", tls, 10, 6)),
        readiness_probe: Some(probe("/readyz", tls, 5, 3)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_cert_path() -> EnvVar {
    env(
        "SORCHA__SECURITY__CERTIFICATEPATH",
        format!("{TLS_DIR}/$(POD_NAME)/tls.crt"),
    )
}

/// Each pod's TLS Secret appears under `<TLS_DIR>/<pod name>/`; a pod reads
/// only its own directory. (A StatefulSet cannot give each pod a different
/// Secret volume, so every ordinal's Secret is projected; they are optional
/// so a pod starts while its Secret is still being written.)
fn tls_volume(net: &Net) -> Volume {
    let sources = (0..net.replicas())
        .map(|i| VolumeProjection {
            secret: Some(SecretProjection {
                name: net.peer_tls_secret_name(i),
                optional: Some(true),
                items: Some(
                    ["tls.crt", "tls.key", "ca.crt"]
                        .iter()
                        .map(|k| KeyToPath {
                            key: (*k).into(),
                            path: format!("{}/{k}", net.pod_name(i)),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        })
        .collect();
    Volume {
        name: "tls".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o440),
        }),
        ..Default::default()
    }
}

fn volumes(net: &Net) -> Vec<Volume> {
    let mut v = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: net.config_name(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if net.spec().tls.enabled {
        v.push(tls_volume(net));
        v.push(Volume {
            name: "trust".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: net.trust_name(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    v
}

/// The pod template; `config_hash` is the hash of the rendered peer config.
pub fn pod_template(net: &Net, config_hash: &str) -> PodTemplateSpec {
    let spec = net.spec();
    let pt = &spec.pod_template;
    let mut labels = pt.labels.clone();
    labels.extend(net.labels());
    let mut annotations = pt.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    let mut containers = vec![peer_container(net)];
    containers.extend(pt.extra_containers.iter().cloned());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers,
            service_account_name: Some(
                pt.service_account_name
                    .clone()
                    .unwrap_or_else(|| net.peer_account_name()),
            ),
            affinity: pt.affinity.clone(),
            tolerations: (!pt.tolerations.is_empty()).then(|| pt.tolerations.clone()),
            node_selector: (!pt.node_selector.is_empty()).then(|| pt.node_selector.clone()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                fs_group: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            volumes: Some(volumes(net)),
            ..Default::default()
        }),
    }
}

fn data_claim(net: &Net) -> PersistentVolumeClaim {
    let st = &net.spec().storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(net.selector_labels()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: st.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(st.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The StatefulSet with rolling-update `partition` (pods with a lower
/// ordinal keep the old template; see `rollout`).
pub fn statefulset(net: &Net, config_hash: &str, partition: i32) -> StatefulSet {
    let template = pod_template(net, config_hash);
    let hash = short_hash(&serde_json::to_vec(&template).expect("pod template serializes"));
    let mut meta = net.meta(net.name.clone());
    meta.annotations = Some(BTreeMap::from([(TEMPLATE_HASH_ANNOTATION.into(), hash)]));
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            replicas: Some(net.replicas()),
            service_name: Some(net.headless_name()),
            // Peers need no ordered start: bootstrap retries until one answers.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(net.selector_labels()),
                ..Default::default()
            },
            template,
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(partition),
                    ..Default::default()
                }),
            }),
            volume_claim_templates: Some(vec![data_claim(net)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The template hash a StatefulSet carries.
pub fn template_hash(sts: &StatefulSet) -> Option<&str> {
    sts.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_HASH_ANNOTATION)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::mk_network;

    fn peer(sts: &StatefulSet) -> &Container {
        &sts.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    #[test]
    fn identity_storage_and_strategy() {
        let n = mk_network(3);
        let net = Net::new(&n, "cluster.local").unwrap();
        let sts = statefulset(&net, "cfg1", 2);
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("alpha-peers"));
        let ru = spec.update_strategy.as_ref().unwrap();
        assert_eq!(ru.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(ru.rolling_update.as_ref().unwrap().partition, Some(2));
        let pvc = &spec.volume_claim_templates.as_ref().unwrap()[0];
        let req = pvc.spec.as_ref().unwrap().resources.as_ref().unwrap();
        assert_eq!(req.requests.as_ref().unwrap()["storage"].0, "1Gi");
        assert_eq!(
            sts.metadata.owner_references.as_ref().unwrap()[0].name,
            "alpha"
        );
        assert!(template_hash(&sts).is_some());
    }

    #[test]
    fn peer_container_port_probes_env_mounts() {
        let n = mk_network(3);
        let net = Net::new(&n, "cluster.local").unwrap();
        let sts = statefulset(&net, "cfg1", 0);
        let c = peer(&sts);
        assert_eq!(c.image.as_deref(), Some("ghcr.io/sorcha/sorcha-peer:0.1.0"));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 5001);
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        assert_eq!(ready.port, IntOrString::String("peer".into()));
        let env = c.env.as_ref().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).unwrap();
        let pod_name = get("POD_NAME").value_from.as_ref().unwrap();
        assert_eq!(
            pod_name.field_ref.as_ref().unwrap().field_path,
            "metadata.name"
        );
        assert!(get("POD_NAMESPACE").value_from.is_some());
        assert_eq!(get("SORCHA__NODEID").value.as_deref(), Some("$(POD_NAME)"));
        assert_eq!(
            get("SORCHA__SECURITY__CERTIFICATEPATH").value.as_deref(),
            Some("/etc/sorcha/tls/$(POD_NAME)/tls.crt")
        );
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, [DATA_DIR, CONFIG_DIR, TLS_DIR, TRUST_DIR]);
    }

    #[test]
    fn each_pod_gets_its_own_tls_directory() {
        let n = mk_network(2);
        let net = Net::new(&n, "cluster.local").unwrap();
        let v = tls_volume(&net);
        let sources = v.projected.unwrap().sources.unwrap();
        assert_eq!(sources.len(), 2);
        let s1 = sources[1].secret.as_ref().unwrap();
        assert_eq!(s1.name, "alpha-1-tls");
        assert_eq!(s1.items.as_ref().unwrap()[1].path, "alpha-1/tls.key");
    }

    #[test]
    fn tls_off_means_plain_probes_and_no_cert_mounts() {
        let mut n = mk_network(1);
        n.spec.tls.enabled = false;
        let net = Net::new(&n, "cluster.local").unwrap();
        let sts = statefulset(&net, "c", 0);
        let c = peer(&sts);
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.scheme.as_deref(), Some("HTTP"));
        assert_eq!(c.volume_mounts.as_ref().unwrap().len(), 2);
        assert!(
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .all(|e| e.name != "SORCHA__SECURITY__CERTIFICATEPATH")
        );
    }

    #[test]
    fn image_or_config_change_changes_template_hash() {
        let mut n = mk_network(3);
        let a = statefulset(&Net::new(&n, "cluster.local").unwrap(), "c1", 0);
        let b = statefulset(&Net::new(&n, "cluster.local").unwrap(), "c2", 0);
        n.spec.image = "ghcr.io/sorcha/sorcha-peer:0.2.0".into();
        let c = statefulset(&Net::new(&n, "cluster.local").unwrap(), "c1", 0);
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&c));
    }

    #[test]
    fn pass_through_sidecar_and_scheduling() {
        let mut n = mk_network(3);
        n.spec.pod_template = serde_json::from_value(serde_json::json!({
            "extraContainers": [{"name": "app", "image": "example/app:1"}],
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "nodeSelector": {"disk": "ssd"},
        }))
        .unwrap();
        let net = Net::new(&n, "cluster.local").unwrap();
        let sts = statefulset(&net, "c", 0);
        let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[1].name, "app");
        assert_eq!(
            pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        assert_eq!(pod.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(pod.service_account_name.as_deref(), Some("alpha-peer"));
    }
}
