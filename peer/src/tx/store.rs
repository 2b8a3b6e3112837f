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
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::group_commit;
use super::store_files::TxFiles;
use super::store_index::{Entry, HashIndex};
use super::store_writer::{Commits, Write, Writer};

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

/// Rows are appended in arrival order (rowid). `hash` has no SQLite index
/// (see `store_index`): it is unique because the writer checks the
/// in-memory index before every insert.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS transactions (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL,
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

/// Earlier layouts, moved into the current one keeping every row: the
/// first keyed rows by hash (`WITHOUT ROWID`), the second kept a `UNIQUE`
/// SQLite index on it.
const SET_OLD_TABLE_ASIDE: &str = "
ALTER TABLE transactions RENAME TO transactions_old;
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
    let copy = match old_layout.as_deref() {
        Some(sql) if sql.contains("WITHOUT ROWID") => Some(
            "INSERT INTO transactions(hash, data, size, received_at, distributed)
               SELECT hash, data, size, received_at, distributed
               FROM transactions_old ORDER BY received_at;",
        ),
        Some(sql) if sql.contains("UNIQUE") => Some(
            "INSERT INTO transactions(id, hash, data, size, received_at, distributed)
               SELECT id, hash, data, size, received_at, distributed FROM transactions_old;",
        ),
        _ => None,
    };
    if let Some(copy) = copy {
        tx.execute_batch(SET_OLD_TABLE_ASIDE)?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(copy)?;
        tx.execute_batch("DROP TABLE transactions_old;")?;
    } else {
        tx.execute_batch(SCHEMA)?;
    }
    tx.commit()
}

/// Every stored row, for the index. `length(data)` is read from the row
/// header, so large transactions' overflow pages are not read; it is 0
/// for a row whose bytes are in a file (no transaction is empty).
fn index_rows(conn: &Connection) -> rusqlite::Result<Vec<(TxHash, Entry)>> {
    let mut st = conn.prepare(
        "SELECT hash, id, size, received_at, distributed, length(data) = 0 FROM transactions ORDER BY id",
    )?;
    st.query_map([], |r| {
        let raw: Vec<u8> = r.get(0)?;
        let entry = Entry {
            id: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            received_at: r.get(3)?,
            distributed: r.get(4)?,
            in_file: r.get(5)?,
        };
        Ok((raw, entry))
    })?
    .filter_map(|row| match row {
        Ok((raw, entry)) => TxHash::try_from(raw.as_slice())
            .ok()
            .map(|hash| Ok((hash, entry))),
        Err(e) => Some(Err(e)),
    })
    .collect()
}

fn delete_rows(conn: &mut Connection, ids: impl Iterator<Item = i64>) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut delete = tx.prepare("DELETE FROM transactions WHERE id = ?1")?;
        for id in ids {
            delete.execute([id])?;
        }
    }
    tx.commit()
}

pub struct TxStore {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Write>>,
    reader: Mutex<Connection>,
    index: Arc<HashIndex>,
    commits: Arc<Commits>,
    files: Arc<TxFiles>,
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
        let files = Arc::new(TxFiles::open(data_dir)?);
        let mut writer_conn = open_conn(&path).map_err(err)?;
        let reader = open_conn(&path).map_err(err)?;
        let mut rows = index_rows(&reader).map_err(err)?;
        let in_files: Vec<(TxHash, u64)> = rows
            .iter()
            .filter(|(_, e)| e.in_file)
            .map(|(h, e)| (*h, e.size))
            .collect();
        let broken = files.check(&in_files)?;
        if !broken.is_empty() {
            tracing::warn!(
                path = %path.display(),
                count = broken.len(),
                "dropping transactions whose files a power loss cut; anti-entropy fetches them again"
            );
            let ids = rows
                .iter()
                .filter(|(h, _)| broken.contains(h))
                .map(|(_, e)| e.id);
            delete_rows(&mut writer_conn, ids).map_err(err)?;
            rows.retain(|(h, _)| !broken.contains(h));
        }
        let index = Arc::new(HashIndex::from_rows(rows));
        let label = path.display().to_string();
        let mut writer = Writer {
            conn: writer_conn,
            synced: true,
            commits: Arc::new(Commits::default()),
            index: index.clone(),
            files: files.clone(),
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
            index,
            commits,
            files,
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
    pub async fn insert(
        &self,
        hash: TxHash,
        data: impl Into<Bytes>,
        received_at: i64,
    ) -> Result<bool> {
        self.insert_as(hash, data.into(), received_at, false).await
    }

    /// Stores a transaction received from a peer, already distributed.
    /// Resolves once committed (safe from `kill -9`, not synced: see the
    /// module comment).
    pub async fn insert_relayed(
        &self,
        hash: TxHash,
        data: impl Into<Bytes>,
        received_at: i64,
    ) -> Result<bool> {
        self.insert_as(hash, data.into(), received_at, true).await
    }

    async fn insert_as(
        &self,
        hash: TxHash,
        data: Bytes,
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
        Ok(self.index.contains(hash))
    }

    /// `contains` for many under one lock: per hash, whether it is stored.
    pub fn contains_each(&self, hashes: &[TxHash]) -> Result<Vec<bool>> {
        Ok(self.index.contains_each(hashes))
    }

    pub fn get(&self, hash: &TxHash) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.index.get(hash) else {
            return Ok(None);
        };
        if entry.in_file {
            return self.files.read(hash);
        }
        // None if pruned since the index was read.
        self.read(|c| {
            c.prepare_cached("SELECT data FROM transactions WHERE id = ?1")?
                .query_row([entry.id], |r| r.get(0))
                .optional()
        })
    }

    /// Stored here as a submission that no peer has received yet.
    pub fn awaits_first_send(&self, hash: &TxHash) -> bool {
        self.index.get(hash).is_some_and(|e| !e.distributed)
    }

    pub fn size_of(&self, hash: &TxHash) -> Result<Option<u64>> {
        Ok(self.index.get(hash).map(|e| e.size))
    }

    pub fn count(&self) -> Result<u64> {
        Ok(self.index.len() as u64)
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

    /// Hash and size of every distributed transaction received at or after
    /// `since` (Unix ms), from memory: anti-entropy asks for these every
    /// round, and reading them from SQLite cost a scan of the whole TTL's
    /// worth of rows each time.
    pub fn distributed_in(&self, received: std::ops::Range<i64>) -> Vec<(TxHash, u64)> {
        self.index.distributed_in(received)
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

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
