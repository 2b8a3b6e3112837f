//! Outgoing transaction traffic: one lazily connected HTTP/2 channel per
//! peer, reused by every call to it and closed after it has been idle.
//! Gossip talks to the same fanout peers many times a second, so unlike
//! discovery it keeps its connections.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

/// Below this a gzip frame costs more than it saves.
pub const COMPRESS_MIN_BYTES: usize = 1024;

/// Largest gRPC message we send or accept: a whole transaction of the
/// configured maximum size plus framing.
pub fn max_message_bytes(max_transaction_size: u64) -> usize {
    usize::try_from(max_transaction_size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024)
}

pub struct TxClients {
    compression: bool,
    connect_timeout: Duration,
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
        connect_timeout: Duration,
        request_timeout: Duration,
        max_message: usize,
        drop_ratio: f64,
    ) -> Self {
        Self {
            compression,
            connect_timeout,
            request_timeout,
            max_message,
            drop_ratio,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client for `url` that gzips its request when `payload` bytes are
    /// worth compressing (and compression is on), and always accepts gzip
    /// answers when compression is on (the server decides per response).
    pub fn client(&self, url: &str, payload: usize) -> Result<Client> {
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
                    let ch = Endpoint::from_shared(url.to_owned())
                        .map_err(|e| Error::InvalidPeerAddress {
                            address: url.to_owned(),
                            reason: e.to_string(),
                        })?
                        .connect_timeout(self.connect_timeout)
                        .timeout(self.request_timeout)
                        .tcp_nodelay(true)
                        .connect_lazy();
                    map.insert(url.to_owned(), (ch.clone(), Instant::now()));
                    ch
                }
            }
        };
        let mut c = TransactionDistributionClient::new(channel)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message);
        if self.compression {
            c = c.accept_compressed(CompressionEncoding::Gzip);
            if payload >= COMPRESS_MIN_BYTES {
                c = c.send_compressed(CompressionEncoding::Gzip);
            }
        }
        Ok(c)
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
