//! Background work of the distributor: anti-entropy rounds, flushing the
//! offline queue once the node is back online, re-announcing transactions a
//! crash left unannounced, and pruning what is past its TTL.
use std::sync::Arc;

use rand::seq::IndexedRandom;
use sorcha_proto::transaction::{CompactNotification, SyncRequest, SyncResponse};
use tokio_util::sync::CancellationToken;

use super::distributor::Distributor;
use super::gossip::{REPAIR_ROUND, bucket_digests, bucket_of, differing};
use super::net::{Gzip, status_err};
use super::pull::Pull;
use super::queue::Retry;
use super::store::{TxHash, parse_hex, to_hex};
use crate::clock::now_ms;
use crate::comm::{Op, Protocol};
use crate::discovery::state::NodeState;
use crate::events::EventKind;
use crate::{Error, Result};

/// Queue entries announced per flush step. Each step costs a round trip to
/// the slowest target and the receiver's pass over the batch, so bigger steps
/// flush faster: 1,000 gave ~47k tx/s, 4,096 ~65k, 16,384 ~115k in the
/// benchmark. About 42 bytes each on the wire (700 KB per step), well
/// within the message and per-peer byte limits.
const FLUSH_BATCH: usize = 16384;

/// How often a node in `GossipMode: Tree` checks that it has tree links
/// (a node that has spread nothing yet needs them to be reachable) and
/// re-asserts them at their other ends (see `reassert_tree`).
const TREE_TENDING: std::time::Duration = std::time::Duration::from_secs(1);

impl Distributor {
    /// Runs the background loops until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.reannounce_undistributed(i64::MAX);
        let mut states = self.m.subscribe_state();
        let mut tree_tick = tokio::time::interval(TREE_TENDING);
        tree_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync_tick = tokio::time::interval(self.cfg.anti_entropy_interval_seconds);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = states.changed() => {
                    if changed.is_err() { return; }
                    if *states.borrow_and_update() != NodeState::Offline {
                        self.flush_queue().await;
                    }
                }
                _ = tree_tick.tick(), if self.tree_mode() => self.reassert_tree(),
                _ = sync_tick.tick() => {
                    if self.m.state() != NodeState::Offline {
                        // A flush that failed earlier gets retried here too.
                        self.flush_queue().await;
                        let interval = self.cfg.anti_entropy_interval_seconds.as_millis() as i64;
                        self.reannounce_undistributed(now_ms() - interval);
                        if let Err(e) = self.anti_entropy_round().await {
                            tracing::debug!(error = %e, "anti-entropy round failed");
                        }
                    }
                    self.housekeeping();
                }
            }
        }
    }

    /// Submissions stored but never announced (a crash right after the
    /// acknowledgement, or no peer answered) go out again as if just
    /// submitted. Those waiting in the offline queue are the flush's.
    /// Only those received before `before` (Unix ms): younger ones may still
    /// be on their way out.
    fn reannounce_undistributed(self: &Arc<Self>, before: i64) {
        let result = self.store.undistributed().and_then(|list| {
            for t in list {
                if t.received_at >= before || self.queue.contains(&to_hex(&t.hash))? {
                    continue;
                }
                self.remember(&t.hash);
                self.spread(t.hash, t.size, 1, &[], false);
            }
            Ok(())
        });
        if let Err(e) = result {
            self.m.events.record(EventKind::Error, None, e.to_string());
        }
    }

    fn housekeeping(&self) {
        let now = now_ms();
        let ttl = self.cfg.transaction_cache_ttl.as_millis() as i64;
        self.dedupe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now);
        if let Err(e) = self.store.prune(now - ttl) {
            self.m.events.record(EventKind::Error, None, e.to_string());
        }
        self.clients.evict_idle(std::time::Duration::from_secs(120));
    }

    /// Hashes anti-entropy compares: those received within the TTL and
    /// already released to the network. A submission still in the offline
    /// queue stays out, so the queue alone decides its (ordered) release.
    ///
    /// Those received within the last interval stay out too: gossip is
    /// still bringing them to the peer. Comparing them sent a busy node
    /// after copies on their way (pulls racing the tree, announcements of
    /// what the peer was about to get); the next round covers them.
    fn recent_hashes(&self) -> Result<Vec<(TxHash, u64)>> {
        let now = now_ms();
        let since = now - self.cfg.transaction_cache_ttl.as_millis() as i64;
        let settled = now - self.cfg.anti_entropy_interval_seconds.as_millis() as i64;
        Ok(self.store.distributed_in(since..settled.max(since)))
    }

    /// One anti-entropy exchange with a random live peer: pull what it has
    /// and we lack; announce to it what we have and it lacks.
    pub async fn anti_entropy_round(self: &Arc<Self>) -> Result<()> {
        let peers = self.live_peers();
        let Some(peer) = peers.choose(&mut rand::rng()).cloned() else {
            return Ok(());
        };
        let mine = self.recent_hashes()?;
        let req = SyncRequest {
            requesting_peer_id: self.me().to_owned(),
            bucket_digests: bucket_digests(mine.iter().map(|(h, _)| h)),
        };
        let resp = self
            .clients
            .comm
            .call(&peer.url, Op::Sync, |p| {
                let req = req.clone();
                let peer = &peer;
                async move {
                    if p == Protocol::Rest {
                        self.clients.dropped(&peer.url)?;
                        let timeout = self.clients.deadline(0);
                        return self
                            .clients
                            .comm
                            .rest
                            .sync(&peer.url, Some(&peer.id), &req, timeout)
                            .await;
                    }
                    let mut c = self.clients.client(peer, Gzip::Off)?;
                    c.sync_transactions(self.clients.request(req, 0))
                        .await
                        .map(|r| r.into_inner())
                        .map_err(|s| status_err(&peer.url, s))
                }
            })
            .await?;
        let differ: std::collections::HashSet<usize> =
            resp.differing_buckets.iter().map(|b| *b as usize).collect();
        if differ.is_empty() {
            return Ok(());
        }
        let theirs: std::collections::HashSet<TxHash> = resp
            .hashes
            .iter()
            .filter_map(|h| h.as_slice().try_into().ok())
            .collect();
        let mut lacking = Vec::new();
        for (h, size) in resp
            .hashes
            .iter()
            .zip(resp.sizes.iter().chain(std::iter::repeat(&0)))
        {
            let Ok(hash) = <TxHash>::try_from(h.as_slice()) else {
                continue;
            };
            if !self.holds(&hash)? {
                lacking.push((hash, u64::try_from(*size).unwrap_or(0)));
            }
        }
        let extra: Vec<CompactNotification> = mine
            .iter()
            .filter(|(h, _)| differ.contains(&bucket_of(h)) && !theirs.contains(h))
            .map(|(h, size)| CompactNotification {
                hash: h.to_vec(),
                size: *size as i64,
                round: REPAIR_ROUND as i32,
                compressible: false,
                lazy: false,
            })
            .collect();
        self.m
            .metrics
            .anti_entropy_repairs
            .inc_by((lacking.len() + extra.len()) as u64);
        // A read-only node only repairs itself: peers refuse its
        // announcements (PeerService.Role).
        let distributes = self.m.me().capabilities.supports_transaction_distribution;
        if distributes && !extra.is_empty() {
            self.notify(&peer, extra).await?;
        }
        // Repairs do not spread further: every peer runs its own rounds.
        for (hash, size) in lacking {
            let p = Pull {
                hash,
                size,
                round: REPAIR_ROUND,
                gzip: Gzip::Off,
                graft: false,
            };
            self.pull(p, peer.clone()).await;
        }
        Ok(())
    }

    /// Answers a peer's anti-entropy request.
    pub fn on_sync(&self, req: &SyncRequest) -> Result<SyncResponse> {
        let mine = self.recent_hashes()?;
        let diff = differing(
            &bucket_digests(mine.iter().map(|(h, _)| h)),
            &req.bucket_digests,
        );
        let set: std::collections::HashSet<usize> = diff.iter().map(|b| *b as usize).collect();
        let (hashes, sizes) = mine
            .iter()
            .filter(|(h, _)| set.contains(&bucket_of(h)))
            .map(|(h, size)| (h.to_vec(), *size as i64))
            .unzip();
        Ok(SyncResponse {
            differing_buckets: diff,
            hashes,
            sizes,
        })
    }

    /// Announces queued transactions in submission order to a fanout of
    /// peers; a batch leaves the queue once one peer took it. Failures count
    /// against each entry; past OfflineMode.MaxRetries it is dead-lettered.
    ///
    /// Pipelined: while one batch is being announced, the next is read and
    /// checked against the store on a blocking thread. Announcements still
    /// go out one batch after the other, so peers hear of them in order.
    pub async fn flush_queue(self: &Arc<Self>) {
        let _one_at_a_time = self.flushing.lock().await;
        let mut next = self.prepare_batch(0);
        loop {
            let batch = match next.await {
                Ok(Ok(b)) if !b.entries.is_empty() => b,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    self.m.events.record(EventKind::Error, None, e.to_string());
                    break;
                }
                Err(e) => {
                    self.m.events.record(EventKind::Error, None, e.to_string());
                    break;
                }
            };
            // The batch is the queue's head: nothing older remains.
            let last = batch.entries.last().map_or(0, |q| q.seq);
            next = self.prepare_batch(last);
            match self.announce_batch(&batch).await {
                Ok(()) => {
                    if let Err(e) = self.queue.remove_through(last) {
                        self.m.events.record(EventKind::Error, None, e.to_string());
                        break;
                    }
                }
                Err(e) => {
                    let now = now_ms();
                    for q in &batch.entries {
                        if let Ok(Retry::DeadLettered) =
                            self.queue.record_failure(q.seq, &e.to_string(), now)
                        {
                            self.m.events.record(
                                EventKind::Error,
                                None,
                                format!(
                                    "transaction {} dead-lettered after {} attempts: {e}",
                                    q.hash,
                                    q.retry_count + 1
                                ),
                            );
                        }
                    }
                    break;
                }
            }
        }
        let this = self.clone();
        let purged = tokio::task::spawn_blocking(move || this.queue.purge_released()).await;
        if let Ok(Err(e)) = purged {
            self.m.events.record(EventKind::Error, None, e.to_string());
        }
        self.m.metrics.tx_queue_size.set(self.queue.len() as i64);
    }

    /// Reads the queued entries after `after` and which of them the store
    /// lacks, on a blocking thread (SQLite calls would stall an async
    /// worker).
    fn prepare_batch(self: &Arc<Self>, after: u64) -> tokio::task::JoinHandle<Result<FlushBatch>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let entries = this.queue.peek_after(after, FLUSH_BATCH)?;
            let hashes = entries
                .iter()
                .map(|q| {
                    parse_hex(&q.hash)
                        .ok_or_else(|| Error::InvalidTransaction(format!("queued hash {}", q.hash)))
                })
                .collect::<Result<Vec<TxHash>>>()?;
            let stored = this.store.contains_each(&hashes)?;
            Ok(FlushBatch {
                entries,
                hashes,
                stored,
            })
        })
    }

    async fn announce_batch(self: &Arc<Self>, batch: &FlushBatch) -> Result<()> {
        let FlushBatch {
            entries,
            hashes,
            stored,
        } = batch;
        // The queue holds the bytes too: restore any the store lost.
        for ((q, hash), stored) in entries.iter().zip(hashes).zip(stored) {
            if !stored && let Some(data) = self.queue.data(q.seq)? {
                self.store.insert(*hash, data, now_ms()).await?;
            }
        }
        self.remember_all(hashes);
        let notes: Vec<CompactNotification> = entries
            .iter()
            .zip(hashes)
            .map(|(q, hash)| CompactNotification {
                hash: hash.to_vec(),
                size: q.size as i64,
                round: 1,
                compressible: false,
                lazy: false,
            })
            .collect();
        let targets = self.fanout_targets(&[]);
        let sends = targets.iter().map(|peer| self.notify(peer, notes.clone()));
        let mut last_err = Error::PeerUnreachable {
            peer: "any".into(),
            message: "no live peer to flush to".into(),
        };
        let mut delivered = false;
        for result in futures::future::join_all(sends).await {
            match result {
                Ok(_) => delivered = true,
                Err(e) => last_err = e,
            }
        }
        if !delivered {
            return Err(last_err);
        }
        self.store.mark_distributed(hashes)?;
        self.m.metrics.gossip_rounds.inc();
        Ok(())
    }
}

/// One flush step: queue entries in order, their hashes, and per entry
/// whether the store holds it.
struct FlushBatch {
    entries: Vec<super::queue::QueuedTx>,
    hashes: Vec<TxHash>,
    stored: Vec<bool>,
}
