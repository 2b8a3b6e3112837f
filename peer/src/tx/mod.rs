//! Transactions: durable store, duplicate detection, offline queue and gossip.
pub mod dedupe;
pub mod distributor;
pub mod gossip;
mod group_commit;
pub mod hot;
mod links;
mod mailbox;
pub mod net;
mod outgoing;
mod pull;
mod push;
pub mod queue;
mod spread;
pub mod store;
mod store_index;
mod store_writer;
mod sync;
mod tree;
