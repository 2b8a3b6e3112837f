//! Reconciling a standalone SorchaPeer: it is run as a one-replica
//! SorchaNetwork of the same name that the peer owns, so every builder,
//! the PKI and the rollout gate are the network's; that network's pod
//! reports to this SorchaPeer. Peers of a network need nothing here.
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::apply::{Applied, apply};
use super::context::Context;
use super::network::is_paused;
use crate::crd::{SorchaNetwork, SorchaPeer};
use crate::resources::owner_ref;
use crate::{Error, Result};

/// The network that runs standalone peer `peer`.
pub fn standalone_network(peer: &SorchaPeer) -> Option<SorchaNetwork> {
    let spec = peer.spec.standalone.clone()?;
    let mut n = SorchaNetwork::new(&peer.name_any(), spec);
    n.metadata.namespace = peer.namespace();
    n.metadata.owner_references = Some(vec![owner_ref(peer)]);
    n.metadata.labels = Some(
        [("sorcha.dev/standalone-peer".to_owned(), peer.name_any())]
            .into_iter()
            .collect(),
    );
    Some(n)
}

pub async fn reconcile_peer(peer: Arc<SorchaPeer>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = run(&peer, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values(&["SorchaPeer"])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn run(peer: &SorchaPeer, ctx: &Context) -> Result<Action> {
    let Some(desired) = standalone_network(peer) else {
        return Ok(Action::await_change());
    };
    if is_paused(peer) {
        return Ok(Action::await_change());
    }
    ctx.metrics.reconciles.inc();
    let ns = peer
        .namespace()
        .ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let api: Api<SorchaNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = peer.meta().uid.clone();
    if let Some(existing) = api.get_opt(&peer.name_any()).await? {
        let ours = existing
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
        if !ours {
            let e = Error::invalid(
                "metadata.name",
                format!(
                    "a SorchaNetwork named {:?} already exists and is not this peer's; \
                     give the standalone peer another name",
                    peer.name_any()
                ),
            );
            publish(ctx, peer, EventType::Warning, "NameConflict", e.to_string()).await;
            return Err(e);
        }
    }
    if apply(&api, &desired).await? == Applied::Created {
        let note = format!(
            "created SorchaNetwork {} to run this standalone peer",
            peer.name_any()
        );
        publish(ctx, peer, EventType::Normal, "Created", note).await;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn publish(ctx: &Context, peer: &SorchaPeer, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &peer.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish event");
    }
}

pub fn error_policy_peer(_peer: Arc<SorchaPeer>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(%error, "standalone peer reconcile failed");
    ctx.metrics.record_error(error);
    Action::requeue(Duration::from_secs(if error.is_user_error() {
        300
    } else {
        15
    }))
}
