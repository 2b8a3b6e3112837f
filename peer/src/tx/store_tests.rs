//! `TxStore`: durability, the index, pruning and large transactions in files.
use super::*;

#[tokio::test]
async fn insert_is_durable_idempotent_and_readable_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"hello".to_vec();
    let h = hash_of(&data);
    {
        let s = TxStore::open(dir.path()).unwrap();
        assert!(s.insert(h, data.clone(), 5).await.unwrap());
        assert!(!s.insert(h, data.clone(), 6).await.unwrap());
        assert_eq!(s.undistributed().unwrap().len(), 1);
        s.mark_distributed(&[h]).unwrap();
        // A later insert answers after the mark's commit.
        s.insert(hash_of(b"other"), b"other".to_vec(), 7)
            .await
            .unwrap();
    }
    let s = TxStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&h).unwrap(), Some(data));
    assert!(s.contains(&h).unwrap());
    assert_eq!(
        s.contains_each(&[h, hash_of(b"never")]).unwrap(),
        vec![true, false]
    );
    assert_eq!(s.size_of(&h).unwrap(), Some(5));
    let pending: Vec<TxHash> = s
        .undistributed()
        .unwrap()
        .into_iter()
        .map(|t| t.hash)
        .collect();
    assert_eq!(pending, vec![hash_of(b"other")]);
    assert_eq!(s.received_since(0).unwrap()[0].hash, h);
    assert_eq!(s.received_since(6).unwrap().len(), 1);
    assert_eq!(
        s.distributed_in(0..i64::MAX),
        vec![(h, 5)],
        "'other' is not yet sent"
    );
    assert!(s.distributed_in(6..i64::MAX).is_empty());
    s.prune(6).unwrap();
    s.insert(hash_of(b"x"), b"x".to_vec(), 9).await.unwrap();
    assert_eq!(
        s.count().unwrap(),
        2,
        "the old one pruned, 'other' and 'x' kept"
    );
}

#[tokio::test]
async fn relayed_copies_are_committed_unsynced_and_count_as_distributed() {
    let dir = tempfile::tempdir().unwrap();
    let relayed = b"from a peer".to_vec();
    let own = b"submitted here".to_vec();
    {
        let s = TxStore::open(dir.path()).unwrap();
        assert!(
            s.insert_relayed(hash_of(&relayed), relayed.clone(), 1)
                .await
                .unwrap()
        );
        assert_eq!(s.commits(), (0, 1), "a relayed copy is not synced");
        assert!(s.insert(hash_of(&own), own.clone(), 2).await.unwrap());
        assert_eq!(s.commits(), (1, 1), "a submission is synced");
        assert!(s.awaits_first_send(&hash_of(&own)));
        assert!(!s.awaits_first_send(&hash_of(&relayed)));
    }
    let s = TxStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&hash_of(&relayed)).unwrap(), Some(relayed));
    let pending: Vec<TxHash> = s.undistributed().unwrap().iter().map(|t| t.hash).collect();
    assert_eq!(
        pending,
        vec![hash_of(&own)],
        "only the submission awaits its first send"
    );
    // The submission coming back from a peer marks the stored row.
    assert!(
        !s.insert_relayed(hash_of(&own), own.clone(), 4)
            .await
            .unwrap()
    );
    assert!(!s.awaits_first_send(&hash_of(&own)));
    assert_eq!(s.commits(), (0, 1));
    assert!(s.undistributed().unwrap().is_empty());
    assert_eq!(s.count().unwrap(), 2);
}

#[tokio::test]
async fn concurrent_inserts_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(TxStore::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..500u32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let d = i.to_le_bytes().to_vec();
                s.insert(hash_of(&d), d, 1).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(s.count().unwrap(), 500);
}

#[tokio::test]
async fn a_store_in_the_first_layout_is_migrated_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(TRANSACTIONS_DB)).unwrap();
        c.execute_batch(
            "CREATE TABLE transactions (hash BLOB PRIMARY KEY, data BLOB NOT NULL,
               size INTEGER NOT NULL, received_at INTEGER NOT NULL,
               distributed INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
             CREATE INDEX idx_tx_received_at ON transactions(received_at);",
        )
        .unwrap();
        for (i, d) in [b"one".as_slice(), b"two"].iter().enumerate() {
            c.execute(
                "INSERT INTO transactions VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![&hash_of(d)[..], d, d.len() as i64, i as i64, i as i64],
            )
            .unwrap();
        }
    }
    let s = TxStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&hash_of(b"two")).unwrap(), Some(b"two".to_vec()));
    let pending: Vec<TxHash> = s.undistributed().unwrap().iter().map(|t| t.hash).collect();
    assert_eq!(pending, vec![hash_of(b"one")]);
    assert!(
        s.insert(hash_of(b"three"), b"three".to_vec(), 3)
            .await
            .unwrap()
    );
    assert!(!s.insert(hash_of(b"one"), b"one".to_vec(), 4).await.unwrap());
    assert_eq!(s.count().unwrap(), 3);
}

#[tokio::test]
async fn a_store_with_a_unique_hash_index_is_migrated_keeping_ids() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(TRANSACTIONS_DB)).unwrap();
        c.execute_batch(
            "CREATE TABLE transactions (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,
               data BLOB NOT NULL, size INTEGER NOT NULL, received_at INTEGER NOT NULL,
               distributed INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX idx_tx_received_at ON transactions(received_at);",
        )
        .unwrap();
        for (i, d) in [b"one".as_slice(), b"two"].iter().enumerate() {
            c.execute(
                "INSERT INTO transactions VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    10 + i as i64,
                    &hash_of(d)[..],
                    d,
                    d.len() as i64,
                    i as i64,
                    1
                ],
            )
            .unwrap();
        }
    }
    let s = TxStore::open(dir.path()).unwrap();
    let sql: String = s
        .read(|c| {
            c.query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'transactions'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert!(!sql.contains("UNIQUE"), "{sql}");
    assert_eq!(s.index.get(&hash_of(b"two")).unwrap().id, 11);
    assert_eq!(s.get(&hash_of(b"one")).unwrap(), Some(b"one".to_vec()));
    assert!(!s.insert(hash_of(b"two"), b"two".to_vec(), 5).await.unwrap());
    assert_eq!(s.count().unwrap(), 2);
}

#[tokio::test]
async fn pruned_transactions_leave_the_index_and_can_be_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = TxStore::open(dir.path()).unwrap();
    let old = b"old".to_vec();
    assert!(s.insert(hash_of(&old), old.clone(), 1).await.unwrap());
    s.prune(2).unwrap();
    // Queued behind the prune, in the same batch or the next.
    assert!(s.insert(hash_of(&old), old.clone(), 3).await.unwrap());
    assert_eq!(s.get(&hash_of(&old)).unwrap(), Some(old.clone()));
    s.prune(4).unwrap();
    s.insert(hash_of(b"new"), b"new".to_vec(), 5).await.unwrap();
    assert!(!s.contains(&hash_of(&old)).unwrap());
    assert_eq!(s.get(&hash_of(&old)).unwrap(), None);
    assert_eq!(s.size_of(&hash_of(b"new")).unwrap(), Some(3));
    drop(s);
    let s = TxStore::open(dir.path()).unwrap();
    assert_eq!(s.count().unwrap(), 1, "the index is rebuilt from the table");
    assert!(s.contains(&hash_of(b"new")).unwrap());
}

fn large(seed: u8) -> Vec<u8> {
    let len = super::super::store_files::IN_FILE_ABOVE as usize + 1;
    (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
}

fn file_of(dir: &Path, hash: &TxHash) -> PathBuf {
    dir.join(super::super::store_files::FILES_DIR)
        .join(to_hex(hash))
}

#[tokio::test]
async fn large_transactions_live_in_files_written_once_and_leave_with_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (big, own) = (large(3), large(5));
    let (hb, ho) = (hash_of(&big), hash_of(&own));
    {
        let s = TxStore::open(dir.path()).unwrap();
        assert!(s.insert_relayed(hb, big.clone(), 1).await.unwrap());
        assert!(s.insert(ho, own.clone(), 1).await.unwrap());
        s.insert(hash_of(b"small"), b"small".to_vec(), 1)
            .await
            .unwrap();
        assert_eq!(std::fs::read(file_of(dir.path(), &hb)).unwrap(), big);
        assert_eq!(std::fs::read(file_of(dir.path(), &ho)).unwrap(), own);
        assert!(!file_of(dir.path(), &hash_of(b"small")).exists());
        assert_eq!(s.get(&hb).unwrap(), Some(big.clone()));
        assert_eq!(s.size_of(&hb).unwrap(), Some(big.len() as u64));
    }
    let conn = Connection::open(dir.path().join(TRANSACTIONS_DB)).unwrap();
    let in_rows: i64 = conn
        .query_row("SELECT sum(length(data)) FROM transactions", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(in_rows, 5, "only the small one's bytes are in the table");
    let s = TxStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&ho).unwrap(), Some(own.clone()), "after reopening");
    // Pruned and stored again behind the prune (same batch or the next):
    // the file belongs to the new row.
    s.prune(2).unwrap();
    assert!(s.insert_relayed(hb, big.clone(), 3).await.unwrap());
    assert_eq!(s.get(&hb).unwrap(), Some(big));
    assert!(!file_of(dir.path(), &ho).exists(), "pruned with its row");
    assert_eq!(s.get(&ho).unwrap(), None);
}

#[tokio::test]
async fn a_crash_between_file_and_row_is_settled_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, cut) = (large(7), large(9));
    let (hk, hc) = (hash_of(&kept), hash_of(&cut));
    {
        let s = TxStore::open(dir.path()).unwrap();
        s.insert_relayed(hk, kept.clone(), 1).await.unwrap();
        s.insert_relayed(hc, cut.clone(), 1).await.unwrap();
    }
    // A power loss cut one relayed copy short; another file was written
    // for a commit that never happened.
    std::fs::write(file_of(dir.path(), &hc), &cut[..10]).unwrap();
    let orphan = file_of(dir.path(), &hash_of(b"never committed"));
    std::fs::write(&orphan, b"never committed").unwrap();
    let s = TxStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&hk).unwrap(), Some(kept));
    assert!(
        !s.contains(&hc).unwrap(),
        "dropped, for anti-entropy to refetch"
    );
    assert_eq!(s.count().unwrap(), 1);
    assert!(!orphan.exists() && !file_of(dir.path(), &hc).exists());
    assert!(s.insert_relayed(hc, cut.clone(), 2).await.unwrap());
    assert_eq!(s.get(&hc).unwrap(), Some(cut));
}

#[test]
fn hashes_are_lowercase_hex_sha256() {
    let h = hash_of(b"abc");
    assert_eq!(
        to_hex(&h),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(parse_hex(&to_hex(&h)), Some(h));
    assert_eq!(parse_hex("xyz"), None);
}
