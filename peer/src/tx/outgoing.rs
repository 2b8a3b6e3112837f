//! One long-lived client stream to a peer (announcements, relayed pushes):
//! messages are handed to the call's request stream as they come, and the
//! call is (re)opened on demand. Whoever holds the slot is that peer's
//! only sender on it, so messages keep their order.
use tokio::sync::mpsc;

use crate::{Error, Result};

pub(super) struct Outgoing<T> {
    tx: Option<mpsc::Sender<T>>,
    /// Messages that may wait for the call to take them. Small, so a
    /// stalled link backs up into the peer's mailbox (which can then
    /// announce instead) rather than into this buffer.
    capacity: usize,
}

impl<T> Outgoing<T> {
    pub fn new(capacity: usize) -> Self {
        Self { tx: None, capacity }
    }

    /// Sends `msg`, opening the stream if none is open (once more if the
    /// open one broke meanwhile). `open` starts the call on the receiving
    /// end it is given, after adjusting the message that starts it (a new
    /// stream's first message names the sender, say). True when `msg`
    /// went out as a new stream's first message.
    pub async fn send(
        &mut self,
        url: &str,
        mut msg: T,
        mut open: impl FnMut(&mut T, mpsc::Receiver<T>) -> Result<()>,
    ) -> Result<bool> {
        for _attempt in 0..2 {
            let (tx, opened) = match &self.tx {
                Some(tx) if !tx.is_closed() => (tx.clone(), false),
                _ => {
                    let (tx, rx) = mpsc::channel(self.capacity);
                    open(&mut msg, rx)?;
                    self.tx = Some(tx.clone());
                    (tx, true)
                }
            };
            match tx.send(msg).await {
                Ok(()) => return Ok(opened),
                Err(mpsc::error::SendError(back)) => {
                    msg = back;
                    self.tx = None;
                }
            }
        }
        Err(Error::PeerUnreachable {
            peer: url.to_owned(),
            message: "stream closed".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_once_and_reopens_after_the_call_ends() {
        let mut out = Outgoing::new(4);
        // What each opening was handed: the first message, the call's end.
        let opened = std::cell::RefCell::new(Vec::new());
        let open = |m: &mut u32, rx: mpsc::Receiver<u32>| {
            opened.borrow_mut().push((*m, rx));
            *m += 100;
            Ok(())
        };
        assert!(out.send("u", 1, open).await.unwrap(), "opened");
        assert!(!out.send("u", 2, open).await.unwrap(), "on the open call");
        let (first, mut call) = opened.borrow_mut().remove(0);
        assert!(opened.borrow().is_empty(), "one call for both");
        assert_eq!(first, 1);
        assert_eq!(call.recv().await, Some(101), "the opener adjusted it");
        assert_eq!(call.recv().await, Some(2));
        // The call ends (its receiving end dropped): the next send reopens.
        drop(call);
        assert!(out.send("u", 3, open).await.unwrap(), "reopened");
        let (first, mut call) = opened.borrow_mut().remove(0);
        assert_eq!(first, 3);
        assert_eq!(call.recv().await, Some(103));
    }

    #[tokio::test]
    async fn a_failed_open_is_the_send_error() {
        let mut out: Outgoing<u32> = Outgoing::new(1);
        let err = out
            .send("http://p", 1, |_, _| {
                Err(Error::PeerUnreachable {
                    peer: "http://p".into(),
                    message: "no channel".into(),
                })
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no channel"), "{err}");
    }
}
