//! One HTTP/2 connection per peer, shared by discovery and gossip calls,
//! closed after it has been idle and bounded in number (the least recently
//! used goes first), so a node talking to 1,000 peers holds at most one
//! connection each.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::{CommMetrics, Connector};
use crate::Result;

pub struct Pool {
    connector: Connector,
    max: usize,
    channels: Mutex<HashMap<String, (Channel, Instant)>>,
}

impl Pool {
    pub fn new(connector: Connector, max: usize) -> Self {
        Pool {
            connector,
            max: max.max(1),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Channel, Instant)>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The peer's channel, connecting lazily on first use. `peer_id`: the
    /// server must prove to be that peer (mutual TLS); `None` for URLs not
    /// yet tied to a peer (bootstrap nodes), checked by host name.
    pub fn channel(
        &self,
        url: &str,
        peer_id: Option<&str>,
        metrics: &CommMetrics,
    ) -> Result<Channel> {
        let mut map = self.map();
        if let Some((ch, used)) = map.get_mut(url) {
            *used = Instant::now();
            return Ok(ch.clone());
        }
        let ch = self
            .connector
            .channel_lazy(&self.connector.endpoint(url)?, peer_id)?;
        if map.len() >= self.max
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
            metrics
                .connections_closed
                .with_label_values(&["bound"])
                .inc();
        }
        map.insert(url.to_owned(), (ch.clone(), Instant::now()));
        metrics.connections_open.set(map.len() as i64);
        Ok(ch)
    }

    /// The pooled channel to `url` if there is one (not counted as a use).
    pub fn existing(&self, url: &str) -> Option<Channel> {
        self.map().get(url).map(|(ch, _)| ch.clone())
    }

    /// A connection outside the pool, closed when the last clone of the
    /// channel is dropped.
    pub fn one_shot(&self, url: &str, peer_id: Option<&str>) -> Result<Channel> {
        self.connector
            .channel_lazy(&self.connector.endpoint(url)?, peer_id)
    }

    /// Closes channels unused for `idle`.
    pub fn evict_idle(&self, idle: Duration, metrics: &CommMetrics) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, (_, used)| used.elapsed() < idle);
        let closed = before - map.len();
        metrics
            .connections_closed
            .with_label_values(&["idle"])
            .inc_by(closed as u64);
        metrics.connections_open.set(map.len() as i64);
        closed
    }

    /// Drops a peer's channel after an error, so the next call reconnects.
    pub fn forget(&self, url: &str, metrics: &CommMetrics) {
        let mut map = self.map();
        if map.remove(url).is_some() {
            metrics
                .connections_closed
                .with_label_values(&["error"])
                .inc();
            metrics.connections_open.set(map.len() as i64);
        }
    }

    pub fn open(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_channel_per_peer_bounded_and_idle_ones_closed() {
        let metrics = CommMetrics::new();
        let pool = Pool::new(Connector::plaintext(Duration::from_secs(1)), 2);
        pool.channel("http://127.0.0.1:1", None, &metrics).unwrap();
        pool.channel("http://127.0.0.1:1", None, &metrics).unwrap();
        assert_eq!(pool.open(), 1, "reused");
        pool.channel("http://127.0.0.1:2", None, &metrics).unwrap();
        pool.channel("http://127.0.0.1:3", None, &metrics).unwrap();
        assert_eq!(pool.open(), 2, "bounded");
        assert_eq!(
            metrics
                .connections_closed
                .with_label_values(&["bound"])
                .get(),
            1
        );
        assert!(
            pool.map().contains_key("http://127.0.0.1:3"),
            "the newest stays"
        );
        assert_eq!(pool.evict_idle(Duration::ZERO, &metrics), 2);
        assert_eq!(pool.open(), 0);
        assert!(pool.channel("not a url", None, &metrics).is_err());
    }
}
