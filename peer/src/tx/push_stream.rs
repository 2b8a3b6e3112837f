//! Relayed pushes on a peer's long-lived `PushStream` (see `push`).
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sorcha_proto::transaction::{PushBatch, TransactionPush};
use tokio::sync::mpsc;

use super::distributor::{Distributor, PeerRef, TreeLink};
use super::net::{Client, Gzip, status_err};
use super::outgoing::Outgoing;
use super::push::QueuedPush;
use crate::comm::Protocol;
use crate::{Error, Result};

/// A batch on its way into a peer's PushStream. Its weight stays in the
/// peer's push backlog until the call takes it, which HTTP/2 flow control
/// paces, or until it is dropped untaken (the stream broke). Counting it
/// as sent once queued let a slow link hold megabytes of whole copies that
/// the peer mostly got elsewhere meanwhile (3x the payload at 1 MiB).
pub(super) struct StreamedBatch {
    batch: PushBatch,
    weight: u64,
    peer: String,
    distributor: Arc<Distributor>,
}

impl StreamedBatch {
    fn take(mut self) -> PushBatch {
        std::mem::take(&mut self.batch)
    }
}

impl Drop for StreamedBatch {
    fn drop(&mut self) {
        self.distributor.push_boxes.sent(&self.peer, self.weight);
    }
}

impl Distributor {
    /// Sends relayed pushes (of `weight` in the peer's backlog) on the
    /// peer's PushStream, opening it if needed. What a broken stream
    /// loses, anti-entropy recovers.
    pub(super) async fn stream_pushes(
        self: &Arc<Self>,
        peer: &PeerRef,
        stream: &mut Outgoing<StreamedBatch>,
        items: Vec<(QueuedPush, Bytes)>,
        weight: u64,
    ) -> Result<()> {
        let bytes: u64 = items.iter().map(|(_, d)| d.len() as u64).sum();
        let batch = PushBatch {
            sender_peer_id: String::new(),
            pushes: items
                .into_iter()
                .map(|(q, data)| TransactionPush {
                    sender_peer_id: String::new(),
                    transaction_data: data,
                    round: q.round as i32,
                    compressible: q.compressible,
                    path_max_rank: q.path_max,
                })
                .collect(),
        };
        let queued = StreamedBatch {
            batch,
            weight,
            peer: peer.id.clone(),
            distributor: self.clone(),
        };
        stream
            .send(&peer.url, queued, |first, rx| {
                // A new stream starts by naming the sender.
                first.batch.sender_peer_id = self.me().to_owned();
                let c = self.clients.client(peer, Gzip::Off)?;
                tokio::spawn(self.clone().push_stream_call(c, rx, peer.clone()));
                Ok(())
            })
            .await?;
        self.m.metrics.bandwidth_sent.inc_by(bytes);
        Ok(())
    }

    /// Runs one PushStream call: the answers name batches that met
    /// transactions the peer held, so this link closes a cycle (pruned as
    /// after a unary push). A peer that ends the stream refusing it gets
    /// announcements for a while; one without the method, unary pushes.
    async fn push_stream_call(
        self: Arc<Self>,
        mut c: Client,
        rx: mpsc::Receiver<StreamedBatch>,
        peer: PeerRef,
    ) {
        let call = async {
            let batches = tokio_stream::wrappers::ReceiverStream::new(rx).map(StreamedBatch::take);
            let mut answers = c.push_stream(batches).await?.into_inner();
            while let Some(ack) = answers.message().await? {
                if ack.already_known.iter().any(|k| *k) {
                    self.tree_link(&peer.id, TreeLink::Prune);
                }
            }
            Ok::<(), tonic::Status>(())
        };
        let Err(s) = call.await else { return };
        tracing::debug!(peer = %peer.url, status = %s, "push stream ended");
        match status_err(&peer.url, s) {
            Error::ProtocolUnsupported { .. } => {
                self.clients.comm.step_down(&peer.url, Protocol::GrpcStream);
            }
            Error::PeerRejected { .. } => self.refuse_pushes(&peer.id),
            _ => {}
        }
    }
}
