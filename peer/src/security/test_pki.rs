//! Test PKI built with rcgen at run time: CAs and peer certificates with
//! chosen peer ids, serials and validity, so no key is ever committed.
//! Shared by the unit tests and `tests/security_tls.rs` (included there by
//! path), hence no `crate::` paths here.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

pub struct Ca {
    pub name: String,
    params: CertificateParams,
    key: KeyPair,
    pub cert: rcgen::Certificate,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(365);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            name: name.into(),
            params,
            key,
            cert,
        }
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A peer certificate for `peer_id` valid for `localhost` and
    /// 127.0.0.1; adjust with the builder methods, then `issue()`.
    pub fn leaf(&self, peer_id: &str) -> LeafBuilder<'_> {
        LeafBuilder {
            ca: self,
            peer_id: Some(peer_id.into()),
            extra_uris: vec![],
            dns: vec!["localhost".into()],
            serial: rand_serial(),
            not_before: OffsetDateTime::now_utc() - Duration::hours(1),
            not_after: OffsetDateTime::now_utc() + Duration::days(30),
        }
    }
}

fn rand_serial() -> u64 {
    // Distinct serials per certificate; the value does not matter.
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0x1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub struct LeafBuilder<'a> {
    ca: &'a Ca,
    peer_id: Option<String>,
    extra_uris: Vec<String>,
    dns: Vec<String>,
    serial: u64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl LeafBuilder<'_> {
    pub fn serial(mut self, s: u64) -> Self {
        self.serial = s;
        self
    }

    pub fn no_peer_id(mut self) -> Self {
        self.peer_id = None;
        self
    }

    pub fn extra_uri(mut self, uri: &str) -> Self {
        self.extra_uris.push(uri.into());
        self
    }

    pub fn expired(mut self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.not_before = now - Duration::days(10);
        self.not_after = now - Duration::days(1);
        self
    }

    pub fn issue(self) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            self.peer_id.as_deref().unwrap_or("anonymous"),
        );
        let mut sans = Vec::new();
        if let Some(id) = &self.peer_id {
            sans.push(SanType::URI(
                format!("urn:sorcha:peer:{id}").try_into().unwrap(),
            ));
        }
        for u in &self.extra_uris {
            sans.push(SanType::URI(u.clone().try_into().unwrap()));
        }
        for d in &self.dns {
            sans.push(SanType::DnsName(d.clone().try_into().unwrap()));
        }
        sans.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.subject_alt_names = sans;
        params.serial_number = Some(SerialNumber::from(self.serial));
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca.params, &self.ca.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            der: cert.der().clone(),
            ca_der: self.ca.cert.der().clone(),
            serial_hex: format!("{:x}", self.serial),
        }
    }
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// PKCS#8.
    pub key_der: Vec<u8>,
    pub der: CertificateDer<'static>,
    ca_der: CertificateDer<'static>,
    /// Normalized (lowercase, no leading zeros).
    pub serial_hex: String,
}

impl Leaf {
    /// A PKCS#12 bundle of key, certificate and issuing CA.
    pub fn pkcs12(&self, password: &str) -> Vec<u8> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let chain = PrivateKeyChain::new(
            self.serial_hex.as_str(),
            PrivateKey::from_der(&self.key_der).unwrap(),
            [
                Certificate::from_der(&self.der).unwrap(),
                Certificate::from_der(&self.ca_der).unwrap(),
            ],
        );
        let mut store = KeyStore::new();
        store.add_entry("peer", KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(password).write().unwrap()
    }
}
