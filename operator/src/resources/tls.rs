//! TLS objects: the generated CA's Secret, each peer's Secret (`tls.crt`,
//! `tls.key`, `ca.crt`: the convention the peer reads) and the trust-bundle
//! ConfigMap (`ca.pem`: PEM concatenation of every trusted CA).
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{Net, TRUST_KEY};
use crate::pki::{CaSet, PeerCert};

/// On each peer Secret: fingerprint of the CA that signed it.
pub const ISSUER_ANNOTATION: &str = "sorcha.dev/issuer-fingerprint";

fn secret(
    net: &Net,
    name: String,
    data: &[(&str, &str)],
    annotations: Option<BTreeMap<String, String>>,
) -> Secret {
    let mut meta = net.meta(name);
    meta.annotations = annotations;
    Secret {
        metadata: meta,
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The generated CA; during a rotation also `next.crt`/`next.key`.
pub fn ca_secret(net: &Net, ca: &CaSet) -> Secret {
    let mut data = vec![
        ("tls.crt", ca.current.cert_pem.as_str()),
        ("tls.key", ca.current.key_pem.as_str()),
    ];
    if let Some(n) = &ca.next {
        data.push(("next.crt", n.cert_pem.as_str()));
        data.push(("next.key", n.key_pem.as_str()));
    }
    secret(net, net.ca_secret_name(), &data, None)
}

/// `signer_pem` is the CA certificate that issued `cert`.
pub fn peer_tls_secret(net: &Net, ordinal: i32, cert: &PeerCert, signer_pem: &str) -> Secret {
    secret(
        net,
        net.peer_tls_secret_name(ordinal),
        &[
            ("tls.crt", &cert.cert.cert_pem),
            ("tls.key", &cert.cert.key_pem),
            ("ca.crt", signer_pem),
        ],
        Some(BTreeMap::from([(
            ISSUER_ANNOTATION.to_owned(),
            cert.issuer_fingerprint.clone(),
        )])),
    )
}

pub fn trust_bundle(net: &Net, bundle_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: net.meta(net.trust_name()),
        data: Some(BTreeMap::from([(
            TRUST_KEY.to_owned(),
            bundle_pem.to_owned(),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{KeyedCert, generate_ca};
    use crate::resources::fixtures::mk_network;

    fn ca() -> KeyedCert {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        generate_ca("alpha", now, std::time::Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn ca_secret_carries_next_only_during_rotation() {
        let n = mk_network(1);
        let net = Net::new(&n, "cluster.local").unwrap();
        let set = CaSet {
            current: ca(),
            next: None,
        };
        let s = ca_secret(&net, &set);
        assert_eq!(s.metadata.name.as_deref(), Some("alpha-ca"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert!(!s.data.as_ref().unwrap().contains_key("next.crt"));
        let s = ca_secret(
            &net,
            &CaSet {
                next: Some(ca()),
                ..set
            },
        );
        assert!(s.data.unwrap().contains_key("next.key"));
    }

    #[test]
    fn peer_secret_keys_and_issuer() {
        let n = mk_network(2);
        let net = Net::new(&n, "cluster.local").unwrap();
        let c = ca();
        let pc = PeerCert {
            cert: c.clone(),
            issuer_fingerprint: "ab".into(),
        };
        let s = peer_tls_secret(&net, 1, &pc, &c.cert_pem);
        assert_eq!(s.metadata.name.as_deref(), Some("alpha-1-tls"));
        let keys: Vec<_> = s.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(s.metadata.annotations.unwrap()[ISSUER_ANNOTATION], "ab");
        assert_eq!(s.metadata.owner_references.unwrap()[0].uid, "uid-alpha");
        let t = trust_bundle(&net, "PEM");
        assert_eq!(t.data.unwrap()["ca.pem"], "PEM");
    }
}
