//! Eager pushes, through one mailbox per peer (see `mailbox`). A push goes
//! out at once when nothing is under way to that peer; pushes that queue up
//! meanwhile go together in one `PushTransactions` call. Relayed pushes
//! ride the peer's `PushStream` (when it speaks streams): no call, task or
//! answer per push on either side.
//!
//! Before, each push was its own call, and past a cap on pushes in flight
//! the rest fell back to announcements, which the receiver then pulled:
//! two calls per transaction where one would do. Under saturation the
//! calls themselves (HTTP/2 frames, syscalls, task wake-ups) were most of
//! the CPU.
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sorcha_proto::transaction::{CompactNotification, PushBatch, TransactionPush};
use tokio::sync::mpsc;

use super::distributor::{Distributor, PeerRef, TreeLink};
use super::mailbox::{IDLE, gather};
use super::net::{Gzip, status_err};
use super::outgoing::Outgoing;
use super::push_stream::StreamedBatch;
use super::spread::announcement;
use super::store::TxHash;
use crate::comm::{Op, Protocol};
use crate::{Error, Result};

/// Most pushes in one call.
const MAX_PUSHES: usize = 256;

/// Bytes of transactions one call carries at most (a single larger
/// transaction still goes, alone).
const MAX_PUSH_BYTES: u64 = 1024 * 1024;

/// Bytes of pushes queued for one peer beyond which further transactions
/// are announced to it instead (see `Distributor::push`). Under saturation
/// the queue to a peer grows faster than it drains, and copies queued
/// whole were mostly ones the peer got elsewhere meanwhile (at 100 KiB,
/// 11x the payload on the wire without this limit).
const MAX_PUSH_BACKLOG: u64 = 64 * 1024;

/// How long a peer that refused this node's pushes gets announcements
/// instead (its per-minute limits reset within this).
const PUSH_REFUSED_FOR: Duration = Duration::from_secs(60);

/// Largest batch of pushes (bytes of transactions) sent on a stream; a
/// larger one goes by call (see `push_batch`).
const MAX_STREAMED_BATCH: u64 = 64 * 1024;

/// Batches that may wait for a peer's PushStream to take them: one, so
/// what waits beyond it stays in the mailbox, where the backlog limit
/// decides (see `MAX_PUSH_BACKLOG`).
const PUSH_STREAM_BUFFER: usize = 1;

/// One transaction waiting to be pushed to a peer.
pub(super) struct QueuedPush {
    pub hash: TxHash,
    pub size: u64,
    pub round: u32,
    pub compressible: bool,
    /// Broadcast tree: the path maximum the push carries (see `tree_rank`).
    pub path_max: u64,
}

impl QueuedPush {
    /// The announcement sent instead when the push is not.
    fn announcement(&self) -> CompactNotification {
        announcement(self.hash, self.size, self.round, self.compressible)
    }
}

impl Distributor {
    /// Queues a push of `hash` to `peer`, starting the peer's sender; an
    /// announcement instead while the peer refuses this node's pushes.
    pub(super) fn push(self: &Arc<Self>, peer: &PeerRef, push: QueuedPush) {
        let refused = self
            .push_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer.id)
            .is_some_and(|until| Instant::now() < *until);
        if refused {
            return self.announce_to(peer, push.announcement());
        }
        let size = push.size;
        match self
            .push_boxes
            .deliver_within(&peer.id, push, size, MAX_PUSH_BACKLOG)
        {
            Ok(Some(rx)) => {
                tokio::spawn(self.clone().push_sender(peer.clone(), rx));
            }
            Ok(None) => {}
            // The link is behind: an announcement lets the peer pull only
            // what it still lacks once it gets to it, where queued copies
            // would arrive whole even if it got them meanwhile.
            Err(push) => {
                self.announce_to(peer, push.announcement());
            }
        }
    }

    async fn push_sender(
        self: Arc<Self>,
        peer: PeerRef,
        mut rx: mpsc::UnboundedReceiver<QueuedPush>,
    ) {
        let mut carry = None;
        let mut stream = Outgoing::new(PUSH_STREAM_BUFFER);
        loop {
            let batch = gather(&mut rx, &mut carry, IDLE, MAX_PUSHES, MAX_PUSH_BYTES, |p| {
                p.size
            })
            .await;
            if batch.is_empty() {
                break;
            }
            let weight = batch.iter().map(|p| p.size).sum();
            // A batch on a stream leaves the backlog once the call takes
            // it (see `StreamedBatch`); a unary call's once answered.
            if !self.push_batch(&peer, &mut stream, batch, weight).await {
                self.push_boxes.sent(&peer.id, weight);
            }
        }
        self.push_boxes.retire(&peer.id);
    }

    /// One call with `batch` (of `weight` in the peer's backlog); prunes
    /// the tree link if a push met a transaction the peer held. Pushes the
    /// peer refuses (past what this node may inject there per minute, say)
    /// are announced instead: the peer can still pull them. True when the
    /// batch went to the peer's push stream, which releases its weight.
    async fn push_batch(
        self: &Arc<Self>,
        peer: &PeerRef,
        stream: &mut Outgoing<StreamedBatch>,
        batch: Vec<QueuedPush>,
        weight: u64,
    ) -> bool {
        // A transaction no longer held here (pruned meanwhile) is skipped.
        let mut items = Vec::with_capacity(batch.len());
        for q in batch {
            if let Ok(Some(data)) = self.data(&q.hash) {
                items.push((q, data));
            }
        }
        if items.is_empty() {
            return false;
        }
        let hashes: Vec<TxHash> = items.iter().map(|(q, _)| q.hash).collect();
        // Relays only: an origin's first sends wait for the answer that
        // proves delivery (and count against the peer's injection limit).
        // Gzip is set per call, so compressible batches go by call too. So
        // do large batches: a call's answer paces the link, where a stream
        // takes the next batch before the peer has the last.
        let streamed = self.clients.comm.protocol(&peer.url) == Protocol::GrpcStream
            && weight <= MAX_STREAMED_BATCH
            && items.iter().all(|(q, _)| q.round >= 2 && !q.compressible);
        if streamed {
            let result = self.stream_pushes(peer, stream, items, weight).await;
            self.sent(peer, &hashes, result);
            return true;
        }
        let result = self.send_pushes(peer, &items).await;
        if let Err(Error::PeerRejected { .. }) = result {
            self.refuse_pushes(&peer.id);
            for (q, _) in &items {
                self.announce_to(peer, q.announcement());
            }
            return false;
        }
        // The peer had it from elsewhere: this link closes a cycle. (A
        // failed push keeps the link: a peer that stays unreachable drops
        // out of the live peers, and its part of the tree grafts itself
        // elsewhere.)
        if let Ok(known) = &result
            && known.iter().any(|k| *k)
        {
            self.tree_link(&peer.id, TreeLink::Prune);
        }
        self.sent(peer, &hashes, result.map(drop));
        false
    }

    /// Sending whole transactions to a peer only to have them refused again
    /// would waste the bytes: it gets announcements for a while.
    pub(super) fn refuse_pushes(&self, peer_id: &str) {
        self.push_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer_id.to_owned(), Instant::now() + PUSH_REFUSED_FOR);
    }

    /// Sends pushes: one alone by `PushTransaction`, several by
    /// `PushTransactions`, to a REST peer as announcements (it pulls).
    /// Per push, whether the peer held it already.
    async fn send_pushes(
        &self,
        peer: &PeerRef,
        items: &[(QueuedPush, Bytes)],
    ) -> Result<Vec<bool>> {
        let bytes: u64 = items.iter().map(|(_, d)| d.len() as u64).sum();
        let gzip = if items.iter().any(|(q, _)| q.compressible) {
            Gzip::SendAndAccept
        } else {
            Gzip::Off
        };
        let comm = self.clients.comm.clone();
        let count = items.len();
        comm.call(&peer.url, Op::Push, |p| async move {
            if p == Protocol::Rest {
                let notes = items
                    .iter()
                    .map(|(q, d)| announcement(q.hash, d.len() as u64, q.round, false))
                    .collect();
                return self
                    .notify_rest(peer, notes)
                    .await
                    .map(|()| vec![false; count]);
            }
            let push = |q: &QueuedPush, data: &Bytes, sender: String| TransactionPush {
                sender_peer_id: sender,
                transaction_data: data.clone(),
                round: q.round as i32,
                compressible: q.compressible,
                path_max_rank: q.path_max,
            };
            let mut c = self.clients.client(peer, gzip)?;
            let known = if let [(q, data)] = items {
                let req = push(q, data, self.me().to_owned());
                let ack = c
                    .push_transaction(self.clients.request(req, bytes))
                    .await
                    .map_err(|s| status_err(&peer.url, s))?;
                vec![ack.into_inner().already_known]
            } else {
                let req = PushBatch {
                    sender_peer_id: self.me().to_owned(),
                    pushes: items
                        .iter()
                        .map(|(q, d)| push(q, d, String::new()))
                        .collect(),
                };
                let ack = c
                    .push_transactions(self.clients.request(req, bytes))
                    .await
                    .map_err(|s| status_err(&peer.url, s))?;
                let mut known = ack.into_inner().already_known;
                // A short answer counts the missing ones as new.
                known.resize(count, false);
                known
            };
            self.m.metrics.bandwidth_sent.inc_by(bytes);
            Ok(known)
        })
        .await
    }
}
