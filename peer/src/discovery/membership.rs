//! The peer list as a pure data structure: which peers a node knows, how
//! healthy each is, and the rules that keep the list clean (never the node
//! itself, never two entries for one peer or one address, bounded size).
//! No IO here: callers persist what the methods report changed.
use std::collections::HashMap;

use serde::Serialize;

/// What the design's `PeerCapabilities` message carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Capabilities {
    pub supports_streaming: bool,
    pub supports_transaction_distribution: bool,
    pub max_transaction_size: i32,
}

/// One row of the design's `peers` table, plus `responsive`, which is not
/// persisted: after a restart no peer counts as active until it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerRecord {
    pub peer_id: String,
    pub address: String,
    pub port: u16,
    pub supported_protocols: Vec<String>,
    /// Unix milliseconds.
    pub first_seen: i64,
    /// Unix milliseconds of the last direct contact (or as reported by the
    /// peer that told us about it).
    pub last_seen: i64,
    pub failure_count: u32,
    pub capabilities: Capabilities,
    pub is_bootstrap: bool,
    /// Answered our last call (or called us) since we last failed to reach it.
    pub responsive: bool,
}

impl PeerRecord {
    pub fn endpoint(&self) -> (&str, u16) {
        (&self.address, self.port)
    }
}

/// A peer as described on the wire (by itself or by a third party).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDescription {
    pub peer_id: String,
    pub address: String,
    pub port: u16,
    pub supported_protocols: Vec<String>,
    pub last_seen: i64,
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    Added,
    Updated,
    /// Hearsay about a peer we already know: ignored, since only the peer
    /// itself (or our own calls to it) can tell us something newer.
    Known,
    /// Took over the address of a peer with another id, which was dropped
    /// (a node re-created with a new identity on the same address).
    Replaced {
        old_peer_id: String,
    },
    Ignored(IgnoreReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    IsSelf,
    InvalidAddress,
    ListFull,
    /// Removed for failing lately; only the peer itself can bring it back.
    RecentlyRemoved,
}

/// How the description reached us, which decides how far we trust its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The peer itself talked to us or answered us: it is alive now.
    Direct,
    /// Another peer's list mentioned it.
    Hearsay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Counted(u32),
    /// Failures exceeded the threshold; the peer was removed.
    Removed(u32),
}

#[derive(Debug)]
pub struct PeerTable {
    self_id: String,
    self_endpoint: (String, u16),
    max_peers: usize,
    failure_threshold: u32,
    /// How long a removed peer stays removed against hearsay, in ms.
    tombstone_ms: i64,
    peers: HashMap<String, PeerRecord>,
    /// (address, port) -> peer id, so the one-peer-per-address rule costs a
    /// lookup, not a scan, on every merge.
    by_endpoint: HashMap<(String, u16), String>,
    /// Removal time of failed peers. Without this, a peer removed here would
    /// come straight back from a neighbour's list that still names it.
    tombstones: HashMap<String, i64>,
}

impl PeerTable {
    pub fn new(
        self_id: impl Into<String>,
        self_endpoint: (String, u16),
        max_peers: usize,
        failure_threshold: u32,
        tombstone_ms: i64,
    ) -> Self {
        Self {
            self_id: self_id.into(),
            self_endpoint,
            max_peers,
            failure_threshold,
            tombstone_ms,
            peers: HashMap::new(),
            by_endpoint: HashMap::new(),
            tombstones: HashMap::new(),
        }
    }

    /// Loads persisted rows, applying the same rules as `merge` so a stale
    /// database cannot smuggle the node itself or duplicates back in.
    pub fn load(&mut self, rows: impl IntoIterator<Item = PeerRecord>) -> Vec<String> {
        let mut rejected = Vec::new();
        for mut row in rows {
            row.responsive = false;
            if self.is_self(&row.peer_id, &row.address, row.port)
                || self.owner_of(&row.address, row.port).is_some()
                || self.peers.len() >= self.max_peers
            {
                rejected.push(row.peer_id);
                continue;
            }
            self.insert(row);
        }
        rejected
    }

    /// The node's advertised address changed: that one is now "self".
    pub fn set_self_endpoint(&mut self, endpoint: (String, u16)) {
        self.self_endpoint = endpoint;
    }

    pub fn is_self(&self, peer_id: &str, address: &str, port: u16) -> bool {
        peer_id == self.self_id || (address == self.self_endpoint.0 && port == self.self_endpoint.1)
    }

    fn owner_of(&self, address: &str, port: u16) -> Option<&str> {
        self.by_endpoint
            .get(&(address.to_owned(), port))
            .map(String::as_str)
    }

    fn insert(&mut self, row: PeerRecord) {
        self.by_endpoint
            .insert((row.address.clone(), row.port), row.peer_id.clone());
        self.peers.insert(row.peer_id.clone(), row);
    }

    fn take(&mut self, peer_id: &str) -> Option<PeerRecord> {
        let row = self.peers.remove(peer_id)?;
        self.by_endpoint.remove(&(row.address.clone(), row.port));
        Some(row)
    }

    /// Adds or refreshes a peer. `now` is Unix milliseconds.
    pub fn merge(&mut self, d: &PeerDescription, source: Source, now: i64) -> Merge {
        if self.is_self(&d.peer_id, &d.address, d.port) {
            return Merge::Ignored(IgnoreReason::IsSelf);
        }
        if d.peer_id.is_empty() || d.address.is_empty() || d.port == 0 {
            return Merge::Ignored(IgnoreReason::InvalidAddress);
        }
        if source == Source::Hearsay {
            self.tombstones
                .retain(|_, at| now - *at < self.tombstone_ms);
            if self.tombstones.contains_key(&d.peer_id) {
                return Merge::Ignored(IgnoreReason::RecentlyRemoved);
            }
        } else {
            self.tombstones.remove(&d.peer_id);
        }
        let squatter = self
            .owner_of(&d.address, d.port)
            .filter(|id| *id != d.peer_id)
            .map(str::to_owned);
        if let Some(old) = &squatter {
            // Only first-hand news may evict: hearsay about a new id on a
            // known address is more likely stale than the entry we have.
            if source == Source::Hearsay {
                return Merge::Ignored(IgnoreReason::InvalidAddress);
            }
            self.take(old);
        }
        let direct = source == Source::Direct;
        if let Some(p) = self.peers.get_mut(&d.peer_id) {
            if !direct {
                return Merge::Known;
            }
            if (p.address.as_str(), p.port) != (d.address.as_str(), d.port) {
                self.by_endpoint.remove(&(p.address.clone(), p.port));
                self.by_endpoint
                    .insert((d.address.clone(), d.port), d.peer_id.clone());
                p.address.clone_from(&d.address);
                p.port = d.port;
            }
            p.supported_protocols.clone_from(&d.supported_protocols);
            p.capabilities = d.capabilities;
            p.last_seen = now;
            p.failure_count = 0;
            p.responsive = true;
            return match squatter {
                Some(old_peer_id) => Merge::Replaced { old_peer_id },
                None => Merge::Updated,
            };
        }
        if self.peers.len() >= self.max_peers {
            return Merge::Ignored(IgnoreReason::ListFull);
        }
        self.insert(PeerRecord {
            peer_id: d.peer_id.clone(),
            address: d.address.clone(),
            port: d.port,
            supported_protocols: d.supported_protocols.clone(),
            first_seen: now,
            last_seen: if direct {
                now
            } else {
                d.last_seen.clamp(0, now)
            },
            failure_count: 0,
            capabilities: d.capabilities,
            is_bootstrap: false,
            responsive: direct,
        });
        match squatter {
            Some(old_peer_id) => Merge::Replaced { old_peer_id },
            None => Merge::Added,
        }
    }

    pub fn mark_bootstrap(&mut self, peer_id: &str) {
        if let Some(p) = self.peers.get_mut(peer_id) {
            p.is_bootstrap = true;
        }
    }

    /// The peer answered: alive now, failures forgiven.
    pub fn record_success(&mut self, peer_id: &str, now: i64) -> bool {
        match self.peers.get_mut(peer_id) {
            Some(p) => {
                p.last_seen = now;
                p.failure_count = 0;
                p.responsive = true;
                true
            }
            None => false,
        }
    }

    /// The peer did not answer. Removed once its consecutive failures exceed
    /// the threshold (the design: "if failures > threshold: remove").
    pub fn record_failure(&mut self, peer_id: &str, now: i64) -> Option<Failure> {
        let p = self.peers.get_mut(peer_id)?;
        p.failure_count += 1;
        p.responsive = false;
        let n = p.failure_count;
        if n > self.failure_threshold {
            self.take(peer_id);
            self.tombstones.insert(peer_id.to_owned(), now);
            Some(Failure::Removed(n))
        } else {
            Some(Failure::Counted(n))
        }
    }

    pub fn remove(&mut self, peer_id: &str) -> Option<PeerRecord> {
        self.take(peer_id)
    }

    pub fn get(&self, peer_id: &str) -> Option<&PeerRecord> {
        self.peers.get(peer_id)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.peers.len() >= self.max_peers
    }

    pub fn active_count(&self) -> usize {
        self.peers.values().filter(|p| p.responsive).count()
    }

    /// A digest of who the peers are, where, and whether they answer; not
    /// of when they were last seen. Equal digests mean a reading of the
    /// peer list made for gossip would come out the same.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::BuildHasher;
        let state = foldhash::fast::FixedState::default();
        // Summed, so the map's iteration order does not matter.
        self.peers.values().fold(0u64, |sum, p| {
            sum.wrapping_add(state.hash_one((&p.peer_id, &p.address, p.port, p.responsive)))
        })
    }

    pub fn ids(&self) -> Vec<String> {
        self.peers.keys().cloned().collect()
    }

    /// Up to `max` peers, responsive and recently seen first, leaving out
    /// `exclude` (the requester: it need not hear about itself).
    pub fn list(&self, max: usize, exclude: Option<&str>) -> Vec<&PeerRecord> {
        let mut out: Vec<&PeerRecord> = self
            .peers
            .values()
            .filter(|p| Some(p.peer_id.as_str()) != exclude)
            .collect();
        out.sort_by(|a, b| {
            b.responsive
                .cmp(&a.responsive)
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.peer_id.cmp(&b.peer_id))
        });
        out.truncate(max);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_table() -> PeerTable {
        PeerTable::new("self", ("10.0.0.1".into(), 5001), 3, 3, 1000)
    }

    fn mk_peer(id: &str, port: u16) -> PeerDescription {
        PeerDescription {
            peer_id: id.into(),
            address: "10.0.0.2".into(),
            port,
            supported_protocols: vec!["grpc".into()],
            last_seen: 0,
            capabilities: Capabilities::default(),
        }
    }

    #[test]
    fn the_fingerprint_follows_membership_and_responsiveness_not_contact_times() {
        let mut t = mk_table();
        let empty = t.fingerprint();
        t.merge(&mk_peer("a", 1), Source::Direct, 1);
        t.merge(&mk_peer("b", 2), Source::Direct, 1);
        let two = t.fingerprint();
        assert_ne!(two, empty);
        t.record_success("a", 50);
        t.record_success("b", 60);
        let answering = t.fingerprint();
        t.record_success("a", 99);
        assert_eq!(
            t.fingerprint(),
            answering,
            "a later contact changes nothing"
        );
        t.record_failure("a", 100);
        assert_ne!(t.fingerprint(), answering, "a stopped answering");
        t.record_success("a", 101);
        assert_eq!(t.fingerprint(), answering);
        t.remove("b");
        assert_ne!(t.fingerprint(), answering);
    }

    #[test]
    fn the_node_itself_never_enters_its_list() {
        let mut t = mk_table();
        assert_eq!(
            t.merge(&mk_peer("self", 9), Source::Direct, 1),
            Merge::Ignored(IgnoreReason::IsSelf)
        );
        let mut same_addr = mk_peer("other-id", 5001);
        same_addr.address = "10.0.0.1".into();
        assert_eq!(
            t.merge(&same_addr, Source::Hearsay, 1),
            Merge::Ignored(IgnoreReason::IsSelf)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn duplicates_by_id_or_address_are_merged() {
        let mut t = mk_table();
        assert_eq!(t.merge(&mk_peer("a", 1), Source::Hearsay, 1), Merge::Added);
        assert_eq!(t.merge(&mk_peer("a", 1), Source::Hearsay, 2), Merge::Known);
        assert_eq!(t.merge(&mk_peer("a", 1), Source::Direct, 2), Merge::Updated);
        // Hearsay of another id on a known address is ignored ...
        assert_eq!(
            t.merge(&mk_peer("b", 1), Source::Hearsay, 3),
            Merge::Ignored(IgnoreReason::InvalidAddress)
        );
        // ... but the peer itself claiming the address replaces the old id.
        assert_eq!(
            t.merge(&mk_peer("b", 1), Source::Direct, 4),
            Merge::Replaced {
                old_peer_id: "a".into()
            }
        );
        assert_eq!(t.ids(), vec!["b".to_string()]);
    }

    #[test]
    fn list_is_bounded_and_invalid_entries_rejected() {
        let mut t = mk_table();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(
                t.merge(&mk_peer(id, i as u16 + 1), Source::Hearsay, 1),
                Merge::Added
            );
        }
        assert_eq!(
            t.merge(&mk_peer("d", 9), Source::Hearsay, 1),
            Merge::Ignored(IgnoreReason::ListFull)
        );
        assert_eq!(
            t.merge(&mk_peer("e", 0), Source::Hearsay, 1),
            Merge::Ignored(IgnoreReason::InvalidAddress)
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn removal_after_failures_exceed_threshold_and_success_resets() {
        let mut t = mk_table();
        t.merge(&mk_peer("a", 1), Source::Direct, 1);
        assert_eq!(t.active_count(), 1);
        assert_eq!(t.record_failure("a", 10), Some(Failure::Counted(1)));
        assert_eq!(t.active_count(), 0);
        assert!(t.record_success("a", 5));
        assert_eq!(t.get("a").unwrap().failure_count, 0);
        for n in 1..=3 {
            assert_eq!(t.record_failure("a", 10), Some(Failure::Counted(n)));
        }
        assert_eq!(t.record_failure("a", 10), Some(Failure::Removed(4)));
        assert!(t.get("a").is_none());
    }

    #[test]
    fn a_removed_peer_is_not_resurrected_by_hearsay_until_its_tombstone_expires() {
        let mut t = mk_table();
        t.merge(&mk_peer("a", 1), Source::Direct, 0);
        for _ in 0..4 {
            t.record_failure("a", 10);
        }
        assert_eq!(
            t.merge(&mk_peer("a", 1), Source::Hearsay, 500),
            Merge::Ignored(IgnoreReason::RecentlyRemoved)
        );
        assert_eq!(
            t.merge(&mk_peer("a", 1), Source::Hearsay, 1010),
            Merge::Added
        );
        for _ in 0..4 {
            t.record_failure("a", 2000);
        }
        // The peer itself calling us is proof of life.
        assert_eq!(
            t.merge(&mk_peer("a", 1), Source::Direct, 2001),
            Merge::Added
        );
    }

    #[test]
    fn hearsay_about_a_known_peer_changes_nothing() {
        let mut t = mk_table();
        t.merge(&mk_peer("a", 1), Source::Hearsay, 1);
        assert_eq!(t.active_count(), 0);
        t.record_failure("a", 10);
        let mut fresh = mk_peer("a", 1);
        fresh.last_seen = 100;
        t.merge(&fresh, Source::Hearsay, 200);
        let p = t.get("a").unwrap();
        assert_eq!((p.failure_count, p.last_seen, p.responsive), (1, 0, false));
    }

    #[test]
    fn list_orders_responsive_first_and_excludes_requester() {
        let mut t = mk_table();
        t.merge(&mk_peer("a", 1), Source::Hearsay, 1);
        t.merge(&mk_peer("b", 2), Source::Direct, 1);
        t.merge(&mk_peer("c", 3), Source::Direct, 2);
        let ids: Vec<_> = t
            .list(10, Some("b"))
            .into_iter()
            .map(|p| p.peer_id.clone())
            .collect();
        assert_eq!(ids, vec!["c", "a"]);
        assert_eq!(t.list(1, None).len(), 1);
    }

    #[test]
    fn load_applies_the_same_rules() {
        let mut t = mk_table();
        let row = |id: &str, port| PeerRecord {
            peer_id: id.into(),
            address: "10.0.0.2".into(),
            port,
            supported_protocols: vec![],
            first_seen: 1,
            last_seen: 1,
            failure_count: 0,
            capabilities: Capabilities::default(),
            is_bootstrap: false,
            responsive: true,
        };
        let mut me = row("self", 7);
        me.address = "10.0.0.1".into();
        let rejected = t.load([row("a", 1), row("dup", 1), me]);
        assert_eq!(rejected, vec!["dup".to_string(), "self".to_string()]);
        assert_eq!(t.active_count(), 0, "nothing is active before it answers");
    }
}
