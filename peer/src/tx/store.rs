//! Durable transaction storage in `<DataDirectory>/transactions.db`.
//!
//! Every insert goes through one writer thread that commits whatever has
//! arrived meanwhile in a single transaction (group commit) and only then
//! answers its callers, so an acknowledged transaction is on disk and many
//! concurrent submitters share one commit. WAL: every commit survives
//! `kill -9`. A commit that holds a submission (`insert`) is also synced to
//! the disk (`synchronous=FULL`), so it survives power loss. A commit of
//! transactions only relayed from peers (`insert_relayed`) is not synced
//! (`synchronous=NORMAL`): nobody was promised this node's copy, the
//! origin holds its own durably, and anti-entropy refetches what a power
//! loss took. On a shared disk, 100 nodes syncing every relayed copy were
//! what spreading waited on.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::group_commit;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::{Error, Result};

pub const TRANSACTIONS_DB: &str = "transactions.db";

/// Raw SHA-256 of a transaction's bytes.
pub type TxHash = [u8; 32];

pub fn hash_of(data: &[u8]) -> TxHash {
    Sha256::digest(data).into()
}

/// Lowercase hex, the form every API uses.
pub fn to_hex(hash: &TxHash) -> String {
    hex::encode(hash)
}

/// Parses 64 lowercase or uppercase hex digits.
pub fn parse_hex(s: &str) -> Option<TxHash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Rows are appended in arrival order (rowid) and found by the `hash`
/// index: a random 32-byte primary key with the bytes inline would make
/// every insert dirty a random leaf page of the whole table.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS transactions (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  data BLOB NOT NULL,
  size INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  -- 0 until the first gossip round went out: restart re-announces these,
  -- so a transaction acknowledged just before a crash still spreads.
  distributed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_tx_received_at ON transactions(received_at);
CREATE INDEX IF NOT EXISTS idx_tx_undistributed ON transactions(distributed) WHERE distributed = 0;
";

/// Moves a store written by the first layout (hash as a `WITHOUT ROWID`
/// primary key) into the current one, keeping every row.
const MIGRATE_FROM_HASH_KEYED: &str = "
ALTER TABLE transactions RENAME TO transactions_hash_keyed;
DROP INDEX IF EXISTS idx_tx_received_at;
DROP INDEX IF EXISTS idx_tx_undistributed;
";

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let old_layout: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'transactions'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let tx = conn.transaction()?;
    if old_layout.is_some_and(|sql| sql.contains("WITHOUT ROWID")) {
        tx.execute_batch(MIGRATE_FROM_HASH_KEYED)?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(
            "INSERT INTO transactions(hash, data, size, received_at, distributed)
               SELECT hash, data, size, received_at, distributed
               FROM transactions_hash_keyed ORDER BY received_at;
             DROP TABLE transactions_hash_keyed;",
        )?;
    } else {
        tx.execute_batch(SCHEMA)?;
    }
    tx.commit()
}

/// Work for the writer thread. Only it writes, so no caller ever waits on
/// SQLite's write lock (a blocked async worker would stall the node).
enum Write {
    Insert {
        hash: TxHash,
        data: Vec<u8>,
        received_at: i64,
        /// From a peer: stored as distributed, and committed without a sync.
        relayed: bool,
        done: oneshot::Sender<Result<bool>>,
    },
    MarkDistributed(Vec<TxHash>),
    Prune {
        before: i64,
    },
}

pub struct TxStore {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Write>>,
    reader: Mutex<Connection>,
    commits: Arc<Commits>,
}

/// Commits made, by whether they were synced to the disk.
#[derive(Debug, Default)]
pub struct Commits {
    pub synced: AtomicU64,
    pub unsynced: AtomicU64,
}

/// Metadata of a stored transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxMeta {
    pub hash: TxHash,
    pub size: u64,
    pub received_at: i64,
    /// Announced to at least one peer (or received from one).
    pub distributed: bool,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // More index pages stay in memory between commits (the default is 2 MB;
    // more costs real memory in a 100-node benchmark), and reads map the
    // file instead of copying each page through read().
    conn.pragma_update(None, "cache_size", -4 * 1024)?;
    conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    migrate(&mut conn)?;
    Ok(conn)
}

impl TxStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(TRANSACTIONS_DB);
        let err = |source| Error::Store {
            path: path.display().to_string(),
            source,
        };
        let writer_conn = open_conn(&path).map_err(err)?;
        let reader = open_conn(&path).map_err(err)?;
        let label = path.display().to_string();
        let mut writer = Writer {
            conn: writer_conn,
            synced: true,
            commits: Arc::new(Commits::default()),
        };
        let commits = writer.commits.clone();
        let tx = group_commit::spawn("tx-writer", move |batch| writer.write_batch(batch, &label))
            .map_err(|source| Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Ok(Self {
            path,
            writer: Mutex::new(tx),
            reader: Mutex::new(reader),
            commits,
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Stores `data` under `hash` (the caller has computed it), not yet
    /// distributed. Resolves once committed and synced to the disk; `true`
    /// if it was new.
    pub async fn insert(&self, hash: TxHash, data: Vec<u8>, received_at: i64) -> Result<bool> {
        self.insert_as(hash, data, received_at, false).await
    }

    /// Stores a transaction received from a peer, already distributed.
    /// Resolves once committed (safe from `kill -9`, not synced: see the
    /// module comment).
    pub async fn insert_relayed(
        &self,
        hash: TxHash,
        data: Vec<u8>,
        received_at: i64,
    ) -> Result<bool> {
        self.insert_as(hash, data, received_at, true).await
    }

    async fn insert_as(
        &self,
        hash: TxHash,
        data: Vec<u8>,
        received_at: i64,
        relayed: bool,
    ) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.send(Write::Insert {
            hash,
            data,
            received_at,
            relayed,
            done,
        })?;
        answer
            .await
            .unwrap_or_else(|_| Err(Error::StoreClosed(self.path.display().to_string())))
    }

    /// Commits so far, synced and not.
    pub fn commits(&self) -> (u64, u64) {
        (
            self.commits.synced.load(Ordering::Relaxed),
            self.commits.unsynced.load(Ordering::Relaxed),
        )
    }

    fn send(&self, w: Write) -> Result<()> {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(w)
            .map_err(|_| Error::StoreClosed(self.path.display().to_string()))
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(self.err())
    }

    pub fn contains(&self, hash: &TxHash) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM transactions WHERE hash = ?1")?
                .exists([&hash[..]])
        })
    }

    /// `contains` for many under one lock: per hash, whether it is stored.
    pub fn contains_each(&self, hashes: &[TxHash]) -> Result<Vec<bool>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT 1 FROM transactions WHERE hash = ?1")?;
            hashes.iter().map(|h| st.exists([&h[..]])).collect()
        })
    }

    pub fn get(&self, hash: &TxHash) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            c.prepare_cached("SELECT data FROM transactions WHERE hash = ?1")?
                .query_row([&hash[..]], |r| r.get(0))
                .optional()
        })
    }

    pub fn size_of(&self, hash: &TxHash) -> Result<Option<u64>> {
        self.read(|c| {
            c.prepare_cached("SELECT size FROM transactions WHERE hash = ?1")?
                .query_row([&hash[..]], |r| r.get::<_, i64>(0))
                .optional()
                .map(|size| size.map(|s| s as u64))
        })
    }

    pub fn count(&self) -> Result<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM transactions", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
    }

    /// Transactions received at or after `since` (Unix ms), oldest first.
    pub fn received_since(&self, since: i64) -> Result<Vec<TxMeta>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT hash, size, received_at, distributed FROM transactions WHERE received_at >= ?1 ORDER BY received_at",
            )?;
            st.query_map([since], meta_row)?.collect()
        })
    }

    /// Stored but never announced (a crash between ack and gossip).
    pub fn undistributed(&self) -> Result<Vec<TxMeta>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT hash, size, received_at, distributed FROM transactions WHERE distributed = 0 ORDER BY received_at",
            )?;
            st.query_map([], meta_row)?.collect()
        })
    }

    /// Queued for the writer: a lost mark only means one extra
    /// re-announcement after a crash.
    pub fn mark_distributed(&self, hashes: &[TxHash]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.send(Write::MarkDistributed(hashes.to_vec()))
    }

    /// Queues removal of transactions older than `before` (Unix ms).
    pub fn prune(&self, before: i64) -> Result<()> {
        self.send(Write::Prune { before })
    }
}

fn meta_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TxMeta> {
    let raw: Vec<u8> = r.get(0)?;
    let mut hash = [0u8; 32];
    if raw.len() == 32 {
        hash.copy_from_slice(&raw);
    }
    Ok(TxMeta {
        hash,
        size: r.get::<_, i64>(1)? as u64,
        received_at: r.get(2)?,
        distributed: r.get(3)?,
    })
}

/// The writer thread's connection and its current sync mode.
struct Writer {
    conn: Connection,
    /// Whether `synchronous` is FULL now (it is switched per commit).
    synced: bool,
    commits: Arc<Commits>,
}

impl Writer {
    /// Commits one batch and answers its inserts.
    fn write_batch(&mut self, batch: Vec<Write>, label: &str) {
        let result = self.apply(&batch);
        let inserts = batch.into_iter().filter_map(|w| match w {
            Write::Insert { done, .. } => Some(done),
            _ => None,
        });
        match result {
            Ok(fresh) => {
                for (done, new) in inserts.zip(fresh) {
                    let _ = done.send(Ok(new));
                }
            }
            Err(e) => {
                tracing::error!(path = %label, error = %e, "transaction store write failed");
                for done in inserts {
                    let _ = done.send(Err(Error::StoreWrite {
                        path: label.to_owned(),
                        message: e.to_string(),
                    }));
                }
            }
        }
    }

    /// One transaction for the batch, synced if it holds a submission; per
    /// insert, whether it was new.
    fn apply(&mut self, batch: &[Write]) -> rusqlite::Result<Vec<bool>> {
        let sync = batch
            .iter()
            .any(|w| matches!(w, Write::Insert { relayed: false, .. }));
        if sync != self.synced {
            let mode = if sync { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.synced = sync;
        }
        let tx = self.conn.transaction()?;
        let mut fresh = Vec::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO transactions(hash, data, size, received_at, distributed) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut mark = tx.prepare_cached(
                "UPDATE transactions SET distributed = 1 WHERE hash = ?1 AND distributed = 0",
            )?;
            for w in batch {
                match w {
                    Write::Insert {
                        hash,
                        data,
                        received_at,
                        relayed,
                        ..
                    } => {
                        let n = insert.execute(params![
                            &hash[..],
                            data,
                            data.len() as i64,
                            received_at,
                            relayed
                        ])?;
                        // Already stored as an undistributed submission and
                        // now back from a peer: it is out in the network.
                        if n == 0 && *relayed {
                            mark.execute([&hash[..]])?;
                        }
                        fresh.push(n == 1);
                    }
                    Write::MarkDistributed(hashes) => {
                        for hash in hashes {
                            mark.execute([&hash[..]])?;
                        }
                    }
                    Write::Prune { before } => {
                        tx.execute("DELETE FROM transactions WHERE received_at < ?1", [before])?;
                    }
                }
            }
        }
        tx.commit()?;
        let counter = if sync {
            &self.commits.synced
        } else {
            &self.commits.unsynced
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
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
        assert!(!s.insert_relayed(hash_of(&own), own, 4).await.unwrap());
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
                    params![&hash_of(d)[..], d, d.len() as i64, i as i64, i as i64],
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
}
