//! Tests of `load.rs` (kept apart to keep each file short).
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{CommunicationProtocol, IpProtocol};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errors_of(r: crate::Result<PeerServiceConfig>) -> Vec<FieldError> {
    match r {
        Err(Error::Config(ConfigErrors(v))) => v,
        other => panic!("expected config errors, got {other:?}"),
    }
}

fn only_error(r: crate::Result<PeerServiceConfig>) -> FieldError {
    let mut v = errors_of(r);
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

/// The design's appsettings example (plus its Security block), as YAML,
/// with the public hosts replaced by loopback ones.
const DESIGN_EXAMPLE: &str = r#"
PeerService:
  Enabled: true
  NodeId: null  # Auto-generated if null
  ListenPort: 5001
  NetworkAddress:
    ExternalAddress: null
    StunServers:
      - "127.0.0.1:19302"
    HttpLookupServices:
      - "http://127.0.0.1:8080"
  PeerDiscovery:
    BootstrapNodes:
      - "http://127.0.0.1:5001"
    RefreshIntervalMinutes: 15
    MaxPeersInList: 1000
    MinHealthyPeers: 5
    PeerTimeoutSeconds: 30
    MaxConcurrentDiscoveries: 10
  Communication:
    PreferredProtocol: GrpcStream
    ConnectionTimeout: 30
    MaxRetries: 3
    RetryDelaySeconds: 5
    CircuitBreakerThreshold: 5
    CircuitBreakerResetMinutes: 5
  TransactionDistribution:
    FanoutFactor: 3
    GossipRounds: 3
    TransactionCacheTTL: 3600
    MaxTransactionSize: 10485760
    StreamingThreshold: 1048576
    EnableCompression: true
  OfflineMode:
    MaxQueueSize: 10000
    MaxRetries: 5
    QueuePersistence: true
    PersistencePath: "./data/tx_queue.db"
  Security:
    RequireMutualTLS: true
    CertificatePath: "./certs/peer.pfx"
    CertificatePassword: "${PEER_CERT_PASSWORD}"
    TrustedCAs: "./certs/ca.crt"
"#;

#[test]
fn defaults_name_no_public_host() {
    let yaml = to_yaml(&PeerServiceConfig::default());
    assert!(yaml.starts_with("PeerService:\n"), "{yaml}");
    // Every place a default could name a host to contact is empty.
    let d = PeerServiceConfig::default();
    assert!(d.network_address.stun_servers.is_empty());
    assert!(d.network_address.http_lookup_services.is_empty());
    assert!(d.network_address.external_address.is_none());
    assert!(d.peer_discovery.bootstrap_nodes.is_empty());
    for key in ["google", "ipify", "sorcha.dev", "http"] {
        assert!(!yaml.contains(key), "{key} in\n{yaml}");
    }
}

#[test]
fn no_file_and_no_env_gives_defaults() {
    assert_eq!(load_from(None, &[]).unwrap(), PeerServiceConfig::default());
    assert_eq!(
        load_from(Some("PeerService:\n"), &[]).unwrap(),
        PeerServiceConfig::default()
    );
}

#[test]
fn design_example_loads() {
    let c = load_from(Some(DESIGN_EXAMPLE), &[]).unwrap();
    assert_eq!(c.network_address.stun_servers, ["127.0.0.1:19302"]);
    assert_eq!(c.peer_discovery.bootstrap_nodes, ["http://127.0.0.1:5001"]);
    assert_eq!(
        c.peer_discovery.refresh_interval_minutes,
        Duration::from_secs(900)
    );
    assert_eq!(
        c.communication.preferred_protocol,
        CommunicationProtocol::GrpcStream
    );
    assert_eq!(c.transaction_distribution.fanout_factor, Some(3));
    assert_eq!(
        c.transaction_distribution.transaction_cache_ttl,
        Duration::from_secs(3600)
    );
    assert!(c.security.require_mutual_tls);
    assert_eq!(
        c.security.certificate_password.as_deref(),
        Some("${PEER_CERT_PASSWORD}")
    );
    assert_eq!(
        c.security.trusted_cas,
        Some(PathBuf::from("./certs/ca.crt"))
    );
}

#[test]
fn keys_are_case_insensitive() {
    let yaml = "peerservice:\n  LISTENPORT: 6000\n  peerDiscovery:\n    refreshintervalminutes: 2s\n    PEERTIMEOUTSECONDS: 1\n  \
                networkaddress:\n    PreferredProtocol: IPv6\n  security:\n    requiremutualtls: false\n";
    let c = load_from(Some(yaml), &[]).unwrap();
    assert_eq!(c.listen_port, 6000);
    assert_eq!(
        c.peer_discovery.refresh_interval_minutes,
        Duration::from_secs(2)
    );
    assert_eq!(c.network_address.preferred_protocol, IpProtocol::IPv6);
}

#[test]
fn durations_accept_units_and_numbers() {
    let yaml = "PeerService:\n  PeerDiscovery:\n    RefreshIntervalMinutes: 2s\n    \
                PeerTimeoutSeconds: 500ms\n  Communication:\n    ConnectionTimeout: 1.5\n    \
                CircuitBreakerResetMinutes: 1\n";
    let c = load_from(Some(yaml), &[]).unwrap();
    assert_eq!(
        c.peer_discovery.refresh_interval_minutes,
        Duration::from_secs(2)
    );
    assert_eq!(
        c.peer_discovery.peer_timeout_seconds,
        Duration::from_millis(500)
    );
    assert_eq!(
        c.communication.connection_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(
        c.communication.circuit_breaker_reset_minutes,
        Duration::from_secs(60)
    );
}

#[test]
fn env_overrides_file() {
    let vars = env(&[
        ("SORCHA__LISTENPORT", "6000"),
        ("SORCHA__PEERDISCOVERY__REFRESHINTERVALMINUTES", "2s"),
        ("sorcha__peerdiscovery__peertimeoutseconds", "500ms"),
        (
            "SORCHA__PEERDISCOVERY__BOOTSTRAPNODES",
            "[http://a:1, http://b:2]",
        ),
        ("SORCHA__NODEID", "null"),
        ("SORCHA__COMMUNICATION__PREFERREDPROTOCOL", "Rest"),
        ("SORCHA__TRANSACTIONDISTRIBUTION__FANOUTFACTOR", "4"),
        ("SORCHA__LISTENADDRESS", "127.0.0.1"),
        ("PATH", "/usr/bin"),
    ]);
    let yaml = "PeerService:\n  NodeId: from-file\n  ListenPort: 5002\n";
    let c = load_from(Some(yaml), &vars).unwrap();
    assert_eq!(c.listen_port, 6000);
    assert_eq!(c.listen_address, "127.0.0.1");
    assert_eq!(c.node_id, None);
    assert_eq!(
        c.peer_discovery.refresh_interval_minutes,
        Duration::from_secs(2)
    );
    assert_eq!(
        c.peer_discovery.peer_timeout_seconds,
        Duration::from_millis(500)
    );
    assert_eq!(
        c.peer_discovery.bootstrap_nodes,
        ["http://a:1", "http://b:2"]
    );
    assert_eq!(
        c.communication.preferred_protocol,
        CommunicationProtocol::Rest
    );
    assert_eq!(c.transaction_distribution.fanout_factor, Some(4));
}

#[test]
fn env_numeric_text_for_a_string_field_stays_text() {
    let vars = env(&[
        ("SORCHA__NODEID", "12345"),
        ("SORCHA__SECURITY__CERTIFICATEPASSWORD", "true"),
    ]);
    let c = load_from(None, &vars).unwrap();
    assert_eq!(c.node_id.as_deref(), Some("12345"));
    assert_eq!(c.security.certificate_password.as_deref(), Some("true"));
}

#[test]
fn env_unknown_variable_names_it_and_lists_keys() {
    let e = only_error(load_from(
        None,
        &env(&[("SORCHA__PEERDISCOVERY__REFRESH", "2")]),
    ));
    assert_eq!(e.field, "SORCHA__PEERDISCOVERY__REFRESH");
    assert!(e.expected.contains("PeerService.PeerDiscovery"), "{e}");
    assert!(e.expected.contains("RefreshIntervalMinutes"), "{e}");
}

#[test]
fn unknown_file_key_names_full_path() {
    let yaml = "PeerService:\n  PeerDiscovery:\n    RefreshIntervalMinutez: 2\n";
    let e = only_error(load_from(Some(yaml), &[]));
    assert_eq!(e.field, "PeerService.PeerDiscovery.RefreshIntervalMinutez");
    assert!(e.expected.contains("MaxPeersInList"), "{e}");
    assert!(
        e.expected.contains("did you mean RefreshIntervalMinutes?"),
        "{e}"
    );
}

#[test]
fn root_must_be_peer_service() {
    let v = errors_of(load_from(Some("ListenPort: 5001\n"), &[]));
    assert_eq!(v[0].field, "ListenPort", "{v:?}");
    assert!(v[0].expected.contains("PeerService:"), "{v:?}");
    let v = errors_of(load_from(Some("Peers:\n  ListenPort: 1\n"), &[]));
    assert!(v.iter().any(|e| e.field == "Peers"), "{v:?}");
    assert!(
        v.iter()
            .any(|e| e.field == "PeerService" && e.value.contains("no PeerService"))
    );
    for bad in ["", "# only a comment\n", "- a\n", "PeerService: 5\n"] {
        let e = only_error(load_from(Some(bad), &[]));
        assert_eq!(e.field, "PeerService", "{bad:?}: {e}");
    }
}

#[test]
fn syntax_error_is_reported() {
    let e = only_error(load_from(Some("PeerService:\n  ListenPort: [1\n"), &[]));
    assert_eq!(e.field, "configuration file");
    assert!(e.value.contains("line"), "{e}");
}

#[test]
fn type_errors_name_path_value_and_expectation() {
    let yaml = "PeerService:\n  ListenPort: 70000\n  PeerDiscovery:\n    RefreshIntervalMinutes: -5\n  \
                Communication:\n    PreferredProtocol: Carrier\n  Enabled: maybe\n";
    let v = errors_of(load_from(Some(yaml), &[]));
    assert_eq!(v.len(), 4, "{v:?}");
    let by = |f: &str| {
        v.iter()
            .find(|e| e.field == f)
            .unwrap_or_else(|| panic!("{f} in {v:?}"))
    };
    assert_eq!(by("PeerService.ListenPort").value, "70000");
    assert!(by("PeerService.ListenPort").expected.contains("65535"));
    let r = by("PeerService.PeerDiscovery.RefreshIntervalMinutes");
    assert_eq!(r.value, "-5");
    assert!(
        r.expected
            .contains(r#"a number of minutes or a duration such as "30s" or "500ms""#),
        "{r}"
    );
    assert!(
        by("PeerService.Communication.PreferredProtocol")
            .expected
            .contains("GrpcStream")
    );
    assert_eq!(by("PeerService.Enabled").value, "\"maybe\"");
}

#[test]
fn type_error_inside_a_list_names_the_entry() {
    let yaml = "PeerService:\n  PeerDiscovery:\n    BootstrapNodes: [http://127.0.0.1:1, [x]]\n";
    let e = only_error(load_from(Some(yaml), &[]));
    assert_eq!(e.field, "PeerService.PeerDiscovery.BootstrapNodes[1]");
    assert_eq!(e.value, "[\"x\"]");
}

#[test]
fn env_type_error_names_path() {
    let e = only_error(load_from(None, &env(&[("SORCHA__LISTENPORT", "many")])));
    assert_eq!(e.field, "PeerService.ListenPort");
    assert_eq!(e.value, "\"many\"");
}

#[test]
fn validation_errors_come_with_the_rest() {
    let yaml =
        "PeerService:\n  Bogus: 1\n  ListenPort: 0\n  PeerDiscovery:\n    MinHealthyPeers: 0\n";
    let v = errors_of(load_from(Some(yaml), &[]));
    let fields: Vec<&str> = v.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "PeerService.Bogus",
            "PeerService.ListenPort",
            "PeerService.PeerDiscovery.MinHealthyPeers"
        ]
    );
}

#[test]
fn to_yaml_round_trips() {
    let mut c = load_from(Some(DESIGN_EXAMPLE), &[]).unwrap();
    c.node_id = Some("node-1".into());
    c.peer_discovery.refresh_interval_minutes = Duration::from_millis(1500);
    c.peer_discovery.peer_timeout_seconds = Duration::from_millis(500);
    c.communication.retry_delay_seconds = Duration::from_secs(90);
    let yaml = to_yaml(&c);
    assert!(yaml.contains("RefreshIntervalMinutes: 1s 500ms"), "{yaml}");
    assert!(yaml.contains("RetryDelaySeconds: 90"), "{yaml}");
    assert_eq!(load_from(Some(&yaml), &[]).unwrap(), c);
    let d = PeerServiceConfig::default();
    assert_eq!(load_from(Some(&to_yaml(&d)), &[]).unwrap(), d);
}

#[test]
fn load_reads_file_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.yaml");
    std::fs::write(&path, "PeerService:\n  ListenPort: 6001\n").unwrap();
    // The test environment may carry SORCHA__ variables; only check the
    // file's value when none override it.
    if !std::env::vars().any(|(k, _)| k.to_ascii_uppercase().starts_with(ENV_PREFIX)) {
        assert_eq!(load(Some(&path)).unwrap().listen_port, 6001);
    }
    let missing = dir.path().join("missing.yaml");
    match load(Some(&missing)) {
        Err(Error::ConfigFile { path, .. }) => assert!(path.ends_with("missing.yaml")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn role_loads_from_yaml_and_env_and_a_bad_one_names_the_choices() {
    let c = load_from(Some("PeerService:\n  Role: ReadOnly\n"), &[]).unwrap();
    assert_eq!(c.role, crate::config::PeerRole::ReadOnly);
    let c = load_from(None, &env(&[("SORCHA__ROLE", "Full")])).unwrap();
    assert_eq!(c.role, crate::config::PeerRole::Full);
    assert_eq!(
        load_from(None, &[]).unwrap().role,
        crate::config::PeerRole::Bootstrap
    );
    let e = only_error(load_from(Some("PeerService:\n  Role: Observer\n"), &[]));
    assert_eq!(e.field, "PeerService.Role");
    assert_eq!(e.value, "\"Observer\"");
    for choice in ["ReadOnly", "Full", "Bootstrap"] {
        assert!(e.expected.contains(choice), "{e}");
    }
}
