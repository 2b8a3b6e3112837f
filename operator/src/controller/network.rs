//! Reconciling one SorchaNetwork.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::apply::{Applied, apply, delete_if_exists, prune};
use super::context::Context;
use super::pki_io::reconcile_pki;
use crate::crd::{
    PAUSED_ANNOTATION, SorchaNetwork, SorchaNetworkStatus, SorchaPeer, SorchaPeerStatus,
};
use crate::resources::{self, Net, monitor_resource};
use crate::rollout::{RolloutInput, decide};
use crate::status::{self, Observed};
use crate::{Error, FIELD_MANAGER, Result, duration, pods};

/// Requeue while something is moving (rollout, rotation), since a peer's
/// Online report is what advances it.
const BUSY_REQUEUE: Duration = Duration::from_secs(10);
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

pub fn is_paused<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

pub async fn reconcile(obj: Arc<SorchaNetwork>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_network(&obj, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values(&["SorchaNetwork"])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn publish(ctx: &Context, obj: &SorchaNetwork, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    // An event that cannot be written must not fail the reconcile.
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish event");
    }
}

async fn write_status(ctx: &Context, obj: &SorchaNetwork, new: SorchaNetworkStatus) -> Result<()> {
    ctx.metrics
        .record_network(&obj.namespace().unwrap_or_default(), &obj.name_any(), &new);
    if obj
        .status
        .as_ref()
        .is_some_and(|s| status::same_ignoring_time(s, &new))
    {
        return Ok(());
    }
    let api: Api<SorchaNetwork> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": SorchaNetwork::api_version(&()),
        "kind": SorchaNetwork::kind(&()),
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

async fn reconcile_network(obj: &SorchaNetwork, ctx: &Context) -> Result<Action> {
    let now = ctx.clock.now();
    if is_paused(obj) {
        let s = status::paused(obj.status.as_ref(), obj.metadata.generation, now);
        write_status(ctx, obj, s).await?;
        return Ok(Action::await_change());
    }
    let net = Net::new(obj, &ctx.cluster_domain)?;
    match converge(&net, ctx).await {
        Ok(action) => Ok(action),
        Err(e) if e.is_user_error() => {
            // The spec must change before a retry can succeed: say what is
            // wrong in status and an Event, and check back now and then.
            ctx.metrics.record_error(&e);
            let msg = e.to_string();
            warn!(network = %net.name, "{msg}");
            publish(ctx, obj, EventType::Warning, "InvalidSpec", msg.clone()).await;
            let prev = obj.status.as_ref();
            let o = Observed {
                generation: obj.metadata.generation,
                replicas: net.replicas(),
                ready_replicas: prev.map_or(0, |s| s.ready_replicas),
                peer_phases: vec![None; net.replicas() as usize],
                tls_enabled: net.spec().tls.enabled,
                tls_problem: matches!(e, Error::CaSecret { .. }).then(|| msg.clone()),
                spec_problem: (!matches!(e, Error::CaSecret { .. })).then_some(msg),
                // Keep the state a rotation or rollout resumes from.
                rollout: prev.and_then(|s| s.rollout.clone()),
                rotation: prev.and_then(|s| s.rotation.clone()),
                ca_not_after: prev
                    .and_then(|s| s.ca_not_after.as_deref())
                    .and_then(|t| t.parse().ok()),
                certificates: prev.map(|s| s.certificates.clone()).unwrap_or_default(),
                ..Default::default()
            };
            write_status(ctx, obj, status::aggregate(prev, &o, now)).await?;
            Ok(Action::requeue(IDLE_REQUEUE))
        }
        Err(e) => Err(e),
    }
}

fn peer_phase_by_ordinal(peers: &[SorchaPeer]) -> BTreeMap<i32, SorchaPeerStatus> {
    peers
        .iter()
        .filter_map(|p| Some((p.spec.ordinal?, p.status.clone()?)))
        .collect()
}

async fn check_storage_class(ctx: &Context, net: &Net<'_>) -> Result<()> {
    if let Some(class) = &net.spec().storage.storage_class_name {
        let api: Api<StorageClass> = Api::all(ctx.client.clone());
        if api.get_opt(class).await?.is_none() {
            return Err(Error::invalid(
                "spec.storage.storageClassName",
                format!("StorageClass {class:?} does not exist in the cluster"),
            ));
        }
    }
    Ok(())
}

/// Whether the cluster serves `group/version` `kind` (prometheus-operator
/// CRDs are optional).
async fn api_exists(ctx: &Context, group_version: &str, kind: &str) -> Result<bool> {
    match ctx.client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.kind == kind)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn converge(net: &Net<'_>, ctx: &Context) -> Result<Action> {
    let obj = net.obj;
    let now = ctx.clock.now();
    let client = &ctx.client;
    let ns = net.namespace.as_str();
    let selector = format!("sorcha.dev/network={}", net.name);
    let mut events: Vec<(EventType, &'static str, String)> = Vec::new();
    let mut busy = false;

    // Validate what the schema cannot before writing anything.
    let config = resources::config_map(net)?;
    let stall_timeout = duration::parse(
        "spec.rollout.stallTimeout",
        &net.spec().rollout.stall_timeout,
    )?;
    check_storage_class(ctx, net).await?;

    let peers_api: Api<SorchaPeer> = Api::namespaced(client.clone(), ns);
    let peer_status = match &net.standalone_peer {
        // The standalone peer's own object is the one its pod reports to.
        Some(name) => peers_api
            .get_opt(name)
            .await?
            .and_then(|p| p.status)
            .map(|st| BTreeMap::from([(0, st)]))
            .unwrap_or_default(),
        None => {
            let children = peers_api
                .list(&ListParams::default().labels(&selector))
                .await?;
            peer_phase_by_ordinal(&children.items)
        }
    };

    let prev = obj.status.as_ref();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pki = if net.spec().tls.enabled {
        let out = reconcile_pki(
            client,
            net,
            &peer_status,
            prev.and_then(|s| s.rotation.as_ref()),
            now,
        )
        .await?;
        busy |= out.in_progress;
        for (reason, note) in &out.events {
            events.push((EventType::Normal, reason, note.clone()));
        }
        for c in &out.certificates {
            if let Ok(t) = c.not_after.parse::<jiff::Timestamp>() {
                ctx.metrics
                    .certificate_not_after
                    .with_label_values(&[ns, &net.name, &c.name])
                    .set(t.as_second() as f64);
            }
        }
        Some(out)
    } else {
        None
    };
    // Peer Secrets of ordinals that no longer exist (or all, without TLS).
    let keep_tls = |n: &str| {
        net.spec().tls.enabled && (0..net.replicas()).any(|i| n == net.peer_tls_secret_name(i))
            || n == net.ca_secret_name()
    };
    for gone in prune(&secrets, &selector, keep_tls).await? {
        events.push((
            EventType::Normal,
            "Deleted",
            format!("deleted Secret {gone}"),
        ));
    }

    // Plain children.
    let mut created = Vec::new();
    macro_rules! put {
        ($ty:ty, $obj:expr) => {{
            let api: Api<$ty> = Api::namespaced(client.clone(), ns);
            let o = $obj;
            if apply(&api, &o).await? == Applied::Created {
                created.push(format!("{} {}", <$ty>::kind(&()), o.name_any()));
            }
        }};
    }
    put!(ServiceAccount, resources::peer_service_account(net));
    put!(Role, resources::peer_role(net));
    put!(RoleBinding, resources::peer_role_binding(net));
    let config_hash = resources::short_hash(serde_json::to_string(&config.data)?.as_bytes());
    put!(ConfigMap, config);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let keep_cm =
        |n: &str| n == net.config_name() || (net.spec().tls.enabled && n == net.trust_name());
    for gone in prune(&cms, &selector, keep_cm).await? {
        events.push((
            EventType::Normal,
            "Deleted",
            format!("deleted ConfigMap {gone}"),
        ));
    }
    put!(Service, resources::headless_service(net));
    put!(Service, resources::client_service(net));
    let per_pod = resources::per_pod_services(net);
    let per_pod_names: Vec<String> = per_pod.iter().map(|s| s.name_any()).collect();
    for s in per_pod {
        put!(Service, s);
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let keep_svc =
        |n: &str| n == net.name || n == net.headless_name() || per_pod_names.iter().any(|p| p == n);
    for gone in prune(&svcs, &selector, keep_svc).await? {
        events.push((
            EventType::Normal,
            "Deleted",
            format!("deleted Service {gone}"),
        ));
    }
    if net.standalone_peer.is_none() {
        for i in 0..net.replicas() {
            put!(SorchaPeer, resources::sorcha_peer(net, i));
        }
        let keep_peer = |n: &str| (0..net.replicas()).any(|i| n == net.pod_name(i));
        for gone in prune(&peers_api, &selector, keep_peer).await? {
            events.push((
                EventType::Normal,
                "ScaledDown",
                format!("deleted SorchaPeer {gone}"),
            ));
        }
    }
    match resources::pod_disruption_budget(net) {
        Some(pdb) => put!(PodDisruptionBudget, pdb),
        None => {
            let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
            delete_if_exists(&api, &net.name).await?;
        }
    }
    match resources::network_policy(net) {
        Some(np) => put!(NetworkPolicy, np),
        None => {
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
            delete_if_exists(&api, &net.name).await?;
        }
    }
    for (kind, desired) in [
        ("ServiceMonitor", resources::service_monitor(net)),
        ("PodMonitor", resources::pod_monitor(net)),
    ] {
        let on = desired.is_some();
        if !api_exists(ctx, "monitoring.coreos.com/v1", kind).await? {
            if on {
                events.push((
                    EventType::Warning,
                    "MonitoringUnavailable",
                    format!("spec.monitoring asks for a {kind} but its CRD (monitoring.coreos.com/v1) is not installed"),
                ));
            }
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &monitor_resource(kind));
        match desired {
            Some(m) => {
                if apply(&api, &m).await? == Applied::Created {
                    created.push(format!("{kind} {}", net.name));
                }
            }
            None => {
                delete_if_exists(&api, &net.name).await?;
            }
        }
    }

    // The StatefulSet, with its health-gated partition.
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let live = sts_api.get_opt(&net.name).await?;
    let desired_rev_sts = resources::statefulset(net, &config_hash, 0);
    let desired_rev = resources::template_hash(&desired_rev_sts)
        .unwrap_or_default()
        .to_owned();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod_selector = net
        .selector_labels()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = pods_api
        .list(&ListParams::default().labels(&pod_selector))
        .await?
        .items;
    let update_rev = live
        .as_ref()
        .and_then(|s| s.status.as_ref()?.update_revision.clone());
    let gate = pods::rollout_gate(
        &pods,
        &net.name,
        update_rev.as_deref(),
        &peer_status,
        net.lone_peer(),
    );
    let pull_problem = pods::image_pull_problem(&pods, net.spec());
    if let Some(p) = &pull_problem {
        events.push((EventType::Warning, "ImagePullFailed", p.clone()));
    }
    let decision = decide(RolloutInput {
        replicas: net.replicas(),
        desired_revision: &desired_rev,
        live_revision: live.as_ref().and_then(resources::template_hash),
        live_replicas: live.as_ref().and_then(|s| s.spec.as_ref()?.replicas),
        previous: prev.and_then(|s| s.rollout.as_ref()),
        updated_and_online: &gate,
        now,
        stall_timeout,
    });
    if let Some((reason, note)) = &decision.event {
        let t = if decision.stalled.is_some() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events.push((t, reason, note.clone()));
    }
    busy |= decision.status.is_some();
    let live_replicas = live.as_ref().and_then(|s| s.spec.as_ref()?.replicas);
    if let Some(old) = live_replicas.filter(|r| *r != net.replicas()) {
        events.push((
            EventType::Normal,
            "Scaled",
            format!("scaled from {old} to {} peers", net.replicas()),
        ));
    }
    put!(
        StatefulSet,
        resources::statefulset(net, &config_hash, decision.partition)
    );

    for c in created {
        events.push((EventType::Normal, "Created", format!("created {c}")));
    }
    for (t, reason, note) in events {
        info!(network = %net.name, reason, "{note}");
        publish(ctx, obj, t, reason, note).await;
    }

    let ready = live
        .as_ref()
        .and_then(|s| s.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    let o = Observed {
        generation: obj.metadata.generation,
        replicas: net.replicas(),
        ready_replicas: ready,
        peer_phases: (0..net.replicas())
            .map(|i| peer_status.get(&i).and_then(|s| s.phase))
            .collect(),
        lone_peer: net.lone_peer(),
        rollout: decision.status.clone(),
        rollout_stalled: decision.stalled.clone(),
        rotation: pki.as_ref().and_then(|p| p.rotation.clone()),
        tls_enabled: net.spec().tls.enabled,
        ca_not_after: pki.as_ref().map(|p| p.ca_not_after),
        certificates: pki.map(|p| p.certificates).unwrap_or_default(),
        tls_problem: None,
        spec_problem: pull_problem,
    };
    write_status(ctx, obj, status::aggregate(prev, &o, now)).await?;
    Ok(Action::requeue(if busy {
        BUSY_REQUEUE
    } else {
        IDLE_REQUEUE
    }))
}
