//! Communication with other peers. [`connector::Connector`] opens every
//! outgoing connection (plaintext or mutual TLS).
pub mod connector;

pub use connector::{Connector, peer_url};
