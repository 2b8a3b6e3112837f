//! Mutual TLS end to end on loopback: the handshake matrix (every kind of
//! bad client refused with a logged reason, a valid one accepted), the
//! client's checks of the server, PKCS#12 identities, and certificate/CA
//! rotation on disk while a connection stays open. Certificates are
//! generated here with rcgen; no key is committed. The server and client
//! are in `security_support`.
mod security_support;

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use security_support::test_pki::Ca;
use security_support::{Client, Logs, NodeFiles, Server, WAIT, client_config, wait_until};
use sorcha_peer::config::SecurityConfig;
use sorcha_peer::security::{PeerTls, RefusalReason, TlsFiles};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn handshake_matrix() {
    let (logs, _guard) = Logs::capture();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (ca, other_ca) = (Ca::new("network-ca"), Ca::new("stranger-ca"));
    let revoked_serial = ca.leaf("node-4").serial(0x00c0_ffee).issue();
    let server_files = NodeFiles::new(
        root,
        "server",
        &ca.leaf("server").serial(0x5e4).issue(),
        &[&ca],
        &format!(
            "# test list\npeer node-banned  # abuse report 17\nserial 00:{}  # superseded\n",
            revoked_serial.serial_hex
        ),
    );
    let server_tls = server_files.load();
    let mut server = Server::start(&server_tls).await;
    let addr = server.addr;

    // A valid peer is accepted, speaks h2 (gRPC) by ALPN, sees our cert.
    let good = client_config(root, "good", &ca.leaf("node-1").issue(), &[&ca]);
    let mut c = Client::hello(good.clone(), addr, "node-1").await.unwrap();
    assert_eq!(
        server.next().await.unwrap().peer_id.as_deref(),
        Some("node-1")
    );
    assert_eq!(c.served_serial, "5e4");
    assert_eq!(c.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(c.say("ping").await.unwrap(), "echo ping");

    // No client certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let anonymous = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let cases: Vec<(&str, Arc<ClientConfig>, &str, RefusalReason)> = vec![
        (
            "no client certificate",
            anonymous,
            "node-1",
            RefusalReason::NoClientCertificate,
        ),
        (
            "certificate from an unknown CA",
            client_config(root, "stranger", &other_ca.leaf("node-1").issue(), &[&ca]),
            "node-1",
            RefusalReason::UnknownCa,
        ),
        (
            "expired certificate",
            client_config(
                root,
                "expired",
                &ca.leaf("node-2").expired().issue(),
                &[&ca],
            ),
            "node-2",
            RefusalReason::Expired,
        ),
        (
            "revoked by peer id",
            client_config(root, "banned", &ca.leaf("node-banned").issue(), &[&ca]),
            "node-banned",
            RefusalReason::Revoked,
        ),
        (
            "revoked by serial",
            client_config(root, "old-cert", &revoked_serial, &[&ca]),
            "node-4",
            RefusalReason::Revoked,
        ),
        (
            "certificate without a peer id",
            client_config(root, "anon", &ca.leaf("x").no_peer_id().issue(), &[&ca]),
            "x",
            RefusalReason::NoPeerId,
        ),
    ];
    for (what, cfg, id, reason) in cases {
        let err = Client::hello(cfg, addr, id).await.err();
        assert!(err.is_some(), "{what}: the client got through");
        let refusal = server.refused().await;
        assert_eq!(refusal.reason, reason, "{what}: {refusal}");
    }

    // Plaintext HTTP to the TLS port.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /api/peers HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(server.refused().await.reason, RefusalReason::NotTls);

    // A valid certificate claiming another peer's id.
    let err = Client::hello(good.clone(), addr, "node-2")
        .await
        .err()
        .unwrap();
    assert!(err.contains("node-2") && err.contains("node-1"), "{err}");
    assert!(server.next().await.is_ok(), "the handshake itself is fine");

    // The first connection was never disturbed.
    assert_eq!(c.say("still there").await.unwrap(), "echo still there");

    // Every refusal is logged with its reason (and revocations with the
    // list entry and the reason written there).
    let log = logs.text();
    for needle in [
        "reason=\"no_client_certificate\"",
        "reason=\"unknown_ca\"",
        "reason=\"expired\"",
        "reason=\"revoked\"",
        "reason=\"no_peer_id\"",
        "reason=\"not_tls\"",
        "revoked by entry \"peer node-banned\" (abuse report 17)",
        "(superseded)",
        "carries no urn:sorcha:peer:",
        "refused peer request",
        "peer claims id \"node-2\"",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in log:\n{log}");
    }
}

#[tokio::test]
async fn client_refuses_an_untrusted_or_revoked_server() {
    let (logs, _guard) = Logs::capture();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (ca, other_ca) = (Ca::new("network-ca"), Ca::new("stranger-ca"));

    // A server whose certificate comes from a CA we do not trust.
    let stranger = NodeFiles::new(root, "s1", &other_ca.leaf("evil").issue(), &[&ca], "").load();
    let s1 = Server::start(&stranger).await;
    let cfg = client_config(root, "c1", &ca.leaf("node-1").issue(), &[&ca]);
    let err = Client::hello(cfg, s1.addr, "node-1").await.err().unwrap();
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown"),
        "{err}"
    );

    // A server on our own revocation list.
    let revoked_server = ca.leaf("node-9").issue();
    let s2_tls = NodeFiles::new(root, "s2", &revoked_server, &[&ca], "").load();
    let s2 = Server::start(&s2_tls).await;
    let cfg = NodeFiles::new(
        root,
        "c2",
        &ca.leaf("node-1").issue(),
        &[&ca],
        "peer node-9 # gone",
    )
    .load()
    .client_config()
    .unwrap();
    let err = Client::hello(cfg, s2.addr, "node-1").await.err().unwrap();
    assert!(err.to_lowercase().contains("revoked"), "{err}");
    assert!(
        logs.text().contains("refusing TLS server certificate"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn client_checks_host_name_or_pinned_peer_id() {
    let (logs, _guard) = Logs::capture();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = Ca::new("network-ca");
    // The server certificate names "localhost", 127.0.0.1 and peer "node-s".
    let server_tls = NodeFiles::new(root, "s", &ca.leaf("node-s").issue(), &[&ca], "").load();
    let mut server = Server::start(&server_tls).await;
    let me = NodeFiles::new(root, "c", &ca.leaf("node-1").issue(), &[&ca], "").load();

    // Host-name mode: DNS and IP SANs match, another name does not.
    for name in ["localhost", "127.0.0.1"] {
        Client::hello_as(me.client_config().unwrap(), server.addr, name, "node-1")
            .await
            .unwrap();
        server.next().await.unwrap();
    }
    let err = Client::hello_as(
        me.client_config().unwrap(),
        server.addr,
        "peer.example",
        "node-1",
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    assert_eq!(server.refused().await.reason, RefusalReason::RejectedByPeer);

    // Pinned mode: the peer id decides, whatever address was dialled
    // (10.9.9.9 is in no SAN).
    let pinned = me.client_config_for_peer("node-s").unwrap();
    Client::hello_as(pinned, server.addr, "10.9.9.9", "node-1")
        .await
        .unwrap();
    server.next().await.unwrap();
    let wrong = me.client_config_for_peer("node-t").unwrap();
    let err = Client::hello_as(wrong, server.addr, "localhost", "node-1")
        .await
        .err()
        .unwrap();
    assert!(err.contains("node-t"), "{err}");
    assert_eq!(server.refused().await.reason, RefusalReason::RejectedByPeer);
    assert!(
        logs.text().contains("peer claims id \"node-t\""),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn pkcs12_identity_with_password_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = Ca::new("network-ca");
    // Cargo sets CARGO_PKG_NAME for the test process; it stands in for the
    // design's ${PEER_CERT_PASSWORD} without touching the environment.
    let password = std::env::var("CARGO_PKG_NAME").expect("run through cargo test");
    let leaf = ca.leaf("pfx-node").serial(0x12).issue();
    let pfx = root.join("peer.pfx");
    std::fs::write(&pfx, leaf.pkcs12(&password)).unwrap();
    std::fs::write(root.join("ca.pem"), ca.cert_pem()).unwrap();
    let cfg = SecurityConfig {
        require_mutual_tls: true,
        certificate_path: Some(pfx),
        certificate_password: Some("${CARGO_PKG_NAME}".into()),
        trusted_cas: Some(root.join("ca.pem")),
        ..SecurityConfig::default()
    };
    let server_tls = PeerTls::load(TlsFiles::from_config(&cfg).unwrap()).unwrap();
    let mut server = Server::start(&server_tls).await;
    let good = client_config(root, "good", &ca.leaf("node-1").issue(), &[&ca]);
    let c = Client::hello(good, server.addr, "node-1").await.unwrap();
    assert_eq!(c.served_serial, "12");
    server.next().await.unwrap();
}

#[tokio::test]
async fn rotation_on_disk_applies_to_new_handshakes_only() {
    let (logs, _guard) = Logs::capture();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (old_ca, new_ca) = (Ca::new("ca-2026"), Ca::new("ca-2027"));

    let server_files = NodeFiles::new(
        root,
        "server",
        &old_ca.leaf("server").serial(0x100).issue(),
        &[&old_ca],
        "",
    );
    let server_tls = server_files.load();
    let mut server = Server::start(&server_tls).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let poll = Duration::from_millis(25);
    let reloader = server_tls.spawn_reloader(poll, stop.clone(), |_| {});

    // A peer with an old-CA certificate connects and keeps its connection.
    let client_files = NodeFiles::new(
        root,
        "client",
        &old_ca.leaf("node-1").issue(),
        &[&old_ca],
        "",
    );
    let client_tls = client_files.load();
    let mut open = Client::hello(client_tls.client_config().unwrap(), server.addr, "node-1")
        .await
        .unwrap();
    server.next().await.unwrap();
    assert_eq!(open.served_serial, "100");

    // Step 1: both CAs trusted everywhere; the server gets a new-CA cert.
    client_files.set_trust(&[&old_ca, &new_ca]);
    let client_report = client_tls.reload_if_changed();
    assert!(client_report.failed.is_empty(), "{client_report:?}");
    // Handshakes and requests keep flowing while the files change; none
    // may fail.
    let traffic_stop = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let (cfg, addr) = (client_tls.client_config().unwrap(), server.addr);
        let stop = traffic_stop.clone();
        tokio::spawn(async move {
            let mut served = std::collections::BTreeSet::new();
            // Runs until stopped and until a handshake has seen the new
            // certificate.
            while !(stop.is_cancelled() && served.contains("200")) {
                let mut c = Client::hello(cfg.clone(), addr, "node-1").await.unwrap();
                assert_eq!(c.say("x").await.unwrap(), "echo x");
                served.insert(c.served_serial);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            served
        })
    };
    server_files.set_trust(&[&old_ca, &new_ca]);
    server_files.set_identity(&new_ca.leaf("server").serial(0x200).issue());
    wait_until(|| server_tls.current_certificate().unwrap().serial == "200").await;
    wait_until(|| server_tls.trusted_ca_count() == 2).await;
    traffic_stop.cancel();
    let served = tokio::time::timeout(WAIT, traffic)
        .await
        .expect("traffic saw the new certificate")
        .expect("no request failed during the reload");
    assert!(served.contains("200"), "{served:?}");
    assert!(
        served.iter().all(|s| s == "100" || s == "200"),
        "{served:?}"
    );
    let outcomes = server.drain();
    assert!(!outcomes.is_empty());
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // In-flight traffic on the open connection is unaffected.
    assert_eq!(
        open.say("during rotation").await.unwrap(),
        "echo during rotation"
    );

    // New handshakes get the new certificate; a new-CA peer is accepted.
    let new_peer = client_config(
        root,
        "new-peer",
        &new_ca.leaf("node-2").issue(),
        &[&old_ca, &new_ca],
    );
    let c2 = Client::hello(new_peer.clone(), server.addr, "node-2")
        .await
        .unwrap();
    assert_eq!(c2.served_serial, "200");
    server.next().await.unwrap();
    let c1b = Client::hello(client_tls.client_config().unwrap(), server.addr, "node-1")
        .await
        .unwrap();
    assert_eq!(c1b.served_serial, "200");
    server.next().await.unwrap();

    // Step 2: the old CA is dropped from the server's bundle. Old-CA peers
    // can no longer connect, but the connection opened before stays.
    server_files.set_trust(&[&new_ca]);
    wait_until(|| server_tls.trusted_ca_count() == 1).await;
    assert!(
        Client::hello(client_tls.client_config().unwrap(), server.addr, "node-1")
            .await
            .is_err()
    );
    assert_eq!(server.refused().await.reason, RefusalReason::UnknownCa);
    assert_eq!(
        open.say("after rotation").await.unwrap(),
        "echo after rotation"
    );

    // Step 3: a broken write keeps the working material.
    std::fs::write(
        server_files.dir.join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\ntruncated",
    )
    .unwrap();
    wait_until(|| logs.text().contains("TLS reload failed")).await;
    Client::hello(new_peer, server.addr, "node-2")
        .await
        .unwrap();
    server.next().await.unwrap();

    stop.cancel();
    reloader.await.unwrap();
    let log = logs.text();
    assert!(log.contains("reloaded TLS certificate and key"), "{log}");
    assert!(log.contains("serial=200"), "{log}");
    assert!(log.contains("reloaded TLS trust bundle"), "{log}");
    assert!(log.contains("ca.pem"), "the failed file is named: {log}");
}
