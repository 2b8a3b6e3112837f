//! Certificates for `--tls on` in the gossip benchmark (`#[path]`-included).

#[path = "../../src/security/test_pki.rs"]
mod test_pki;

/// Mutual TLS for a benchmark network: one CA, and for each node a
/// certificate (peer id `bench-<i>`) written under `root`.
pub struct BenchPki {
    ca: test_pki::Ca,
    root: std::path::PathBuf,
}

impl BenchPki {
    pub fn new(root: &std::path::Path) -> Self {
        let root = root.join("pki");
        std::fs::create_dir_all(&root).unwrap();
        let ca = test_pki::Ca::new("bench network");
        std::fs::write(root.join("ca.pem"), ca.cert_pem()).unwrap();
        BenchPki { ca, root }
    }

    /// Turns on mutual TLS in `security` with a new certificate for node `i`.
    pub fn enable(&self, i: usize, security: &mut sorcha_peer::config::SecurityConfig) {
        let leaf = self.ca.leaf(&format!("bench-{i}")).issue();
        let cert = self.root.join(format!("{i}.crt"));
        let key = self.root.join(format!("{i}.key"));
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        security.require_mutual_tls = true;
        security.certificate_path = Some(cert);
        security.private_key_path = Some(key);
        security.trusted_cas = Some(self.root.join("ca.pem"));
    }
}
