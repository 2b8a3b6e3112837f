//! Harness of the mutual-TLS integration tests: log capture, a node's TLS
//! files on disk, a tokio-rustls server behind `security::accept` and a
//! line-protocol client. After the handshake the client's first line
//! claims a peer id ("I am <id>"), checked against its certificate; then
//! every line is echoed.
#![allow(dead_code)]

#[path = "../../src/security/test_pki.rs"]
pub mod test_pki;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use sorcha_peer::config::SecurityConfig;
use sorcha_peer::security::{self, HandshakeRefusal, PeerCertificate, PeerTls, TlsFiles};
use test_pki::{Ca, Leaf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- logs

/// Captures log output. One global subscriber writes everything into one
/// buffer; a capture reads what was logged since it began. (A per-thread
/// subscriber loses events when tests run side by side: tracing caches
/// each callsite's interest across threads.) Tests in the same binary run
/// concurrently, so assertions on the text look for what only they log.
#[derive(Clone)]
pub struct Logs {
    start: usize,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

fn sink() -> &'static Sink {
    static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();
    SINK.get_or_init(|| {
        let sink = Sink::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(sub).expect("no other global subscriber");
        sink
    })
}

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

impl Logs {
    /// Starts capturing; the second value is kept for the callers' sake
    /// (`let (logs, _guard) = ..`), nothing needs dropping.
    pub fn capture() -> (Logs, ()) {
        let start = sink().0.lock().unwrap().len();
        (Logs { start }, ())
    }

    pub fn text(&self) -> String {
        let buf = sink().0.lock().unwrap();
        String::from_utf8_lossy(&buf[self.start.min(buf.len())..]).into_owned()
    }
}

// ------------------------------------------------------------- fixtures

/// A directory with one node's TLS files.
pub struct NodeFiles {
    pub dir: PathBuf,
}

impl NodeFiles {
    pub fn new(root: &Path, name: &str, leaf: &Leaf, cas: &[&Ca], revoked: &str) -> NodeFiles {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let n = NodeFiles { dir };
        n.set_identity(leaf);
        n.set_trust(cas);
        std::fs::write(n.dir.join("revoked.txt"), revoked).unwrap();
        n
    }

    pub fn set_identity(&self, leaf: &Leaf) {
        std::fs::write(self.dir.join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(self.dir.join("tls.key"), &leaf.key_pem).unwrap();
    }

    pub fn set_trust(&self, cas: &[&Ca]) {
        let pem: String = cas.iter().map(|c| c.cert_pem()).collect();
        std::fs::write(self.dir.join("ca.pem"), pem).unwrap();
    }

    pub fn config(&self) -> SecurityConfig {
        SecurityConfig {
            require_mutual_tls: true,
            certificate_path: Some(self.dir.join("tls.crt")),
            private_key_path: Some(self.dir.join("tls.key")),
            trusted_cas: Some(self.dir.join("ca.pem")),
            revocation_list_path: Some(self.dir.join("revoked.txt")),
            ..SecurityConfig::default()
        }
    }

    pub fn load(&self) -> Arc<PeerTls> {
        PeerTls::load(TlsFiles::from_config(&self.config()).unwrap()).unwrap()
    }
}

// --------------------------------------------------------------- server

pub type Outcome = Result<PeerCertificate, HandshakeRefusal>;

pub struct Server {
    pub addr: SocketAddr,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
}

impl Server {
    pub async fn start(tls: &PeerTls) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(tls.server_config().unwrap());
        let (tx, outcomes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, remote) = listener.accept().await.unwrap();
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match security::accept(&acceptor, tcp, remote, WAIT).await {
                        Ok((stream, cert)) => {
                            let _ = tx.send(Ok(cert.clone()));
                            serve(stream, cert).await;
                        }
                        Err(refusal) => {
                            let _ = tx.send(Err(refusal));
                        }
                    }
                });
            }
        });
        Server { addr, outcomes }
    }

    pub async fn next(&mut self) -> Outcome {
        tokio::time::timeout(WAIT, self.outcomes.recv())
            .await
            .expect("no handshake outcome")
            .unwrap()
    }

    pub async fn refused(&mut self) -> HandshakeRefusal {
        match self.next().await {
            Err(r) => r,
            Ok(c) => panic!("accepted {c:?}"),
        }
    }

    /// Outcomes already reported (each is sent before the server answers
    /// the client's first line, so a finished exchange's is here).
    pub fn drain(&mut self) -> Vec<Outcome> {
        std::iter::from_fn(|| self.outcomes.try_recv().ok()).collect()
    }
}

pub async fn serve(stream: tokio_rustls::server::TlsStream<TcpStream>, cert: PeerCertificate) {
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = BufReader::new(r).lines();
    let Ok(Some(first)) = lines.next_line().await else {
        return;
    };
    let claimed = first.strip_prefix("I am ").unwrap_or_default();
    if let Err(e) = cert.check_claimed_peer_id(claimed) {
        tracing::warn!(error = %e, "refused peer request");
        let _ = w.write_all(format!("refused: {e}\n").as_bytes()).await;
        let _ = w.shutdown().await;
        return;
    }
    let _ = w.write_all(b"welcome\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        if w.write_all(format!("echo {line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

// --------------------------------------------------------------- client

pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

pub struct Client {
    lines: Lines<BufReader<ReadHalf<ClientStream>>>,
    w: WriteHalf<ClientStream>,
    /// Serial of the certificate the server presented.
    pub served_serial: String,
    pub alpn: Option<Vec<u8>>,
}

impl Client {
    /// Handshake, then claim `peer_id`; `Err` carries the reason text of a
    /// failed handshake or the server's refusal line.
    pub async fn hello(
        cfg: Arc<ClientConfig>,
        addr: SocketAddr,
        peer_id: &str,
    ) -> Result<Client, String> {
        Self::hello_as(cfg, addr, "localhost", peer_id).await
    }

    /// As `hello`, dialling `server_name` (the name the server's certificate
    /// is checked against in host-name mode).
    pub async fn hello_as(
        cfg: Arc<ClientConfig>,
        addr: SocketAddr,
        server_name: &str,
        peer_id: &str,
    ) -> Result<Client, String> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let stream = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let conn = stream.get_ref().1;
        let served = PeerCertificate::from_der(&conn.peer_certificates().unwrap()[0]).unwrap();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let (r, w) = tokio::io::split(stream);
        let mut c = Client {
            lines: BufReader::new(r).lines(),
            w,
            served_serial: served.serial,
            alpn,
        };
        // TLS 1.3: the server judges our certificate after we consider the
        // handshake done, so its refusal arrives on the first read.
        match c.say(&format!("I am {peer_id}")).await? {
            s if s == "welcome" => Ok(c),
            other => Err(other),
        }
    }

    pub async fn say(&mut self, line: &str) -> Result<String, String> {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Err(_) => Err("no answer".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(None)) => Err("connection closed".into()),
            Ok(Ok(Some(l))) => Ok(l),
        }
    }
}

/// A client presenting `leaf` and trusting `cas`.
pub fn client_config(root: &Path, name: &str, leaf: &Leaf, cas: &[&Ca]) -> Arc<ClientConfig> {
    NodeFiles::new(root, name, leaf, cas, "")
        .load()
        .client_config()
        .unwrap()
}

/// Polls `cond` (a reload is a background event with no notification).
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
