//! The node's own description as it is advertised right now, and the last
//! address-discovery result for the status API.
//!
//! `Membership::me` is read on every request (RegisterPeer, GetPeerList's
//! responder, Ping) and by the engine, by reference. `Advertised` derefs to
//! the current `PeerDescription`, so those readers see a re-checked address
//! without changing. Each distinct address gets one description, allocated
//! once for the life of the process: a reference handed out can then never
//! dangle, and the memory is bounded by the number of distinct addresses the
//! node ever has (a handful), not by how often it changes.
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Mutex, RwLock};

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
    current: RwLock<&'static PeerDescription>,
    by_address: Mutex<HashMap<String, &'static PeerDescription>>,
    status: RwLock<AddressStatus>,
}

impl Advertised {
    pub fn new(me: PeerDescription) -> Self {
        let address = me.address.clone();
        let me: &'static PeerDescription = Box::leak(Box::new(me));
        Self {
            current: RwLock::new(me),
            by_address: Mutex::new(HashMap::from([(address.clone(), me)])),
            status: RwLock::new(AddressStatus {
                external_address: address,
                ..AddressStatus::default()
            }),
        }
    }

    /// Advertises `address` from now on; false if it already was.
    pub fn set_address(&self, address: &str) -> bool {
        let current: &PeerDescription = self;
        if current.address == address {
            return false;
        }
        let mut known = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let next = *known.entry(address.to_owned()).or_insert_with(|| {
            let mut d = current.clone();
            d.address = address.to_owned();
            Box::leak(Box::new(d))
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
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

impl Deref for Advertised {
    type Target = PeerDescription;

    fn deref(&self) -> &PeerDescription {
        *self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Advertised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let me: &PeerDescription = self;
        me.fmt(f)
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
    fn readers_see_the_new_address_and_each_address_is_allocated_once() {
        let a = Advertised::new(me());
        assert_eq!(a.address, "10.0.0.1");
        assert!(!a.set_address("10.0.0.1"));
        assert!(a.set_address("198.18.0.1"));
        assert_eq!(
            (a.address.as_str(), a.peer_id.as_str(), a.port),
            ("198.18.0.1", "me", 5001)
        );
        let first: *const PeerDescription = &*a;
        assert!(a.set_address("10.0.0.1"));
        assert!(a.set_address("198.18.0.1"));
        assert_eq!(
            first, &*a as *const PeerDescription,
            "reused, not reallocated"
        );
        assert_eq!(a.by_address.lock().unwrap().len(), 2);
    }
}
