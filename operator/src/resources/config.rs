//! The peer's configuration file (`PeerService:` root, PascalCase keys, the
//! schema in `peer/src/config/schema.rs`), rendered into a ConfigMap.
//! Per-pod values (NodeId, ExternalAddress, certificate path) come from
//! `SORCHA__*` environment overrides in the StatefulSet, since every pod
//! mounts the same file.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_norway::{Mapping, Value};

use super::{CONFIG_KEY, DATA_DIR, Net, PEER_PORT, TRUST_DIR, TRUST_KEY};
use crate::crd::{CommunicationProtocol, GossipMode, PeerSettings};
use crate::{Result, duration};

/// How many of the first pods the others bootstrap from (never more than
/// there are replicas); their certificates carry the `bootstrap` role.
pub fn bootstrap_count(net: &Net) -> i32 {
    net.spec()
        .bootstrap
        .in_network_count
        .clamp(0, net.replicas())
}

/// Bootstrap URLs: the first `bootstrap.inNetworkCount` pods (never more
/// than there are replicas) by stable DNS name, then the external nodes.
pub fn bootstrap_nodes(net: &Net) -> Vec<String> {
    let scheme = if net.spec().tls.enabled {
        "https"
    } else {
        "http"
    };
    (0..bootstrap_count(net))
        .map(|i| format!("{scheme}://{}:{PEER_PORT}", net.pod_dns(i)))
        .chain(net.spec().bootstrap.external_nodes.iter().cloned())
        .collect()
}

struct Section {
    map: Mapping,
    field: &'static str,
}

impl Section {
    fn new(field: &'static str) -> Self {
        Self {
            map: Mapping::new(),
            field,
        }
    }
    fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.map.insert(key.into(), v.into());
    }
    fn opt<T: Into<Value> + Clone>(&mut self, key: &str, v: &Option<T>) {
        if let Some(v) = v {
            self.set(key, v.clone());
        }
    }
    /// Checked here so a bad value names the spec field, not a peer crash.
    fn dur(&mut self, key: &str, spec_key: &str, v: &Option<String>) -> Result<()> {
        if let Some(v) = v {
            duration::parse(&format!("{}.{spec_key}", self.field), v)?;
            self.set(key, v.trim());
        }
        Ok(())
    }
    fn into_value(self) -> Value {
        Value::Mapping(self.map)
    }
}

fn settings_sections(
    p: &PeerSettings,
    bootstrap: Vec<String>,
) -> Result<Vec<(&'static str, Value)>> {
    let mut out = Vec::new();

    let mut d = Section::new("spec.peer.discovery");
    d.set(
        "BootstrapNodes",
        Value::Sequence(bootstrap.into_iter().map(Value::from).collect()),
    );
    if let Some(s) = &p.discovery {
        d.dur(
            "RefreshIntervalMinutes",
            "refreshInterval",
            &s.refresh_interval,
        )?;
        d.opt("MaxPeersInList", &s.max_peers_in_list);
        d.opt("MinHealthyPeers", &s.min_healthy_peers);
        d.dur("PeerTimeoutSeconds", "peerTimeout", &s.peer_timeout)?;
        d.opt("MaxConcurrentDiscoveries", &s.max_concurrent_discoveries);
        d.opt("FailureThreshold", &s.failure_threshold);
        d.dur(
            "BootstrapRetryMinutes",
            "bootstrapRetry",
            &s.bootstrap_retry,
        )?;
    }
    out.push(("PeerDiscovery", d.into_value()));

    if let Some(s) = &p.communication {
        let mut c = Section::new("spec.peer.communication");
        if let Some(proto) = s.preferred_protocol {
            let name = match proto {
                CommunicationProtocol::GrpcStream => "GrpcStream",
                CommunicationProtocol::Grpc => "Grpc",
                CommunicationProtocol::Rest => "Rest",
            };
            c.set("PreferredProtocol", name);
        }
        c.dur(
            "ConnectionTimeout",
            "connectionTimeout",
            &s.connection_timeout,
        )?;
        c.opt("MaxRetries", &s.max_retries);
        c.dur("RetryDelaySeconds", "retryDelay", &s.retry_delay)?;
        c.opt("CircuitBreakerThreshold", &s.circuit_breaker_threshold);
        c.dur(
            "CircuitBreakerResetMinutes",
            "circuitBreakerReset",
            &s.circuit_breaker_reset,
        )?;
        out.push(("Communication", c.into_value()));
    }

    if let Some(s) = &p.gossip {
        let mut g = Section::new("spec.peer.gossip");
        if let Some(mode) = s.mode {
            let name = match mode {
                GossipMode::Tree => "Tree",
                GossipMode::Rounds => "Rounds",
            };
            g.set("GossipMode", name);
        }
        g.opt("LazyAnnouncePeers", &s.lazy_announce_peers);
        g.dur("LazyPullDelaySeconds", "lazyPullDelay", &s.lazy_pull_delay)?;
        g.opt("FanoutFactor", &s.fanout_factor);
        g.opt("GossipRounds", &s.gossip_rounds);
        g.dur(
            "NotificationTimeout",
            "notificationTimeout",
            &s.notification_timeout,
        )?;
        g.dur(
            "TransactionCacheTTL",
            "transactionCacheTtl",
            &s.transaction_cache_ttl,
        )?;
        g.opt("MaxTransactionSize", &s.max_transaction_size);
        g.opt("EnableCompression", &s.enable_compression);
        g.dur(
            "AntiEntropyIntervalSeconds",
            "antiEntropyInterval",
            &s.anti_entropy_interval,
        )?;
        out.push(("TransactionDistribution", g.into_value()));
    }

    if let Some(s) = &p.queue {
        let mut q = Section::new("spec.peer.queue");
        q.opt("MaxQueueSize", &s.max_queue_size);
        q.opt("MaxRetries", &s.max_retries);
        q.opt("QueuePersistence", &s.persistence);
        out.push(("OfflineMode", q.into_value()));
    }
    Ok(out)
}

/// The peer's YAML configuration for this network.
pub fn peer_config_yaml(net: &Net) -> Result<String> {
    let spec = net.spec();
    let mut body = Mapping::new();
    body.insert("ListenAddress".into(), "0.0.0.0".into());
    body.insert("ListenPort".into(), PEER_PORT.into());
    body.insert("DataDirectory".into(), DATA_DIR.into());
    for (k, v) in settings_sections(&spec.peer, bootstrap_nodes(net))? {
        body.insert(k.into(), v);
    }
    if spec.tls.enabled {
        let mut s = Mapping::new();
        s.insert("RequireMutualTLS".into(), true.into());
        // CertificatePath differs per pod: set by SORCHA__SECURITY__CERTIFICATEPATH.
        s.insert(
            "TrustedCAs".into(),
            format!("{TRUST_DIR}/{TRUST_KEY}").into(),
        );
        body.insert("Security".into(), Value::Mapping(s));
    }
    let mut root = Mapping::new();
    root.insert("PeerService".into(), Value::Mapping(body));
    Ok(serde_norway::to_string(&Value::Mapping(root)).expect("YAML value renders"))
}

pub fn config_map(net: &Net) -> Result<ConfigMap> {
    Ok(ConfigMap {
        metadata: net.meta(net.config_name()),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            peer_config_yaml(net)?,
        )])),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::mk_network;

    fn yaml(v: &str) -> Value {
        serde_norway::from_str(v).unwrap()
    }

    #[test]
    fn bootstrap_is_first_k_pods_then_external_nodes() {
        let mut n = mk_network(5);
        n.spec.bootstrap.in_network_count = 2;
        n.spec.bootstrap.external_nodes = vec!["http://10.0.0.9:5001".into()];
        let net = Net::new(&n, "cluster.local").unwrap();
        assert_eq!(
            bootstrap_nodes(&net),
            vec![
                "https://alpha-0.alpha-peers.ledger.svc.cluster.local:5001",
                "https://alpha-1.alpha-peers.ledger.svc.cluster.local:5001",
                "http://10.0.0.9:5001",
            ]
        );
    }

    #[test]
    fn bootstrap_count_is_capped_by_replicas_and_follows_tls() {
        let mut n = mk_network(1);
        n.spec.tls.enabled = false;
        let net = Net::new(&n, "cluster.local").unwrap();
        assert_eq!(
            bootstrap_nodes(&net),
            vec!["http://alpha-0.alpha-peers.ledger.svc.cluster.local:5001"]
        );
    }

    #[test]
    fn config_renders_settings_under_peer_service() {
        let mut n = mk_network(3);
        n.spec.peer = serde_json::from_value(serde_json::json!({
            "discovery": {"refreshInterval": "2m", "failureThreshold": 4},
            "gossip": {"gossipRounds": 5, "transactionCacheTtl": "1h",
                       "mode": "Rounds", "lazyAnnouncePeers": 3, "lazyPullDelay": "100ms"},
            "queue": {"maxQueueSize": 50, "persistence": false},
            "communication": {"preferredProtocol": "Rest", "retryDelay": "3s"},
        }))
        .unwrap();
        let net = Net::new(&n, "cluster.local").unwrap();
        let v = yaml(&peer_config_yaml(&net).unwrap());
        let ps = &v["PeerService"];
        assert_eq!(ps["ListenPort"], Value::from(5001));
        assert_eq!(
            ps["PeerDiscovery"]["RefreshIntervalMinutes"],
            Value::from("2m")
        );
        assert_eq!(ps["PeerDiscovery"]["FailureThreshold"], Value::from(4));
        assert_eq!(
            ps["PeerDiscovery"]["BootstrapNodes"]
                .as_sequence()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            ps["TransactionDistribution"]["GossipRounds"],
            Value::from(5)
        );
        assert_eq!(
            ps["TransactionDistribution"]["TransactionCacheTTL"],
            Value::from("1h")
        );
        let t = &ps["TransactionDistribution"];
        assert_eq!(t["GossipMode"], Value::from("Rounds"));
        assert_eq!(t["LazyAnnouncePeers"], Value::from(3));
        assert_eq!(t["LazyPullDelaySeconds"], Value::from("100ms"));
        assert_eq!(ps["OfflineMode"]["QueuePersistence"], Value::from(false));
        assert_eq!(
            ps["Communication"]["PreferredProtocol"],
            Value::from("Rest")
        );
        assert_eq!(ps["Security"]["RequireMutualTLS"], Value::from(true));
        assert_eq!(
            ps["Security"]["TrustedCAs"],
            Value::from("/etc/sorcha/trust/ca.pem")
        );
    }

    #[test]
    fn unset_settings_are_left_to_the_peer_defaults() {
        let mut n = mk_network(3);
        n.spec.tls.enabled = false;
        let net = Net::new(&n, "cluster.local").unwrap();
        let v = yaml(&peer_config_yaml(&net).unwrap());
        let ps = v["PeerService"].as_mapping().unwrap();
        let keys: Vec<_> = ps.keys().filter_map(Value::as_str).collect();
        assert_eq!(
            keys,
            [
                "ListenAddress",
                "ListenPort",
                "DataDirectory",
                "PeerDiscovery"
            ]
        );
    }

    #[test]
    fn bad_duration_names_the_spec_field() {
        let mut n = mk_network(3);
        n.spec.peer.gossip = Some(crate::crd::GossipSettings {
            anti_entropy_interval: Some("often".into()),
            ..Default::default()
        });
        let net = Net::new(&n, "cluster.local").unwrap();
        let e = peer_config_yaml(&net).unwrap_err().to_string();
        assert!(e.contains("spec.peer.gossip.antiEntropyInterval"), "{e}");
    }
}
