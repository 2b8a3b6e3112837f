//! The node's own description as it is advertised right now, and the last
//! address-discovery result for the status API.
//!
//! Readers (every RegisterPeer, GetPeerList and Ping, and the discovery
//! engine) take a cheap `Arc` snapshot with `current()`; a re-check swaps
//! in a new description, and snapshots already taken stay valid.
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::AddressReport;
use super::verify::Reachability;
use crate::discovery::membership::PeerDescription;

/// The address part of `NodeStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressStatus {
    pub internal_address: String,
    pub external_address: String,
    /// `none`, `endpoint-independent`, `symmetric`, `mapping-unknown`, `unknown`.
    pub nat_type: String,
    /// `endpoint-independent`, `endpoint-dependent`, `not-tested`.
    pub mapping: String,
    /// `config`, `interface`, `stun`, `http`, `internal`.
    pub method: String,
    /// Self-verification: None until checked.
    pub reachable: Option<bool>,
    /// "reachable", "behind restrictive NAT" or "not checked yet".
    pub reachability: String,
    pub reachability_detail: String,
    /// Unix milliseconds of the last discovery; 0 before the first.
    pub checked_at: i64,
}

impl AddressStatus {
    pub fn new(report: &AddressReport, reach: &Reachability, checked_at: i64) -> Self {
        Self {
            internal_address: report.internal_address.to_string(),
            external_address: report.external_address.clone(),
            nat_type: report.nat_type.as_str().into(),
            mapping: report.mapping.as_str().into(),
            method: report.method.as_str().into(),
            reachable: reach.reachable,
            reachability: reach.summary.clone(),
            reachability_detail: reach.detail.clone(),
            checked_at,
        }
    }
}

pub struct Advertised {
    current: RwLock<Arc<PeerDescription>>,
    status: RwLock<AddressStatus>,
}

impl Advertised {
    pub fn new(me: PeerDescription) -> Self {
        let status = AddressStatus {
            external_address: me.address.clone(),
            ..AddressStatus::default()
        };
        Self {
            current: RwLock::new(Arc::new(me)),
            status: RwLock::new(status),
        }
    }

    /// The description advertised right now.
    pub fn current(&self) -> Arc<PeerDescription> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Advertises `address` from now on; false if it already was.
    pub fn set_address(&self, address: &str) -> bool {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.address == address {
            return false;
        }
        let mut next = PeerDescription::clone(&current);
        next.address = address.to_owned();
        *current = Arc::new(next);
        true
    }

    pub fn status(&self) -> AddressStatus {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_status(&self, status: AddressStatus) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = status;
    }
}

impl std::fmt::Debug for Advertised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::membership::Capabilities;

    fn me() -> PeerDescription {
        PeerDescription {
            peer_id: "me".into(),
            address: "10.0.0.1".into(),
            port: 5001,
            supported_protocols: vec!["grpc".into()],
            last_seen: 0,
            capabilities: Capabilities {
                supports_streaming: false,
                supports_transaction_distribution: false,
                max_transaction_size: 1,
            },
        }
    }

    #[test]
    fn readers_see_the_new_address_and_old_snapshots_stay_valid() {
        let a = Advertised::new(me());
        let before = a.current();
        assert!(!a.set_address("10.0.0.1"));
        assert!(a.set_address("198.18.0.1"));
        let now = a.current();
        assert_eq!(
            (now.address.as_str(), now.peer_id.as_str(), now.port),
            ("198.18.0.1", "me", 5001)
        );
        assert_eq!(
            before.address, "10.0.0.1",
            "a snapshot taken earlier is unchanged"
        );
    }
}
