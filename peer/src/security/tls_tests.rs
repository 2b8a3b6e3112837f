//! Tests of `tls.rs` and `reload.rs` that need no socket: loading from
//! configuration, and what each kind of file change does.
use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::security::reload::Part;
use crate::security::test_pki::{Ca, Leaf};

struct Fixture {
    dir: tempfile::TempDir,
    ca: Ca,
    tls: Arc<PeerTls>,
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap();
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let leaf = ca.leaf("node-1").serial(1).issue();
    install(dir.path(), &leaf);
    write(&dir.path().join("ca.pem"), ca.cert_pem());
    write(&dir.path().join("revoked.txt"), "");
    let cfg = SecurityConfig {
        require_mutual_tls: true,
        certificate_path: Some(dir.path().join("tls.crt")),
        private_key_path: Some(dir.path().join("tls.key")),
        trusted_cas: Some(dir.path().join("ca.pem")),
        revocation_list_path: Some(dir.path().join("revoked.txt")),
        ..SecurityConfig::default()
    };
    let tls = PeerTls::load(TlsFiles::from_config(&cfg).unwrap()).unwrap();
    Fixture { dir, ca, tls }
}

fn install(dir: &Path, leaf: &Leaf) {
    write(&dir.join("tls.crt"), &leaf.cert_pem);
    write(&dir.join("tls.key"), &leaf.key_pem);
}

fn serial(tls: &PeerTls) -> String {
    tls.current_certificate().unwrap().serial
}

#[test]
fn loads_and_builds_configs() {
    let f = fixture();
    assert_eq!(serial(&f.tls), "1");
    assert_eq!(f.tls.trusted_ca_count(), 1);
    let server = f.tls.server_config().unwrap();
    assert_eq!(
        server.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert_eq!(server.send_tls13_tickets, 0);
    let client = f.tls.client_config().unwrap();
    assert_eq!(client.alpn_protocols, server.alpn_protocols);
    // Nothing changed: nothing reloaded, nothing failed.
    let r = f.tls.reload_if_changed();
    assert!(r.reloaded.is_empty() && r.failed.is_empty(), "{r:?}");
}

#[test]
fn operator_layout_finds_the_key_beside_the_certificate() {
    // What the operator mounts: tls.crt and tls.key in the pod's directory,
    // and only CertificatePath + TrustedCAs in the configuration.
    let f = fixture();
    let cfg = SecurityConfig {
        require_mutual_tls: true,
        certificate_path: Some(f.dir.path().join("tls.crt")),
        trusted_cas: Some(f.dir.path().join("ca.pem")),
        ..SecurityConfig::default()
    };
    let files = TlsFiles::from_config(&cfg).unwrap();
    assert_eq!(
        files.identity.private_key.as_deref(),
        Some(f.dir.path().join("tls.key").as_path())
    );
    assert_eq!(serial(&PeerTls::load(files).unwrap()), "1");
    // A PKCS#12 file never gets a sibling key; an explicit path wins.
    let pfx = SecurityConfig {
        certificate_path: Some(f.dir.path().join("tls.pfx")),
        ..cfg.clone()
    };
    assert_eq!(
        TlsFiles::from_config(&pfx).unwrap().identity.private_key,
        None
    );
    let explicit = SecurityConfig {
        private_key_path: Some("/elsewhere.key".into()),
        ..cfg
    };
    assert_eq!(
        TlsFiles::from_config(&explicit)
            .unwrap()
            .identity
            .private_key,
        Some("/elsewhere.key".into())
    );
}

#[test]
fn from_config_needs_paths_and_password_variable() {
    let e = TlsFiles::from_config(&SecurityConfig::default()).unwrap_err();
    assert!(e.to_string().contains("CertificatePath"), "{e}");
    let cfg = SecurityConfig {
        certificate_path: Some("peer.pfx".into()),
        trusted_cas: Some("ca.pem".into()),
        certificate_password: Some("${SORCHA_TEST_UNSET_VAR_91B2}".into()),
        ..SecurityConfig::default()
    };
    let e = TlsFiles::from_config(&cfg).unwrap_err();
    assert_eq!(e.label(), "certificate_password");
    assert!(e.to_string().contains("SORCHA_TEST_UNSET_VAR_91B2"), "{e}");
}

#[test]
fn changed_identity_is_swapped_in() {
    let f = fixture();
    install(f.dir.path(), &f.ca.leaf("node-1").serial(2).issue());
    let r = f.tls.reload_if_changed();
    assert_eq!(r.reloaded, vec![Part::Identity]);
    assert_eq!(serial(&f.tls), "2");
}

#[test]
fn half_written_rotation_keeps_the_old_identity_until_complete() {
    let f = fixture();
    let next = f.ca.leaf("node-1").serial(3).issue();
    // New certificate, old key.
    write(&f.dir.path().join("tls.crt"), &next.cert_pem);
    let r = f.tls.reload_if_changed();
    assert!(r.reloaded.is_empty());
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, Part::Identity);
    assert_eq!(r.failed[0].1.label(), "key_mismatch");
    assert_eq!(serial(&f.tls), "1");
    // Polling again retries (and fails the same way, logged once).
    assert_eq!(f.tls.reload_if_changed().failed.len(), 1);
    // The key lands: the next poll completes the rotation.
    write(&f.dir.path().join("tls.key"), &next.key_pem);
    assert_eq!(f.tls.reload_if_changed().reloaded, vec![Part::Identity]);
    assert_eq!(serial(&f.tls), "3");
}

#[test]
fn trust_bundle_and_revocation_reload_independently() {
    let f = fixture();
    let ca2 = Ca::new("ca2");
    write(
        &f.dir.path().join("ca.pem"),
        format!("{}{}", f.ca.cert_pem(), ca2.cert_pem()),
    );
    write(&f.dir.path().join("revoked.txt"), "peer node-7 # test\n");
    let r = f.tls.reload_if_changed();
    assert_eq!(r.reloaded, vec![Part::TrustBundle, Part::RevocationList]);
    assert_eq!(f.tls.trusted_ca_count(), 2);
    let mut node7 = f.tls.current_certificate().unwrap();
    node7.peer_id = Some("node-7".into());
    node7.serial = "77".into();
    assert_eq!(f.tls.revoked(&node7).unwrap().reason, "test");

    // A broken bundle is refused while a new revocation entry still applies.
    write(&f.dir.path().join("ca.pem"), "garbage");
    write(&f.dir.path().join("revoked.txt"), "serial 1\n");
    let r = f.tls.reload_if_changed();
    assert_eq!(r.reloaded, vec![Part::RevocationList]);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, Part::TrustBundle);
    assert_eq!(f.tls.trusted_ca_count(), 2);
    let me = f.tls.current_certificate().unwrap();
    assert!(f.tls.revoked(&me).is_some());
    assert!(f.tls.revoked(&node7).is_none());

    // A broken revocation list keeps the previous one.
    write(&f.dir.path().join("revoked.txt"), "ban everyone\n");
    let r = f.tls.reload_if_changed();
    let (_, e) = r
        .failed
        .iter()
        .find(|(p, _)| *p == Part::RevocationList)
        .unwrap();
    assert_eq!(e.label(), "revocation_syntax");
    assert!(f.tls.revoked(&me).is_some());
}

#[test]
fn deleted_file_keeps_material_and_reports() {
    let f = fixture();
    std::fs::remove_file(f.dir.path().join("tls.key")).unwrap();
    let r = f.tls.reload_if_changed();
    assert_eq!(r.failed[0].1.label(), "security_file_read");
    assert_eq!(serial(&f.tls), "1");
}

#[tokio::test]
async fn reloader_polls_until_shutdown() {
    let f = fixture();
    let stop = tokio_util::sync::CancellationToken::new();
    let interval = std::time::Duration::from_millis(20);
    let task = f.tls.spawn_reloader(interval, stop.clone(), |_| {});
    install(f.dir.path(), &f.ca.leaf("node-1").serial(9).issue());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while serial(&f.tls) != "9" {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(interval).await;
    }
    stop.cancel();
    task.await.unwrap();
}

/// Log lines written while `f` runs on this thread.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || buf.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(sub, || {
        // Another test thread may have registered a callsite while no
        // subscriber wanted it; its cached "never" would hide the line.
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn each_failure_is_logged_once_until_it_changes_or_clears() {
    let f = fixture();
    let ca_file = f.dir.path().join("ca.pem");
    let good = std::fs::read(&ca_file).unwrap();
    let log = logged(|| {
        write(&ca_file, "garbage");
        for _ in 0..3 {
            assert_eq!(f.tls.reload_if_changed().failed.len(), 1);
        }
    });
    assert_eq!(log.matches("TLS reload failed").count(), 1, "{log}");
    assert!(log.contains("ca.pem"), "{log}");
    // Reverted to what is in use: nothing to do, the failure is forgotten,
    // so the same mistake made again is logged again.
    let log = logged(|| {
        write(&ca_file, &good);
        let r = f.tls.reload_if_changed();
        assert!(r.failed.is_empty() && r.reloaded.is_empty(), "{r:?}");
        write(&ca_file, "garbage");
        f.tls.reload_if_changed();
    });
    assert_eq!(log.matches("TLS reload failed").count(), 1, "{log}");
}
