//! The receiver's side of gossip: pulling announced transactions. Small
//! ones come many per FetchTransactions call, large ones streamed in
//! chunks; every transaction is verified against its hash, and a failed or
//! corrupt fetch is retried from other peers that announced it.
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sorcha_proto::transaction::{FetchRequest, TransactionRequest, TransactionResponse};

use super::distributor::{Distributor, PeerRef};
use super::net::{Gzip, status_err};
use super::store::{TxHash, hash_of, to_hex};
use crate::comm::{Op, Protocol};
use crate::events::EventKind;
use crate::{Error, Result};

/// Most hashes, and bytes, asked for in one FetchTransactions call.
const FETCH_GROUP_HASHES: usize = 256;
const FETCH_GROUP_BYTES: u64 = 4 * 1024 * 1024;

/// A claimed pull.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pull {
    pub hash: TxHash,
    /// As announced; verified by the hash, not trusted.
    pub size: u64,
    /// Gossip round the transaction arrives in.
    pub round: u32,
    /// Whether to accept a gzip answer: only when the announcer found the
    /// bytes compressible, because a server compresses every streamed
    /// answer a client accepts gzip for.
    pub gzip: Gzip,
    /// Missed on the broadcast tree: the server is asked to push to this
    /// node from now on.
    pub graft: bool,
}

impl Pull {
    /// What the announcer said of the data (it accepts gzip only then).
    fn compressible(&self) -> bool {
        self.gzip != Gzip::Off
    }
}

impl Distributor {
    /// Pulls what `peer` announced, in the order announced: runs of small
    /// transactions by the group, large ones one by one.
    pub(super) async fn pull_announced(self: Arc<Self>, pulls: Vec<Pull>, peer: PeerRef) {
        let mut group: Vec<Pull> = Vec::new();
        let mut group_bytes = 0;
        for p in pulls {
            let small = p.size <= self.cfg.streaming_threshold;
            if !group.is_empty()
                && (!small
                    || group.len() == FETCH_GROUP_HASHES
                    || group_bytes + p.size > FETCH_GROUP_BYTES)
            {
                self.fetch_group(std::mem::take(&mut group), &peer).await;
                group_bytes = 0;
            }
            if small {
                group_bytes += p.size;
                group.push(p);
            } else {
                self.fetch_claimed(p, peer.clone()).await;
            }
        }
        if !group.is_empty() {
            self.fetch_group(group, &peer).await;
        }
    }

    /// Asks `peer` to push to this node from now on (`graft`), or to stop
    /// (prune): a FetchTransactions call naming no transaction. Failure is
    /// harmless: the first push on a grafted link makes it two-way too,
    /// and a link left open at the other end is pruned by a later
    /// duplicate.
    pub(super) async fn ask_link(self: Arc<Self>, peer: PeerRef, graft: bool) {
        let req = FetchRequest {
            requesting_peer_id: self.me().to_owned(),
            hashes: Vec::new(),
            graft,
            prune: !graft,
        };
        let result = async {
            let mut c = self.clients.client(&peer, Gzip::Off)?;
            c.fetch_transactions(self.clients.request(req, 0))
                .await
                .map_err(|s| status_err(&peer.url, s))?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(peer = %peer.id, graft, error = %e, "tree link request failed");
        }
    }

    /// One FetchTransactions call for claimed `group`. What arrives intact
    /// is accepted (concurrently, so the stores share one commit); the rest
    /// goes through `fetch_claimed` and its alternatives.
    async fn fetch_group(self: &Arc<Self>, group: Vec<Pull>, peer: &PeerRef) {
        let req = FetchRequest {
            requesting_peer_id: self.me().to_owned(),
            hashes: group.iter().map(|p| p.hash.to_vec()).collect(),
            graft: group.iter().any(|p| p.graft),
            prune: false,
        };
        let bytes = group.iter().map(|p| p.size).sum();
        let gzip = if group.iter().any(|p| p.gzip != Gzip::Off) {
            Gzip::Accept
        } else {
            Gzip::Off
        };
        let want = group.len();
        let answers = self
            .clients
            .comm
            .call(&peer.url, Op::Fetch, |p| {
                let req = req.clone();
                async move {
                    if p == Protocol::Rest {
                        return self.fetch_each_rest(&req.hashes, peer).await;
                    }
                    let mut c = self.clients.client(peer, gzip)?;
                    let mut stream = c
                        .fetch_transactions(self.clients.request(req, bytes))
                        .await
                        .map_err(|s| status_err(&peer.url, s))?
                        .into_inner();
                    let mut answers = Vec::with_capacity(want);
                    while let Some(item) = stream.next().await {
                        answers.push(item.map_err(|s| status_err(&peer.url, s))?);
                        if answers.len() == want {
                            break;
                        }
                    }
                    Ok::<_, Error>(answers)
                }
            })
            .await
            .unwrap_or_else(|e| {
                self.pull_failed(peer, None, &e);
                Vec::new()
            });
        let mut answers = answers.into_iter();
        let mut accepts = Vec::new();
        // Verified against the hash each was asked by: a peer cannot slip
        // in another transaction.
        let mut missed = Vec::new();
        for p in group {
            match answers.next() {
                Some(a) if a.found && hash_of(&a.transaction_data) == p.hash => {
                    accepts.push(self.accept_pulled(p, a.transaction_data, peer));
                }
                Some(a) if a.found => {
                    let e = self.corrupt(peer, &p.hash, "content does not match its hash");
                    self.pull_failed(peer, Some(&p.hash), &e);
                    missed.push(p);
                }
                _ => missed.push(p),
            }
        }
        futures::future::join_all(accepts).await;
        for p in missed {
            // This peer failed them: only other sources are worth a try;
            // without any, anti-entropy fetches them later.
            self.fetch_from(p, None).await;
        }
    }

    /// FetchTransactions' answers from a REST peer, one GET per hash.
    async fn fetch_each_rest(
        &self,
        hashes: &[Vec<u8>],
        peer: &PeerRef,
    ) -> Result<Vec<TransactionResponse>> {
        let mut answers = Vec::with_capacity(hashes.len());
        for h in hashes {
            let hex = h.as_slice().try_into().map(to_hex).unwrap_or_default();
            self.clients.dropped(&peer.url)?;
            let data = self
                .clients
                .comm
                .rest
                .get_transaction(&peer.url, Some(&peer.id), &hex, self.clients.deadline(0))
                .await?;
            answers.push(TransactionResponse {
                found: data.is_some(),
                transaction_data: data.map(Bytes::from).unwrap_or_default(),
                ..Default::default()
            });
        }
        Ok(answers)
    }

    /// Stores a pulled transaction and releases its claim.
    async fn accept_pulled(self: &Arc<Self>, p: Pull, data: Bytes, peer: &PeerRef) {
        let hash = p.hash;
        self.note_pulled(&hash);
        if let Err(e) = self
            .accept(hash, data, p.round, Some(&peer.id), Some(p.compressible()))
            .await
        {
            self.m
                .events
                .record(EventKind::Error, Some(&peer.id), e.to_string());
        }
        self.pulling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hash);
    }

    fn pull_failed(&self, peer: &PeerRef, hash: Option<&TxHash>, e: &Error) {
        self.m
            .metrics
            .connection_errors
            .with_label_values(&["pull"])
            .inc();
        let what = hash.map_or_else(|| "a group".to_owned(), to_hex);
        self.m.events.record(
            EventKind::Error,
            Some(&peer.id),
            format!("pulling {what} failed: {e}"),
        );
    }

    /// Fetches `hash` from `peer` (streamed above the threshold), verifies
    /// it, and on failure retries peers that announced it meanwhile.
    pub(super) async fn pull(self: &Arc<Self>, p: Pull, peer: PeerRef) {
        if self.claim(p.hash, &peer) {
            self.fetch_claimed(p, peer).await;
        }
    }

    /// Marks `hash` as being fetched. False if it already is; `peer` is
    /// then remembered as another source should that fetch fail.
    pub(super) fn claim(&self, hash: TxHash, peer: &PeerRef) -> bool {
        let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
        match pulling.get_mut(&hash) {
            Some(alternatives) => {
                alternatives.push(peer.clone());
                false
            }
            None => {
                pulling.insert(hash, Vec::new());
                true
            }
        }
    }

    /// Fetches a claimed transaction from `peer`, then from the other peers
    /// that announced it, until one succeeds; releases the claim.
    async fn fetch_claimed(self: &Arc<Self>, p: Pull, peer: PeerRef) {
        self.fetch_from(p, Some(peer)).await
    }

    /// `fetch_claimed` starting with `first`, or with the next other source.
    async fn fetch_from(self: &Arc<Self>, p: Pull, first: Option<PeerRef>) {
        let mut next = first.or_else(|| self.next_source(&p.hash));
        while let Some(peer) = next.take() {
            match self.fetch(&p, &peer).await {
                Ok(data) => {
                    self.note_pulled(&p.hash);
                    let from = Some(peer.id.as_str());
                    let compressible = Some(p.compressible());
                    if let Err(e) = self.accept(p.hash, data, p.round, from, compressible).await {
                        self.m
                            .events
                            .record(EventKind::Error, Some(&peer.id), e.to_string());
                    }
                    break;
                }
                Err(e) => {
                    self.pull_failed(&peer, Some(&p.hash), &e);
                    next = self.next_source(&p.hash);
                }
            }
        }
        self.pulling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p.hash);
    }

    /// Another peer that announced `hash` while it was being fetched.
    fn next_source(&self, hash: &TxHash) -> Option<PeerRef> {
        self.pulling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(hash)
            .and_then(Vec::pop)
    }

    async fn fetch(&self, p: &Pull, peer: &PeerRef) -> Result<Bytes> {
        let data = self
            .clients
            .comm
            .call(&peer.url, Op::Fetch, |proto| async move {
                match proto {
                    Protocol::Rest => {
                        self.clients.dropped(&peer.url)?;
                        let timeout = self.clients.deadline(p.size);
                        self.clients
                            .comm
                            .rest
                            .get_transaction(&peer.url, Some(&peer.id), &to_hex(&p.hash), timeout)
                            .await?
                            .map(Bytes::from)
                            .ok_or_else(|| not_held(peer, &p.hash))
                    }
                    _ => self.fetch_grpc(p, peer).await,
                }
            })
            .await?;
        if data.len() as u64 > self.cfg.max_transaction_size {
            return Err(self.corrupt(peer, &p.hash, "larger than MaxTransactionSize"));
        }
        if hash_of(&data) != p.hash {
            return Err(self.corrupt(peer, &p.hash, "content does not match its hash"));
        }
        Ok(data)
    }

    /// GetTransaction, or StreamTransaction above the streaming threshold.
    async fn fetch_grpc(&self, p: &Pull, peer: &PeerRef) -> Result<Bytes> {
        let (hash, size) = (&p.hash, p.size);
        let req = TransactionRequest {
            transaction_hash: to_hex(hash),
            requesting_peer_id: self.me().to_owned(),
            graft: p.graft,
        };
        let mut c = self.clients.client(peer, p.gzip)?;
        if size > self.cfg.streaming_threshold {
            let mut stream = c
                .stream_transaction(self.clients.request(req, size))
                .await
                .map_err(|s| status_err(&peer.url, s))?
                .into_inner();
            let mut data = Vec::with_capacity(size as usize);
            let mut expected = 0i32;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|s| status_err(&peer.url, s))?;
                if chunk.chunk_index != expected || chunk.total_chunks <= chunk.chunk_index {
                    return Err(self.corrupt(peer, hash, "chunks out of order"));
                }
                expected += 1;
                data.extend_from_slice(&chunk.chunk_data);
                if data.len() as u64 > self.cfg.max_transaction_size {
                    return Err(self.corrupt(peer, hash, "larger than MaxTransactionSize"));
                }
            }
            Ok(data.into())
        } else {
            let resp = c
                .get_transaction(self.clients.request(req, size))
                .await
                .map_err(|s| status_err(&peer.url, s))?
                .into_inner();
            if !resp.found {
                return Err(not_held(peer, hash));
            }
            Ok(resp.transaction_data)
        }
    }
}

fn not_held(peer: &PeerRef, hash: &TxHash) -> Error {
    Error::PeerRejected {
        peer: peer.url.clone(),
        message: format!("does not hold {}", to_hex(hash)),
    }
}

impl Distributor {
    /// A peer served data that is not what it announced: an invalid
    /// message for its reputation, and the error for the retry logic.
    fn corrupt(&self, peer: &PeerRef, hash: &TxHash, what: &str) -> Error {
        self.observe_peer(&peer.id, crate::security::Observation::InvalidMessage);
        Error::PeerRejected {
            peer: peer.url.clone(),
            message: format!("transaction {}: {what}", to_hex(hash)),
        }
    }
}
