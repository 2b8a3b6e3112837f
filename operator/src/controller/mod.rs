//! The controller: reconcile, error policy, and `run` (CRD check, leader
//! election, watches, metrics/health server, graceful shutdown).
mod apply;
mod context;
pub mod lease;
mod network;
mod peer;
mod pki_io;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, CustomResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use apply::{APPLIED_HASH_ANNOTATION, Applied, apply, is_subset};
pub use context::{Clock, Context};
pub use network::{is_paused, reconcile};
pub use peer::{error_policy_peer, reconcile_peer, standalone_network};

use crate::crd::{SorchaNetwork, SorchaPeer};
use crate::metrics::Metrics;
use crate::{Error, Result};

/// Counts the failure and retries with a delay that does not hammer the
/// API server.
pub fn error_policy(_obj: Arc<SorchaNetwork>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed");
    ctx.metrics.record_error(error);
    Action::requeue(Duration::from_secs(15))
}

/// Fails with a clear message when the CRDs are missing, instead of a
/// controller that silently watches nothing.
/// `ns` is where a namespace-scoped operator may list.
pub async fn check_crds(client: &Client, ns: Option<&str>) -> Result<()> {
    let probe = ListParams::default().limit(1);
    let nets: Api<SorchaNetwork> = scoped(client, ns);
    if let Err(kube::Error::Api(s)) = nets.list(&probe).await
        && s.code == 404
    {
        return Err(Error::CrdNotInstalled(SorchaNetwork::crd_name().into()));
    }
    let peers: Api<SorchaPeer> = scoped(client, ns);
    if let Err(kube::Error::Api(s)) = peers.list(&probe).await
        && s.code == 404
    {
        return Err(Error::CrdNotInstalled(SorchaPeer::crd_name().into()));
    }
    Ok(())
}

pub struct RunConfig {
    pub metrics_addr: SocketAddr,
    pub cluster_domain: String,
    /// `None`: no leader election (a single replica).
    pub lease: Option<lease::LeaseConfig>,
    /// Namespaces to watch; empty watches the whole cluster.
    pub namespaces: Vec<String>,
}

async fn serve_http(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn signal(shutdown: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    info!("shutdown requested");
    shutdown.cancel();
}

/// Runs the operator until SIGTERM/Ctrl-C (or loss of leadership).
pub async fn run(client: Client, cfg: RunConfig) -> anyhow::Result<()> {
    check_crds(&client, cfg.namespaces.first().map(String::as_str)).await?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    let server = tokio::spawn(serve_http(
        cfg.metrics_addr,
        metrics.clone(),
        shutdown.clone(),
    ));

    let clock = Clock::System;
    let stop = match cfg.lease {
        Some(l) => {
            match lease::acquire(client.clone(), l, clock.clone(), shutdown.clone()).await? {
                Some(lost) => lost,
                None => return Ok(()),
            }
        }
        None => CancellationToken::new(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics,
        clock,
        &cfg.cluster_domain,
    ));
    let scopes: Vec<Option<String>> = if cfg.namespaces.is_empty() {
        vec![None]
    } else {
        cfg.namespaces.iter().cloned().map(Some).collect()
    };
    futures::future::join_all(scopes.into_iter().map(|ns| {
        info!(namespace = ns.as_deref().unwrap_or("<all>"), "watching");
        watch_scope(
            client.clone(),
            ns,
            ctx.clone(),
            (shutdown.clone(), stop.clone()),
        )
    }))
    .await;
    shutdown.cancel();
    server.await??;
    if stop.is_cancelled() {
        anyhow::bail!("lost leadership");
    }
    Ok(())
}

/// `Api::all`, or the namespace's when the operator is namespace-scoped.
fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Both controllers over one scope: every namespace (`None`) or one.
/// Namespace-scoped mode runs one pair per listed namespace so the
/// operator needs only Roles there, never cluster-wide list/watch.
async fn watch_scope(
    client: Client,
    ns: Option<String>,
    ctx: Arc<Context>,
    (shutdown, lost): (CancellationToken, CancellationToken),
) {
    let ns = ns.as_deref();
    // Either a shutdown request or a lost Lease stops both controllers.
    let stopping = move || {
        let (sd, lost) = (shutdown.clone(), lost.clone());
        async move {
            tokio::select! {
                () = sd.cancelled() => {}
                () = lost.cancelled() => {}
            }
        }
    };
    let nets: Api<SorchaNetwork> = scoped(&client, ns);
    let pods: Api<Pod> = scoped(&client, ns);
    let pod_cfg = watcher::Config::default().labels("app.kubernetes.io/name=sorcha-peer");
    let networks = Controller::new(nets, watcher::Config::default())
        .owns(
            scoped::<StatefulSet>(&client, ns),
            watcher::Config::default(),
        )
        .owns(
            scoped::<SorchaPeer>(&client, ns),
            watcher::Config::default(),
        )
        // Pods belong to the StatefulSet, not the network: map them by label
        // so a pod turning Ready advances a rollout at once.
        .watches(pods, pod_cfg, |pod: Pod| {
            let ns = pod.metadata.namespace.clone()?;
            let net = pod
                .metadata
                .labels
                .as_ref()?
                .get("sorcha.dev/network")?
                .clone();
            Some(ObjectRef::<SorchaNetwork>::new(&net).within(&ns))
        })
        // A standalone peer's status lives on the SorchaPeer that owns the
        // network: its changes must reach the network too.
        .watches(
            scoped::<SorchaPeer>(&client, ns),
            watcher::Config::default(),
            |p: SorchaPeer| {
                p.spec.standalone.as_ref()?;
                Some(
                    ObjectRef::<SorchaNetwork>::new(&p.metadata.name?)
                        .within(&p.metadata.namespace?),
                )
            },
        )
        .graceful_shutdown_on(stopping())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "network controller");
            }
        });
    let standalone = Controller::new(
        scoped::<SorchaPeer>(&client, ns),
        watcher::Config::default(),
    )
    .owns(
        scoped::<SorchaNetwork>(&client, ns),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stopping())
    .run(reconcile_peer, error_policy_peer, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            warn!(error = %e, "peer controller");
        }
    });
    futures::join!(networks, standalone);
}
