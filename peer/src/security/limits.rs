//! Abuse limits: per-peer token buckets for requests, bytes and
//! transactions per minute (design defaults 1,000 / 100 MB / 100) and a
//! per-source-IP connection rate. Pure accounting; the server decides what
//! a refusal means (429, dropped connection, reputation penalty).
//!
//! Each bucket holds one minute's allowance and refills continuously, so a
//! peer may burst up to its per-minute limit and then proceeds at the
//! steady rate. Tokens are counted in integer "token-nanominutes" (a token
//! is 60·10⁹ units, and a bucket of R tokens/min gains R units per ns), so
//! refill is exact and tests are deterministic.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clock::Clock;

const UNITS_PER_TOKEN: u128 = 60_000_000_000;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_minute: u64,
    units: u128,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket of `per_minute` tokens at time `now`.
    pub fn new(per_minute: u64, now: Duration) -> Self {
        TokenBucket {
            per_minute,
            units: per_minute as u128 * UNITS_PER_TOKEN,
            last: now,
        }
    }

    fn capacity(&self) -> u128 {
        self.per_minute as u128 * UNITS_PER_TOKEN
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last).as_nanos();
        self.last = self.last.max(now);
        self.units = (self.units + elapsed * self.per_minute as u128).min(self.capacity());
    }

    /// Whether `n` tokens are available at `now`, without taking them.
    /// `Err(None)`: `n` exceeds the whole per-minute allowance and can never
    /// pass; `Err(Some(wait))`: they will be available after `wait`.
    pub fn check(&mut self, n: u64, now: Duration) -> Result<(), Option<Duration>> {
        self.refill(now);
        let need = n as u128 * UNITS_PER_TOKEN;
        if need > self.capacity() {
            return Err(None);
        }
        if self.units >= need {
            return Ok(());
        }
        let missing = need - self.units;
        let nanos = missing.div_ceil(self.per_minute.max(1) as u128);
        Err(Some(Duration::from_nanos(
            nanos.min(u64::MAX as u128) as u64
        )))
    }

    fn take(&mut self, n: u64) {
        self.units -= n as u128 * UNITS_PER_TOKEN;
    }

    /// Takes `n` tokens if available.
    pub fn try_take(&mut self, n: u64, now: Duration) -> Result<(), Option<Duration>> {
        self.check(n, now)?;
        self.take(n);
        Ok(())
    }

    /// Tokens available now (rounded down).
    pub fn available(&mut self, now: Duration) -> u64 {
        self.refill(now);
        (self.units / UNITS_PER_TOKEN) as u64
    }

    fn is_full(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.units == self.capacity()
    }
}

/// Per-peer allowances per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    pub requests_per_minute: u64,
    pub bytes_per_minute: u64,
    pub transactions_per_minute: u64,
}

impl Default for PeerLimits {
    /// The design's "Per-Peer Limits".
    fn default() -> Self {
        PeerLimits {
            requests_per_minute: 1000,
            bytes_per_minute: 100 * 1024 * 1024,
            transactions_per_minute: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Requests,
    Bytes,
    Transactions,
    Connections,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Bytes => "bytes",
            LimitKind::Transactions => "transactions",
            LimitKind::Connections => "connections",
        }
    }
}

/// A refused request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded {
    pub kind: LimitKind,
    pub per_minute: u64,
    /// When the same request would pass; `None` when it is larger than the
    /// whole per-minute allowance.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} limit of {}/min exceeded",
            self.kind.label(),
            self.per_minute
        )?;
        match self.retry_after {
            Some(d) => write!(f, "; retry after {}ms", d.as_millis().max(1)),
            None => write!(f, "; the request is larger than the whole allowance"),
        }
    }
}

/// What one request costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestCost {
    pub bytes: u64,
    pub transactions: u64,
}

#[derive(Debug)]
struct PeerBuckets {
    requests: TokenBucket,
    bytes: TokenBucket,
    transactions: TokenBucket,
    /// Last request (refills move the buckets' own clocks, so they cannot
    /// tell who was active last).
    last_active: Duration,
}

/// Token buckets per peer (peer id when authenticated, else the address).
pub struct PeerRateLimiter {
    limits: PeerLimits,
    clock: Arc<dyn Clock>,
    max_tracked: usize,
    peers: Mutex<HashMap<String, PeerBuckets>>,
}

impl PeerRateLimiter {
    /// `max_tracked` bounds memory: beyond it, idle peers (full buckets)
    /// are forgotten first, then the least recently active.
    pub fn new(limits: PeerLimits, clock: Arc<dyn Clock>, max_tracked: usize) -> Self {
        PeerRateLimiter {
            limits,
            clock,
            max_tracked: max_tracked.max(1),
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> PeerLimits {
        self.limits
    }

    /// Charges one request of `cost` to `peer`, all or nothing: a refused
    /// request consumes no allowance, so a throttled peer that backs off
    /// is not punished twice.
    pub fn check(&self, peer: &str, cost: RequestCost) -> Result<(), LimitExceeded> {
        let now = self.clock.now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if !peers.contains_key(peer) && peers.len() >= self.max_tracked {
            evict(&mut peers, now, self.max_tracked);
        }
        let l = self.limits;
        let b = peers
            .entry(peer.to_string())
            .or_insert_with(|| PeerBuckets {
                requests: TokenBucket::new(l.requests_per_minute, now),
                bytes: TokenBucket::new(l.bytes_per_minute, now),
                transactions: TokenBucket::new(l.transactions_per_minute, now),
                last_active: now,
            });
        b.last_active = now;
        let exceeded = |kind, per_minute| {
            move |retry_after| LimitExceeded {
                kind,
                per_minute,
                retry_after,
            }
        };
        b.requests
            .check(1, now)
            .map_err(exceeded(LimitKind::Requests, l.requests_per_minute))?;
        b.bytes
            .check(cost.bytes, now)
            .map_err(exceeded(LimitKind::Bytes, l.bytes_per_minute))?;
        b.transactions
            .check(cost.transactions, now)
            .map_err(exceeded(LimitKind::Transactions, l.transactions_per_minute))?;
        b.requests.take(1);
        b.bytes.take(cost.bytes);
        b.transactions.take(cost.transactions);
        Ok(())
    }

    /// Forgets peers whose buckets have refilled completely: they carry no
    /// information a fresh entry would not.
    pub fn prune(&self) {
        let now = self.clock.now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|_, b| !idle(b, now));
    }

    pub fn tracked(&self) -> usize {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    #[cfg(test)]
    fn is_tracked(&self, peer: &str) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(peer)
    }
}

fn idle(b: &mut PeerBuckets, now: Duration) -> bool {
    b.requests.is_full(now) && b.bytes.is_full(now) && b.transactions.is_full(now)
}

fn evict(peers: &mut HashMap<String, PeerBuckets>, now: Duration, max: usize) {
    peers.retain(|_, b| !idle(b, now));
    while peers.len() >= max {
        let Some(oldest) = peers
            .iter()
            .min_by_key(|(_, b)| b.last_active)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        peers.remove(&oldest);
    }
}

/// New connections per minute per source. IPv6 sources are grouped by
/// their /64, since one host usually holds a whole /64 and could otherwise
/// rotate addresses to escape the limit.
pub struct ConnectionRateLimiter {
    per_minute: u64,
    clock: Arc<dyn Clock>,
    max_tracked: usize,
    /// Bucket and time of the last connection, per source.
    sources: Mutex<HashMap<IpAddr, (TokenBucket, Duration)>>,
}

impl ConnectionRateLimiter {
    pub fn new(per_minute: u64, clock: Arc<dyn Clock>, max_tracked: usize) -> Self {
        ConnectionRateLimiter {
            per_minute,
            clock,
            max_tracked: max_tracked.max(1),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`; `Err` means refuse it.
    pub fn allow(&self, ip: IpAddr) -> Result<(), LimitExceeded> {
        let now = self.clock.now();
        let key = source_key(ip);
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if !sources.contains_key(&key) && sources.len() >= self.max_tracked {
            sources.retain(|_, (b, _)| !b.is_full(now));
            if sources.len() >= self.max_tracked
                && let Some(oldest) = sources.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k)
            {
                sources.remove(&oldest);
            }
        }
        let per_minute = self.per_minute;
        let (bucket, last_active) = sources
            .entry(key)
            .or_insert_with(|| (TokenBucket::new(per_minute, now), now));
        *last_active = now;
        bucket
            .try_take(1, now)
            .map_err(|retry_after| LimitExceeded {
                kind: LimitKind::Connections,
                per_minute,
                retry_after,
            })
    }

    pub fn tracked(&self) -> usize {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The address a connection is accounted to (see [`ConnectionRateLimiter`]).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
