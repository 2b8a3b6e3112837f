//! Tests of `identity.rs` and of reading identities back (`peer_cert.rs`).
use super::*;
use crate::security::peer_cert::PeerCertificate;
use crate::security::test_pki::Ca;

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn pem_files(cert: PathBuf, key: Option<PathBuf>) -> IdentityFiles {
    IdentityFiles {
        certificate: cert,
        private_key: key,
        password: None,
    }
}

#[test]
fn loads_pem_chain_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let leaf = ca.leaf("node-1").serial(0xabc).issue();
    let chain = format!("{}{}", leaf.cert_pem, ca.cert_pem());
    let files = pem_files(
        write(dir.path(), "tls.crt", chain),
        Some(write(dir.path(), "tls.key", &leaf.key_pem)),
    );
    let key = load_identity(&files, &provider()).unwrap();
    assert_eq!(key.cert.len(), 2);
    let cert = PeerCertificate::from_der(&key.cert[0]).unwrap();
    assert_eq!(cert.peer_id.as_deref(), Some("node-1"));
    assert_eq!(cert.serial, "abc");
    assert_eq!(cert.dns_names, vec!["localhost".to_string()]);
    assert!(cert.not_after > std::time::SystemTime::now());
}

#[test]
fn loads_combined_pem_without_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = Ca::new("ca").leaf("node-1").issue();
    let both = format!("{}{}", leaf.cert_pem, leaf.key_pem);
    let files = pem_files(write(dir.path(), "combined.pem", both), None);
    load_identity(&files, &provider()).unwrap();
}

#[test]
fn loads_pkcs12_with_password() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = Ca::new("ca").leaf("node-9").issue();
    let pfx = write(dir.path(), "peer.pfx", leaf.pkcs12("s3cret"));
    let mut files = pem_files(pfx, None);
    files.password = Some("s3cret".into());
    let key = load_identity(&files, &provider()).unwrap();
    assert_eq!(key.cert.len(), 2, "leaf and CA");
    assert_eq!(
        PeerCertificate::from_der(&key.cert[0])
            .unwrap()
            .peer_id
            .as_deref(),
        Some("node-9")
    );
    // Wrong password: named file, hint at the password.
    files.password = Some("wrong".into());
    let e = load_identity(&files, &provider()).unwrap_err().to_string();
    assert!(
        e.contains("peer.pfx") && e.contains("CertificatePassword"),
        "{e}"
    );
    // The password never shows in Debug output.
    assert!(!format!("{files:?}").contains("wrong"));
}

#[test]
fn bad_identity_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let (a, b) = (ca.leaf("a").issue(), ca.leaf("b").issue());
    let cert = write(dir.path(), "a.crt", &a.cert_pem);

    // Key of another certificate: a half-done rotation.
    let e = load_identity(
        &pem_files(cert.clone(), Some(write(dir.path(), "b.key", &b.key_pem))),
        &provider(),
    )
    .unwrap_err();
    assert_eq!(e.label(), "key_mismatch", "{e}");
    assert!(e.to_string().contains("b.key"), "{e}");

    // No key anywhere.
    let e = load_identity(&pem_files(cert.clone(), None), &provider()).unwrap_err();
    assert!(e.to_string().contains("Security.PrivateKeyPath"), "{e}");

    // Key file that is a certificate.
    let e = load_identity(
        &pem_files(cert.clone(), Some(write(dir.path(), "x.key", &a.cert_pem))),
        &provider(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("x.key") && e.to_string().contains("PRIVATE KEY"),
        "{e}"
    );

    // Missing file.
    let e = load_identity(&pem_files(dir.path().join("nope.crt"), None), &provider()).unwrap_err();
    assert_eq!(e.label(), "security_file_read");
    assert!(e.to_string().contains("nope.crt"), "{e}");

    // Neither PEM nor PKCS#12.
    let e = load_identity(
        &pem_files(write(dir.path(), "junk.crt", b"\x00\x01junk"), None),
        &provider(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("PKCS#12"), "{e}");
}

#[test]
fn peer_id_extraction_edge_cases() {
    let ca = Ca::new("ca");
    let anonymous = ca.leaf("x").no_peer_id().issue();
    let c = PeerCertificate::from_der(&anonymous.der).unwrap();
    assert_eq!(c.peer_id, None);
    let e = PeerCertificate::authenticated(Some(std::slice::from_ref(&anonymous.der))).unwrap_err();
    assert!(e.to_string().contains("urn:sorcha:peer:"), "{e}");

    let two = ca.leaf("a").extra_uri("urn:sorcha:peer:b").issue();
    let e = PeerCertificate::from_der(&two.der).unwrap_err();
    assert!(e.to_string().contains("exactly one peer"), "{e}");

    let other_uri = ca.leaf("a").extra_uri("spiffe://x/y").issue();
    assert_eq!(
        PeerCertificate::from_der(&other_uri.der)
            .unwrap()
            .peer_id
            .as_deref(),
        Some("a")
    );

    let bad = ca
        .leaf("a")
        .no_peer_id()
        .extra_uri("urn:sorcha:peer:")
        .issue();
    assert!(PeerCertificate::from_der(&bad.der).is_err());
    assert!(PeerCertificate::from_der(&CertificateDer::from(vec![1, 2, 3])).is_err());
}
