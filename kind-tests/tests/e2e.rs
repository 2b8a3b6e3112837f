//! The end-to-end scenario on a kind cluster prepared by `kind-tests/run.sh`
//! (image loaded, chart installed): the 3-peer example becomes Ready, a
//! transaction submitted to one peer reaches every peer, the network scales
//! to 5 and back to 3, a CA and certificate renewal happens with no peer
//! going Offline, and deleting the network garbage-collects its children.
//! Without a prepared cluster it prints one line saying why and passes.
//!
//! One test, in order: each step starts from the state the previous left.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use sorcha_kind_tests::{Cluster, PeerHttp, example_network, is_ready, wait_for};
use sorcha_operator::crd::{PeerPhase, SorchaNetwork, SorchaPeer};

const NETWORK: &str = "ledger";
const READY_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_peer_network_end_to_end() {
    let Some(cluster) = Cluster::from_env_or_skip().await.expect("cluster config") else {
        return;
    };
    if let Err(e) = scenario(&cluster).await {
        panic!("{e:#}");
    }
}

async fn scenario(c: &Cluster) -> anyhow::Result<()> {
    let nets: Api<SorchaNetwork> = c.api();
    apply_example(c, &nets).await?;
    wait_ready(&nets, "the 3-peer example").await?;

    transaction_reaches_every_peer(c, 3).await?;

    scale(&nets, 5).await?;
    wait_peer_count(c, 5).await?;
    scale(&nets, 3).await?;
    wait_peer_count(c, 3).await?;

    renew_certificates_without_offline(c, &nets).await?;
    transaction_reaches_every_peer(c, 3).await?;

    delete_and_expect_garbage_collection(c, &nets).await
}

async fn apply_example(c: &Cluster, nets: &Api<SorchaNetwork>) -> anyhow::Result<()> {
    let mut net = example_network("network-3-peers.yaml")?;
    assert_eq!(net.metadata.name.as_deref(), Some(NETWORK));
    if let Some(image) = &c.image {
        net.spec.image = image.clone();
    }
    net.metadata.namespace = Some(c.namespace.clone());
    nets.patch(
        NETWORK,
        &PatchParams::apply("sorcha-kind-tests").force(),
        &Patch::Apply(&net),
    )
    .await
    .context("applying examples/network-3-peers.yaml")?;
    Ok(())
}

async fn wait_ready(nets: &Api<SorchaNetwork>, what: &str) -> anyhow::Result<()> {
    wait_for(
        &format!("{what}: condition=Ready"),
        READY_TIMEOUT,
        || async { Ok(is_ready(&nets.get(NETWORK).await?)) },
    )
    .await
}

async fn transaction_reaches_every_peer(c: &Cluster, replicas: i32) -> anyhow::Result<()> {
    let body = format!("kind-tests transaction {}", std::process::id()).into_bytes();
    let first = PeerHttp::connect(c, NETWORK, 0).await?;
    let hash = first.submit(body.clone()).await?;
    for ordinal in 0..replicas {
        let peer = PeerHttp::connect(c, NETWORK, ordinal).await?;
        let held = wait_for(
            &format!("{NETWORK}-{ordinal} to hold transaction {hash}"),
            Duration::from_secs(120),
            || async {
                Ok(match peer.fetch(&hash).await? {
                    Some(b) => Ok(b),
                    None => Err("404 not held yet".to_owned()),
                })
            },
        )
        .await?;
        anyhow::ensure!(held == body, "{NETWORK}-{ordinal} holds different bytes");
    }
    Ok(())
}

async fn scale(nets: &Api<SorchaNetwork>, replicas: i32) -> anyhow::Result<()> {
    nets.patch(
        NETWORK,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    wait_ready(nets, &format!("scaled to {replicas}")).await
}

/// Exactly the peers `0..n` exist as SorchaPeers, each Online, and the
/// StatefulSet has `n` ready replicas.
async fn wait_peer_count(c: &Cluster, n: i32) -> anyhow::Result<()> {
    let peers: Api<SorchaPeer> = c.api();
    let sts: Api<StatefulSet> = c.api();
    let want: BTreeSet<String> = (0..n).map(|i| format!("{NETWORK}-{i}")).collect();
    wait_for(&format!("{n} Online peers"), READY_TIMEOUT, || async {
        let list = peers.list(&selector()).await?;
        let names: BTreeSet<String> = list
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let online = list
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase) == Some(PeerPhase::Online))
            .count();
        let ready = sts
            .get(NETWORK)
            .await?
            .status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        Ok(if names == want && online == want.len() && ready == n {
            Ok(())
        } else {
            Err(format!(
                "peers {names:?}, {online} Online, {ready} pods ready"
            ))
        })
    })
    .await
}

fn selector() -> ListParams {
    ListParams::default().labels(&format!("sorcha.dev/network={NETWORK}"))
}

/// Makes the CA and every peer certificate due (renewBefore just under
/// their validity), waits for the operator's rotation (new CA trusted by
/// every peer, certificates reissued, old CA dropped) and restores the
/// settings; a watcher meanwhile records any peer reporting Offline.
async fn renew_certificates_without_offline(
    c: &Cluster,
    nets: &Api<SorchaNetwork>,
) -> anyhow::Result<()> {
    let before = nets.get(NETWORK).await?;
    let old_ca = before
        .status
        .as_ref()
        .and_then(|s| s.certificates.iter().find(|x| x.name == "ca"))
        .map(|x| x.fingerprint.clone())
        .context("status lists the CA")?;

    let offline: Arc<Mutex<Vec<String>>> = Arc::default();
    let watcher = {
        let peers: Api<SorchaPeer> = c.api();
        let offline = offline.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(list) = peers.list(&selector()).await {
                    for p in list {
                        if p.status.as_ref().and_then(|s| s.phase) == Some(PeerPhase::Offline) {
                            offline
                                .lock()
                                .unwrap()
                                .push(p.metadata.name.unwrap_or_default());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let tls = |cert: &str, renew: &str| json!({"spec": {"tls": {"caValidity": "8760h", "certValidity": cert, "renewBefore": renew}}});
    nets.patch(
        NETWORK,
        &PatchParams::default(),
        &Patch::Merge(tls("8760h", "8759h59m")),
    )
    .await?;
    let rotated = wait_for(
        "the CA rotation to finish with a new CA",
        READY_TIMEOUT,
        || async {
            let n = nets.get(NETWORK).await?;
            let st = n.status.clone().unwrap_or_default();
            let ca = st.certificates.iter().find(|x| x.name == "ca");
            Ok(match (ca, &st.rotation) {
                (Some(ca), None) if ca.fingerprint != old_ca => Ok(ca.fingerprint.clone()),
                _ => Err(format!(
                    "rotation {:?}, CA {:?}",
                    st.rotation.as_ref().map(|r| &r.phase),
                    ca.map(|x| &x.fingerprint)
                )),
            })
        },
    )
    .await;
    // Put the settings back whatever happened, so the new CA is not due.
    nets.patch(
        NETWORK,
        &PatchParams::default(),
        &Patch::Merge(tls("2160h", "720h")),
    )
    .await?;
    let new_ca = rotated?;
    wait_ready(nets, "after the renewal").await?;
    watcher.abort();

    let peers: Api<SorchaPeer> = c.api();
    for p in peers.list(&selector()).await? {
        let st = p.status.unwrap_or_default();
        anyhow::ensure!(
            st.trusted_ca_fingerprints.contains(&new_ca),
            "{:?} does not trust the new CA",
            p.metadata.name
        );
    }
    let offline = offline.lock().unwrap().clone();
    anyhow::ensure!(
        offline.is_empty(),
        "peers reported Offline during the renewal: {offline:?}"
    );
    Ok(())
}

async fn delete_and_expect_garbage_collection(
    c: &Cluster,
    nets: &Api<SorchaNetwork>,
) -> anyhow::Result<()> {
    nets.delete(NETWORK, &DeleteParams::foreground()).await?;
    let sts: Api<StatefulSet> = c.api();
    let svcs: Api<Service> = c.api();
    let cms: Api<ConfigMap> = c.api();
    let secrets: Api<Secret> = c.api();
    let peers: Api<SorchaPeer> = c.api();
    wait_for(
        "the network's children to be garbage-collected",
        Duration::from_secs(300),
        || async {
            let left = [
                (
                    "SorchaNetwork",
                    nets.get_opt(NETWORK).await?.is_some() as usize,
                ),
                (
                    "StatefulSet",
                    sts.get_opt(NETWORK).await?.is_some() as usize,
                ),
                ("Service", svcs.list(&selector()).await?.items.len()),
                ("ConfigMap", cms.list(&selector()).await?.items.len()),
                ("Secret", secrets.list(&selector()).await?.items.len()),
                ("SorchaPeer", peers.list(&selector()).await?.items.len()),
            ];
            let remaining: Vec<_> = left.iter().filter(|(_, n)| *n > 0).collect();
            Ok(if remaining.is_empty() {
                Ok(())
            } else {
                Err(format!("still present: {remaining:?}"))
            })
        },
    )
    .await
}
