//! Outgoing transaction traffic: gRPC clients on the communication
//! manager's pooled connection per peer, with this node's compression and
//! message-size settings.
use std::sync::Arc;
use std::time::Duration;

use sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use super::distributor::PeerRef;
pub use crate::client::status_err;
use crate::comm::{Comm, Connector};
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
    let sample = &data[..data.len().min(SAMPLE_BYTES)];
    // One compressor per thread, reset between samples: a new one
    // allocates and clears some 300 KB, more work than the sample itself.
    thread_local! {
        static DEFLATE: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), false));
    }
    DEFLATE.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        // Room for just under the size that counts as a gain: output that
        // does not fit means the data does not compress well enough.
        let mut out = [0u8; SAMPLE_BYTES];
        let room = sample.len() * 9 / 10;
        matches!(
            z.compress(sample, &mut out[..room], flate2::FlushCompress::Finish),
            Ok(flate2::Status::StreamEnd)
        ) && (z.total_out() as usize) < room
    })
}

/// How much of a transaction `worth_compressing` tries.
const SAMPLE_BYTES: usize = 4096;

/// Largest gRPC message we send or accept: a whole transaction of the
/// configured maximum size plus framing.
pub fn max_message_bytes(max_transaction_size: u64) -> usize {
    usize::try_from(max_transaction_size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024)
}

pub struct TxClients {
    compression: bool,
    request_timeout: Duration,
    max_message: usize,
    /// Fault injection: the share of calls failed as if lost on the wire.
    drop_ratio: f64,
    pub comm: Arc<Comm>,
}

pub type Client = TransactionDistributionClient<Channel>;

impl TxClients {
    pub fn new(
        comm: Arc<Comm>,
        compression: bool,
        request_timeout: Duration,
        max_message: usize,
        drop_ratio: f64,
    ) -> Self {
        Self {
            compression,
            request_timeout,
            max_message,
            drop_ratio,
            comm,
        }
    }

    /// A client for `url`; with compression on, gzip is used as `gzip`
    /// says. (A server compresses a streamed answer whenever the client
    /// accepts gzip, so only calls that may fetch big, compressible data
    /// accept it.)
    pub fn client(&self, peer: &PeerRef, gzip: Gzip) -> Result<Client> {
        let url = peer.url.as_str();
        self.dropped(url)?;
        let channel = self
            .comm
            .pool
            .channel(url, Some(&peer.id), self.comm.metrics())?;
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

    /// Fault injection: fails a call (gRPC or REST) as if lost on the wire.
    pub fn dropped(&self, url: &str) -> Result<()> {
        if lost(self.drop_ratio) {
            return Err(Error::PeerUnreachable {
                peer: url.to_owned(),
                message: "dropped by fault injection".into(),
            });
        }
        Ok(())
    }

    /// The deadline for a call carrying `bytes`: the base timeout plus time
    /// for them at a conservative 1 MB/s.
    pub fn deadline(&self, bytes: u64) -> Duration {
        self.request_timeout + Duration::from_micros(bytes)
    }

    /// A request with `deadline(bytes)`. The announcement stream has none
    /// (it is meant to stay open), hence no channel-wide timeout.
    pub fn request<T>(&self, msg: T, bytes: u64) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.deadline(bytes));
        req
    }

    /// Closes channels unused for `idle`.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        self.comm.evict_idle(idle)
    }

    /// Forgets a peer's channel (after errors, so the next call reconnects).
    pub fn forget(&self, url: &str) {
        self.comm.pool.forget(url, self.comm.metrics());
    }

    /// How this node reaches peers (and the scheme of their URLs).
    pub fn connector(&self) -> &Connector {
        self.comm.connector()
    }

    pub fn open(&self) -> usize {
        self.comm.pool.open()
    }
}

/// True with probability `ratio` (fault injection; never when 0).
pub fn lost(ratio: f64) -> bool {
    ratio > 0.0 && rand::random::<f64>() < ratio
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
