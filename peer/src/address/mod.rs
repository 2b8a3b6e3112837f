//! Network address discovery (the design's "Network Address Discovery
//! Service"): which address other peers should dial to reach this node.
//!
//! 1. `interfaces`: the internal address (the bound one, else a
//!    non-loopback, non-link-local interface address of `PreferredProtocol`).
//! 2. `ExternalAddress`, when configured and usable, is used as is.
//! 3. `classify`: a public internal address is used directly.
//! 4. `stun` then `http`: the reflexive address from the STUN servers in
//!    order, else from the HTTP lookup services; `nat` compares what two
//!    STUN servers saw to tell endpoint-independent from symmetric mapping.
//! 5. `verify`: the node calls its own API through the external address;
//!    failure means it sits behind a restrictive NAT.
//!
//! `discover` runs 1-4 once (the `address` command and node start);
//! `recheck` repeats it periodically and when the interfaces change, and
//! publishes the result through `advertised` to RegisterPeer, the status
//! API and the metrics. Defaults name no server: nothing public is
//! contacted unless configured.
pub mod advertised;
pub mod classify;
pub mod discover;
pub mod http;
pub mod interfaces;
pub mod nat;
pub mod recheck;
pub mod stun;
pub mod verify;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use advertised::{AddressStatus, Advertised};
pub use classify::{AddressClass, classify};
pub use discover::{DiscoverOptions, discover};

/// How the external address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `NetworkAddress.ExternalAddress`.
    Config,
    /// The internal address is public.
    Interface,
    Stun,
    Http,
    /// Nothing answered (or nothing is configured): the internal address is
    /// advertised, which is right on a LAN and loopback.
    Internal,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Config => "config",
            Method::Interface => "interface",
            Method::Stun => "stun",
            Method::Http => "http",
            Method::Internal => "internal",
        }
    }
}

/// Whether a NAT sits between the node and the STUN servers, and how it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatType {
    /// The node's own address is what the outside sees.
    None,
    /// Behind a NAT whose mapping is endpoint-independent: one local port
    /// looks the same to every server (hole punching can work).
    EndpointIndependent,
    /// Behind a NAT with endpoint-dependent ("symmetric") mapping: each
    /// server sees another port, so an address learnt from one server is
    /// useless to anybody else.
    Symmetric,
    /// Behind a NAT; fewer than two servers answered, so the mapping is untested.
    MappingUnknown,
    /// Could not tell (configured address, or no server answered).
    Unknown,
}

impl NatType {
    pub fn as_str(self) -> &'static str {
        match self {
            NatType::None => "none",
            NatType::EndpointIndependent => "endpoint-independent",
            NatType::Symmetric => "symmetric",
            NatType::MappingUnknown => "mapping-unknown",
            NatType::Unknown => "unknown",
        }
    }

    /// One line for people: what this means for reaching the node.
    pub fn describe(self) -> &'static str {
        match self {
            NatType::None => "no NAT: the outside sees the internal address",
            NatType::EndpointIndependent => {
                "behind NAT; one local port maps to the same external port for every destination"
            }
            NatType::Symmetric => {
                "behind a symmetric NAT (endpoint-dependent mapping): a new external port per destination"
            }
            NatType::MappingUnknown => {
                "behind NAT; mapping not tested (needs answers from two STUN servers)"
            }
            NatType::Unknown => "not determined: no STUN server or HTTP lookup service answered",
        }
    }
}

/// Mapping behaviour seen from one socket by two STUN servers (RFC 4787).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    EndpointIndependent,
    EndpointDependent,
    NotTested,
    /// No NAT, so nothing is mapped (a multihomed host may still show
    /// different source addresses to different servers).
    None,
}

impl Mapping {
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::EndpointIndependent => "endpoint-independent",
            Mapping::EndpointDependent => "endpoint-dependent",
            Mapping::NotTested => "not-tested",
            Mapping::None => "none",
        }
    }
}

/// One server or service asked, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub method: Method,
    pub target: String,
    /// The address it reported, when it answered.
    pub answer: Option<String>,
    pub error: Option<String>,
}

/// The outcome of one discovery run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressReport {
    pub internal_address: IpAddr,
    pub internal_class: AddressClass,
    /// An IP address, or the configured host name.
    pub external_address: String,
    pub method: Method,
    pub nat_type: NatType,
    pub mapping: Mapping,
    pub attempts: Vec<Attempt>,
    /// Problems worth an operator's attention (e.g. an unusable
    /// ExternalAddress); each is also logged.
    pub warnings: Vec<String>,
}

/// The message of a lookup error without the target, which the attempt
/// already names.
pub(crate) fn attempt_error(e: &crate::Error) -> String {
    match e {
        crate::Error::AddressLookup { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl AddressReport {
    fn new(internal: IpAddr) -> Self {
        Self {
            internal_address: internal,
            internal_class: classify(internal),
            external_address: internal.to_string(),
            method: Method::Internal,
            nat_type: NatType::Unknown,
            mapping: Mapping::NotTested,
            attempts: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn found(mut self, external: String, method: Method, nat: NatType, mapping: Mapping) -> Self {
        self.external_address = external;
        self.method = method;
        self.nat_type = nat;
        self.mapping = mapping;
        self
    }
}
