//! The thin side of the caller policy (`security::policy`): every
//! peer-facing handler asks the [`Guard`] first, with what the request
//! claims and what it costs; a refusal becomes a gRPC status or an HTTP
//! response, a `sorcha_peer_refusals_total{reason}` count and an event.
//! After the handler ran, its outcome is scored into the caller's
//! reputation (success with latency, invalid message).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

use super::rest::ApiError;
use super::wire::Caller;
use crate::config::{PeerRole, PeerServiceConfig};
use crate::discovery::Membership;
use crate::events::EventKind;
use crate::security::clock::{Clock, MonotonicClock};
use crate::security::reputation::BanInfo;
use crate::security::{
    Action, Admission, CallerFacts, Observation, PeerLimits, PeerRateLimiter, Policy, Refusal,
    RefusalClass, Reputation, ReputationConfig, RequestCost,
};

/// At most one refusal event per peer and reason in this interval, so a
/// flood does not flood the event log (the metric counts every refusal).
const EVENT_INTERVAL: Duration = Duration::from_secs(10);
/// Peers whose last refusal event is remembered; beyond it the memory is
/// cleared (worst case: one extra event per peer).
const EVENT_GATE_CAPACITY: usize = 10_000;
/// Peers the rate limiter tracks at most.
const MAX_TRACKED_PEERS: usize = 100_000;

pub struct Guard {
    pub policy: Policy,
    m: Arc<Membership>,
    last_event: Mutex<HashMap<(String, &'static str), Instant>>,
}

impl Guard {
    pub fn from_config(cfg: &PeerServiceConfig, m: Arc<Membership>) -> Self {
        Self::with_clock(cfg, m, Arc::new(MonotonicClock::default()))
    }

    pub fn with_clock(cfg: &PeerServiceConfig, m: Arc<Membership>, clock: Arc<dyn Clock>) -> Self {
        let policy = Policy {
            limiter: PeerRateLimiter::new(
                PeerLimits::from_config(&cfg.security),
                clock.clone(),
                MAX_TRACKED_PEERS,
            ),
            reputation: Reputation::new(ReputationConfig::from_config(&cfg.security), clock),
            own_role: cfg.role,
        };
        Guard {
            policy,
            m,
            last_event: Mutex::new(HashMap::new()),
        }
    }

    /// Decides one request; a refusal is counted and (rate-limited) logged.
    /// The admission remembers when it was made, for the latency `finish`
    /// scores.
    pub fn admit(
        &self,
        caller: Option<&Caller>,
        claimed: Option<&str>,
        action: Action,
        cost: RequestCost,
    ) -> Result<Admitted, Refusal> {
        let started = Instant::now();
        let facts = CallerFacts {
            remote: caller
                .map(|c| c.remote.ip())
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
            certificate: caller.and_then(|c| c.certificate.as_deref()),
            claimed,
        };
        let advertised = |id: &str| {
            self.m.get(id).map(|p| {
                if p.capabilities.supports_transaction_distribution {
                    PeerRole::Full
                } else {
                    PeerRole::ReadOnly
                }
            })
        };
        self.policy
            .admit(&facts, action, cost, advertised)
            .map(|admission| Admitted { admission, started })
            .inspect_err(|r| self.refused(r))
    }

    /// [`Guard::admit`] for a tonic handler: the caller comes from the
    /// axum `ConnectInfo` the request still carries.
    pub fn admit_grpc<T>(
        &self,
        req: &tonic::Request<T>,
        claimed: Option<&str>,
        action: Action,
        cost: RequestCost,
    ) -> Result<Admitted, Status> {
        let caller = req.extensions().get::<ConnectInfo<Caller>>().map(|c| &c.0);
        self.admit(caller, claimed, action, cost)
            .map_err(|r| status(&r))
    }

    /// Scores a gRPC handler's outcome: an answer is a success (with the
    /// time it took), an `INVALID_ARGUMENT` an invalid message; other
    /// errors are this node's, not the caller's.
    pub fn finish<T>(&self, a: &Admitted, r: &Result<T, Status>) {
        match r {
            Ok(_) => self.observe(
                a,
                Observation::Success {
                    latency: a.started.elapsed(),
                },
            ),
            Err(s) if s.code() == Code::InvalidArgument => {
                self.observe(a, Observation::InvalidMessage)
            }
            Err(_) => {}
        }
    }

    /// Same for REST: a 4xx the caller caused (bad request, too large) is
    /// an invalid message.
    pub fn finish_rest<T>(&self, a: &Admitted, r: &Result<T, ApiError>) {
        match r {
            Ok(_) => self.observe(
                a,
                Observation::Success {
                    latency: a.started.elapsed(),
                },
            ),
            Err(ApiError(s, _))
                if *s == StatusCode::BAD_REQUEST || *s == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                self.observe(a, Observation::InvalidMessage)
            }
            Err(_) => {}
        }
    }

    pub fn observe(&self, a: &Admission, obs: Observation) {
        if let Some(ban) = self.policy.observe(a, obs) {
            self.banned(&a.key(), &ban);
        }
    }

    fn refused(&self, r: &Refusal) {
        let metrics = &self.m.metrics;
        metrics.peer_refusals.with_label_values(&[r.reason()]).inc();
        if let Refusal::Limited {
            peer, ban: Some(b), ..
        } = r
        {
            self.banned(peer, b);
        }
        let peer = r.peer().unwrap_or("").to_string();
        let now = Instant::now();
        let mut last = self.last_event.lock().unwrap_or_else(|p| p.into_inner());
        if last.len() >= EVENT_GATE_CAPACITY {
            last.clear();
        }
        let key = (peer, r.reason());
        if last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < EVENT_INTERVAL)
        {
            return;
        }
        last.insert(key.clone(), now);
        drop(last);
        let peer = Some(key.0.as_str()).filter(|p| !p.is_empty());
        self.m
            .events
            .record(EventKind::PeerRefused, peer, format!("refused: {r}"));
    }

    /// A ban started: metrics and an event (once per ban).
    pub fn banned(&self, peer: &str, ban: &BanInfo) {
        self.m.metrics.peer_bans.inc();
        self.refresh_gauges();
        let how = if ban.automatic {
            "automatically"
        } else {
            "by an admin call"
        };
        let length = match ban.remaining {
            Some(d) => format!("for {}", humantime::format_duration(d)),
            None => "until unbanned".into(),
        };
        self.m.events.record(
            EventKind::PeerBanned,
            Some(peer),
            format!("{peer} banned {how} {length}: {}", ban.reason),
        );
    }

    pub fn unbanned(&self, peer: &str) {
        self.refresh_gauges();
        self.m.events.record(
            EventKind::PeerUnbanned,
            Some(peer),
            format!("{peer} unbanned by an admin call"),
        );
    }

    /// Bans end by expiry without an event; the gauge is brought up to date
    /// whenever it is read or changes.
    pub fn refresh_gauges(&self) {
        self.m
            .metrics
            .active_bans
            .set(self.policy.reputation.active_bans() as i64);
    }
}

impl crate::security::PeerObserver for Guard {
    fn observe_peer(&self, peer: &str, obs: Observation) {
        if let Some(ban) = self.policy.reputation.record(peer, obs) {
            self.banned(peer, &ban);
        }
    }
}

/// The caller policy's verdict as a gRPC status; a throttled caller gets
/// `retry-after` (seconds) in the metadata too.
pub fn status(r: &Refusal) -> Status {
    let msg = r.to_string();
    let mut s = match r.class() {
        RefusalClass::PermissionDenied => Status::permission_denied(msg),
        RefusalClass::ResourceExhausted => Status::resource_exhausted(msg),
        RefusalClass::FailedPrecondition => Status::failed_precondition(msg),
    };
    if let Some(d) = r.retry_after()
        && let Ok(v) = retry_secs(d).to_string().parse()
    {
        s.metadata_mut().insert("retry-after", v);
    }
    s
}

fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The caller policy's verdict over REST: 403, 429 with `Retry-After`, or
/// 412, with the reason in the JSON error.
pub fn rest_response(r: &Refusal) -> Response {
    let code = match r.class() {
        RefusalClass::PermissionDenied => StatusCode::FORBIDDEN,
        RefusalClass::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        RefusalClass::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
    };
    let mut resp = ApiError(code, r.to_string()).into_response();
    if let Some(d) = r.retry_after() {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_secs(d)));
    }
    resp
}

/// What a peer-facing REST handler fails with: a policy refusal or an
/// ordinary API error.
pub enum PeerError {
    Refused(Box<Refusal>),
    Api(ApiError),
}

impl From<ApiError> for PeerError {
    fn from(e: ApiError) -> Self {
        PeerError::Api(e)
    }
}

impl IntoResponse for PeerError {
    fn into_response(self) -> Response {
        match self {
            PeerError::Refused(r) => rest_response(&r),
            PeerError::Api(e) => e.into_response(),
        }
    }
}

/// An admitted request and when it was admitted.
#[derive(Debug)]
pub struct Admitted {
    pub admission: Admission,
    started: Instant,
}

impl std::ops::Deref for Admitted {
    type Target = Admission;
    fn deref(&self) -> &Admission {
        &self.admission
    }
}

/// Extractor for REST handlers: the guard (an `Extension` on the router)
/// and the caller (`ConnectInfo`, absent only when a router is served
/// without it).
pub struct Gate {
    pub guard: Arc<Guard>,
    pub caller: Option<Caller>,
}

impl Gate {
    pub fn admit(
        &self,
        claimed: Option<&str>,
        action: Action,
        cost: RequestCost,
    ) -> Result<Admitted, PeerError> {
        self.guard
            .admit(self.caller.as_ref(), claimed, action, cost)
            .map_err(|r| PeerError::Refused(Box::new(r)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Gate {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let guard = parts
            .extensions
            .get::<Arc<Guard>>()
            .cloned()
            .ok_or_else(|| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the caller policy is not installed on this router".into(),
                )
            })?;
        let caller = parts
            .extensions
            .get::<ConnectInfo<Caller>>()
            .map(|c| c.0.clone());
        Ok(Gate { guard, caller })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::membership::{Capabilities, PeerDescription};
    use crate::security::PeerCertificate;
    use crate::security::test_pki::Ca;

    fn guard(dir: &std::path::Path) -> Guard {
        let me = PeerDescription {
            peer_id: "self".into(),
            address: "127.0.0.1".into(),
            port: 1,
            supported_protocols: vec![],
            last_seen: 0,
            capabilities: Capabilities::default(),
        };
        let cfg = PeerServiceConfig::default();
        let store = crate::store::Store::open(dir).unwrap();
        let m = Arc::new(Membership::new(me, cfg.peer_discovery.clone(), store).unwrap());
        Guard::from_config(&cfg, m)
    }

    fn caller(peer_id: &str) -> Caller {
        let leaf = Ca::new("guard").leaf(peer_id).issue();
        Caller {
            remote: "127.0.0.1:4000".parse().unwrap(),
            certificate: Some(Arc::new(PeerCertificate::from_der(&leaf.der).unwrap())),
        }
    }

    #[test]
    fn a_claim_contradicting_the_client_certificate_is_permission_denied_with_both_ids() {
        let dir = tempfile::tempdir().unwrap();
        let g = guard(dir.path());
        let c = caller("node-a");
        let r = g
            .admit(
                Some(&c),
                Some("node-b"),
                Action::Distribute,
                RequestCost::default(),
            )
            .unwrap_err();
        let s = status(&r);
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(
            s.message().contains("\"node-b\"") && s.message().contains("\"node-a\""),
            "{}",
            s.message()
        );
        let resp = rest_response(&r);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let metrics = &g.m.metrics;
        assert_eq!(
            metrics
                .peer_refusals
                .with_label_values(&["peer_id_mismatch"])
                .get(),
            1
        );
        let events = g.m.events.recent(10);
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::PeerRefused && e.message.contains("peer_id_mismatch")),
            "{events:?}"
        );
        // The certificate's own id, claimed or not, is admitted and is the
        // identity limits and bans are kept under, even on loopback.
        let a = g
            .admit(
                Some(&c),
                Some("node-a"),
                Action::Distribute,
                RequestCost::default(),
            )
            .unwrap();
        assert_eq!(a.key(), "node-a");
        assert!(!a.local);
        let a = g
            .admit(Some(&c), None, Action::Fetch, RequestCost::default())
            .unwrap();
        assert_eq!(a.key(), "node-a");
    }

    #[test]
    fn refusal_events_are_rate_limited_but_every_refusal_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let g = guard(dir.path());
        let c = caller("node-a");
        for _ in 0..50 {
            let _ = g.admit(Some(&c), Some("x"), Action::Fetch, RequestCost::default());
        }
        let counted =
            g.m.metrics
                .peer_refusals
                .with_label_values(&["peer_id_mismatch"])
                .get();
        assert_eq!(counted, 50);
        let events =
            g.m.events
                .recent(100)
                .into_iter()
                .filter(|e| e.kind == EventKind::PeerRefused)
                .count();
        assert_eq!(events, 1);
    }

    #[test]
    fn throttled_callers_get_retry_after_in_grpc_metadata_and_http_headers() {
        let exceeded = crate::security::LimitExceeded {
            kind: crate::security::LimitKind::Bytes,
            per_minute: 10,
            retry_after: Some(Duration::from_millis(1500)),
        };
        let r = Refusal::Limited {
            peer: "p".into(),
            exceeded,
            ban: None,
        };
        let s = status(&r);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get("retry-after").unwrap(), "2");
        let resp = rest_response(&r);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[RETRY_AFTER], "2");
        let r = Refusal::NotBootstrap {
            own: PeerRole::Full,
        };
        assert_eq!(status(&r).code(), Code::FailedPrecondition);
        assert_eq!(rest_response(&r).status(), StatusCode::PRECONDITION_FAILED);
    }
}
