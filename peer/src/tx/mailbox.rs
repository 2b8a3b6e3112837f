//! Per-peer mailboxes: work for one peer queues while a call to it is under
//! way, and the peer's sender task takes everything that gathered as the
//! next call. At light load every item goes out alone and at once; on a
//! busy link items share calls. A sender ends after a minute without work
//! and the next item starts a new one.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

/// How long a sender waits for work before it ends.
pub const IDLE: Duration = Duration::from_secs(60);

pub struct Mailboxes<T> {
    boxes: Mutex<HashMap<String, mpsc::UnboundedSender<T>>>,
    /// Weight queued per peer and not yet sent (see `deliver_within`).
    backlog: Mutex<HashMap<String, u64>>,
}

impl<T> Default for Mailboxes<T> {
    fn default() -> Self {
        Self {
            boxes: Mutex::new(HashMap::new()),
            backlog: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Mailboxes<T> {
    /// Queues `item` for `peer`. Returns the receiver when the peer had no
    /// running sender: the caller starts one with it.
    pub fn deliver(&self, peer: &str, item: T) -> Option<mpsc::UnboundedReceiver<T>> {
        let mut boxes = self.boxes.lock().unwrap_or_else(|e| e.into_inner());
        let item = match boxes.get(peer) {
            Some(tx) => match tx.send(item) {
                Ok(()) => return None,
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(item);
        boxes.insert(peer.to_owned(), tx);
        Some(rx)
    }

    /// `deliver`, unless `peer` already has `max_backlog` or more weight
    /// queued and unsent: then the item comes back (`Err`). The sender
    /// reports what it sent with `sent`.
    pub fn deliver_within(
        &self,
        peer: &str,
        item: T,
        weight: u64,
        max_backlog: u64,
    ) -> Result<Option<mpsc::UnboundedReceiver<T>>, T> {
        {
            let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
            let queued = backlog.entry(peer.to_owned()).or_insert(0);
            if *queued >= max_backlog {
                return Err(item);
            }
            *queued += weight;
        }
        Ok(self.deliver(peer, item))
    }

    /// The sender for `peer` sent items of `weight` in total.
    pub fn sent(&self, peer: &str, weight: u64) {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(queued) = backlog.get_mut(peer) {
            *queued = queued.saturating_sub(weight);
        }
    }

    /// Forgets `peer`'s mailbox once its sender has closed it.
    pub fn retire(&self, peer: &str) {
        let mut boxes = self.boxes.lock().unwrap_or_else(|e| e.into_inner());
        if boxes.get(peer).is_some_and(|tx| tx.is_closed()) {
            boxes.remove(peer);
        }
    }
}

/// The next batch for a sender: waits up to `idle` for a first item (then
/// closes the mailbox and takes what slipped in), then takes what is
/// waiting, up to `max_items` and, past the first item, `max_weight` in
/// total. An item that would not fit is kept in `carry` for the next batch.
/// Empty means the sender should end.
pub async fn gather<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    carry: &mut Option<T>,
    idle: Duration,
    max_items: usize,
    max_weight: u64,
    weight: impl Fn(&T) -> u64,
) -> Vec<T> {
    let first = match carry.take() {
        Some(item) => Some(item),
        None => match tokio::time::timeout(idle, rx.recv()).await {
            Ok(item) => item,
            Err(_) => {
                rx.close();
                None
            }
        },
    };
    let mut batch: Vec<T> = first.into_iter().collect();
    let mut total: u64 = batch.iter().map(&weight).sum();
    while batch.len() < max_items {
        let Ok(item) = rx.try_recv() else { break };
        let w = weight(&item);
        if !batch.is_empty() && total.saturating_add(w) > max_weight {
            *carry = Some(item);
            break;
        }
        total = total.saturating_add(w);
        batch.push(item);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_that_gathered_go_together_within_their_limits() {
        let boxes = Mailboxes::<u64>::default();
        let mut rx = boxes.deliver("p", 5).expect("a new mailbox");
        for w in [5, 5, 20, 1] {
            assert!(boxes.deliver("p", w).is_none(), "the sender is running");
        }
        let mut carry = None;
        let by_weight = |w: &u64| *w;
        assert_eq!(
            gather(&mut rx, &mut carry, IDLE, 10, 15, by_weight).await,
            [5, 5, 5]
        );
        assert_eq!(carry, Some(20), "would have passed the weight limit");
        // An item heavier than the limit still goes, alone.
        assert_eq!(
            gather(&mut rx, &mut carry, IDLE, 10, 15, by_weight).await,
            [20]
        );
        assert_eq!(
            gather(&mut rx, &mut carry, IDLE, 1, 15, by_weight).await,
            [1]
        );
        assert!(carry.is_none());
    }

    #[tokio::test]
    async fn a_peer_with_enough_queued_gets_no_more_until_it_is_sent() {
        let boxes = Mailboxes::<u64>::default();
        let _rx = boxes.deliver_within("p", 1, 6, 10).unwrap().unwrap();
        assert!(boxes.deliver_within("p", 2, 6, 10).unwrap().is_none());
        assert_eq!(boxes.deliver_within("p", 3, 6, 10).unwrap_err(), 3);
        assert!(boxes.deliver_within("q", 4, 6, 10).is_ok(), "per peer");
        boxes.sent("p", 6);
        assert!(boxes.deliver_within("p", 5, 6, 10).is_ok());
    }

    #[tokio::test]
    async fn an_idle_sender_closes_its_mailbox_and_a_new_one_starts() {
        let boxes = Mailboxes::<u64>::default();
        let mut rx = boxes.deliver("p", 1).unwrap();
        let (mut carry, idle) = (None, Duration::from_millis(10));
        assert_eq!(gather(&mut rx, &mut carry, idle, 10, 10, |_| 1).await, [1]);
        assert!(
            gather(&mut rx, &mut carry, idle, 10, 10, |_| 1)
                .await
                .is_empty()
        );
        boxes.retire("p");
        assert!(boxes.deliver("p", 2).is_some(), "a new sender is needed");
    }
}
