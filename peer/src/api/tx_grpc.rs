//! gRPC `TransactionDistribution` service.
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use sorcha_proto::transaction::transaction_distribution_server::TransactionDistribution;
use sorcha_proto::transaction::{
    CompactNotification, FetchRequest, NotificationAck, NotificationBatch, NotificationBatchAck,
    PushBatch, PushBatchAck, SubmitTransactionRequest, SubmitTransactionResponse, SyncRequest,
    SyncResponse, TransactionChunk, TransactionNotification, TransactionPush, TransactionRequest,
    TransactionResponse,
};
use tonic::{Request, Response, Status};

use super::guard::Guard;
use crate::Error;
use crate::security::{Action, RequestCost};
use crate::tx::distributor::Distributor;
use crate::tx::net::worth_compressing;
use crate::tx::store::{TxHash, parse_hex};

/// Chunk size of StreamTransaction.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Most hashes in one FetchTransactions request.
pub const MAX_FETCH_HASHES: usize = 4096;

pub struct TxService {
    pub distributor: Arc<Distributor>,
    /// Asked before every call (caller policy: bans, limits, capabilities).
    pub guard: Arc<Guard>,
    /// Fault injection: share of peer messages refused as if lost.
    pub drop_ratio: f64,
    pub corrupt_streams: Option<crate::node::StreamCorruption>,
    /// Ends open announcement streams, which would otherwise hold the
    /// listener's graceful shutdown until their peers close them.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Whether AnnounceStream and PushStream are served (`PreferredProtocol:
    /// GrpcStream`); without them peers fall back to unary calls.
    pub streams: bool,
}

impl TxService {
    /// Admits a long-lived stream `method` (refused when this node serves
    /// no streams: the caller falls back to `unary`); the caller's
    /// connection, for charging each message to its limits.
    pub(super) fn open_stream<T>(
        &self,
        req: &Request<T>,
        method: &str,
        unary: &str,
    ) -> Result<Option<super::wire::Caller>, Status> {
        if !self.streams {
            return Err(Status::unimplemented(format!(
                "{method}: this node serves gRPC without streams \
                 (Communication.PreferredProtocol = Grpc); use {unary}"
            )));
        }
        Ok(req
            .extensions()
            .get::<axum::extract::ConnectInfo<super::wire::Caller>>()
            .map(|c| c.0.clone()))
    }

    pub(super) fn arrived(&self) -> Result<(), Status> {
        if crate::tx::net::lost(self.drop_ratio) {
            return Err(Status::unavailable("dropped by fault injection"));
        }
        Ok(())
    }
}

/// The answers on a PushStream (see `tx_push`).
pub type PushStreamAnswers = Pin<Box<dyn Stream<Item = Result<PushBatchAck, Status>> + Send>>;

/// Maps crate errors to statuses a client can act on.
pub fn tx_status(e: Error) -> Status {
    match e {
        Error::InvalidTransaction(_) | Error::InvalidTxHash { .. } => {
            Status::invalid_argument(e.to_string())
        }
        Error::TransactionTooLarge { .. } | Error::QueueFull { .. } => {
            Status::resource_exhausted(e.to_string())
        }
        other => Status::internal(other.to_string()),
    }
}

fn fetch_item(d: &Distributor, hash: &TxHash) -> Result<TransactionResponse, Status> {
    let data = d.get(hash).map_err(tx_status)?;
    Ok(TransactionResponse {
        transaction_hash: crate::tx::store::to_hex(hash),
        found: data.is_some(),
        transaction_data: data.unwrap_or_default(),
    })
}

/// A response of hashes, flags and counters: random bytes that gzip cannot
/// shrink, so it goes uncompressed whatever was negotiated.
pub(super) fn small<T>(msg: T) -> Response<T> {
    let mut resp = Response::new(msg);
    resp.disable_compression();
    resp
}

fn hash_arg(field: &str, s: &str) -> Result<TxHash, Status> {
    parse_hex(s).ok_or_else(|| {
        Status::invalid_argument(format!(
            "{field}: expected 64 hex digits (SHA-256), got {s:?}"
        ))
    })
}

/// What a request costs against the caller's allowance: its encoded size,
/// and the transactions it carries.
pub(super) fn cost(msg: &impl Message, transactions: u64) -> RequestCost {
    RequestCost {
        bytes: msg.encoded_len() as u64,
        transactions,
    }
}

#[tonic::async_trait]
impl TransactionDistribution for TxService {
    async fn notify_transaction(
        &self,
        req: Request<TransactionNotification>,
    ) -> Result<Response<NotificationAck>, Status> {
        let a = self.guard.admit_grpc(
            &req,
            Some(&req.get_ref().sender_peer_id),
            Action::Distribute,
            cost(req.get_ref(), 0),
        )?;
        let r: Result<Response<NotificationAck>, Status> = async {
            self.arrived()?;
            let n = req.into_inner();
            let hash = hash_arg("transaction_hash", &n.transaction_hash)?;
            let note = CompactNotification {
                hash: hash.to_vec(),
                size: n.transaction_size,
                round: n.round.max(1),
                compressible: false,
                lazy: false,
            };
            let wanted = self
                .distributor
                .on_notifications(&n.sender_peer_id, vec![note])
                .map_err(tx_status)?;
            let will_request = !wanted.is_empty();
            let already_known =
                !will_request && self.distributor.holds(&hash).map_err(tx_status)?;
            Ok(small(NotificationAck {
                already_known,
                will_request,
            }))
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    async fn get_transaction(
        &self,
        req: Request<TransactionRequest>,
    ) -> Result<Response<TransactionResponse>, Status> {
        let a = self.guard.admit_grpc(
            &req,
            Some(&req.get_ref().requesting_peer_id),
            Action::Fetch,
            cost(req.get_ref(), 0),
        )?;
        let gzip_accepted = accepts_gzip(&req);
        let r: Result<Response<TransactionResponse>, Status> = async {
            self.arrived()?;
            let r = req.into_inner();
            self.distributor
                .pulled_by(&r.requesting_peer_id, r.graft, 1);
            let hash = hash_arg("transaction_hash", &r.transaction_hash)?;
            let data = self.distributor.get(&hash).map_err(tx_status)?;
            let skip_gzip = !(gzip_accepted && data.as_deref().is_some_and(worth_compressing));
            let mut resp = Response::new(TransactionResponse {
                transaction_hash: r.transaction_hash,
                found: data.is_some(),
                transaction_data: data.unwrap_or_default(),
            });
            if skip_gzip {
                resp.disable_compression();
            }
            Ok(resp)
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    type StreamTransactionStream =
        Pin<Box<dyn Stream<Item = Result<TransactionChunk, Status>> + Send>>;

    async fn stream_transaction(
        &self,
        req: Request<TransactionRequest>,
    ) -> Result<Response<Self::StreamTransactionStream>, Status> {
        let a = self.guard.admit_grpc(
            &req,
            Some(&req.get_ref().requesting_peer_id),
            Action::Fetch,
            cost(req.get_ref(), 0),
        )?;
        let gzip_accepted = accepts_gzip(&req);
        let r: Result<Response<Self::StreamTransactionStream>, Status> = async {
            self.arrived()?;
            let r = req.into_inner();
            self.distributor
                .pulled_by(&r.requesting_peer_id, r.graft, 1);
            let hash = hash_arg("transaction_hash", &r.transaction_hash)?;
            let mut data = self
                .distributor
                .get(&hash)
                .map_err(tx_status)?
                .ok_or_else(|| {
                    Status::not_found(format!("transaction {} not held here", r.transaction_hash))
                })?;
            if let Some(fault) = &self.corrupt_streams {
                fault
                    .served
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(fault.delay).await;
                let mut corrupted = data.to_vec();
                let last = corrupted.len() - 1;
                corrupted[last] ^= 0xff;
                data = corrupted.into();
            }
            let gzip = gzip_accepted && worth_compressing(&data);
            let total = data.len().div_ceil(CHUNK_BYTES).max(1) as i32;
            // Chunks are slices of the held bytes, not copies.
            let chunks: Vec<Result<TransactionChunk, Status>> = data
                .chunks(CHUNK_BYTES)
                .enumerate()
                .map(|(i, c)| {
                    Ok(TransactionChunk {
                        transaction_hash: r.transaction_hash.clone(),
                        chunk_index: i as i32,
                        total_chunks: total,
                        chunk_data: data.slice_ref(c),
                    })
                })
                .collect();
            let mut resp = Response::new(
                Box::pin(futures::stream::iter(chunks)) as Self::StreamTransactionStream
            );
            if !gzip {
                resp.disable_compression();
            }
            Ok(resp)
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    async fn submit_transaction(
        &self,
        req: Request<SubmitTransactionRequest>,
    ) -> Result<Response<SubmitTransactionResponse>, Status> {
        let a = self
            .guard
            .admit_grpc(&req, None, Action::Submit, cost(req.get_ref(), 1))?;
        let r: Result<Response<SubmitTransactionResponse>, Status> = async {
            let s = self
                .distributor
                .submit(req.into_inner().transaction_data)
                .await
                .map_err(tx_status)?;
            Ok(small(SubmitTransactionResponse {
                transaction_hash: s.hash,
                queued: s.queued,
                already_known: s.already_known,
            }))
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    async fn notify_transactions(
        &self,
        req: Request<NotificationBatch>,
    ) -> Result<Response<NotificationBatchAck>, Status> {
        let a = self.guard.admit_grpc(
            &req,
            Some(&req.get_ref().sender_peer_id),
            Action::Distribute,
            cost(req.get_ref(), 0),
        )?;
        let r: Result<Response<NotificationBatchAck>, Status> = async {
            self.arrived()?;
            let b = req.into_inner();
            let wanted = self
                .distributor
                .on_notifications(&b.sender_peer_id, b.notifications)
                .map_err(tx_status)?;
            Ok(small(NotificationBatchAck { wanted }))
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    async fn announce_stream(
        &self,
        req: Request<tonic::Streaming<NotificationBatch>>,
    ) -> Result<Response<NotificationBatchAck>, Status> {
        let caller = self.open_stream(&req, "AnnounceStream", "NotifyTransactions")?;
        let mut stream = req.into_inner();
        let mut sender = String::new();
        loop {
            let batch = tokio::select! {
                next = stream.message() => match next? {
                    Some(batch) => batch,
                    None => break,
                },
                _ = self.shutdown.cancelled() => break,
            };
            if sender.is_empty() {
                if batch.sender_peer_id.is_empty() {
                    return Err(Status::invalid_argument(
                        "sender_peer_id: required in the first batch of a stream",
                    ));
                }
                sender = batch.sender_peer_id.clone();
            }
            // Each batch is charged as one request: a stream is no way
            // around the limits.
            self.guard
                .admit(
                    caller.as_ref(),
                    Some(&sender),
                    Action::Distribute,
                    cost(&batch, 0),
                )
                .map_err(|r| super::guard::status(&r))?;
            // Fault injection loses this batch, not the stream.
            if crate::tx::net::lost(self.drop_ratio) {
                continue;
            }
            self.distributor
                .on_notifications(&sender, batch.notifications)
                .map_err(tx_status)?;
        }
        // Wanted hashes were pulled as they arrived; nothing to report.
        Ok(small(NotificationBatchAck::default()))
    }

    async fn push_transaction(
        &self,
        req: Request<TransactionPush>,
    ) -> Result<Response<NotificationAck>, Status> {
        self.push_one(req).await
    }

    async fn push_transactions(
        &self,
        req: Request<PushBatch>,
    ) -> Result<Response<PushBatchAck>, Status> {
        self.push_many(req).await
    }

    type PushStreamStream = PushStreamAnswers;

    async fn push_stream(
        &self,
        req: Request<tonic::Streaming<PushBatch>>,
    ) -> Result<Response<Self::PushStreamStream>, Status> {
        self.serve_push_stream(req)
    }

    async fn sync_transactions(
        &self,
        req: Request<SyncRequest>,
    ) -> Result<Response<SyncResponse>, Status> {
        let a = self.guard.admit_grpc(
            &req,
            Some(&req.get_ref().requesting_peer_id),
            Action::Fetch,
            cost(req.get_ref(), 0),
        )?;
        let r: Result<Response<SyncResponse>, Status> = async {
            self.arrived()?;
            self.distributor
                .on_sync(&req.into_inner())
                .map(small)
                .map_err(tx_status)
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    type FetchTransactionsStream =
        Pin<Box<dyn Stream<Item = Result<TransactionResponse, Status>> + Send>>;
    async fn fetch_transactions(
        &self,
        req: Request<FetchRequest>,
    ) -> Result<Response<Self::FetchTransactionsStream>, Status> {
        let a = self.guard.admit_grpc(
            &req,
            Some(&req.get_ref().requesting_peer_id),
            Action::Fetch,
            cost(req.get_ref(), 0),
        )?;
        let gzip_accepted = accepts_gzip(&req);
        let r: Result<Response<Self::FetchTransactionsStream>, Status> = async {
            self.arrived()?;
            let r = req.into_inner();
            self.distributor
                .pulled_by(&r.requesting_peer_id, r.graft, r.hashes.len());
            if r.prune && r.hashes.is_empty() {
                self.distributor.pruned_by(&r.requesting_peer_id);
            }
            if r.hashes.len() > MAX_FETCH_HASHES {
                return Err(Status::invalid_argument(format!(
                    "hashes: at most {MAX_FETCH_HASHES} per request, got {}",
                    r.hashes.len()
                )));
            }
            let hashes = r
                .hashes
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    TxHash::try_from(h.as_slice()).map_err(|_| {
                        Status::invalid_argument(format!(
                            "hashes[{i}]: expected 32 bytes (raw SHA-256), got {}",
                            h.len()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Read lazily, one per item: a request may name many megabytes. The
            // first decides whether gzip is worth it for the whole stream.
            let d = self.distributor.clone();
            let first = match hashes.first() {
                Some(h) => Some(fetch_item(&d, h)?),
                None => None,
            };
            let gzip = gzip_accepted
                && first
                    .as_ref()
                    .is_some_and(|f| worth_compressing(&f.transaction_data));
            let rest =
                futures::stream::iter(hashes.into_iter().skip(1)).map(move |h| fetch_item(&d, &h));
            let stream = futures::stream::iter(first.map(Ok)).chain(rest);
            let mut resp = Response::new(Box::pin(stream) as Self::FetchTransactionsStream);
            if !gzip {
                resp.disable_compression();
            }
            Ok(resp)
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }
}

/// Whether the caller accepts gzip answers: only then is it worth sampling
/// the data to decide.
fn accepts_gzip<T>(req: &Request<T>) -> bool {
    req.metadata()
        .get("grpc-accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim() == "gzip"))
}
