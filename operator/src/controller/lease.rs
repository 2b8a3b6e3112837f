//! Leader election through a coordination.k8s.io Lease, so two operator
//! replicas can run and only one reconciles. Hand-written because the
//! maintained crate (kube-leader-election) does not support kube 5 yet; the
//! decision is a pure function, the IO a small loop using the Lease's
//! resourceVersion for optimistic concurrency.
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::context::Clock;
use crate::Result;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it (or may take it): write our renewal.
    Take { transition: bool },
    /// Someone else holds a live lease.
    Wait,
}

/// Whether `me` may write the lease now.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take { transition: true };
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Decision::Take { transition: false };
    }
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    let dur = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let expired = holder.is_empty()
        || renewed.is_none_or(|r| r.as_second().saturating_add(dur) < now.as_second());
    if expired {
        Decision::Take { transition: true }
    } else {
        Decision::Wait
    }
}

/// The Lease this replica writes to take or renew leadership.
pub fn lease_object(
    cfg: &LeaseConfig,
    live: Option<&Lease>,
    now: Timestamp,
    transition: bool,
) -> Lease {
    let prev = live.and_then(|l| l.spec.clone()).unwrap_or_default();
    let spec = LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if transition {
            Some(MicroTime(now))
        } else {
            prev.acquire_time
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(
            prev.lease_transitions.unwrap_or(0) + i32::from(transition && live.is_some()),
        ),
        ..Default::default()
    };
    Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            resource_version: live.and_then(|l| l.metadata.resource_version.clone()),
            ..Default::default()
        },
        spec: Some(spec),
    }
}

/// One attempt; true when we hold the lease afterwards.
pub async fn try_hold(api: &Api<Lease>, cfg: &LeaseConfig, now: Timestamp) -> Result<bool> {
    let live = api.get_opt(&cfg.name).await?;
    let Decision::Take { transition } = decide(
        live.as_ref().and_then(|l| l.spec.as_ref()),
        &cfg.identity,
        now,
    ) else {
        return Ok(false);
    };
    let lease = lease_object(cfg, live.as_ref(), now, transition);
    let res = match live {
        Some(_) => api.replace(&cfg.name, &PostParams::default(), &lease).await,
        None => api.create(&PostParams::default(), &lease).await,
    };
    match res {
        Ok(_) => Ok(true),
        // Another replica wrote first.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until this replica leads, then keeps renewing in the background;
/// `lost` is cancelled if a renewal fails for longer than the lease lasts,
/// so the caller stops reconciling before another replica starts.
pub async fn acquire(
    client: kube::Client,
    cfg: LeaseConfig,
    clock: Clock,
    shutdown: CancellationToken,
) -> Result<Option<CancellationToken>> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_hold(&api, &cfg, clock.now()).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election attempt failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(cfg.renew_every) => {}
        }
    }
    info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
    let lost = CancellationToken::new();
    let lost2 = lost.clone();
    tokio::spawn(async move {
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(cfg.renew_every) => {}
            }
            match try_hold(&api, &cfg, clock.now()).await {
                Ok(true) => last_ok = std::time::Instant::now(),
                Ok(false) => {
                    warn!("lease taken by another replica; stopping");
                    lost2.cancel();
                    return;
                }
                Err(e) if last_ok.elapsed() > cfg.duration => {
                    warn!(error = %e, "could not renew the lease in time; stopping");
                    lost2.cancel();
                    return;
                }
                Err(e) => warn!(error = %e, "lease renewal failed; retrying"),
            }
        }
    });
    Ok(Some(lost))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn held(by: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            renew_time: Some(MicroTime(t(renewed))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn free_or_expired_lease_is_taken() {
        assert_eq!(decide(None, "a", t(0)), Decision::Take { transition: true });
        assert_eq!(
            decide(Some(&held("b", 0)), "a", t(16)),
            Decision::Take { transition: true }
        );
    }

    #[test]
    fn live_lease_of_another_waits_own_is_renewed() {
        assert_eq!(decide(Some(&held("b", 0)), "a", t(10)), Decision::Wait);
        assert_eq!(
            decide(Some(&held("a", 0)), "a", t(10)),
            Decision::Take { transition: false }
        );
    }
}
