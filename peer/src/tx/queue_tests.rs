//! Tests of `queue.rs` (kept apart to keep each file short).
use std::path::PathBuf;

use super::*;
use std::path::Path;

/// A valid lowercase-hex hash that differs per `i`.
fn hx(i: u64) -> String {
    format!("{i:064x}")
}

fn item(i: u64) -> (String, Vec<u8>) {
    (hx(i), format!("tx-{i}").into_bytes())
}

fn mk_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("tx_queue.db");
    (dir, path)
}

fn hashes(q: &OfflineQueue, limit: usize) -> Vec<String> {
    q.peek(limit).unwrap().into_iter().map(|t| t.hash).collect()
}

#[test]
fn order_of_submission_is_kept() {
    let q = OfflineQueue::open(None, 100, 5).unwrap();
    for i in [5, 3, 9, 1] {
        q.enqueue(&hx(i), b"x", i as i64).unwrap();
    }
    assert_eq!(hashes(&q, 10), vec![hx(5), hx(3), hx(9), hx(1)]);
    let first = q.peek(2).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].queued_at, 5);
    assert_eq!(first[0].retry_count, 0);
    assert_eq!(first[0].size, 1);
    assert_eq!(q.data(first[0].seq).unwrap(), Some(b"x".to_vec()));
    let rest = q.peek_after(first[1].seq, 10).unwrap();
    assert_eq!(
        rest.iter().map(|t| &t.hash).collect::<Vec<_>>(),
        [&hx(9), &hx(1)]
    );
}

#[test]
fn a_full_queue_rejects_with_the_limit_named() {
    let q = OfflineQueue::open(None, 2, 5).unwrap();
    q.enqueue(&hx(1), b"a", 0).unwrap();
    q.enqueue(&hx(2), b"b", 0).unwrap();
    let err = q.enqueue(&hx(3), b"c", 0).unwrap_err();
    assert!(matches!(err, Error::QueueFull { max: 2 }), "{err:?}");
    assert_eq!(err.label(), "queue_full");
    let msg = err.to_string();
    assert!(msg.contains("MaxQueueSize = 2"), "{msg}");
    assert_eq!(q.len(), 2);
    assert!(!q.contains(&hx(3)).unwrap());
    // Room again after a flush.
    q.remove_through(q.peek(1).unwrap()[0].seq).unwrap();
    q.enqueue(&hx(3), b"c", 0).unwrap();
    assert_eq!(hashes(&q, 10), vec![hx(2), hx(3)]);
}

#[test]
fn enqueue_is_idempotent_even_when_full() {
    let q = OfflineQueue::open(None, 2, 5).unwrap();
    let a = q.enqueue(&hx(1), b"a", 0).unwrap();
    let b = q.enqueue(&hx(2), b"b", 0).unwrap();
    assert_ne!(a, b);
    assert_eq!(q.enqueue(&hx(1), b"a", 7).unwrap(), a);
    assert_eq!(q.len(), 2);
    assert_eq!(q.peek(10).unwrap()[0].queued_at, 0, "first submission kept");
    assert_eq!(q.enqueue_many(&[item(2), item(1)], 0).unwrap(), vec![b, a]);
}

#[test]
fn malformed_hashes_are_rejected() {
    let q = OfflineQueue::open(None, 10, 5).unwrap();
    for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)] {
        let err = q.enqueue(bad, b"x", 0).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTxHash { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let err = q
        .enqueue_many(&[item(1), ("nope".into(), vec![])], 0)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTxHash { .. }));
    assert!(q.is_empty());
}

#[test]
fn enqueue_many_overflow_is_all_or_nothing() {
    let q = OfflineQueue::open(None, 5, 5).unwrap();
    q.enqueue(&hx(0), b"x", 0).unwrap();
    q.enqueue(&hx(1), b"x", 0).unwrap();
    // Two already-queued hashes do not count; four new ones exceed 5.
    let batch: Vec<_> = [0, 1, 2, 3, 4, 5].map(item).to_vec();
    let err = q.enqueue_many(&batch, 1).unwrap_err();
    assert!(matches!(err, Error::QueueFull { max: 5 }), "{err:?}");
    assert_eq!(q.len(), 2);
    assert_eq!(hashes(&q, 10), vec![hx(0), hx(1)]);
    // Three new ones fit exactly; duplicates inside a batch share a seq.
    let seqs = q
        .enqueue_many(&[item(2), item(3), item(2), item(4)], 1)
        .unwrap();
    assert_eq!(seqs[0], seqs[2]);
    assert_eq!(q.len(), 5);
    assert_eq!(hashes(&q, 10), [0, 1, 2, 3, 4].map(hx).to_vec());
}

#[test]
fn failures_are_counted_then_dead_lettered_at_max_retries() {
    let q = OfflineQueue::open(None, 10, 3).unwrap();
    let seq = q.enqueue(&hx(1), b"payload", 100).unwrap();
    q.enqueue(&hx(2), b"x", 101).unwrap();
    for n in 1..3 {
        let r = q
            .record_failure(seq, &format!("peer down {n}"), 200)
            .unwrap();
        assert_eq!(r, Retry::Again { retry_count: n });
    }
    let head = &q.peek(1).unwrap()[0];
    assert_eq!((head.seq, head.retry_count), (seq, 2), "keeps its place");
    assert_eq!(
        q.record_failure(seq, "peer down 3", 300).unwrap(),
        Retry::DeadLettered
    );
    assert_eq!(q.len(), 1);
    assert!(!q.contains(&hx(1)).unwrap());
    assert_eq!(q.dead_letter_count().unwrap(), 1);
    assert_eq!(
        q.dead_letters(10).unwrap(),
        vec![DeadLetter {
            hash: hx(1),
            size: 7,
            queued_at: 100,
            failed_at: 300,
            retry_count: 3,
            last_error: Some("peer down 3".into()),
        }]
    );
    assert_eq!(
        q.record_failure(seq, "again", 400).unwrap(),
        Retry::NotQueued
    );
}

#[test]
fn a_dead_letter_can_be_requeued_at_the_tail() {
    let q = OfflineQueue::open(None, 2, 1).unwrap();
    let seq = q.enqueue(&hx(1), b"payload", 100).unwrap();
    assert_eq!(
        q.record_failure(seq, "boom", 200).unwrap(),
        Retry::DeadLettered
    );
    q.enqueue(&hx(2), b"x", 300).unwrap();
    q.enqueue(&hx(3), b"x", 300).unwrap();
    // Full: the dead letter stays put.
    let err = q.requeue_dead_letter(&hx(1)).unwrap_err();
    assert!(matches!(err, Error::QueueFull { max: 2 }));
    assert_eq!(q.dead_letter_count().unwrap(), 1);

    q.remove(&[q.peek(1).unwrap()[0].seq]).unwrap();
    assert!(q.requeue_dead_letter(&hx(1)).unwrap());
    assert!(!q.requeue_dead_letter(&hx(1)).unwrap(), "already requeued");
    assert_eq!(q.dead_letter_count().unwrap(), 0);
    let all = q.peek(10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].hash, hx(1), "tail");
    assert!(all[1].seq > seq, "a fresh seq");
    assert_eq!(all[1].retry_count, 0);
    assert_eq!(
        (all[1].queued_at, q.data(all[1].seq).unwrap()),
        (100, Some(b"payload".to_vec()))
    );
}

#[test]
fn requeue_of_a_hash_queued_again_just_drops_the_dead_letter() {
    let q = OfflineQueue::open(None, 10, 1).unwrap();
    let seq = q.enqueue(&hx(1), b"x", 0).unwrap();
    q.record_failure(seq, "boom", 1).unwrap();
    let again = q.enqueue(&hx(1), b"x", 2).unwrap();
    assert!(q.requeue_dead_letter(&hx(1)).unwrap());
    assert_eq!(q.len(), 1);
    assert_eq!(q.peek(10).unwrap()[0].seq, again);
    assert_eq!(q.dead_letter_count().unwrap(), 0);
}

#[test]
fn everything_is_back_after_reopen() {
    let (_dir, path) = mk_file();
    let (first, seq2) = {
        let q = OfflineQueue::open(Some(&path), 10, 2).unwrap();
        let first = q.enqueue(&hx(1), b"one", 10).unwrap();
        let seq2 = q.enqueue(&hx(2), b"two", 11).unwrap();
        q.enqueue(&hx(3), b"three", 12).unwrap();
        q.record_failure(seq2, "e1", 20).unwrap();
        q.record_failure(seq2, "e2", 21).unwrap(); // dead-lettered
        let seq4 = q.enqueue(&hx(4), b"four", 13).unwrap();
        q.record_failure(seq4, "e", 22).unwrap();
        (first, seq2)
    };
    let q = OfflineQueue::open(Some(&path), 10, 2).unwrap();
    assert_eq!(q.len(), 3);
    let all = q.peek(10).unwrap();
    assert_eq!(all[0].seq, first);
    assert_eq!(
        all.iter().map(|t| t.hash.clone()).collect::<Vec<_>>(),
        [1, 3, 4].map(hx)
    );
    assert_eq!(all[2].retry_count, 1);
    assert_eq!(q.dead_letters(10).unwrap()[0].hash, hx(2));
    // Sequence numbers keep growing after a restart.
    assert!(q.enqueue(&hx(5), b"five", 30).unwrap() > seq2 + 2);
    assert_eq!(q.path(), path.display().to_string());
}

#[test]
fn in_memory_mode_works_and_forgets() {
    let q = OfflineQueue::from_config(
        &OfflineModeConfig {
            queue_persistence: false,
            max_queue_size: 3,
            ..Default::default()
        },
        Path::new("/nonexistent"),
    )
    .unwrap();
    assert_eq!(
        (q.path(), q.max_size(), q.max_retries()),
        (":memory:", 3, 5)
    );
    q.enqueue(&hx(1), b"x", 0).unwrap();
    assert_eq!(q.len(), 1);
    let q = OfflineQueue::open(None, 3, 5).unwrap();
    assert!(q.is_empty());
}

#[test]
fn from_config_persists_at_persistence_path() {
    let (_dir, path) = mk_file();
    let cfg = OfflineModeConfig {
        persistence_path: Some(path.clone()),
        ..Default::default()
    };
    let elsewhere = Path::new("/nonexistent");
    OfflineQueue::from_config(&cfg, elsewhere)
        .unwrap()
        .enqueue(&hx(1), b"x", 0)
        .unwrap();
    assert!(path.exists());
    assert_eq!(OfflineQueue::from_config(&cfg, elsewhere).unwrap().len(), 1);
}

#[test]
fn from_config_defaults_to_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = OfflineModeConfig::default();
    OfflineQueue::from_config(&cfg, dir.path())
        .unwrap()
        .enqueue(&hx(1), b"x", 0)
        .unwrap();
    assert!(dir.path().join("tx_queue.db").exists());
}

#[test]
fn remove_ignores_unknown_seqs_and_counts_rows() {
    let q = OfflineQueue::open(None, 10, 5).unwrap();
    let seqs = q.enqueue_many(&[item(1), item(2), item(3)], 0).unwrap();
    assert_eq!(q.remove(&[seqs[1], 999]).unwrap(), 1);
    assert_eq!(q.remove(&[]).unwrap(), 0);
    assert_eq!(hashes(&q, 10), vec![hx(1), hx(3)]);
    assert_eq!(q.remove_through(seqs[2]).unwrap(), 2);
    assert!(q.is_empty());
}

/// The flush path at the scale: 100,000 queued, drained in batches
/// of 1,000 with one DELETE transaction per batch. No timing asserted.
#[test]
fn a_100k_queue_drains_in_batches_in_order() {
    let (_dir, path) = mk_file();
    let q = OfflineQueue::open(Some(&path), 100_000, 5).unwrap();
    let payload = vec![7u8; 256];
    for chunk in (0..100_000u64).collect::<Vec<_>>().chunks(10_000) {
        let items: Vec<_> = chunk.iter().map(|&i| (hx(i), payload.clone())).collect();
        q.enqueue_many(&items, 0).unwrap();
    }
    assert_eq!(q.len(), 100_000);
    assert!(matches!(
        q.enqueue(&hx(100_000), b"x", 0),
        Err(Error::QueueFull { .. })
    ));

    let mut next = 0u64;
    loop {
        let batch = q.peek(1_000).unwrap();
        if batch.is_empty() {
            break;
        }
        for t in &batch {
            assert_eq!(t.hash, hx(next));
            next += 1;
        }
        let seqs: Vec<u64> = batch.iter().map(|t| t.seq).collect();
        assert_eq!(q.remove(&seqs).unwrap(), seqs.len());
    }
    assert_eq!(next, 100_000);
    assert!(q.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_enqueues_from_many_callers_are_durable_bounded_and_idempotent() {
    let (_dir, path) = mk_file();
    let q = Arc::new(OfflineQueue::open(Some(&path), 300, 5).unwrap());
    let calls: Vec<_> = (0..400u64)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move {
                let (hash, data) = item(i % 350);
                q.enqueue_batched(hash, data, i as i64).await
            })
        })
        .collect();
    let mut queued = std::collections::HashMap::new();
    let mut full = 0;
    for (i, c) in calls.into_iter().enumerate() {
        match c.await.unwrap() {
            Ok(seq) => {
                // A hash queued twice keeps one place.
                let first = *queued.entry(i as u64 % 350).or_insert(seq);
                assert_eq!(first, seq);
            }
            Err(Error::QueueFull { max: 300 }) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(q.len(), 300, "bounded by MaxQueueSize");
    assert_eq!(queued.len(), 300);
    assert!(full >= 50, "the 50 hashes beyond the bound are refused");
    assert!(matches!(
        q.enqueue_batched("not-hex".into(), b"x".to_vec(), 0).await,
        Err(Error::InvalidTxHash { .. })
    ));
    drop(q);
    let reopened = OfflineQueue::open(Some(&path), 300, 5).unwrap();
    assert_eq!(reopened.len(), 300, "every acknowledged entry is on disk");
}

/// `remove_through` only moves the watermark; everything that reads the
/// queue must treat released rows as gone, before and after the purge and
/// across a restart.
#[test]
fn released_entries_are_gone_before_the_purge_and_after_reopen() {
    let (_dir, path) = mk_file();
    let seqs = {
        let q = OfflineQueue::open(Some(&path), 3, 1).unwrap();
        let seqs = q.enqueue_many(&[item(1), item(2), item(3)], 0).unwrap();
        assert!(matches!(
            q.enqueue(&hx(4), b"x", 0),
            Err(Error::QueueFull { max: 3 })
        ));
        assert_eq!(q.remove_through(seqs[1]).unwrap(), 2);
        assert_eq!(q.remove_through(seqs[0]).unwrap(), 0, "already released");
        assert_eq!(q.len(), 1);
        assert_eq!(hashes(&q, 10), vec![hx(3)]);
        assert_eq!(q.peek_after(0, 10).unwrap()[0].seq, seqs[2]);
        assert!(!q.contains(&hx(1)).unwrap());
        assert_eq!(q.data(seqs[0]).unwrap(), None);
        assert_eq!(
            q.record_failure(seqs[0], "late", 1).unwrap(),
            Retry::NotQueued
        );
        assert_eq!(q.remove(&[seqs[1]]).unwrap(), 0);
        assert_eq!(q.dead_letter_count().unwrap(), 0);
        // Room again: a released hash submitted anew goes to the tail.
        let again = q.enqueue(&hx(1), b"tx-1", 5).unwrap();
        assert!(again > seqs[2]);
        assert_eq!(hashes(&q, 10), vec![hx(3), hx(1)]);
        q.enqueue(&hx(4), b"x", 6).unwrap();
        seqs
    };
    // Reopened without a purge: the watermark holds, and the start purges.
    let q = OfflineQueue::open(Some(&path), 3, 1).unwrap();
    assert_eq!(q.len(), 3);
    assert_eq!(hashes(&q, 10), vec![hx(3), hx(1), hx(4)]);
    let rows = |q: &OfflineQueue| -> i64 {
        q.lock()
            .conn
            .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        rows(&q),
        3,
        "the released row of hash 2 was purged at start"
    );
    let all: Vec<u64> = q.peek(10).unwrap().iter().map(|t| t.seq).collect();
    q.remove_through(all[1]).unwrap();
    assert_eq!(rows(&q), 3, "released, not yet purged");
    q.purge_released().unwrap();
    assert_eq!(rows(&q), 1);
    assert_eq!(hashes(&q, 10), vec![hx(4)]);
    // Emptied: the purge clears the table; seqs keep growing.
    q.remove_through(all[2]).unwrap();
    assert!(q.is_empty());
    q.purge_released().unwrap();
    assert_eq!(rows(&q), 0);
    assert!(q.enqueue(&hx(9), b"x", 7).unwrap() > all[2].max(seqs[2]));
}

/// In memory there is no second connection: the watermark goes through
/// the one connection and behaves the same.
#[test]
fn release_and_purge_work_in_memory() {
    let q = OfflineQueue::open(None, 10, 5).unwrap();
    let seqs = q.enqueue_many(&[item(1), item(2)], 0).unwrap();
    assert_eq!(q.remove_through(seqs[0]).unwrap(), 1);
    q.purge_released().unwrap();
    assert_eq!(hashes(&q, 10), vec![hx(2)]);
    assert_eq!(q.enqueue(&hx(1), b"x", 1).unwrap(), seqs[1] + 1);
}
