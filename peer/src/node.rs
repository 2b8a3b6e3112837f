//! The orchestrator: opens the store, binds the one listener, starts the
//! servers and the discovery engine, and shuts them down cleanly.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::serve::{Listener, ListenerMetrics};
use crate::client::PeerClient;
use crate::comm::Connector;
use crate::config::PeerServiceConfig;
use crate::discovery::engine::Engine;
use crate::discovery::membership::{Capabilities, PeerDescription};
use crate::discovery::{FLUSH_INTERVAL, Membership};
use crate::events::EventKind;
use crate::security::clock::MonotonicClock;
use crate::security::{ConnectionRateLimiter, PeerTls, TlsFiles};
use crate::store::Store;
use crate::tx::distributor::Distributor;
use crate::{Error, Result};

/// A running node. Dropping it without `shutdown` leaves tasks running
/// until the runtime ends.
pub struct NodeHandle {
    pub local_addr: SocketAddr,
    pub membership: Arc<Membership>,
    pub distributor: Arc<Distributor>,
    /// The communication manager: negotiated protocols, circuit breakers.
    pub comm: Arc<crate::comm::Comm>,
    /// The node's TLS material when mutual TLS is on.
    pub tls: Option<Arc<PeerTls>>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    pub fn node_id(&self) -> &str {
        self.membership.id()
    }

    /// URL other peers and the CLI use to reach this node (`https://`
    /// with mutual TLS).
    pub fn url(&self) -> String {
        crate::comm::peer_url(
            self.tls.is_some(),
            &self.membership.me().address,
            self.local_addr.port(),
        )
    }

    /// Stops discovery and the listener; waits up to 5 s for in-flight
    /// requests before aborting them.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for mut task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// Fault injection for tests and benchmarks; the default is a normal node.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share (0..1) of transaction-distribution messages lost, both the
    /// calls this node makes and the calls it receives.
    pub drop_tx_messages: f64,
    /// Serve every StreamTransaction corrupted (one byte flipped), after
    /// holding it back for a while: a bad peer for the re-fetch test.
    pub corrupt_streams: Option<StreamCorruption>,
}

#[derive(Debug, Clone, Default)]
pub struct StreamCorruption {
    /// How long each corrupted stream is held before its first chunk.
    pub delay: std::time::Duration,
    /// Streams served so far.
    pub served: Arc<std::sync::atomic::AtomicUsize>,
}

pub async fn start(cfg: PeerServiceConfig) -> Result<NodeHandle> {
    start_with(cfg, Faults::default()).await
}

pub async fn start_with(cfg: PeerServiceConfig, faults: Faults) -> Result<NodeHandle> {
    let tls = match cfg.security.require_mutual_tls {
        true => Some(PeerTls::load(TlsFiles::from_config(&cfg.security)?)?),
        false => None,
    };
    let store = Store::open(&cfg.data_directory)?;
    let node_id = store.node_id(node_id(&cfg, tls.as_deref())?.as_deref())?;
    let connector = match &tls {
        Some(t) => Connector::mutual_tls(t.clone(), cfg.communication.connection_timeout),
        None => Connector::plaintext(cfg.communication.connection_timeout),
    };
    let bind = format!("{}:{}", cfg.listen_address, cfg.listen_port);
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|source| Error::Bind {
            addr: bind.clone(),
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr: bind, source })?;
    // The design's first step: the node learns the address peers should
    // dial before it bootstraps, so its first RegisterPeer carries it.
    let address_opts = crate::address::DiscoverOptions::new(
        Some(local_addr.ip()),
        cfg.network_address.lookup_timeout_seconds,
    );
    let first_address = crate::address::discover(&cfg.network_address, address_opts).await;
    let me = PeerDescription {
        peer_id: node_id,
        address: first_address.external_address.clone(),
        port: local_addr.port(),
        // What this node serves, down from its PreferredProtocol.
        supported_protocols: cfg.communication.preferred_protocol.advertised(),
        last_seen: 0,
        capabilities: Capabilities {
            supports_streaming: false,
            // A read-only node advertises that it does not distribute, so
            // peers without mTLS know to refuse its announcements.
            supports_transaction_distribution: cfg.role.distributes(),
            max_transaction_size: i32::try_from(cfg.transaction_distribution.max_transaction_size)
                .unwrap_or(i32::MAX),
        },
    };
    let membership = Arc::new(Membership::new(me, cfg.peer_discovery.clone(), store)?);
    tracing::info!(node_id = %membership.id(), %local_addr, advertised = %membership.me().address, "node listening");

    let shutdown = CancellationToken::new();
    let comm = crate::comm::Comm::new(&cfg.communication, membership.clone(), connector.clone());
    let distributor = Distributor::open(
        cfg.transaction_distribution.clone(),
        &cfg.offline_mode,
        &cfg.data_directory,
        membership.clone(),
        comm.clone(),
        &faults,
    )?;
    let admin_auth = crate::security::AdminAuth::from_config(&cfg.security)?;
    let guard = Arc::new(crate::api::guard::Guard::from_config(
        &cfg,
        membership.clone(),
    ));
    distributor.set_peer_observer(guard.clone());
    let app = crate::api::router(
        membership.clone(),
        distributor.clone(),
        &faults,
        admin_auth,
        cfg.communication.preferred_protocol,
        guard,
        shutdown.clone(),
    );
    let listener = Listener {
        tcp: listener,
        tls: tls.clone(),
        handshake_timeout: cfg.communication.connection_timeout,
        connection_limit: Arc::new(ConnectionRateLimiter::new(
            cfg.security.max_connections_per_minute,
            Arc::new(MonotonicClock::default()),
            MAX_TRACKED_SOURCES,
        )),
        metrics: ListenerMetrics::of(&membership.metrics),
    };
    let server = tokio::spawn({
        let stop = shutdown.clone();
        async move {
            if let Err(e) = listener.serve(app, stop).await {
                tracing::error!(error = %e, "listener failed");
            }
        }
    });
    let client = PeerClient::new(comm.clone(), cfg.peer_discovery.peer_timeout_seconds);
    let engine = tokio::spawn(Engine::new(membership.clone(), client).run(shutdown.clone()));
    let flusher = tokio::spawn(flush_periodically(membership.clone(), shutdown.clone()));
    tracing::info!(
        external = %first_address.external_address,
        method = first_address.method.as_str(),
        nat = first_address.nat_type.as_str(),
        "external address discovered"
    );
    let recheck = crate::address::recheck::Recheck {
        membership: membership.clone(),
        cfg: cfg.network_address.clone(),
        bound: local_addr.ip(),
        port: local_addr.port(),
        connector: connector.clone(),
    };
    let address_task = recheck.start(first_address, shutdown.clone());
    let distribution = tokio::spawn(distributor.clone().run(shutdown.clone()));
    let mut tasks = vec![engine, server, flusher, address_task, distribution];
    if let Some(tls) = &tls {
        tasks.push(reload_tls(
            tls,
            cfg.security.reload_interval_seconds,
            membership.clone(),
            shutdown.clone(),
        ));
    }
    // In a pod only: reports to this peer's SorchaPeer status.
    tasks.extend(crate::k8s::start_in_pod(
        &cfg.security,
        membership.clone(),
        distributor.clone(),
        shutdown.clone(),
    ));
    Ok(NodeHandle {
        local_addr,
        membership,
        distributor,
        comm,
        tls,
        shutdown,
        tasks,
    })
}

/// Sources the connection-rate limiter remembers at once; beyond that the
/// idle ones, then the least recent, are forgotten.
const MAX_TRACKED_SOURCES: usize = 65_536;

/// The node id: `NodeId` when set, else the peer id of the certificate
/// (mutual TLS), else the stored or a new random one. With mutual TLS, a
/// `NodeId` that is not the certificate's peer id is a configuration
/// error: peers identify each other by the certificate.
fn node_id(cfg: &PeerServiceConfig, tls: Option<&PeerTls>) -> Result<Option<String>> {
    let Some(tls) = tls else {
        return Ok(cfg.node_id.clone());
    };
    let cert = tls.current_certificate()?;
    let Some(cert_id) = cert.peer_id else {
        return Err(crate::security::SecurityError::PeerCertificate(format!(
            "PeerService.Security.CertificatePath: the certificate (serial {}) carries no \
             {}<peer-id> URI SAN, so peers could not identify this node",
            cert.serial,
            crate::security::PEER_ID_URI_PREFIX
        ))
        .into());
    };
    match &cfg.node_id {
        Some(id) if *id != cert_id => {
            Err(crate::security::SecurityError::PeerCertificate(format!(
                "PeerService.NodeId is {id:?} but the certificate names peer {cert_id:?}; \
             with mutual TLS they must be equal (or leave NodeId unset)"
            ))
            .into())
        }
        _ => Ok(Some(cert_id)),
    }
}

/// Polls the TLS files every `interval`; each change is an event and a
/// metric, whether it applied or was refused.
fn reload_tls(
    tls: &Arc<PeerTls>,
    interval: Duration,
    m: Arc<Membership>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tls.spawn_reloader(interval, shutdown, move |report| {
        for part in &report.reloaded {
            m.metrics
                .tls_reloads
                .with_label_values(&[part.label(), "applied"])
                .inc();
            m.events.record(
                EventKind::TlsReloaded,
                None,
                format!("{} re-read from disk; new connections use it", part.label()),
            );
        }
        for (part, e) in report
            .failed
            .iter()
            .filter(|(p, _)| report.new_failures.contains(p))
        {
            m.metrics
                .tls_reloads
                .with_label_values(&[part.label(), "failed"])
                .inc();
            m.events.record(
                EventKind::Error,
                None,
                format!("{} changed on disk but was not applied: {e}", part.label()),
            );
        }
    })
}

/// Persists peer-list changes every `FLUSH_INTERVAL`, and once more after
/// shutdown so a clean stop loses nothing.
async fn flush_periodically(m: Arc<Membership>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        if let Err(e) = m.flush() {
            m.events.record(
                crate::events::EventKind::Error,
                None,
                format!("persisting the peer list: {e}"),
            );
        }
        if stopping {
            return;
        }
    }
}
