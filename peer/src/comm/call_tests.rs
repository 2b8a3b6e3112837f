//! `Comm::call` against scripted outcomes: retries, step-downs and the
//! breaker, driven by a manual clock.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::breaker::BreakerState;
use super::{Comm, Op, Protocol};
use crate::config::{CommunicationConfig, PeerDiscoveryConfig};
use crate::discovery::Membership;
use crate::discovery::membership::PeerDescription;
use crate::security::clock::ManualClock;
use crate::store::Store;
use crate::{Error, Result};

const URL: &str = "http://127.0.0.1:9";

fn mk_comm(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Arc<Comm> {
    let me = PeerDescription {
        peer_id: "me".into(),
        address: "127.0.0.1".into(),
        port: 1,
        supported_protocols: vec![],
        last_seen: 0,
        capabilities: Default::default(),
    };
    let store = Store::open(dir.path()).unwrap();
    let m = Arc::new(Membership::new(me, PeerDiscoveryConfig::default(), store).unwrap());
    let cfg = CommunicationConfig {
        max_retries: 2,
        retry_delay_seconds: Duration::from_millis(1),
        circuit_breaker_threshold: 3,
        circuit_breaker_reset_minutes: Duration::from_secs(60),
        ..CommunicationConfig::default()
    };
    Comm::with_clock(
        &cfg,
        m,
        super::Connector::plaintext(Duration::from_secs(1)),
        clock,
    )
}

fn down() -> Error {
    Error::PeerUnreachable {
        peer: URL.into(),
        message: "refused".into(),
    }
}

fn metric(c: &Comm, name: &str) -> String {
    c.m.metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn idempotent_calls_are_retried_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let comm = mk_comm(&dir, Arc::new(ManualClock::default()));
    let attempts = AtomicU32::new(0);
    let flaky = |_p: Protocol| {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        async move { if n < 2 { Err(down()) } else { Ok(n) } }
    };
    assert_eq!(comm.call(URL, Op::Fetch, flaky).await.unwrap(), 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "two retries");
    assert!(metric(&comm, "sorcha_call_retries_total").contains("operation=\"fetch\"} 2"));

    attempts.store(0, Ordering::SeqCst);
    let r: Result<u32> = comm.call(URL, Op::Notify, flaky).await;
    assert!(r.is_err());
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "gossip sends are not retried"
    );
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_a_probe_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let comm = mk_comm(&dir, clock.clone());
    let calls = AtomicU32::new(0);
    let dead = |_p: Protocol| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(down()) }
    };
    for _ in 0..3 {
        let _ = comm.call(URL, Op::Ping, dead).await;
    }
    assert_eq!(comm.breaker_state(URL), BreakerState::Open);
    let err = comm.call(URL, Op::Ping, dead).await.unwrap_err();
    assert!(err.to_string().contains("circuit open"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "failed fast, not called");
    assert!(metric(&comm, "sorcha_circuit_breakers_open").ends_with(" 1"));

    clock.advance(Duration::from_secs(60));
    comm.call(URL, Op::Ping, |_| async { Ok(()) })
        .await
        .unwrap();
    assert_eq!(comm.breaker_state(URL), BreakerState::Closed);
    assert!(metric(&comm, "sorcha_circuit_breakers_open").ends_with(" 0"));
    let kinds: Vec<_> = comm
        .m
        .events
        .recent(10)
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(kinds.iter().any(|m| m.contains("opened")), "{kinds:?}");
    assert!(kinds.iter().any(|m| m.contains("closed")), "{kinds:?}");
}

#[tokio::test]
async fn an_unserved_protocol_steps_down_until_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let comm = mk_comm(&dir, Arc::new(ManualClock::default()));
    let tried = std::sync::Mutex::new(Vec::new());
    let rest_only = |p: Protocol| {
        tried.lock().unwrap().push(p);
        async move {
            match p {
                Protocol::Rest => Ok("rest answer"),
                _ => Err(Error::ProtocolUnsupported {
                    peer: URL.into(),
                    protocol: "gRPC",
                }),
            }
        }
    };
    assert_eq!(
        comm.call(URL, Op::Register, rest_only).await.unwrap(),
        "rest answer"
    );
    assert_eq!(
        *tried.lock().unwrap(),
        vec![Protocol::GrpcStream, Protocol::Grpc, Protocol::Rest]
    );
    assert_eq!(comm.protocol(URL), Protocol::Rest, "remembered");
    assert_eq!(comm.breaker_state(URL), BreakerState::Closed);
    assert!(metric(&comm, "sorcha_protocol_changes_total").contains("to=\"rest\"} 1"));
}

#[tokio::test]
async fn idle_links_are_forgotten_unless_their_circuit_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let comm = mk_comm(&dir, clock.clone());
    comm.call("http://127.0.0.1:1", Op::Ping, |_| async { Ok(()) })
        .await
        .unwrap();
    for _ in 0..3 {
        let _ = comm
            .call(URL, Op::Ping, |_| async { Err::<(), _>(down()) })
            .await;
    }
    assert_eq!(comm.links_tracked(), 2);
    clock.advance(super::LINK_IDLE);
    comm.evict_idle(Duration::from_secs(120));
    assert_eq!(comm.links_tracked(), 1, "the open circuit is kept");
    assert_eq!(comm.breaker_state(URL), BreakerState::Open);
}
