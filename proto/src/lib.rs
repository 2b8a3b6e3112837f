//! Generated wire-protocol code for Sorcha Peer.
//!
//! `discovery`, `transaction` and `communication` are the protocol the peer
//! speaks. `design` holds clients generated from the design document's
//! verbatim proto text; it exists so tests can prove a client built from the
//! design talks to our peer unchanged.
#![forbid(unsafe_code)]

pub mod discovery {
    tonic::include_proto!("sorcha.peer.discovery");
}

pub mod transaction {
    tonic::include_proto!("sorcha.peer.transaction");
}

pub mod communication {
    tonic::include_proto!("sorcha.peer.communication");
}

/// Clients generated from the design document's proto text, unchanged.
pub mod design {
    pub mod discovery {
        include!(concat!(env!("OUT_DIR"), "/design/sorcha.peer.discovery.rs"));
    }
    pub mod transaction {
        include!(concat!(
            env!("OUT_DIR"),
            "/design/sorcha.peer.transaction.rs"
        ));
    }
}

/// Paths of the proto sources, for tests that compare descriptors.
pub const PROTO_DIR: &str = env!("CARGO_MANIFEST_DIR");
