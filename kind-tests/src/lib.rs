//! Helpers for the end-to-end suite in `tests/`: finding the cluster that
//! `kind-tests/run.sh` prepared (or saying in one line why there is none),
//! waiting on conditions, and talking HTTPS to a peer pod through a
//! port-forward with that peer's own certificate (the peers require mutual
//! TLS).
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sorcha_operator::crd::SorchaNetwork;

/// Name of the kind cluster; set by `run.sh`. Without it the suite skips.
pub const CLUSTER_ENV: &str = "SORCHA_KIND_CLUSTER";
/// Namespace the suite works in (created by `run.sh`).
pub const NAMESPACE_ENV: &str = "SORCHA_KIND_NAMESPACE";
/// Peer image loaded into the cluster; replaces the examples' image.
pub const IMAGE_ENV: &str = "SORCHA_KIND_IMAGE";
/// The peer port (gRPC, REST, metrics, health).
pub const PEER_PORT: u16 = 5001;

pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub image: Option<String>,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Why the suite cannot run here, or `None` when `run.sh` prepared a cluster.
pub fn skip_reason() -> Option<String> {
    if std::env::var_os(CLUSTER_ENV).is_some() {
        return None;
    }
    let missing: Vec<&str> = ["docker", "kind", "helm", "kubectl"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    Some(if missing.is_empty() {
        format!("no cluster prepared ({CLUSTER_ENV} is not set); run kind-tests/run.sh")
    } else {
        format!(
            "{} not found and no cluster prepared ({CLUSTER_ENV} is not set); \
             on a machine with Docker and kind run kind-tests/run.sh",
            missing.join(", ")
        )
    })
}

impl Cluster {
    /// The prepared cluster, or `None` after printing the one-line skip
    /// notice. Written to the process's stderr directly, not through the
    /// test harness's capture, so `cargo test` shows it.
    pub async fn from_env_or_skip() -> anyhow::Result<Option<Cluster>> {
        if let Some(reason) = skip_reason() {
            let _ = writeln!(
                std::io::stderr().lock(),
                "sorcha-kind-tests: SKIPPED: {reason}"
            );
            return Ok(None);
        }
        let name = std::env::var(CLUSTER_ENV)?;
        let context = format!("kind-{name}");
        let kubeconfig = Kubeconfig::read().context("reading the kubeconfig")?;
        let config = Config::from_custom_kubeconfig(
            kubeconfig,
            &KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("kube context {context} (created by kind-tests/run.sh)"))?;
        Ok(Some(Cluster {
            client: Client::try_from(config)?,
            namespace: std::env::var(NAMESPACE_ENV).unwrap_or_else(|_| "sorcha-e2e".into()),
            image: std::env::var(IMAGE_ENV).ok(),
        }))
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kind-tests/ has a parent")
        .to_path_buf()
}

/// A SorchaNetwork from `examples/`.
pub fn example_network(file: &str) -> anyhow::Result<SorchaNetwork> {
    let path = repo_root().join("examples").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(serde_norway::from_str(&text)?)
}

/// Polls `check` every two seconds until it yields a value; the error says
/// what was awaited and the last thing seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(seen)) => seen,
            Err(e) => format!("error: {e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Whether the network's status is current and its Ready condition True.
pub fn is_ready(n: &SorchaNetwork) -> Result<(), String> {
    let st = n.status.as_ref().ok_or("no status yet")?;
    if st.observed_generation != n.metadata.generation {
        return Err(format!(
            "status is for generation {:?}, spec is {:?}",
            st.observed_generation, n.metadata.generation
        ));
    }
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!("Ready={} {}: {}", c.status, c.reason, c.message)),
        None => Err("no Ready condition".into()),
    }
}

/// A local address that forwards each connection to `pod:port`.
pub async fn port_forward(pods: Api<Pod>, pod: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pod = pod.to_owned();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                let Ok(mut pf) = pods.portforward(&pod, &[port]).await else {
                    return;
                };
                if let Some(mut upstream) = pf.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
                let _ = pf.join().await;
            });
        }
    });
    Ok(addr)
}

/// An HTTPS client to one peer pod: through a port-forward, presenting that
/// peer's certificate, trusting the network's trust bundle, and verifying the
/// pod's DNS name (what its certificate carries).
pub struct PeerHttp {
    pub http: reqwest::Client,
    pub base: String,
}

fn data(secret: &Secret, key: &str) -> anyhow::Result<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .ok_or_else(|| anyhow!("Secret has no {key}"))
}

impl PeerHttp {
    pub async fn connect(cluster: &Cluster, network: &str, ordinal: i32) -> anyhow::Result<Self> {
        let pod = format!("{network}-{ordinal}");
        let secret = cluster
            .api::<Secret>()
            .get(&format!("{pod}-tls"))
            .await
            .with_context(|| format!("TLS Secret of {pod}"))?;
        let mut identity = data(&secret, "tls.crt")?;
        identity.extend(data(&secret, "tls.key")?);
        let bundle = cluster
            .api::<ConfigMap>()
            .get(&format!("{network}-trust"))
            .await?
            .data
            .and_then(|d| d.get("ca.pem").cloned())
            .ok_or_else(|| anyhow!("trust bundle {network}-trust has no ca.pem"))?;
        let addr = port_forward(cluster.api(), &pod, PEER_PORT).await?;
        let dns = format!(
            "{pod}.{network}-peers.{}.svc.cluster.local",
            cluster.namespace
        );
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .identity(reqwest::Identity::from_pem(&identity)?)
            .resolve(&dns, addr)
            .timeout(Duration::from_secs(20));
        for ca in reqwest::Certificate::from_pem_bundle(bundle.as_bytes())? {
            builder = builder.add_root_certificate(ca);
        }
        Ok(PeerHttp {
            http: builder.build()?,
            // The URL's port is the one dialled; the name is what is verified.
            base: format!("https://{dns}:{}", addr.port()),
        })
    }

    /// Submits `body` as a transaction; its hash.
    pub async fn submit(&self, body: Vec<u8>) -> anyhow::Result<String> {
        let url = format!("{}/api/v1/transactions", self.base);
        let resp = self.http.post(&url).body(body).send().await?;
        let status = resp.status();
        let json: serde_json::Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "{url} answered {status}: {json}");
        json["transaction_hash"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no transaction_hash in {json}"))
    }

    /// The transaction's bytes, or `None` while the peer does not hold it.
    pub async fn fetch(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let url = format!("{}/api/v1/transactions/{hash}", self.base);
        let resp = self.http.get(&url).send().await?;
        match resp.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(resp.bytes().await?.to_vec())),
            s => Err(anyhow!("{url} answered {s}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use sorcha_operator::crd::SorchaNetworkStatus;

    fn with_ready(generation: i64, observed: i64, status: &str) -> SorchaNetwork {
        let mut n = example_network("network-3-peers.yaml").unwrap();
        n.metadata.generation = Some(generation);
        n.status = Some(SorchaNetworkStatus {
            observed_generation: Some(observed),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                reason: "R".into(),
                message: "m".into(),
                last_transition_time: Time(Default::default()),
                observed_generation: None,
            }],
            ..Default::default()
        });
        n
    }

    #[test]
    fn ready_needs_a_current_status_with_ready_true() {
        assert!(is_ready(&with_ready(2, 2, "True")).is_ok());
        let stale = is_ready(&with_ready(3, 2, "True")).unwrap_err();
        assert!(stale.contains("generation"), "{stale}");
        let not = is_ready(&with_ready(2, 2, "False")).unwrap_err();
        assert!(not.contains("Ready=False"), "{not}");
    }

    #[test]
    fn the_scenario_example_is_the_ledger_network() {
        let n = example_network("network-3-peers.yaml").unwrap();
        assert_eq!(n.metadata.name.as_deref(), Some("ledger"));
        assert_eq!(n.spec.replicas, 3);
        assert!(n.spec.tls.enabled, "the scenario renews certificates");
    }

    #[test]
    fn without_a_prepared_cluster_the_reason_names_the_variable() {
        if std::env::var_os(CLUSTER_ENV).is_none() {
            assert!(skip_reason().unwrap().contains(CLUSTER_ENV));
        }
    }
}
