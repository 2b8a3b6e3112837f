//! Group commit: one thread owns a store's writes and applies whatever has
//! queued up while the previous batch was committing as one transaction, so
//! many concurrent writers share one fsync instead of paying one each.
use std::sync::mpsc;

/// Most items in one batch (bounds one commit's latency and memory).
pub const MAX_BATCH: usize = 4096;

/// Starts the writer thread `name`; `apply` gets each batch in arrival
/// order. The thread ends when every sender is dropped.
pub fn spawn<T: Send + 'static>(
    name: &str,
    mut apply: impl FnMut(Vec<T>) + Send + 'static,
) -> std::io::Result<mpsc::Sender<T>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                apply(batch);
            }
        })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_waiting_together_are_applied_together_in_order() {
        let (seen_tx, seen) = mpsc::channel();
        let (started_tx, started) = mpsc::channel();
        let (gate_tx, gate) = mpsc::channel::<()>();
        let writer = spawn("test-writer", move |batch: Vec<u32>| {
            // The first batch waits, so the next items pile up behind it.
            if batch == [0] {
                started_tx.send(()).unwrap();
                gate.recv().unwrap();
            }
            seen_tx.send(batch).unwrap();
        })
        .unwrap();
        writer.send(0).unwrap();
        started.recv().unwrap();
        for i in 1..=5 {
            writer.send(i).unwrap();
        }
        gate_tx.send(()).unwrap();
        drop(writer);
        let batches: Vec<Vec<u32>> = seen.iter().collect();
        assert_eq!(batches, vec![vec![0], vec![1, 2, 3, 4, 5]]);
    }
}
