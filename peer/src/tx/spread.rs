//! Spreading a transaction: eager push of small ones to a few peers,
//! batched hash announcements to the rest, and the receiver's pull.
use std::sync::Arc;
use std::time::Instant;

use sorcha_proto::transaction::{
    CompactNotification, NotificationBatch, TransactionNotification, TransactionPush,
};
use tokio::sync::mpsc;

use super::distributor::{Distributor, PeerRef, TreeLink};
use super::gossip::{PushRule, split_push};
use super::mailbox::{IDLE, gather};
use super::net::{Gzip, status_err};
use super::outgoing::Outgoing;
use super::pull::Pull;
use super::push::QueuedPush;
use super::store::{TxHash, hash_of, to_hex};
use super::tree::LazyNotices;
use super::tree_rank::CycleTop;
use crate::comm::{Op, Protocol};
use crate::events::EventKind;
use crate::{Error, Result};

/// Most announcements in one NotifyTransactions call.
const MAX_BATCH: usize = 1024;

/// Announcement batches that may wait for a peer's AnnounceStream.
const ANNOUNCE_STREAM_BUFFER: usize = 256;

/// A peer's two announcement outboxes.
#[derive(Clone, Copy)]
enum Outbox {
    /// Sent at once: the receiver pulls what it lacks.
    Now,
    /// The tree's lazy notices (a backup in case the tree fails), gathered
    /// for half `LazyPullDelaySeconds` before each call. Sent at once, most
    /// arrived before the tree's push and each had the receiver wait and
    /// check back; later they mostly meet transactions already held, and
    /// a busy node sends a few batches instead of one call per notice.
    Lazy,
}

/// Most `LazyPullDelaySeconds` a lazy notice waits for the tree while the
/// tree keeps delivering other transactions late (a busy node, not a cut
/// one).
const LAZY_WAITS: usize = 8;

/// Transactions up to this size wait `LazyPullDelaySeconds` for the tree;
/// larger ones proportionally longer, since each hop of the tree takes
/// longer to carry them (a 1 MiB transaction waits 16 delays).
const LAZY_DELAY_UNIT: u64 = 64 * 1024;

/// Tree links carry transactions up to this size whole; larger ones (up to
/// `StreamingThreshold`, lower if that is lower) are announced on them and
/// pulled at once from the first announcer. A push is sent before the
/// sender knows whether the receiver already has it: until the tree has
/// formed (every link starts eager) and whenever a repair graft closes a
/// cycle, a node gets one whole copy per eager link. At 1 MiB those copies
/// saturated the benchmark's 2 cores (to 100% p50 7.8 s for 15
/// transactions, 1.35× the payload on the wire), while one pull per node
/// took 3.1 s at 0.99×. At 100 KiB the push was still ahead (p50 51 ms
/// against 58 ms): the pull's extra round trip costs more there than the
/// few duplicates. See README "Stop 15".
pub const TREE_PUSH_MAX: u64 = 256 * 1024;

/// How long a lazy notice of a `size`-byte transaction waits each time.
fn lazy_delay(configured: std::time::Duration, size: u64) -> std::time::Duration {
    configured.saturating_mul(size.div_ceil(LAZY_DELAY_UNIT).max(1) as u32)
}

fn queued(hash: TxHash, size: u64, round: u32, compressible: bool, path_max: u64) -> QueuedPush {
    QueuedPush {
        hash,
        size,
        round,
        compressible,
        path_max,
    }
}

/// The (non-lazy) announcement of a transaction spread in `round`.
pub(super) fn announcement(
    hash: TxHash,
    size: u64,
    round: u32,
    compressible: bool,
) -> CompactNotification {
    CompactNotification {
        hash: hash.to_vec(),
        size: size as i64,
        round: round as i32,
        compressible,
        lazy: false,
    }
}

impl Distributor {
    /// Tells a fanout of live peers about `hash`, in gossip round `round`;
    /// never `holders` (peer ids known to hold it: where it came from and
    /// who announced it meanwhile).
    pub(super) fn spread(
        self: &Arc<Self>,
        hash: TxHash,
        size: u64,
        round: u32,
        holders: &[String],
        compressible: bool,
    ) {
        // A read-only node receives but never distributes (PeerService.Role).
        if !self.m.me().capabilities.supports_transaction_distribution {
            return;
        }
        if self.tree_mode() {
            return self.spread_tree(hash, size, round.min(2), holders, compressible);
        }
        let targets = self.fanout_targets(holders);
        if targets.is_empty() {
            return;
        }
        self.m.metrics.gossip_rounds.inc();
        let rule = PushRule {
            eager_threshold: self.cfg.eager_push_threshold,
            eager_peers: self.cfg.eager_push_peers,
            first_round_max: self.cfg.streaming_threshold,
        };
        let (push, announce) = split_push(targets, size, round, rule);
        for peer in push {
            self.push(&peer, queued(hash, size, round, compressible, 0));
        }
        let note = announcement(hash, size, round, compressible);
        for peer in announce {
            self.announce_to(&peer, note.clone());
        }
    }

    /// `spread` on the broadcast tree: pushed whole to the eager links (or,
    /// above `TREE_PUSH_MAX`, announced for an immediate pull), the hash
    /// announced lazily to a few others. `round` is 1 from the origin
    /// and 2 from relays: it only tells receivers whether the sender is the
    /// origin (whose first sends go by unary call, proving delivery).
    fn spread_tree(
        self: &Arc<Self>,
        hash: TxHash,
        size: u64,
        round: u32,
        holders: &[String],
        compressible: bool,
    ) {
        let targets = self.tree_targets(holders);
        if targets.eager.is_empty() && targets.lazy.is_empty() {
            return;
        }
        self.m.metrics.gossip_rounds.inc();
        let note = announcement(hash, size, round, compressible);
        let small = size <= TREE_PUSH_MAX.min(self.cfg.streaming_threshold);
        if small {
            // Each push's path maximum (see `tree_rank`). The origin's copy
            // crossed no link yet; a relay's first copy was noted when its
            // push arrived (see `on_push`).
            let path_maxima: Vec<u64> = {
                let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
                if round == 1 {
                    tree.first_copy(hash, 0, self.me(), None);
                }
                let max = |p: &PeerRef| tree.path_max(&hash, self.me(), &p.id);
                targets.eager.iter().map(max).collect()
            };
            for (peer, max) in targets.eager.iter().zip(path_maxima) {
                self.push(peer, queued(hash, size, round, compressible, max));
            }
        } else {
            for peer in &targets.eager {
                self.announce_to(peer, note.clone());
            }
        }
        let lazy = CompactNotification { lazy: true, ..note };
        for peer in targets.lazy {
            if let Some(rx) = self.lazy_boxes.deliver(&peer.id, lazy.clone()) {
                tokio::spawn(self.clone().outbox(peer, rx, Outbox::Lazy));
            }
        }
    }

    /// Queues an announcement on the peer's outbox, starting its sender.
    pub(super) fn announce_to(self: &Arc<Self>, peer: &PeerRef, note: CompactNotification) {
        if let Some(rx) = self.announce_boxes.deliver(&peer.id, note) {
            tokio::spawn(self.clone().outbox(peer.clone(), rx, Outbox::Now));
        }
    }

    /// Sends whatever announcements have gathered for one peer in a single
    /// call; ends after a minute without any. The lazy outbox lingers
    /// before each call (see `Outbox::Lazy`).
    async fn outbox(
        self: Arc<Self>,
        peer: PeerRef,
        mut rx: mpsc::UnboundedReceiver<CompactNotification>,
        kind: Outbox,
    ) {
        let (boxes, linger) = match kind {
            Outbox::Now => (&self.announce_boxes, std::time::Duration::ZERO),
            Outbox::Lazy => (&self.lazy_boxes, self.cfg.lazy_pull_delay_seconds / 2),
        };
        let mut stream = Outgoing::new(ANNOUNCE_STREAM_BUFFER);
        let mut carry = None;
        loop {
            let mut batch = gather(&mut rx, &mut carry, IDLE, MAX_BATCH, u64::MAX, |_| 0).await;
            if batch.is_empty() {
                break;
            }
            if !linger.is_zero() {
                tokio::time::sleep(linger).await;
                while batch.len() < MAX_BATCH {
                    let Ok(note) = rx.try_recv() else { break };
                    batch.push(note);
                }
            }
            let hashes: Vec<TxHash> = batch
                .iter()
                .filter_map(|n| n.hash.as_slice().try_into().ok())
                .collect();
            // A submission's first round goes by unary call, whose answer
            // proves delivery (it then counts as distributed); relays ride
            // the peer's announcement stream.
            let streamed = self.clients.comm.protocol(&peer.url) == Protocol::GrpcStream;
            let result = if batch.iter().any(|n| n.round <= 1) || !streamed {
                self.notify(&peer, batch).await.map(drop)
            } else {
                self.stream_batch(&peer, &mut stream, batch).await
            };
            self.sent(&peer, &hashes, result);
        }
        boxes.retire(&peer.id);
    }

    /// Sends a batch on the peer's AnnounceStream, opening it if needed.
    async fn stream_batch(
        &self,
        peer: &PeerRef,
        stream: &mut Outgoing<NotificationBatch>,
        notes: Vec<CompactNotification>,
    ) -> Result<()> {
        let count = notes.len() as u64;
        let batch = NotificationBatch {
            sender_peer_id: String::new(),
            notifications: notes,
        };
        let mut bytes = prost::Message::encoded_len(&batch) as u64;
        let opened = stream
            .send(&peer.url, batch, |first, rx| {
                // A new stream starts by naming the sender.
                first.sender_peer_id = self.me().to_owned();
                let mut c = self.clients.client(peer, Gzip::Off)?;
                let url = peer.url.clone();
                let comm = self.clients.comm.clone();
                tokio::spawn(async move {
                    let call = c.announce_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
                    if let Err(s) = call.await {
                        tracing::debug!(peer = %url, status = %s, "announcement stream ended");
                        // Later batches go unary; what this stream lost,
                        // anti-entropy recovers.
                        if s.code() == tonic::Code::Unimplemented {
                            comm.step_down(&url, Protocol::GrpcStream);
                        }
                    }
                });
                Ok(())
            })
            .await?;
        if opened {
            bytes += prost::encoding::string::encoded_len(1, &self.me().to_owned()) as u64;
        }
        let metrics = &self.m.metrics;
        metrics.bandwidth_sent.inc_by(bytes);
        metrics.announcements_sent.inc_by(count);
        metrics.announcement_bytes.inc_by(bytes);
        Ok(())
    }

    /// One NotifyTransactions call (or, with a REST peer, one REST notice
    /// per transaction); returns the hashes the peer wants.
    pub(super) async fn notify(
        &self,
        peer: &PeerRef,
        notes: Vec<CompactNotification>,
    ) -> Result<Vec<Vec<u8>>> {
        self.clients
            .comm
            .call(&peer.url, Op::Notify, |p| {
                let notes = notes.clone();
                async move {
                    if p == Protocol::Rest {
                        return self.notify_rest(peer, notes).await.map(|()| Vec::new());
                    }
                    let req = NotificationBatch {
                        sender_peer_id: self.me().to_owned(),
                        notifications: notes,
                    };
                    let count = req.notifications.len() as u64;
                    let bytes = prost::Message::encoded_len(&req);
                    let mut c = self.clients.client(peer, Gzip::Off)?;
                    let ack = c
                        .notify_transactions(self.clients.request(req, 0))
                        .await
                        .map_err(|s| status_err(&peer.url, s))?;
                    let metrics = &self.m.metrics;
                    metrics.bandwidth_sent.inc_by(bytes as u64);
                    metrics.announcements_sent.inc_by(count);
                    metrics.announcement_bytes.inc_by(bytes as u64);
                    Ok(ack.into_inner().wanted)
                }
            })
            .await
    }

    /// The design's REST notice, one per transaction (the peer pulls what
    /// it lacks by itself).
    pub(super) async fn notify_rest(
        &self,
        peer: &PeerRef,
        notes: Vec<CompactNotification>,
    ) -> Result<()> {
        let timeout = self.clients.deadline(0);
        for n in notes {
            self.clients.dropped(&peer.url)?;
            let note = TransactionNotification {
                transaction_hash: to_hex(n.hash.as_slice().try_into().map_err(|_| {
                    Error::InvalidTransaction("announcement with a malformed hash".into())
                })?),
                sender_peer_id: self.me().to_owned(),
                timestamp: crate::clock::now_ms(),
                transaction_size: n.size,
                round: n.round,
            };
            let bytes = serde_json::to_vec(&note).map_or(0, |b| b.len() as u64);
            self.clients
                .comm
                .rest
                .notify(&peer.url, Some(&peer.id), &note, timeout)
                .await?;
            let metrics = &self.m.metrics;
            metrics.bandwidth_sent.inc_by(bytes);
            metrics.announcements_sent.inc();
            metrics.announcement_bytes.inc_by(bytes);
        }
        Ok(())
    }

    /// Bookkeeping after a push or announcement batch.
    pub(super) fn sent(&self, peer: &PeerRef, hashes: &[TxHash], result: Result<()>) {
        match result {
            Ok(()) => {
                // Only this node's own submissions wait for a first send:
                // marking relayed copies (stored as distributed) would
                // cost the writer thread a wake-up per send for nothing.
                let mut submitted = self.submitted_at.lock().unwrap_or_else(|e| e.into_inner());
                let firsts: Vec<TxHash> = hashes
                    .iter()
                    .filter(|h| match submitted.remove(*h) {
                        Some(t) => {
                            self.m
                                .metrics
                                .tx_distribution_latency
                                .observe(t.elapsed().as_secs_f64());
                            true
                        }
                        None => self.store.awaits_first_send(h),
                    })
                    .copied()
                    .collect();
                drop(submitted);
                if let Err(e) = self.store.mark_distributed(&firsts) {
                    self.m.events.record(EventKind::Error, None, e.to_string());
                }
            }
            Err(e) => {
                self.m
                    .metrics
                    .connection_errors
                    .with_label_values(&["gossip"])
                    .inc();
                self.clients.forget(&peer.url);
                tracing::debug!(peer = %peer.id, error = %e, "gossip send failed");
            }
        }
    }

    /// Announcements from `sender`: returns the raw hashes this node will
    /// pull, and pulls them in the order announced.
    pub fn on_notifications(
        self: &Arc<Self>,
        sender: &str,
        notes: Vec<CompactNotification>,
    ) -> Result<Vec<Vec<u8>>> {
        let from = self.peer_by_id(sender);
        let mut wanted = Vec::new();
        let mut pulls = Vec::new();
        let mut lazy = Vec::new();
        // An unknown sender cannot be pulled from yet; anti-entropy will
        // fetch its transactions once it is in the peer list.
        for (i, n) in notes.iter().enumerate() {
            let hash: TxHash = n.hash.as_slice().try_into().map_err(|_| {
                Error::InvalidTransaction(format!(
                    "notifications[{i}].hash: expected 32 bytes, got {}",
                    n.hash.len()
                ))
            })?;
            let size = u64::try_from(n.size).map_err(|_| {
                Error::InvalidTransaction(format!("notifications[{i}].size: negative"))
            })?;
            self.check_size(size)?;
            if self.holds(&hash)? {
                self.m.metrics.tx_duplicates.inc();
                continue;
            }
            let pull = Pull {
                hash,
                size,
                round: u32::try_from(n.round).unwrap_or(0),
                gzip: if n.compressible {
                    Gzip::Accept
                } else {
                    Gzip::Off
                },
                graft: false,
            };
            // A lazy notice is a backup: the tree should bring the
            // transaction meanwhile.
            if n.lazy && self.tree_mode() {
                self.lazy_notices().heard(hash, Instant::now());
                lazy.push(pull);
                continue;
            }
            // Claimed now, so a later announcement or an anti-entropy round
            // does not fetch it again (or out of order) meanwhile.
            if let Some(peer) = &from
                && self.claim(hash, peer)
            {
                wanted.push(n.hash.clone());
                pulls.push(pull);
            }
        }
        if let Some(peer) = from {
            if !pulls.is_empty() {
                tokio::spawn(self.clone().pull_announced(pulls, peer.clone()));
            }
            if !lazy.is_empty() {
                tokio::spawn(self.clone().pull_missed(lazy, peer));
            }
        }
        Ok(wanted)
    }

    fn lazy_notices(&self) -> std::sync::MutexGuard<'_, LazyNotices> {
        self.lazy_notices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tree brought `hash` (see `LazyNotices`).
    pub(super) fn tree_arrival(&self, hash: &TxHash) {
        self.lazy_notices().arrived(hash, Instant::now());
    }

    /// After `LazyPullDelaySeconds`, pulls what lazy announcements named
    /// and the tree has not brought, grafting `peer` into the tree. While
    /// the tree is still bringing transactions announced before these, or
    /// brings many per delay, the node is behind or busy, not cut off, so
    /// it waits again (up to `LAZY_WAITS` delays) rather than fetch copies
    /// that are on their way (see `LazyNotices`). Waiting again whenever
    /// any push arrived held a cut-off node's copy back for seconds at
    /// light load.
    async fn pull_missed(self: Arc<Self>, lazy: Vec<Pull>, peer: PeerRef) {
        let mut lazy = lazy;
        let noticed = Instant::now();
        let largest = lazy.iter().map(|p| p.size).max().unwrap_or(0);
        let delay = lazy_delay(self.cfg.lazy_pull_delay_seconds, largest);
        for _ in 0..LAZY_WAITS {
            let (since, pushes) = (Instant::now(), self.lazy_notices().pushes());
            tokio::time::sleep(delay).await;
            lazy.retain(|p| matches!(self.holds(&p.hash), Ok(false)));
            let notices = self.lazy_notices();
            if lazy.is_empty() || !(notices.behind(noticed, since) || notices.busy(pushes)) {
                break;
            }
        }
        {
            let mut notices = self.lazy_notices();
            for p in &lazy {
                notices.forget(&p.hash);
            }
        }
        let pulls: Vec<Pull> = lazy
            .into_iter()
            .filter(|p| self.claim(p.hash, &peer))
            .map(|p| Pull { graft: true, ..p })
            .collect();
        if !pulls.is_empty() {
            self.tree_link(&peer.id, TreeLink::Graft);
            self.pull_announced(pulls, peer).await;
        }
    }

    /// An eager push from its `sender_peer_id`. False when the push was
    /// redundant: the sender then stops pushing on this link (tree mode),
    /// as does this node.
    pub async fn on_push(self: &Arc<Self>, push: TransactionPush) -> Result<bool> {
        let TransactionPush {
            sender_peer_id: sender,
            transaction_data: data,
            round,
            compressible,
            path_max_rank,
        } = push;
        self.check_size(data.len() as u64)?;
        let hash = hash_of(&data);
        // New or not, a push is the tree's delivery (see `pull_missed`).
        self.tree_arrival(&hash);
        let new = if self.holds(&hash)? {
            self.m.metrics.tx_duplicates.inc();
            false
        } else {
            let round = u32::try_from(round).unwrap_or(0);
            self.tree
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first_copy(hash, path_max_rank, self.me(), Some(&sender));
            self.accept(hash, data, round, Some(&sender), Some(compressible))
                .await?
        };
        // Held from a pull (a lazy notice, anti-entropy): the push came
        // late, not round a cycle, and this link may be the only one
        // bringing transactions here. Keep it.
        if !new {
            self.m.metrics.tx_push_duplicates.inc();
        }
        if new || self.was_pulled(&hash) {
            return Ok(true);
        }
        // Only the highest-ranked link of the cycle the copies closed is
        // pruned, so concurrent prunes cannot cut the tree (see
        // `tree_rank`). Both ends prune: a link pruned at one end only
        // would still carry transactions one way but not the other.
        let top = self
            .tree
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cycle_top(&hash, path_max_rank, self.me(), &sender);
        match top {
            // The sender prunes on this answer.
            CycleTop::Duplicates => {
                self.tree_link(&sender, TreeLink::Prune);
                Ok(false)
            }
            CycleTop::FirstCopy(peer) => {
                self.prune_and_tell(&peer);
                Ok(true)
            }
            // The cycle stays until a copy meets on its highest link.
            CycleTop::Elsewhere => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn large_transactions_wait_longer_for_the_tree() {
        let d = Duration::from_millis(250);
        assert_eq!(lazy_delay(d, 1), d);
        assert_eq!(lazy_delay(d, 64 * 1024), d);
        assert_eq!(lazy_delay(d, 100 * 1024), d * 2);
        assert_eq!(lazy_delay(d, 1024 * 1024), d * 16);
    }
}
