//! The STUN client's transaction handling on loopback (no namespaces
//! needed): retransmission, deadlines, and what it refuses to take as an
//! answer; plus a fuzz-style property test of the response parser, the
//! `address` command's handling of an unusable ExternalAddress, and what a
//! loopback node reports in status and metrics.
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sorcha_peer::address::stun::StunClient;
use sorcha_peer::address::stun::codec::{binding_request, binding_response, parse_response};
use sorcha_peer::config::IpProtocol;
use stun_rs::TransactionId;
use tokio::net::UdpSocket;

const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

async fn client(timeout: Duration, rto: Duration) -> StunClient {
    StunClient::bind(LOOPBACK, IpProtocol::IPv4, timeout)
        .await
        .unwrap()
        .with_rto(rto)
}

/// A responder on loopback; `answer` gets each request and replies.
async fn responder<F>(answer: F) -> SocketAddr
where
    F: Fn(&UdpSocket, &[u8], SocketAddr) -> Vec<Vec<u8>> + Send + 'static,
{
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            for reply in answer(&sock, &buf[..n], from) {
                let _ = sock.send_to(&reply, from).await;
            }
        }
    });
    addr
}

fn tid_of(req: &[u8]) -> TransactionId {
    TransactionId::from(<[u8; 12]>::try_from(&req[8..20]).unwrap())
}

#[tokio::test]
async fn junk_and_other_transactions_are_skipped_and_the_answer_taken() {
    let server = responder(|_, req, from| {
        let tid = tid_of(req);
        let mut other = *tid.as_bytes();
        other[11] ^= 1;
        let decoy: SocketAddr = "198.18.99.99:9".parse().unwrap();
        vec![
            b"\x00\x01garbage".to_vec(),
            binding_response(&other.into(), decoy, true, true),
            binding_response(&tid, from, false, false),
        ]
    })
    .await;
    let c = client(Duration::from_secs(5), Duration::from_millis(500)).await;
    let mapped = c.query(server).await.unwrap();
    assert_eq!(mapped, SocketAddr::from(([127, 0, 0, 1], c.local_port())));
}

/// When each request arrived, and its bytes.
type RequestLog = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

#[tokio::test]
async fn retransmits_with_doubling_intervals_until_the_deadline() {
    let seen: RequestLog = Arc::default();
    let log = seen.clone();
    let log_after = seen.clone();
    let server = responder(move |_, req, _| {
        log.lock().unwrap().push((Instant::now(), req.to_vec()));
        Vec::new()
    })
    .await;
    let c = client(Duration::from_millis(1600), Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = c.query(server).await.unwrap_err().to_string();
    assert!(
        started.elapsed() >= Duration::from_millis(1600),
        "gave up early"
    );
    assert!(
        err.contains("no answer within 1s 600ms (5 requests sent)"),
        "{err}"
    );
    let seen = seen.lock().unwrap().clone();
    // Due at 0, 100, 300, 700 and 1500 ms (the interval doubling from the
    // RTO); the next would be due at 3100, past the deadline. Only lower
    // bounds are asserted: a loaded machine delays, it never hurries.
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter().all(|(_, r)| r[8..20] == seen[0].1[8..20]),
        "one transaction id"
    );
    for ((at, _), due_ms) in seen.iter().zip([0u64, 100, 300, 700, 1500]) {
        assert!(
            *at - started >= Duration::from_millis(due_ms),
            "request due at {due_ms} ms came early"
        );
    }
    let first_tid = seen[0].1[8..20].to_vec();
    // A new query is a new, random transaction.
    let _ = c.query(server).await;
    let seen = log_after.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    assert_ne!(seen[5].1[8..20], first_tid[..]);
}

#[tokio::test]
async fn an_error_response_ends_the_transaction_at_once() {
    let server = responder(|_, req, _| {
        let mut e = req[..20].to_vec();
        e[0] = 0x01;
        e[1] = 0x11;
        e.extend_from_slice(&[0x00, 0x09, 0x00, 0x08, 0, 0, 4, 20, b'N', b'o', b'p', b'e']);
        e[2..4].copy_from_slice(&12u16.to_be_bytes());
        vec![e]
    })
    .await;
    let c = client(Duration::from_secs(5), Duration::from_millis(500)).await;
    let started = Instant::now();
    let err = c.query(server).await.unwrap_err().to_string();
    assert!(err.contains("error response 420 Nope"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_forged_answer_from_another_source_is_ignored() {
    // The forger learns the transaction id (as an on-path attacker could)
    // but answers from another port; the real server never answers.
    let forger = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let f = forger.clone();
    let server = responder(move |_, req, from| {
        let decoy: SocketAddr = "198.18.99.99:9".parse().unwrap();
        let _ = f.send_to(&binding_response(&tid_of(req), decoy, true, true), from);
        Vec::new()
    })
    .await;
    let c = client(Duration::from_millis(800), Duration::from_millis(200)).await;
    let err = c.query(server).await.unwrap_err().to_string();
    assert!(err.contains("datagram from 127.0.0.1:"), "{err}");
}

/// Random bytes, and random corruptions of valid responses, never panic
/// the parser, and nothing but the right transaction is ever accepted.
#[test]
fn parser_never_panics_and_accepts_only_our_transaction() {
    let mut rng = StdRng::seed_from_u64(0x5747_4e21);
    let tid = TransactionId::from([7u8; 12]);
    let mapped: SocketAddr = "198.18.0.1:40000".parse().unwrap();
    let valid = [
        binding_response(&tid, mapped, true, true),
        binding_response(&tid, "[2a00::1]:5".parse().unwrap(), true, false),
        binding_response(&tid, mapped, false, true),
    ];
    let mut accepted = 0;
    for i in 0..200_000u32 {
        let buf: Vec<u8> = match i % 4 {
            // Pure noise of any length.
            0 => (0..rng.random_range(0..120))
                .map(|_| rng.random())
                .collect(),
            // A plausible header (cookie, our id, consistent length) over noise.
            1 => {
                let body_len = 4 * rng.random_range(0..24usize);
                let mut b = vec![0x01, 0x01];
                b.extend_from_slice(&(body_len as u16).to_be_bytes());
                b.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
                b.extend_from_slice(tid.as_bytes());
                b.extend((0..body_len).map(|_| rng.random::<u8>()));
                b
            }
            // A valid response with a few bytes flipped.
            2 => {
                let mut b = valid[rng.random_range(0..valid.len())].clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..b.len());
                    b[at] ^= rng.random::<u8>() | 1;
                }
                b
            }
            // A valid response truncated or extended.
            _ => {
                let mut b = valid[rng.random_range(0..valid.len())].clone();
                if rng.random() {
                    b.truncate(rng.random_range(0..b.len()));
                } else {
                    b.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>()));
                }
                b
            }
        };
        if let Ok(addr) = parse_response(&buf, &tid) {
            assert_eq!(&buf[8..20], tid.as_bytes(), "accepted another transaction");
            assert!(!addr.ip().is_unspecified() && addr.port() != 0);
            accepted += 1;
        }
    }
    // Some corruptions (e.g. of the address bytes) stay valid responses.
    assert!(accepted > 0);
    // And our own request is never mistaken for an answer.
    assert!(parse_response(&binding_request(&tid), &tid).is_err());
}

#[test]
fn unusable_external_address_is_reported_and_discovery_continues() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "PeerService:\n  ListenAddress: 127.0.0.1\n  NetworkAddress:\n    ExternalAddress: 0.0.0.0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sorcha-peer"))
        .args(["address", "--json", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("NetworkAddress.ExternalAddress \"0.0.0.0\" is not usable"),
        "{warning}"
    );
    assert_ne!(r["method"], "config");
    assert_eq!(r["external_address"], "127.0.0.1");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("WARN") && log.contains("ExternalAddress"),
        "{log}"
    );
}

#[tokio::test]
async fn a_loopback_node_reports_its_address_in_status_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sorcha_peer::config::PeerServiceConfig::loopback(dir.path().to_path_buf(), 0);
    let node = sorcha_peer::node::start(cfg).await.unwrap();
    let s = node.membership.status();
    let a = &s.network_address;
    assert_eq!(s.address, "127.0.0.1");
    assert_eq!(
        (a.internal_address.as_str(), a.external_address.as_str()),
        ("127.0.0.1", "127.0.0.1")
    );
    assert_eq!(
        (a.method.as_str(), a.nat_type.as_str()),
        ("internal", "unknown")
    );
    assert!(a.checked_at > 0);
    let metrics = node.membership.metrics.render();
    assert!(
        metrics.contains("method=\"internal\"") && metrics.contains("address=\"127.0.0.1\""),
        "{metrics}"
    );
    node.shutdown().await;
}
