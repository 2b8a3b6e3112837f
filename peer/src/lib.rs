//! Sorcha Peer: a node that discovers peers, keeps a persistent membership
//! list, and reports its Online/Degraded/Offline state.
//!
//! Layout follows the design's components: `config`, `discovery` (with the
//! pure `membership` table and `state` machine), `store` (SQLite), `client`
//! (outgoing calls), `api` (gRPC + REST on one port), `metrics`, `events`,
//! `security` (mTLS identity, revocation, hot reload, rate limits,
//! reputation), `k8s` (status reporting to the pod's `SorchaPeer`), `node`
//! (wiring and lifecycle) and `cli` (the `sorcha-peer` commands).
#![forbid(unsafe_code)]

pub mod address;
pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod comm;
pub mod config;
pub mod discovery;
pub mod error;
pub mod events;
pub mod k8s;
pub mod metrics;
pub mod node;
pub mod security;
pub mod store;
pub mod tx;

pub use error::{Error, Result};
