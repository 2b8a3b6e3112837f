//! Outgoing transaction traffic: one lazily connected HTTP/2 channel per
//! peer, reused by every call to it and closed after it has been idle.
//! Gossip talks to the same fanout peers many times a second, so unlike
//! discovery it keeps its connections.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use super::distributor::PeerRef;
use crate::comm::Connector;

use crate::{Error, Result};

/// How a call uses gzip (when compression is on at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gzip {
    /// Small messages both ways.
    Off,
    /// Answers may be compressed (the server decides per response).
    Accept,
    /// The request is worth compressing too (see `worth_compressing`).
    SendAndAccept,
}

/// Below this a gzip frame costs more than it saves.
pub const COMPRESS_MIN_BYTES: usize = 1024;

/// Whether gzip would pay for itself on `data`: big enough, and a 4 KiB
/// sample shrinks by at least a tenth (random or already-compressed bytes
/// do not, and deflating them only burns CPU at every hop).
pub fn worth_compressing(data: &[u8]) -> bool {
    if data.len() < COMPRESS_MIN_BYTES {
        return false;
    }
    let sample = &data[..data.len().min(4096)];
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    if std::io::Write::write_all(&mut z, sample).is_err() {
        return false;
    }
    z.finish()
        .is_ok_and(|out| out.len() * 10 < sample.len() * 9)
}

/// Largest gRPC message we send or accept: a whole transaction of the
/// configured maximum size plus framing.
pub fn max_message_bytes(max_transaction_size: u64) -> usize {
    usize::try_from(max_transaction_size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024)
}

pub struct TxClients {
    compression: bool,
    connector: Connector,
    request_timeout: Duration,
    max_message: usize,
    /// Fault injection: the share of calls failed as if lost on the wire.
    drop_ratio: f64,
    channels: Mutex<HashMap<String, (Channel, Instant)>>,
}

pub type Client = TransactionDistributionClient<Channel>;

impl TxClients {
    pub fn new(
        compression: bool,
        connector: Connector,
        request_timeout: Duration,
        max_message: usize,
        drop_ratio: f64,
    ) -> Self {
        Self {
            compression,
            connector,
            request_timeout,
            max_message,
            drop_ratio,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client for `url`; with compression on, gzip is used as `gzip`
    /// says. (A server compresses a streamed answer whenever the client
    /// accepts gzip, so only calls that may fetch big, compressible data
    /// accept it.)
    pub fn client(&self, peer: &PeerRef, gzip: Gzip) -> Result<Client> {
        let url = peer.url.as_str();
        if lost(self.drop_ratio) {
            return Err(Error::PeerUnreachable {
                peer: url.to_owned(),
                message: "dropped by fault injection".into(),
            });
        }
        let channel = {
            let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            match map.get_mut(url) {
                Some((ch, used)) => {
                    *used = Instant::now();
                    ch.clone()
                }
                None => {
                    let endpoint = self.connector.endpoint(url)?;
                    let ch = self.connector.channel_lazy(&endpoint, Some(&peer.id))?;
                    map.insert(url.to_owned(), (ch.clone(), Instant::now()));
                    ch
                }
            }
        };
        let mut c = TransactionDistributionClient::new(channel)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message);
        if self.compression {
            if gzip != Gzip::Off {
                c = c.accept_compressed(CompressionEncoding::Gzip);
            }
            if gzip == Gzip::SendAndAccept {
                c = c.send_compressed(CompressionEncoding::Gzip);
            }
        }
        Ok(c)
    }

    /// A request with a deadline: the base timeout plus time for `bytes`
    /// at a conservative 1 MB/s. The announcement stream has none (it is
    /// meant to stay open), hence no channel-wide timeout.
    pub fn request<T>(&self, msg: T, bytes: u64) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.request_timeout + Duration::from_micros(bytes));
        req
    }

    /// Closes channels unused for `idle`.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, (_, used)| used.elapsed() < idle);
        before - map.len()
    }

    /// Forgets a peer's channel (after errors, so the next call reconnects).
    pub fn forget(&self, url: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(url);
    }

    /// How this node reaches peers (and the scheme of their URLs).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    pub fn open(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// True with probability `ratio` (fault injection; never when 0).
pub fn lost(ratio: f64) -> bool {
    ratio > 0.0 && rand::random::<f64>() < ratio
}

/// A failed transaction call, as a crate error.
pub fn status_err(url: &str, s: tonic::Status) -> Error {
    match s.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown => Error::PeerUnreachable {
            peer: url.to_owned(),
            message: s.message().to_owned(),
        },
        _ => Error::PeerRejected {
            peer: url.to_owned(),
            message: format!("{:?}: {}", s.code(), s.message()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_compressible_payloads_of_some_size_are_worth_gzip() {
        assert!(worth_compressing(&[b'a'; 5000]));
        assert!(!worth_compressing(&[b'a'; 100]), "too small");
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!worth_compressing(&random), "incompressible");
    }
}
