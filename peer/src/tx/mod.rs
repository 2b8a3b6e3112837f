//! Transactions: durable store, duplicate detection, offline queue and gossip.
pub mod dedupe;
pub mod distributor;
pub mod gossip;
pub mod hot;
pub mod net;
pub mod queue;
mod spread;
pub mod store;
mod sync;
