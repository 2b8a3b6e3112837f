//! Peer reputation: a score per peer from what it did, and temporary bans
//! when the score falls too low (design "DDoS Protection": reputation
//! scoring, automatic temporary banning), plus manual ban/unban/list for
//! the admin API and CLI.
//!
//! Scoring (all constants in [`ReputationConfig`]): a peer starts at 50 of
//! 100. A successful exchange adds 1 (½ if slower than `good_latency`) or,
//! slower than `slow_latency`, subtracts 1; a failed call subtracts 2; an
//! invalid message 10; a rate-limit violation 5, at most once per
//! `violation_cooldown`, so a burst of refused requests in one instant
//! costs what one does, while sustained flooding drains the score within
//! seconds. Below `ban_threshold` the peer is banned for `ban_duration`,
//! doubled for each earlier automatic ban (capped at `max_ban_duration`),
//! so a repeat offender stays out longer. When a ban ends the score
//! restarts at the initial value.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clock::Clock;
use super::limits::LimitKind;

#[derive(Debug, Clone, PartialEq)]
pub struct ReputationConfig {
    pub initial_score: f64,
    pub ban_threshold: f64,
    pub ban_duration: Duration,
    pub max_ban_duration: Duration,
    pub good_latency: Duration,
    pub slow_latency: Duration,
    pub violation_cooldown: Duration,
    /// Peers remembered at most; the least recently seen unbanned peer is
    /// forgotten first.
    pub max_tracked: usize,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        ReputationConfig {
            initial_score: 50.0,
            ban_threshold: 10.0,
            ban_duration: Duration::from_secs(15 * 60),
            max_ban_duration: Duration::from_secs(24 * 3600),
            good_latency: Duration::from_millis(500),
            slow_latency: Duration::from_secs(2),
            violation_cooldown: Duration::from_secs(1),
            max_tracked: 100_000,
        }
    }
}

pub const MAX_SCORE: f64 = 100.0;
const SUCCESS: f64 = 1.0;
const SLOW_SUCCESS: f64 = 0.5;
const TOO_SLOW: f64 = -1.0;
const FAILURE: f64 = -2.0;
const INVALID_MESSAGE: f64 = -10.0;
const LIMIT_VIOLATION: f64 = -5.0;

/// Something a peer did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    Success { latency: Duration },
    Failure,
    InvalidMessage,
    LimitViolation(LimitKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// `None`: until unbanned.
    pub until: Option<Duration>,
    pub reason: String,
    pub automatic: bool,
}

/// A ban as reported: time left instead of a clock reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    /// `None`: until unbanned.
    pub remaining: Option<Duration>,
    pub reason: String,
    pub automatic: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerStanding {
    pub peer_id: String,
    pub score: f64,
    pub successes: u64,
    pub failures: u64,
    pub invalid_messages: u64,
    pub limit_violations: u64,
    pub ban: Option<BanInfo>,
}

#[derive(Debug, Clone)]
struct Record {
    score: f64,
    successes: u64,
    failures: u64,
    invalid_messages: u64,
    limit_violations: u64,
    last_violation_penalty: Option<Duration>,
    automatic_bans: u32,
    ban: Option<Ban>,
    last_seen: Duration,
}

pub struct Reputation {
    cfg: ReputationConfig,
    clock: Arc<dyn Clock>,
    peers: Mutex<HashMap<String, Record>>,
}

impl Reputation {
    pub fn new(cfg: ReputationConfig, clock: Arc<dyn Clock>) -> Self {
        Reputation {
            cfg,
            clock,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, now: Duration) -> Record {
        Record {
            score: self.cfg.initial_score,
            successes: 0,
            failures: 0,
            invalid_messages: 0,
            limit_violations: 0,
            last_violation_penalty: None,
            automatic_bans: 0,
            ban: None,
            last_seen: now,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records what `peer` did. Returns the ban when this observation
    /// caused one, so the caller can log it and emit the event once.
    pub fn record(&self, peer: &str, obs: Observation) -> Option<BanInfo> {
        let now = self.clock.now();
        let mut peers = self.lock();
        if !peers.contains_key(peer) && peers.len() >= self.cfg.max_tracked {
            evict(&mut peers);
        }
        let fresh = self.fresh(now);
        let r = peers.entry(peer.to_string()).or_insert(fresh);
        self.expire(r, now);
        r.last_seen = now;
        let delta = match obs {
            Observation::Success { latency } => {
                r.successes += 1;
                if latency <= self.cfg.good_latency {
                    SUCCESS
                } else if latency <= self.cfg.slow_latency {
                    SLOW_SUCCESS
                } else {
                    TOO_SLOW
                }
            }
            Observation::Failure => {
                r.failures += 1;
                FAILURE
            }
            Observation::InvalidMessage => {
                r.invalid_messages += 1;
                INVALID_MESSAGE
            }
            Observation::LimitViolation(_) => {
                r.limit_violations += 1;
                let cooled = r
                    .last_violation_penalty
                    .is_none_or(|t| now.saturating_sub(t) >= self.cfg.violation_cooldown);
                if cooled {
                    r.last_violation_penalty = Some(now);
                    LIMIT_VIOLATION
                } else {
                    0.0
                }
            }
        };
        r.score = (r.score + delta).clamp(0.0, MAX_SCORE);
        if r.ban.is_some() || r.score >= self.cfg.ban_threshold {
            return None;
        }
        let doublings = r.automatic_bans.min(16);
        let duration = self
            .cfg
            .ban_duration
            .saturating_mul(1 << doublings)
            .min(self.cfg.max_ban_duration);
        r.automatic_bans += 1;
        let ban = Ban {
            until: Some(now + duration),
            reason: format!(
                "reputation {:.1} fell below {:.1} ({} invalid messages, {} limit violations, \
                 {} failures)",
                r.score, self.cfg.ban_threshold, r.invalid_messages, r.limit_violations, r.failures
            ),
            automatic: true,
        };
        let info = info(&ban, now);
        tracing::warn!(peer, ban_seconds = duration.as_secs(), reason = %ban.reason, "banned peer");
        r.ban = Some(ban);
        Some(info)
    }

    /// Ends an expired ban: the peer starts over at the initial score but
    /// keeps its count of automatic bans (for the next ban's length).
    fn expire(&self, r: &mut Record, now: Duration) {
        if r.ban
            .as_ref()
            .is_some_and(|b| b.until.is_some_and(|u| u <= now))
        {
            r.ban = None;
            r.score = self.cfg.initial_score;
            r.last_violation_penalty = None;
        }
    }

    /// The ban in force on `peer`, if any.
    pub fn banned(&self, peer: &str) -> Option<BanInfo> {
        let now = self.clock.now();
        let mut peers = self.lock();
        let r = peers.get_mut(peer)?;
        self.expire(r, now);
        r.ban.as_ref().map(|b| info(b, now))
    }

    /// Bans `peer` by hand for `duration` (`None`: until unbanned),
    /// replacing any ban in force.
    pub fn ban(&self, peer: &str, duration: Option<Duration>, reason: &str) -> BanInfo {
        let now = self.clock.now();
        let mut peers = self.lock();
        if !peers.contains_key(peer) && peers.len() >= self.cfg.max_tracked {
            evict(&mut peers);
        }
        let fresh = self.fresh(now);
        let r = peers.entry(peer.to_string()).or_insert(fresh);
        let ban = Ban {
            until: duration.map(|d| now + d),
            reason: reason.to_string(),
            automatic: false,
        };
        let i = info(&ban, now);
        r.ban = Some(ban);
        i
    }

    /// Lifts a ban; `false` if none was in force. The score restarts at
    /// the initial value, as when a ban expires.
    pub fn unban(&self, peer: &str) -> bool {
        let now = self.clock.now();
        let mut peers = self.lock();
        let Some(r) = peers.get_mut(peer) else {
            return false;
        };
        self.expire(r, now);
        if r.ban.take().is_none() {
            return false;
        }
        r.score = self.cfg.initial_score;
        r.last_violation_penalty = None;
        true
    }

    pub fn score(&self, peer: &str) -> f64 {
        let now = self.clock.now();
        let mut peers = self.lock();
        match peers.get_mut(peer) {
            Some(r) => {
                self.expire(r, now);
                r.score
            }
            None => self.cfg.initial_score,
        }
    }

    /// Bans in force now (expired ones end here).
    pub fn active_bans(&self) -> usize {
        let now = self.clock.now();
        let mut peers = self.lock();
        let mut n = 0;
        for r in peers.values_mut() {
            self.expire(r, now);
            n += usize::from(r.ban.is_some());
        }
        n
    }

    /// One tracked peer's standing.
    pub fn standing(&self, peer: &str) -> Option<PeerStanding> {
        let now = self.clock.now();
        let mut peers = self.lock();
        let r = peers.get_mut(peer)?;
        self.expire(r, now);
        Some(PeerStanding {
            peer_id: peer.to_string(),
            score: r.score,
            successes: r.successes,
            failures: r.failures,
            invalid_messages: r.invalid_messages,
            limit_violations: r.limit_violations,
            ban: r.ban.as_ref().map(|b| info(b, now)),
        })
    }

    /// Every tracked peer, sorted by peer id.
    pub fn list(&self) -> Vec<PeerStanding> {
        let now = self.clock.now();
        let mut peers = self.lock();
        let mut out: Vec<PeerStanding> = peers
            .iter_mut()
            .map(|(id, r)| {
                self.expire(r, now);
                PeerStanding {
                    peer_id: id.clone(),
                    score: r.score,
                    successes: r.successes,
                    failures: r.failures,
                    invalid_messages: r.invalid_messages,
                    limit_violations: r.limit_violations,
                    ban: r.ban.as_ref().map(|b| info(b, now)),
                }
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }
}

fn info(b: &Ban, now: Duration) -> BanInfo {
    BanInfo {
        remaining: b.until.map(|u| u.saturating_sub(now)),
        reason: b.reason.clone(),
        automatic: b.automatic,
    }
}

/// Forgets the least recently seen unbanned peer (a banned one must stay,
/// or forgetting would lift its ban).
fn evict(peers: &mut HashMap<String, Record>) {
    if let Some(k) = peers
        .iter()
        .filter(|(_, r)| r.ban.is_none())
        .min_by_key(|(_, r)| r.last_seen)
        .map(|(k, _)| k.clone())
    {
        peers.remove(&k);
    }
}

#[cfg(test)]
#[path = "reputation_tests.rs"]
mod tests;
