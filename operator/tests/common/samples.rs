//! Sample network specs covering every option, shared by the tests that
//! check emitted manifests and rendered peer configuration.
use serde_json::{Value, json};
use sorcha_operator::crd::{SorchaNetwork, SorchaNetworkSpec};

pub fn network(spec: Value) -> SorchaNetwork {
    let spec: SorchaNetworkSpec = serde_json::from_value(spec).expect("sample spec deserializes");
    let mut n = SorchaNetwork::new("alpha", spec);
    n.metadata.namespace = Some("ledger".into());
    n.metadata.uid = Some("3c9d3e4e-0f7c-4b6e-9a51-6b1f0b2f8c11".into());
    n
}

/// Specs covering every toggle: defaults; one replica without TLS; every
/// optional part switched on.
pub fn samples() -> Vec<Value> {
    vec![
        json!({"replicas": 3, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0"}),
        json!({"replicas": 1, "image": "sorcha-peer:dev", "tls": {"enabled": false},
               "podDisruptionBudget": {"enabled": true}, "networkPolicy": {"enabled": false}}),
        json!({
            "replicas": 4, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0", "imagePullPolicy": "IfNotPresent",
            "peer": {
                "discovery": {"refreshInterval": "5m", "maxPeersInList": 200, "minHealthyPeers": 2,
                              "peerTimeout": "10s", "maxConcurrentDiscoveries": 4, "failureThreshold": 5,
                              "bootstrapRetry": "1m"},
                "gossip": {"fanoutFactor": 3, "gossipRounds": 4, "notificationTimeout": "3s",
                           "transactionCacheTtl": "30m", "maxTransactionSize": 1048576,
                           "enableCompression": false, "antiEntropyInterval": "20s"},
                "queue": {"maxQueueSize": 500, "maxRetries": 7, "persistence": true},
                "communication": {"preferredProtocol": "Grpc", "connectionTimeout": "5s", "maxRetries": 2,
                                  "retryDelay": "1s", "circuitBreakerThreshold": 3, "circuitBreakerReset": "2m"}
            },
            "bootstrap": {"inNetworkCount": 2, "externalNodes": ["https://seed.example.org:5001"]},
            "tls": {"enabled": true, "caValidity": "17520h", "certValidity": "720h", "renewBefore": "168h"},
            "storage": {"size": "5Gi", "storageClassName": "fast"},
            "service": {"type": "LoadBalancer", "perPod": true, "annotations": {"example.org/lb": "internal"}},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "podTemplate": {
                "extraContainers": [{"name": "app", "image": "example/app:1",
                                     "env": [{"name": "PEER", "value": "http://127.0.0.1:5001"}]}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                     "labelSelector": {"matchLabels": {"sorcha.dev/network": "alpha"}}}}]}},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ledger", "effect": "NoSchedule"}],
                "nodeSelector": {"disktype": "ssd"},
                "labels": {"team": "ledger"}, "annotations": {"example.org/note": "x"},
                "serviceAccountName": "custom-sa"
            },
            "monitoring": {"serviceMonitor": true, "podMonitor": true, "interval": "15s"},
            "podDisruptionBudget": {"enabled": true, "maxUnavailable": 2},
            "networkPolicy": {"enabled": true, "allowFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8"}}]},
            "rollout": {"stallTimeout": "15m"}
        }),
    ]
}
