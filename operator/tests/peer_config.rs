//! The configuration the operator renders (file + per-pod environment) is
//! loaded with the peer's own loader, so a key the peer does not know, a
//! value it rejects or a wrong override name fails here, not in a pod.
mod common;

use common::samples::{network, samples};
use k8s_openapi::api::core::v1::Container;
use sorcha_operator::resources::{self, Net};

/// The peer container's environment as the kubelet would expand it in pod
/// `pod` (`$(VAR)` references to earlier variables, downward API values).
fn pod_env(c: &Container, pod: &str, ns: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in c.env.as_ref().unwrap() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => out.iter().fold(v.clone(), |acc, (k, val)| {
                acc.replace(&format!("$({k})"), val)
            }),
            (None, Some(from)) => match from.field_ref.as_ref().unwrap().field_path.as_str() {
                "metadata.name" => pod.to_owned(),
                "metadata.namespace" => ns.to_owned(),
                "metadata.uid" => "uid-1".to_owned(),
                other => panic!("unexpected downward API field {other}"),
            },
            _ => panic!("env {} has no value", e.name),
        };
        out.push((e.name.clone(), value));
    }
    out
}

/// The peer container of the network's StatefulSet.
fn peer_container(net: &Net) -> Container {
    let sts = resources::statefulset(net, "h", 0);
    sts.spec.unwrap().template.spec.unwrap().containers[0].clone()
}

#[test]
fn rendered_config_loads_in_the_peer_for_every_pod() {
    for spec in samples() {
        let n = network(spec);
        let net = Net::new(&n, "cluster.local").unwrap();
        let yaml = resources::peer_config_yaml(&net).unwrap();
        let peer = &peer_container(&net);
        for i in 0..net.replicas() {
            let pod = net.pod_name(i);
            let env = pod_env(peer, &pod, "ledger");
            let cfg = sorcha_peer::config::load_from(Some(&yaml), &env).unwrap_or_else(|e| {
                panic!("peer rejects the config of {pod}: {e}\n{yaml}\n{env:?}")
            });
            assert_eq!(cfg.node_id.as_deref(), Some(pod.as_str()));
            assert_eq!(cfg.listen_port, 5001);
            assert_eq!(
                cfg.peer_discovery.bootstrap_nodes,
                resources::bootstrap_nodes(&net)
            );
            assert_eq!(
                cfg.network_address.external_address.as_deref(),
                Some(net.pod_dns(i).as_str())
            );
            assert_eq!(cfg.security.require_mutual_tls, n.spec.tls.enabled);
            if n.spec.tls.enabled {
                assert_eq!(
                    cfg.security.certificate_path.unwrap().to_str().unwrap(),
                    format!("/etc/sorcha/tls/{pod}/tls.crt")
                );
                assert_eq!(
                    cfg.security.trusted_cas.unwrap().to_str().unwrap(),
                    "/etc/sorcha/trust/ca.pem"
                );
            }
        }
    }
}

#[test]
fn every_peer_setting_reaches_the_peer() {
    let n = network(samples().pop().unwrap());
    let net = Net::new(&n, "cluster.local").unwrap();
    let yaml = resources::peer_config_yaml(&net).unwrap();
    let peer = &peer_container(&net);
    let env = pod_env(peer, &net.pod_name(0), "ledger");
    let cfg = sorcha_peer::config::load_from(Some(&yaml), &env).unwrap();
    let secs = |d: std::time::Duration| d.as_secs();
    let d = &cfg.peer_discovery;
    assert_eq!(
        (
            secs(d.refresh_interval_minutes),
            d.max_peers_in_list,
            d.min_healthy_peers,
            secs(d.peer_timeout_seconds)
        ),
        (300, 200, 2, 10)
    );
    assert_eq!(
        (
            d.max_concurrent_discoveries,
            d.failure_threshold,
            secs(d.bootstrap_retry_minutes)
        ),
        (4, 5, 60)
    );
    let g = &cfg.transaction_distribution;
    assert_eq!(
        (
            g.fanout_factor,
            g.gossip_rounds,
            secs(g.notification_timeout)
        ),
        (Some(3), 4, 3)
    );
    assert_eq!(
        (
            secs(g.transaction_cache_ttl),
            g.max_transaction_size,
            g.enable_compression
        ),
        (1800, 1_048_576, false)
    );
    assert_eq!(secs(g.anti_entropy_interval_seconds), 20);
    let q = &cfg.offline_mode;
    assert_eq!(
        (q.max_queue_size, q.max_retries, q.queue_persistence),
        (500, 7, true)
    );
    let c = &cfg.communication;
    assert_eq!(format!("{:?}", c.preferred_protocol), "Grpc");
    assert_eq!(
        (
            secs(c.connection_timeout),
            c.max_retries,
            secs(c.retry_delay_seconds)
        ),
        (5, 2, 1)
    );
    assert_eq!(
        (
            c.circuit_breaker_threshold,
            secs(c.circuit_breaker_reset_minutes)
        ),
        (3, 120)
    );
}

/// A peer started from exactly what the operator renders (config file and
/// pod environment; only the mount roots are moved into a temporary
/// directory and the listener onto an ephemeral loopback port), with
/// certificates issued by the operator's own PKI code at the mounted
/// paths, serves mutual TLS under its pod name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_started_from_the_rendered_config_serves_mutual_tls() {
    use sorcha_operator::pki::{PeerRole, generate_ca, issue_peer_cert};
    use std::time::Duration;

    let n = network(samples()[0].clone());
    assert!(n.spec.tls.enabled, "the default sample runs TLS");
    let net = Net::new(&n, "cluster.local").unwrap();
    let root = tempfile::tempdir().unwrap();
    let moved = |s: &str| {
        s.replace(
            "/etc/sorcha/",
            &format!("{}/etc/sorcha/", root.path().display()),
        )
        .replace(
            resources::DATA_DIR,
            &format!("{}{}", root.path().display(), resources::DATA_DIR),
        )
    };
    let yaml = moved(&resources::peer_config_yaml(&net).unwrap());
    let pod = net.pod_name(0);
    let mut env: Vec<(String, String)> = pod_env(&peer_container(&net), &pod, "ledger")
        .into_iter()
        .map(|(k, v)| (k, moved(&v)))
        .collect();
    env.push(("SORCHA__LISTENADDRESS".into(), "127.0.0.1".into()));

    // The files the operator's Secrets and ConfigMap project.
    let now = jiff::Timestamp::now();
    let day = Duration::from_secs(86_400);
    let ca = generate_ca("alpha CA", now, 365 * day).unwrap();
    let write = |path: String, text: &str| {
        let path = std::path::PathBuf::from(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let tls_dir = |pod: &str| moved(&format!("/etc/sorcha/tls/{pod}"));
    for (i, p) in [(0, pod.clone()), (1, net.pod_name(1))] {
        let role = if i == 0 {
            PeerRole::Bootstrap
        } else {
            PeerRole::Full
        };
        let cert = issue_peer_cert(&ca, &p, role, &[net.pod_dns(i)], now, 30 * day).unwrap();
        write(format!("{}/tls.crt", tls_dir(&p)), &cert.cert_pem);
        write(format!("{}/tls.key", tls_dir(&p)), &cert.key_pem);
        write(format!("{}/ca.crt", tls_dir(&p)), &ca.cert_pem);
    }
    write(moved("/etc/sorcha/trust/ca.pem"), &ca.cert_pem);

    let mut cfg = sorcha_peer::config::load_from(Some(&yaml), &env).unwrap();
    // An ephemeral port (validation wants a real one in a config file).
    cfg.listen_port = 0;
    assert!(
        cfg.security.private_key_path.is_none(),
        "the key is found beside the certificate"
    );
    let node = sorcha_peer::node::start(cfg)
        .await
        .expect("the peer starts");
    assert_eq!(node.node_id(), pod);
    assert!(node.url().starts_with("https://"), "{}", node.url());

    // Another pod of the network calls it, pinning its peer id.
    let other = sorcha_peer::config::SecurityConfig {
        certificate_path: Some(format!("{}/tls.crt", tls_dir(&net.pod_name(1))).into()),
        trusted_cas: Some(moved("/etc/sorcha/trust/ca.pem").into()),
        ..Default::default()
    };
    let tls = sorcha_peer::security::PeerTls::load(
        sorcha_peer::security::TlsFiles::from_config(&other).unwrap(),
    )
    .unwrap();
    let connector = sorcha_peer::comm::Connector::mutual_tls(tls, Duration::from_secs(5));
    let url = format!("https://127.0.0.1:{}", node.local_addr.port());
    let channel = connector
        .channel(&connector.endpoint(&url).unwrap(), Some(&pod))
        .await
        .unwrap();
    let pong = sorcha_proto::discovery::peer_discovery_client::PeerDiscoveryClient::new(channel)
        .ping(sorcha_proto::discovery::PingRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pong.peer_id, pod);
    node.shutdown().await;
}
