//! The caller policy: one decision, before any peer-facing request is
//! served, about who is calling and whether to serve them. Pure: it reads
//! the rate limiter and reputation table (both over an injectable clock)
//! and returns a verdict; the API layer (`api::guard`) turns a refusal into
//! a status code, a metric and an event.
//!
//! Identity, strongest first: the peer id of a verified client certificate
//! (mTLS); else the peer id the request claims (`sender_peer_id`,
//! `requesting_peer_id`, the registering peer's id); else the source
//! address. A claim that contradicts the certificate is refused outright:
//! a valid certificate must not let one peer speak for another.
//!
//! Anonymous loopback callers (no certificate, no claimed id) are the
//! node's local application or its operator, not peers: they are not
//! charged against per-peer limits. On a plaintext devnet a claimed id is
//! only a claim, so a peer could dodge its limits by changing its id;
//! with mTLS the id is the certificate's.
use std::net::IpAddr;
use std::time::Duration;

use super::admin::is_loopback;
use super::limits::{LimitExceeded, PeerRateLimiter, RequestCost};
use super::peer_cert::PeerCertificate;
use super::reputation::{BanInfo, Observation, Reputation};
use crate::config::PeerRole;

/// What a request asks the node to do, for the capability check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ping, peer list: any caller.
    Discover,
    /// RegisterPeer: only bootstrap nodes accept it.
    Register,
    /// Notifications, announcement streams, pushes: full peers only.
    Distribute,
    /// A transaction submitted for distribution: refused from read-only
    /// callers, and by a read-only node.
    Submit,
    /// Fetches, pulls, anti-entropy: any caller.
    Fetch,
}

/// Who the caller is, as far as the request shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Authenticated(String),
    Claimed(String),
    Address(IpAddr),
}

impl Identity {
    /// The key limits, reputation and bans are kept under: the peer id, or
    /// `ip:<address>` for an anonymous caller.
    pub fn key(&self) -> String {
        match self {
            Identity::Authenticated(id) | Identity::Claimed(id) => id.clone(),
            Identity::Address(ip) => format!("ip:{ip}"),
        }
    }
}

/// What the transport and the request say about the caller.
#[derive(Debug, Clone, Copy)]
pub struct CallerFacts<'a> {
    pub remote: IpAddr,
    pub certificate: Option<&'a PeerCertificate>,
    /// The peer id the request claims; empty counts as none.
    pub claimed: Option<&'a str>,
}

/// Determines the caller's identity; refuses a claim that contradicts the
/// certificate.
pub fn identify(f: &CallerFacts<'_>) -> Result<Identity, Refusal> {
    let claimed = f.claimed.filter(|c| !c.is_empty());
    match (f.certificate, claimed) {
        (Some(cert), claimed) => {
            if let Some(c) = claimed {
                cert.check_claimed_peer_id(c)
                    .map_err(|_| Refusal::PeerIdMismatch {
                        claimed: c.to_string(),
                        certified: cert.peer_id.clone(),
                    })?;
            }
            match &cert.peer_id {
                Some(id) => Ok(Identity::Authenticated(id.clone())),
                None => Ok(Identity::Address(f.remote)),
            }
        }
        (None, Some(c)) => Ok(Identity::Claimed(c.to_string())),
        (None, None) => Ok(Identity::Address(f.remote)),
    }
}

/// Why a request was refused. `reason()` is the metric and event label.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    PeerIdMismatch {
        claimed: String,
        certified: Option<String>,
    },
    Banned {
        peer: String,
        ban: BanInfo,
    },
    Limited {
        peer: String,
        exceeded: LimitExceeded,
        /// The ban this violation started, if it did.
        ban: Option<BanInfo>,
    },
    /// A read-only caller tried to distribute.
    ReadOnlyCaller {
        peer: String,
        action: Action,
    },
    /// A submission to a node that is itself read-only.
    ReadOnlyNode,
    NotBootstrap {
        own: PeerRole,
    },
}

/// How a refusal maps onto gRPC and HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalClass {
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::PeerIdMismatch { .. } => "peer_id_mismatch",
            Refusal::Banned { .. } => "banned",
            Refusal::Limited { exceeded, .. } => exceeded.kind.label(),
            Refusal::ReadOnlyCaller { .. } | Refusal::ReadOnlyNode => "read_only",
            Refusal::NotBootstrap { .. } => "not_bootstrap",
        }
    }

    pub fn class(&self) -> RefusalClass {
        match self {
            Refusal::Limited { .. } => RefusalClass::ResourceExhausted,
            Refusal::NotBootstrap { .. } => RefusalClass::FailedPrecondition,
            _ => RefusalClass::PermissionDenied,
        }
    }

    /// When trying again could succeed (`Retry-After`); `None` for refusals
    /// that waiting does not lift.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::Limited { exceeded, ban, .. } => match ban {
                Some(b) => b.remaining,
                None => exceeded.retry_after,
            },
            Refusal::Banned { ban, .. } => ban.remaining,
            _ => None,
        }
    }

    /// The peer the refusal is about, if it has an identity.
    pub fn peer(&self) -> Option<&str> {
        match self {
            Refusal::Banned { peer, .. }
            | Refusal::Limited { peer, .. }
            | Refusal::ReadOnlyCaller { peer, .. } => Some(peer),
            Refusal::PeerIdMismatch { claimed, .. } => Some(claimed),
            Refusal::ReadOnlyNode | Refusal::NotBootstrap { .. } => None,
        }
    }
}

fn remaining(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("for {}s more", d.as_secs().max(1)),
        None => "until unbanned".into(),
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PeerIdMismatch { claimed, certified } => write!(
                f,
                "peer_id_mismatch: the request claims peer id {claimed:?} but the client \
                 certificate is issued to {}",
                certified
                    .as_deref()
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_else(|| "no peer id".into())
            ),
            Refusal::Banned { peer, ban } => write!(
                f,
                "banned: peer {peer} is banned {} ({})",
                remaining(ban.remaining),
                ban.reason
            ),
            Refusal::Limited {
                peer,
                exceeded,
                ban,
            } => {
                write!(f, "{}: peer {peer}: {exceeded}", exceeded.kind.label())?;
                if let Some(b) = ban {
                    write!(f, "; now banned {} ({})", remaining(b.remaining), b.reason)?;
                }
                Ok(())
            }
            Refusal::ReadOnlyCaller { peer, action } => write!(
                f,
                "read_only: peer {peer} is read-only and may not distribute \
                 ({action:?} refused); it may still fetch"
            ),
            Refusal::ReadOnlyNode => write!(
                f,
                "read_only: this node is read-only (PeerService.Role = ReadOnly) and does not \
                 distribute; submit to a full peer"
            ),
            Refusal::NotBootstrap { own } => write!(
                f,
                "not_bootstrap: this node's role is {} and only bootstrap nodes accept \
                 registrations (PeerService.Role = Bootstrap)",
                own.as_str()
            ),
        }
    }
}

/// An admitted request: who it is charged to, for the outcome afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub identity: Identity,
    /// An anonymous loopback caller: not charged, not scored.
    pub local: bool,
}

impl Admission {
    pub fn key(&self) -> String {
        self.identity.key()
    }
}

/// Where code outside the request path reports what a peer did, such as a
/// pull that returned data not matching its hash.
pub trait PeerObserver: Send + Sync {
    fn observe_peer(&self, peer: &str, obs: Observation);
}

/// Limits, reputation and the node's own role.
pub struct Policy {
    pub limiter: PeerRateLimiter,
    pub reputation: Reputation,
    pub own_role: PeerRole,
}

impl Policy {
    /// Decides one request. `claimed_role` answers, for a peer id that is
    /// only claimed, the role that peer advertised (membership); `None`:
    /// unknown, treated as full.
    pub fn admit(
        &self,
        facts: &CallerFacts<'_>,
        action: Action,
        cost: RequestCost,
        claimed_role: impl FnOnce(&str) -> Option<PeerRole>,
    ) -> Result<Admission, Refusal> {
        let identity = identify(facts)?;
        let local = matches!(identity, Identity::Address(ip) if is_loopback(ip));
        let key = identity.key();
        if !local {
            if let Some(ban) = self.reputation.banned(&key) {
                return Err(Refusal::Banned { peer: key, ban });
            }
            if let Err(exceeded) = self.limiter.check(&key, cost) {
                let ban = self
                    .reputation
                    .record(&key, Observation::LimitViolation(exceeded.kind));
                return Err(Refusal::Limited {
                    peer: key,
                    exceeded,
                    ban,
                });
            }
        }
        let caller_role = match (&identity, facts.certificate) {
            (Identity::Authenticated(_), Some(cert)) => cert.role(),
            (Identity::Claimed(id), _) => claimed_role(id).unwrap_or(PeerRole::Full),
            _ => PeerRole::Full,
        };
        match action {
            Action::Register if self.own_role != PeerRole::Bootstrap => {
                return Err(Refusal::NotBootstrap { own: self.own_role });
            }
            Action::Submit if !self.own_role.distributes() => return Err(Refusal::ReadOnlyNode),
            Action::Distribute | Action::Submit if !caller_role.distributes() => {
                return Err(Refusal::ReadOnlyCaller { peer: key, action });
            }
            _ => {}
        }
        Ok(Admission { identity, local })
    }

    /// Scores what an admitted request turned out to be. Returns the ban
    /// it caused, if any.
    pub fn observe(&self, a: &Admission, obs: Observation) -> Option<BanInfo> {
        if a.local {
            return None;
        }
        self.reputation.record(&a.key(), obs)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
