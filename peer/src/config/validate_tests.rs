//! Tests of `validate.rs` (kept apart to keep each file short).
use super::*;
use std::path::PathBuf;

type Mutate = fn(&mut PeerServiceConfig);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One case per rule: (field path expected in the single error, change).
const CASES: &[(&str, Mutate)] = &[
    ("PeerService.ListenPort", |c| c.listen_port = 0),
    ("PeerService.ListenAddress", |c| {
        c.listen_address = "localhost:1".into()
    }),
    ("PeerService.NodeId", |c| c.node_id = Some(String::new())),
    ("PeerService.NodeId", |c| c.node_id = Some("a".repeat(129))),
    ("PeerService.NodeId", |c| c.node_id = Some("bad id!".into())),
    ("PeerService.NetworkAddress.ExternalAddress", |c| {
        c.network_address.external_address = Some("1.2.3.4:5".into())
    }),
    ("PeerService.NetworkAddress.StunServers[1]", |c| {
        c.network_address.stun_servers = vec!["127.0.0.1:3478".into(), "127.0.0.1".into()]
    }),
    ("PeerService.NetworkAddress.HttpLookupServices[0]", |c| {
        c.network_address.http_lookup_services = vec!["ftp://127.0.0.1".into()]
    }),
    ("PeerService.NetworkAddress.RecheckIntervalMinutes", |c| {
        c.network_address.recheck_interval_minutes = ms(999)
    }),
    ("PeerService.NetworkAddress.LookupTimeoutSeconds", |c| {
        c.network_address.lookup_timeout_seconds = Duration::ZERO
    }),
    ("PeerService.PeerDiscovery.BootstrapNodes[0]", |c| {
        c.peer_discovery.bootstrap_nodes = vec!["127.0.0.1:5001".into()]
    }),
    ("PeerService.PeerDiscovery.RefreshIntervalMinutes", |c| {
        c.peer_discovery.refresh_interval_minutes = ms(99)
    }),
    ("PeerService.PeerDiscovery.MaxPeersInList", |c| {
        c.peer_discovery.max_peers_in_list = 0
    }),
    ("PeerService.PeerDiscovery.MinHealthyPeers", |c| {
        c.peer_discovery.min_healthy_peers = 0
    }),
    ("PeerService.PeerDiscovery.MinHealthyPeers", |c| {
        c.peer_discovery.max_peers_in_list = 200;
        c.peer_discovery.bootstrap_peer_list_size = 10;
        c.peer_discovery.min_healthy_peers = 201;
    }),
    ("PeerService.PeerDiscovery.PeerTimeoutSeconds", |c| {
        c.peer_discovery.peer_timeout_seconds = Duration::ZERO
    }),
    ("PeerService.PeerDiscovery.PeerTimeoutSeconds", |c| {
        c.peer_discovery.peer_timeout_seconds = c.peer_discovery.refresh_interval_minutes
    }),
    ("PeerService.PeerDiscovery.MaxConcurrentDiscoveries", |c| {
        c.peer_discovery.max_concurrent_discoveries = 0
    }),
    ("PeerService.PeerDiscovery.MaxConcurrentDiscoveries", |c| {
        c.peer_discovery.max_concurrent_discoveries = 1001
    }),
    ("PeerService.PeerDiscovery.FailureThreshold", |c| {
        c.peer_discovery.failure_threshold = 0
    }),
    ("PeerService.PeerDiscovery.BootstrapRetryMinutes", |c| {
        c.peer_discovery.bootstrap_retry_minutes = Duration::ZERO
    }),
    ("PeerService.PeerDiscovery.BootstrapPeerListSize", |c| {
        c.peer_discovery.bootstrap_peer_list_size = 0
    }),
    ("PeerService.PeerDiscovery.BootstrapPeerListSize", |c| {
        c.peer_discovery.bootstrap_peer_list_size = 1001
    }),
    ("PeerService.Communication.ConnectionTimeout", |c| {
        c.communication.connection_timeout = Duration::ZERO
    }),
    ("PeerService.Communication.RetryDelaySeconds", |c| {
        c.communication.retry_delay_seconds = Duration::ZERO
    }),
    ("PeerService.Communication.CircuitBreakerThreshold", |c| {
        c.communication.circuit_breaker_threshold = 0
    }),
    (
        "PeerService.Communication.CircuitBreakerResetMinutes",
        |c| c.communication.circuit_breaker_reset_minutes = Duration::ZERO,
    ),
    ("PeerService.TransactionDistribution.FanoutFactor", |c| {
        c.transaction_distribution.fanout_factor = Some(0)
    }),
    ("PeerService.TransactionDistribution.GossipRounds", |c| {
        c.transaction_distribution.gossip_rounds = 0
    }),
    (
        "PeerService.TransactionDistribution.NotificationTimeout",
        |c| c.transaction_distribution.notification_timeout = Duration::ZERO,
    ),
    (
        "PeerService.TransactionDistribution.TransactionCacheTTL",
        |c| c.transaction_distribution.transaction_cache_ttl = Duration::ZERO,
    ),
    (
        "PeerService.TransactionDistribution.MaxTransactionSize",
        |c| c.transaction_distribution.max_transaction_size = 0,
    ),
    (
        "PeerService.TransactionDistribution.MaxTransactionSize",
        |c| c.transaction_distribution.max_transaction_size = MAX_TRANSACTION_SIZE_LIMIT + 1,
    ),
    (
        "PeerService.TransactionDistribution.StreamingThreshold",
        |c| c.transaction_distribution.streaming_threshold = 0,
    ),
    (
        "PeerService.TransactionDistribution.StreamingThreshold",
        |c| c.transaction_distribution.streaming_threshold = 10 * 1024 * 1024 + 1,
    ),
    ("PeerService.TransactionDistribution.BloomFilterBits", |c| {
        c.transaction_distribution.bloom_filter_bits = 7
    }),
    ("PeerService.TransactionDistribution.BloomFilterBits", |c| {
        c.transaction_distribution.bloom_filter_bits = (MAX_BLOOM_FILTER_BITS + 1) as usize
    }),
    (
        "PeerService.TransactionDistribution.BloomFilterHashes",
        |c| c.transaction_distribution.bloom_filter_hashes = 0,
    ),
    (
        "PeerService.TransactionDistribution.BloomFilterHashes",
        |c| c.transaction_distribution.bloom_filter_hashes = 33,
    ),
    (
        "PeerService.TransactionDistribution.BloomFilterResetMinutes",
        |c| c.transaction_distribution.bloom_filter_reset_minutes = Duration::ZERO,
    ),
    (
        "PeerService.TransactionDistribution.EagerPushThreshold",
        |c| {
            let t = &mut c.transaction_distribution;
            t.eager_push_threshold = t.streaming_threshold + 1;
        },
    ),
    (
        "PeerService.TransactionDistribution.AntiEntropyIntervalSeconds",
        |c| c.transaction_distribution.anti_entropy_interval_seconds = Duration::ZERO,
    ),
    ("PeerService.OfflineMode.MaxQueueSize", |c| {
        c.offline_mode.max_queue_size = 0
    }),
    ("PeerService.OfflineMode.MaxRetries", |c| {
        c.offline_mode.max_retries = 0
    }),
    ("PeerService.Security.RequireMutualTLS", |c| {
        c.security.require_mutual_tls = true
    }),
    ("PeerService.Security.RequireMutualTLS", |c| {
        c.security.require_mutual_tls = true;
        c.security.certificate_path = Some(PathBuf::from("./certs/peer.pfx"));
    }),
    ("PeerService.Security.PrivateKeyPath", |c| {
        c.security.private_key_path = Some(PathBuf::new())
    }),
    ("PeerService.Security.RevocationListPath", |c| {
        c.security.revocation_list_path = Some(PathBuf::new())
    }),
    ("PeerService.Security.AdminTokenFile", |c| {
        c.security.admin_token_file = Some(PathBuf::new())
    }),
    ("PeerService.Security.ReloadIntervalSeconds", |c| {
        c.security.reload_interval_seconds = ms(99)
    }),
    ("PeerService.Security.MaxRequestsPerMinute", |c| {
        c.security.max_requests_per_minute = 0
    }),
    ("PeerService.Security.MaxBytesPerMinute", |c| {
        c.security.max_bytes_per_minute = 0
    }),
    ("PeerService.Security.MaxBytesPerMinute", |c| {
        c.security.max_bytes_per_minute = c.transaction_distribution.max_transaction_size - 1
    }),
    ("PeerService.Security.MaxTransactionsPerMinute", |c| {
        c.security.max_transactions_per_minute = 0
    }),
    ("PeerService.Security.MaxConnectionsPerMinute", |c| {
        c.security.max_connections_per_minute = 0
    }),
    ("PeerService.Security.BanDurationMinutes", |c| {
        c.security.ban_duration_minutes = Duration::ZERO
    }),
    ("PeerService.Security.BanDurationMinutes", |c| {
        c.security.ban_duration_minutes = MAX_BAN_DURATION + ms(1)
    }),
];

#[test]
fn defaults_are_valid() {
    PeerServiceConfig::default().validate().unwrap();
}

#[test]
fn each_rule_reports_exactly_its_field() {
    for (i, (field, mutate)) in CASES.iter().enumerate() {
        let mut c = PeerServiceConfig::default();
        mutate(&mut c);
        let problems = c.problems();
        assert_eq!(problems.len(), 1, "case {i} ({field}): {problems:?}");
        assert_eq!(problems[0].field, *field, "case {i}");
        assert!(!problems[0].expected.is_empty() && !problems[0].value.is_empty());
        match c.validate() {
            Err(Error::Config(ConfigErrors(v))) => assert_eq!(v, problems),
            other => panic!("case {i}: {other:?}"),
        }
    }
}

#[test]
fn all_problems_are_collected() {
    let mut c = PeerServiceConfig::default();
    for (_, mutate) in CASES {
        mutate(&mut c);
    }
    c.listen_port = 0;
    let problems = c.problems();
    assert!(problems.len() >= 25, "{problems:?}");
}

#[test]
fn boundary_values_pass() {
    let mut c = PeerServiceConfig {
        listen_port: 65535,
        listen_address: "::".into(),
        node_id: Some(format!("node-1.a_{}", "x".repeat(119))),
        ..Default::default()
    };
    c.network_address.external_address = Some("peer1.local".into());
    c.network_address.stun_servers = vec!["[::1]:3478".into()];
    c.network_address.http_lookup_services = vec!["https://127.0.0.1/ip".into()];
    c.peer_discovery.bootstrap_nodes = vec!["http://127.0.0.1:5001".into()];
    c.peer_discovery.refresh_interval_minutes = ms(100);
    c.peer_discovery.peer_timeout_seconds = ms(99);
    c.peer_discovery.max_peers_in_list = 1;
    c.peer_discovery.min_healthy_peers = 1;
    c.peer_discovery.bootstrap_peer_list_size = 1;
    c.peer_discovery.max_concurrent_discoveries = 1000;
    c.transaction_distribution.fanout_factor = Some(1);
    c.transaction_distribution.max_transaction_size = MAX_TRANSACTION_SIZE_LIMIT;
    c.transaction_distribution.streaming_threshold = MAX_TRANSACTION_SIZE_LIMIT;
    c.transaction_distribution.eager_push_threshold = MAX_TRANSACTION_SIZE_LIMIT;
    c.transaction_distribution.eager_push_peers = 0;
    c.transaction_distribution.bloom_filter_bits = MAX_BLOOM_FILTER_BITS as usize;
    c.transaction_distribution.bloom_filter_hashes = MAX_BLOOM_FILTER_HASHES;
    c.transaction_distribution.bloom_filter_reset_minutes = ms(1);
    c.transaction_distribution.anti_entropy_interval_seconds = ms(1);
    c.security.require_mutual_tls = true;
    c.security.certificate_path = Some("./certs/peer.pfx".into());
    c.security.trusted_cas = Some("./certs/ca.crt".into());
    c.security.private_key_path = Some("./certs/peer.key".into());
    c.security.revocation_list_path = Some("./certs/revoked.txt".into());
    c.security.admin_token_file = Some("./admin.token".into());
    c.security.reload_interval_seconds = MIN_RELOAD_INTERVAL;
    c.security.max_bytes_per_minute = MAX_TRANSACTION_SIZE_LIMIT;
    c.security.max_requests_per_minute = 1;
    c.security.max_transactions_per_minute = 1;
    c.security.max_connections_per_minute = 1;
    c.security.ban_duration_minutes = MAX_BAN_DURATION;
    assert_eq!(c.problems(), vec![]);
}

#[test]
fn byte_allowance_is_not_compared_with_an_invalid_transaction_size() {
    let mut c = PeerServiceConfig::default();
    c.transaction_distribution.max_transaction_size = 0;
    c.security.max_bytes_per_minute = 1;
    let fields: Vec<_> = c.problems().into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        ["PeerService.TransactionDistribution.MaxTransactionSize"]
    );
    c.transaction_distribution.max_transaction_size = 2_000_000;
    c.security.max_bytes_per_minute = 1_999_999;
    let e = &c.problems()[0];
    assert!(
        e.expected.contains("MaxTransactionSize (2000000 bytes)"),
        "{e}"
    );
}

#[test]
fn smallest_bloom_and_eager_push_off_pass() {
    let mut c = PeerServiceConfig::default();
    c.transaction_distribution.bloom_filter_bits = MIN_BLOOM_FILTER_BITS as usize;
    c.transaction_distribution.bloom_filter_hashes = 1;
    c.transaction_distribution.eager_push_threshold = 0;
    assert_eq!(c.problems(), vec![]);
}

#[test]
fn eager_push_is_not_compared_with_an_invalid_streaming_threshold() {
    let mut c = PeerServiceConfig::default();
    c.transaction_distribution.streaming_threshold = 0;
    c.transaction_distribution.eager_push_threshold = 1 << 40;
    let fields: Vec<_> = c.problems().into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        ["PeerService.TransactionDistribution.StreamingThreshold"]
    );
    c.transaction_distribution.streaming_threshold = 1000;
    let e = &c.problems()[0];
    assert!(e.expected.contains("StreamingThreshold (1000)"), "{e}");
}

#[test]
fn messages_show_value_and_limit() {
    let mut c = PeerServiceConfig::default();
    c.peer_discovery.min_healthy_peers = 2000;
    let e = &c.problems()[0];
    assert_eq!(e.value, "2000");
    assert!(e.expected.contains("MaxPeersInList (1000)"), "{e}");
    c.peer_discovery.min_healthy_peers = 5;
    c.security.require_mutual_tls = true;
    let e = &c.problems()[0];
    assert!(
        e.expected.contains("missing: CertificatePath, TrustedCAs"),
        "{e}"
    );
}
