//! Eager pushes received: one by `PushTransaction`, several by
//! `PushTransactions`, relays on a peer's long-lived `PushStream`.
use std::sync::Arc;

use sorcha_proto::transaction::{NotificationAck, PushBatch, PushBatchAck, TransactionPush};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::tx_grpc::{TxService, cost, small, tx_status};
use super::wire::Caller;
use crate::security::Action;
use crate::tx::distributor::Distributor;

/// Answers a PushStream may hold before the stream's reader waits for
/// the caller to take them (answers are rare: only batches meeting
/// transactions held already get one).
const ANSWERS_BUFFER: usize = 16;

/// What a peer injects, counted against its transaction limit: its own
/// transactions (round 1). Relays carry the network's traffic, which the
/// request and byte limits bound.
fn injected(pushes: &[TransactionPush]) -> u64 {
    pushes.iter().filter(|p| p.round <= 1).count() as u64
}

/// Every push is checked before any is taken: a bad batch changes nothing.
fn check_batch(d: &Distributor, pushes: &[TransactionPush]) -> Result<(), Status> {
    for (i, p) in pushes.iter().enumerate() {
        d.check_size(p.transaction_data.len() as u64).map_err(|e| {
            let s = tx_status(e);
            Status::new(s.code(), format!("pushes[{i}]: {}", s.message()))
        })?;
    }
    Ok(())
}

/// Takes a checked batch from `sender` that came `via` a call or a
/// stream, all pushes together so their commits share the store's group
/// commit. Per push, whether it was held already.
async fn take_batch(
    d: &Arc<Distributor>,
    sender: &str,
    pushes: Vec<TransactionPush>,
    via: &str,
) -> Result<Vec<bool>, Status> {
    d.metrics()
        .tx_pushes_received
        .with_label_values(&[via])
        .inc_by(pushes.len() as u64);
    let outcomes = futures::future::join_all(pushes.into_iter().map(|p| {
        d.on_push(TransactionPush {
            sender_peer_id: sender.to_owned(),
            ..p
        })
    }))
    .await;
    outcomes
        .into_iter()
        .map(|r| r.map(|new| !new).map_err(tx_status))
        .collect()
}

impl TxService {
    pub(super) async fn push_one(
        &self,
        req: Request<TransactionPush>,
    ) -> Result<Response<NotificationAck>, Status> {
        let p = req.get_ref();
        let a = self.guard.admit_grpc(
            &req,
            Some(&p.sender_peer_id),
            Action::Distribute,
            cost(p, injected(std::slice::from_ref(p))),
        )?;
        let r: Result<Response<NotificationAck>, Status> = async {
            self.arrived()?;
            let p = req.into_inner();
            let sender = p.sender_peer_id.clone();
            let known = take_batch(&self.distributor, &sender, vec![p], "call").await?;
            Ok(small(NotificationAck {
                already_known: known.first().copied().unwrap_or(false),
                will_request: false,
            }))
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    pub(super) async fn push_many(
        &self,
        req: Request<PushBatch>,
    ) -> Result<Response<PushBatchAck>, Status> {
        let b = req.get_ref();
        let a = self.guard.admit_grpc(
            &req,
            Some(&b.sender_peer_id),
            Action::Distribute,
            cost(b, injected(&b.pushes)),
        )?;
        let r: Result<Response<PushBatchAck>, Status> = async {
            self.arrived()?;
            let PushBatch {
                sender_peer_id,
                pushes,
            } = req.into_inner();
            check_batch(&self.distributor, &pushes)?;
            let already_known =
                take_batch(&self.distributor, &sender_peer_id, pushes, "call").await?;
            Ok(small(PushBatchAck { already_known }))
        }
        .await;
        self.guard.finish(&a, &r);
        r
    }

    /// Reads a peer's PushStream on a task of its own; each batch is
    /// charged and checked like a PushTransactions call, and taken without
    /// waiting for earlier ones' commits. The first refused or bad batch
    /// ends the stream with its status.
    pub(super) fn serve_push_stream(
        &self,
        req: Request<tonic::Streaming<PushBatch>>,
    ) -> Result<Response<super::tx_grpc::PushStreamAnswers>, Status> {
        let caller = self.open_stream(&req, "PushStream", "PushTransactions")?;
        let reader = StreamReader {
            distributor: self.distributor.clone(),
            guard: self.guard.clone(),
            caller,
            drop_ratio: self.drop_ratio,
        };
        let (answers, rx) = mpsc::channel(ANSWERS_BUFFER);
        let incoming = req.into_inner();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = reader.run(incoming, &answers) => {}
                () = shutdown.cancelled() => {}
            }
        });
        let mut resp = Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
            as super::tx_grpc::PushStreamAnswers);
        resp.disable_compression();
        Ok(resp)
    }
}

/// The receiving end of one PushStream.
struct StreamReader {
    distributor: Arc<Distributor>,
    guard: Arc<Guard>,
    caller: Option<Caller>,
    drop_ratio: f64,
}

type Answers = mpsc::Sender<Result<PushBatchAck, Status>>;

impl StreamReader {
    async fn run(self, mut incoming: tonic::Streaming<PushBatch>, answers: &Answers) {
        let mut sender = String::new();
        loop {
            let batch = match incoming.message().await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(s) => {
                    tracing::debug!(status = %s, "push stream broke");
                    break;
                }
            };
            if let Err(s) = self.take(&mut sender, batch, answers) {
                // The caller sees why its stream ended.
                let _ = answers.send(Err(s)).await;
                break;
            }
        }
    }

    /// Admits and checks one batch, then takes it on a task of its own.
    fn take(&self, sender: &mut String, batch: PushBatch, answers: &Answers) -> Result<(), Status> {
        if sender.is_empty() {
            if batch.sender_peer_id.is_empty() {
                return Err(Status::invalid_argument(
                    "sender_peer_id: required in the first batch of a stream",
                ));
            }
            sender.clone_from(&batch.sender_peer_id);
        }
        // Each batch is charged as one request: a stream is no way around
        // the limits.
        let a = self
            .guard
            .admit(
                self.caller.as_ref(),
                Some(sender),
                Action::Distribute,
                cost(&batch, injected(&batch.pushes)),
            )
            .map_err(|r| super::guard::status(&r))?;
        let checked = check_batch(&self.distributor, &batch.pushes);
        self.guard.finish(&a, &checked);
        checked?;
        // Fault injection loses this batch, not the stream.
        if crate::tx::net::lost(self.drop_ratio) {
            return Ok(());
        }
        let (d, from, answers) = (self.distributor.clone(), sender.clone(), answers.clone());
        tokio::spawn(async move {
            match take_batch(&d, &from, batch.pushes, "stream").await {
                Ok(already_known) if already_known.iter().any(|k| *k) => {
                    let _ = answers.send(Ok(PushBatchAck { already_known })).await;
                }
                Ok(_) => {}
                Err(s) => {
                    let _ = answers.send(Err(s)).await;
                }
            }
        });
        Ok(())
    }
}
