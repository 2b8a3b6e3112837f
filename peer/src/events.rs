//! The design's event log: peer connected/disconnected, discovery rounds,
//! state changes and errors. Kept as a bounded in-memory ring (served by
//! `GET /api/v1/events`), mirrored to `tracing`, and broadcast to live
//! subscribers such as the devnet dashboard.
use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PeerAdded,
    PeerRemoved,
    PeerRegistered,
    StateChanged,
    BootstrapSucceeded,
    BootstrapFailed,
    DiscoveryRound,
    /// A peer's circuit breaker opened, half-opened or closed.
    CircuitChanged,
    /// A peer link stepped down to another protocol.
    ProtocolChanged,
    /// A peer request refused by the caller policy (limit hit, ban,
    /// capability, id mismatch); rate-limited per peer and reason.
    PeerRefused,
    PeerBanned,
    PeerUnbanned,
    /// Certificate, trust bundle or revocation list re-read from disk.
    TlsReloaded,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unix milliseconds.
    pub timestamp: i64,
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    pub message: String,
}

pub struct EventLog {
    capacity: usize,
    recent: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            recent: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            live: broadcast::channel(256).0,
        }
    }

    pub fn record(&self, kind: EventKind, peer_id: Option<&str>, message: impl Into<String>) {
        let event = Event {
            timestamp: crate::clock::now_ms(),
            kind,
            peer_id: peer_id.map(str::to_owned),
            message: message.into(),
        };
        match kind {
            EventKind::Error
            | EventKind::BootstrapFailed
            | EventKind::PeerRefused
            | EventKind::PeerBanned => {
                tracing::warn!(kind = ?event.kind, peer = ?event.peer_id, "{}", event.message)
            }
            _ => tracing::info!(kind = ?event.kind, peer = ?event.peer_id, "{}", event.message),
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == self.capacity {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        drop(recent);
        // No subscribers is fine: the ring still has it.
        let _ = self.live.send(event);
    }

    /// Newest last; at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<Event> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let skip = recent.len().saturating_sub(limit);
        recent.iter().skip(skip).cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_events() {
        let log = EventLog::new(2);
        let mut rx = log.subscribe();
        for i in 0..3 {
            log.record(EventKind::PeerAdded, Some("p"), format!("e{i}"));
        }
        let msgs: Vec<_> = log.recent(10).into_iter().map(|e| e.message).collect();
        assert_eq!(msgs, vec!["e1", "e2"]);
        assert_eq!(log.recent(1)[0].message, "e2");
        assert_eq!(rx.try_recv().unwrap().message, "e0");
    }
}
