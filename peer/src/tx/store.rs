//! Durable transaction storage in `<DataDirectory>/transactions.db`.
//!
//! Every insert goes through one writer thread that commits whatever has
//! arrived meanwhile in a single transaction (group commit) and only then
//! answers its callers, so an acknowledged transaction is on disk and many
//! concurrent submitters share one commit. WAL with `synchronous=FULL`:
//! a commit survives `kill -9` and power loss.
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS transactions (
  hash BLOB PRIMARY KEY,
  data BLOB NOT NULL,
  size INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  -- 0 until the first gossip round went out: restart re-announces these,
  -- so a transaction acknowledged just before a crash still spreads.
  distributed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_tx_received_at ON transactions(received_at);
CREATE INDEX IF NOT EXISTS idx_tx_undistributed ON transactions(distributed) WHERE distributed = 0;
";

/// Work for the writer thread. Only it writes, so no caller ever waits on
/// SQLite's write lock (a blocked async worker would stall the node).
enum Write {
    Insert {
        hash: TxHash,
        data: Vec<u8>,
        received_at: i64,
        done: oneshot::Sender<Result<bool>>,
    },
    MarkDistributed(TxHash),
    Prune {
        before: i64,
    },
}

pub struct TxStore {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Write>>,
    reader: Mutex<Connection>,
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
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA)?;
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
        let (tx, rx) = mpsc::channel();
        let label = path.display().to_string();
        std::thread::Builder::new()
            .name("tx-writer".into())
            .spawn(move || write_loop(writer_conn, rx, label))
            .map_err(|source| Error::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        Ok(Self {
            path,
            writer: Mutex::new(tx),
            reader: Mutex::new(reader),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Stores `data` under `hash` (the caller has computed it). Resolves
    /// once committed; `true` if it was new.
    pub async fn insert(&self, hash: TxHash, data: Vec<u8>, received_at: i64) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.send(Write::Insert {
            hash,
            data,
            received_at,
            done,
        })?;
        answer
            .await
            .unwrap_or_else(|_| Err(Error::StoreClosed(self.path.display().to_string())))
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
    pub fn mark_distributed(&self, hash: &TxHash) -> Result<()> {
        self.send(Write::MarkDistributed(*hash))
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

/// Group commit: take one write, then everything already waiting (up to a
/// bound), commit once, answer all inserts.
fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Write>, label: String) {
    const MAX_BATCH: usize = 4096;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let result = apply(&mut conn, &batch);
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
                        path: label.clone(),
                        message: e.to_string(),
                    }));
                }
            }
        }
    }
}

/// One transaction for the batch; per insert, whether it was new.
fn apply(conn: &mut Connection, batch: &[Write]) -> rusqlite::Result<Vec<bool>> {
    let tx = conn.transaction()?;
    let mut fresh = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO transactions(hash, data, size, received_at) VALUES (?1, ?2, ?3, ?4)",
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
                    ..
                } => {
                    let n =
                        insert.execute(params![&hash[..], data, data.len() as i64, received_at])?;
                    fresh.push(n == 1);
                }
                Write::MarkDistributed(hash) => {
                    mark.execute([&hash[..]])?;
                }
                Write::Prune { before } => {
                    tx.execute("DELETE FROM transactions WHERE received_at < ?1", [before])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(fresh)
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
            s.mark_distributed(&h).unwrap();
            // A later insert answers after the mark's commit.
            s.insert(hash_of(b"other"), b"other".to_vec(), 7)
                .await
                .unwrap();
        }
        let s = TxStore::open(dir.path()).unwrap();
        assert_eq!(s.get(&h).unwrap(), Some(data));
        assert!(s.contains(&h).unwrap());
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
