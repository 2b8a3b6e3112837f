//! The durable offline queue (design "Offline/Online Mode → Transaction
//! Queuing"; issue 3, item 7): while the node is Offline, submissions wait
//! here, bounded by `MaxQueueSize`, and are flushed in submission order once
//! it is Online again. A transaction that fails `MaxRetries` times moves to
//! `dead_letters`, where an operator can see it and requeue it; nothing is
//! ever dropped silently.
//!
//! SQLite (bundled) in WAL mode, one connection behind a mutex. Every call
//! is a short blocking statement or transaction: from async code, call it
//! from `spawn_blocking` when latency matters.
//!
//! The flush path is built for bulk: `peek(n)` (no bytes), distribute, then
//! one `remove_through` per batch. That only moves a watermark
//! (`queue_state.released_through`) in a commit without a disk sync; the
//! released rows are deleted together by `purge_released` once the flush
//! ends. Deleting them batch by batch rewrote most pages of the random
//! `hash` index (and fsynced) every time: about a quarter of the flush's CPU.
//! A watermark lost in a crash only means those entries are announced again
//! (receivers drop duplicates); queued entries are never lost, since every
//! enqueue still commits with a sync.
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use rusqlite::{Connection, OptionalExtension, params};

use super::group_commit;
use crate::config::OfflineModeConfig;
use crate::{Error, Result};

/// The brief's tables. `AUTOINCREMENT` keeps `seq` growing even after the
/// tail is deleted, so `ORDER BY seq` is submission order and a requeued
/// dead letter really goes to the tail. The unique index on `hash` makes
/// `enqueue` idempotent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  hash TEXT NOT NULL,
  data BLOB NOT NULL,
  queued_at INTEGER NOT NULL,
  retry_count INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_queue_hash ON queue(hash);
-- Rows with seq <= released_through were distributed: no longer queued,
-- only waiting for `purge_released`.
CREATE TABLE IF NOT EXISTS queue_state (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  released_through INTEGER NOT NULL
);
INSERT OR IGNORE INTO queue_state(id, released_through) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS dead_letters (
  hash TEXT PRIMARY KEY,
  data BLOB NOT NULL,
  queued_at INTEGER NOT NULL,
  failed_at INTEGER NOT NULL,
  retry_count INTEGER NOT NULL,
  last_error TEXT
);
";

const IN_MEMORY: &str = ":memory:";

/// One queued transaction, as `peek` returns it: without its bytes, so a
/// batch of large transactions costs no memory (`data` fetches them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedTx {
    pub seq: u64,
    /// Lowercase hex SHA-256 of the transaction.
    pub hash: String,
    /// Bytes of the transaction.
    pub size: u64,
    /// Unix ms.
    pub queued_at: i64,
    pub retry_count: u32,
}

pub use dead_letters::{DeadLetter, Retry};

struct Inner {
    conn: Connection,
    /// A second connection to the same file with `synchronous=NORMAL`, for
    /// writes whose loss in a power cut only repeats work (the watermark,
    /// purges): they commit without waiting for the disk. The next synced
    /// commit on `conn` makes them durable too (one WAL, written in order).
    /// `None` in memory, where `conn` does both.
    lazy: Option<Connection>,
    /// Queued rows (`seq > released`), kept here so the capacity check on
    /// every enqueue does not count a 100,000-row table. These connections
    /// are the only writers, so the figure cannot drift.
    len: usize,
    /// `queue_state.released_through`: rows at or below it are distributed.
    released: u64,
}

impl Inner {
    fn lazy(&self) -> &Connection {
        self.lazy.as_ref().unwrap_or(&self.conn)
    }

    /// Deletes the released rows. A queue with nothing left queued is
    /// emptied by one unconditional DELETE, which SQLite turns into freeing
    /// the table's pages instead of visiting each row and index entry.
    fn purge(&self) -> rusqlite::Result<()> {
        if self.len == 0 {
            self.lazy().execute("DELETE FROM queue", [])?;
        } else {
            self.lazy().execute(
                "DELETE FROM queue WHERE seq <= ?1",
                [sql_seq(self.released)],
            )?;
        }
        Ok(())
    }
}

pub struct OfflineQueue {
    /// For error messages: the file, or `:memory:`.
    path: String,
    inner: Arc<Mutex<Inner>>,
    /// `enqueue_batched` work for the group-commit thread.
    writer: Mutex<mpsc::Sender<Pending>>,
    max_size: usize,
    max_retries: u32,
}

/// 64 lowercase hex digits, the form every API uses.
fn check_hash(hash: &str) -> Result<()> {
    let ok = hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTxHash { hash: hash.into() })
    }
}

fn seq_of(v: i64) -> u64 {
    // Rowids from AUTOINCREMENT start at 1 and only grow.
    v.max(0) as u64
}

fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Inserts unless the hash is already queued; the new `seq`, or `None`.
fn insert_new(
    conn: &Connection,
    hash: &str,
    data: &[u8],
    at: i64,
) -> rusqlite::Result<Option<u64>> {
    let n = conn
        .prepare_cached(
            "INSERT INTO queue(hash, data, queued_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(hash) DO NOTHING",
        )?
        .execute(params![hash, data, at])?;
    Ok((n == 1).then(|| seq_of(conn.last_insert_rowid())))
}

/// The row holding `hash`, queued or released.
fn row_for(conn: &Connection, hash: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT seq FROM queue WHERE hash = ?1")?
        .query_row([hash], |r| r.get::<_, i64>(0))
        .optional()
        .map(|s| s.map(seq_of))
}

/// The `seq` of `hash` if it is queued (not released).
fn seq_for(conn: &Connection, released: u64, hash: &str) -> rusqlite::Result<Option<u64>> {
    Ok(row_for(conn, hash)?.filter(|&seq| seq > released))
}

/// Where an enqueue ended up.
enum Placed {
    New(u64),
    /// The hash was queued already, at this `seq`.
    Existing(u64),
    Full,
}

/// One enqueue on `conn` with `len` rows queued: a hash already queued
/// keeps its place (even when the queue is full). A released row of the
/// same hash, not purged yet, gives way to the new entry at the tail.
fn place(
    conn: &Connection,
    released: u64,
    len: usize,
    max: usize,
    hash: &str,
    data: &[u8],
    at: i64,
) -> rusqlite::Result<Placed> {
    if len < max
        && let Some(seq) = insert_new(conn, hash, data, at)?
    {
        return Ok(Placed::New(seq));
    }
    Ok(match row_for(conn, hash)? {
        Some(seq) if seq > released => Placed::Existing(seq),
        Some(stale) if len < max => {
            conn.execute("DELETE FROM queue WHERE seq = ?1", [sql_seq(stale)])?;
            match insert_new(conn, hash, data, at)? {
                Some(seq) => Placed::New(seq),
                None => Placed::Full,
            }
        }
        _ => Placed::Full,
    })
}

/// An enqueue waiting for the group-commit writer.
struct Pending {
    hash: String,
    data: Vec<u8>,
    at: i64,
    done: tokio::sync::oneshot::Sender<Result<u64>>,
}

impl OfflineQueue {
    /// Opens (creating if needed) the queue at `path`, or an in-memory one
    /// for `None` (`QueuePersistence: false`). A file's rows are all there
    /// again after a restart.
    pub fn open(path: Option<&Path>, max_size: usize, max_retries: u32) -> Result<Self> {
        let (label, conn) = match path {
            Some(p) => {
                let label = p.display().to_string();
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let conn = Connection::open(p);
                (label, conn)
            }
            None => (IN_MEMORY.to_owned(), Connection::open_in_memory()),
        };
        let store_err = |source| Error::Store {
            path: label.clone(),
            source,
        };
        let conn = conn.map_err(store_err)?;
        let lazy = match path {
            Some(p) => Some(Connection::open(p).map_err(store_err)?),
            None => None,
        };
        let inner = Self::init(conn, lazy).map_err(store_err)?;
        let inner = Arc::new(Mutex::new(inner));
        let writer = {
            let (shared, writer_label) = (inner.clone(), label.clone());
            group_commit::spawn("queue-writer", move |batch| {
                commit_pending(&shared, max_size, &writer_label, batch)
            })
            .map_err(|source| Error::DataDir {
                path: label.clone(),
                source,
            })?
        };
        Ok(Self {
            path: label,
            inner,
            writer: Mutex::new(writer),
            max_size,
            max_retries,
        })
    }

    /// Per `OfflineMode`: the queue file if `QueuePersistence` (by default
    /// `<data_dir>/tx_queue.db`), else memory.
    pub fn from_config(cfg: &OfflineModeConfig, data_dir: &Path) -> Result<Self> {
        let file = cfg
            .persistence_path
            .clone()
            .unwrap_or_else(|| data_dir.join("tx_queue.db"));
        let path = cfg.queue_persistence.then_some(file.as_path());
        Self::open(path, cfg.max_queue_size, cfg.max_retries)
    }

    fn init(conn: Connection, lazy: Option<Connection>) -> rusqlite::Result<Inner> {
        // WAL + synchronous=FULL: a returned `enqueue` has reached the disk,
        // so it survives kill -9 and power loss alike. Bulk paths
        // (`enqueue_many`, `remove`) pay one sync per batch, not per row.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        if let Some(lazy) = &lazy {
            lazy.pragma_update(None, "synchronous", "NORMAL")?;
            lazy.busy_timeout(std::time::Duration::from_secs(5))?;
        }
        let released: i64 = conn.query_row(
            "SELECT released_through FROM queue_state WHERE id = 0",
            [],
            |r| r.get(0),
        )?;
        let released = seq_of(released);
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM queue WHERE seq > ?1",
            [sql_seq(released)],
            |r| r.get(0),
        )?;
        let inner = Inner {
            conn,
            lazy,
            len: n.max(0) as usize,
            released,
        };
        // What a flush released before a restart leaves now.
        inner.purge()?;
        Ok(inner)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| Error::Store {
            path: self.path.clone(),
            source,
        })
    }

    /// Queued transactions (not counting dead letters).
    pub fn len(&self) -> usize {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a transaction; when this returns `Ok`, it is committed. A
    /// hash already queued is not added again: its existing `seq` comes back
    /// (even when the queue is full). A full queue is `Error::QueueFull`.
    pub fn enqueue(&self, hash: &str, data: &[u8], now: i64) -> Result<u64> {
        check_hash(hash)?;
        let mut g = self.lock();
        let placed = place(&g.conn, g.released, g.len, self.max_size, hash, data, now);
        match self.db(placed)? {
            Placed::New(seq) => {
                g.len += 1;
                Ok(seq)
            }
            Placed::Existing(seq) => Ok(seq),
            Placed::Full => Err(Error::QueueFull { max: self.max_size }),
        }
    }

    /// `enqueue` for concurrent callers: each call's entry is committed
    /// together with whatever other calls are waiting (one sync for all),
    /// and the answer comes once it is on disk.
    pub async fn enqueue_batched(&self, hash: String, data: Vec<u8>, now: i64) -> Result<u64> {
        check_hash(&hash)?;
        let (done, answer) = tokio::sync::oneshot::channel();
        let closed = || Error::StoreClosed(self.path.clone());
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Pending {
                hash,
                data,
                at: now,
                done,
            })
            .map_err(|_| closed())?;
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Appends many in one transaction, returning each item's `seq` (the
    /// existing one for an already-queued hash). All or nothing: if the new
    /// ones would not all fit, none is queued and the error is `QueueFull`.
    pub fn enqueue_many(&self, items: &[(String, Vec<u8>)], now: i64) -> Result<Vec<u64>> {
        for (hash, _) in items {
            check_hash(hash)?;
        }
        let mut g = self.lock();
        let (len, released) = (g.len, g.released);
        let tx = self.db(g.conn.transaction())?;
        let mut seqs = Vec::with_capacity(items.len());
        let mut added = 0;
        for (hash, data) in items {
            let placed = place(&tx, released, len + added, self.max_size, hash, data, now);
            let seq = match self.db(placed)? {
                Placed::New(seq) => {
                    added += 1;
                    seq
                }
                Placed::Existing(seq) => seq,
                // Dropping `tx` rolls back what this call inserted.
                Placed::Full => return Err(Error::QueueFull { max: self.max_size }),
            };
            seqs.push(seq);
        }
        self.db(tx.commit())?;
        g.len += added;
        Ok(seqs)
    }

    /// The first `limit` entries in submission order.
    pub fn peek(&self, limit: usize) -> Result<Vec<QueuedTx>> {
        self.peek_after(0, limit)
    }

    /// The first `limit` entries with `seq > after`, in submission order: a
    /// flush pass continues past entries that just failed instead of
    /// retrying them at once.
    pub fn peek_after(&self, after: u64, limit: usize) -> Result<Vec<QueuedTx>> {
        let g = self.lock();
        let rows = (|| {
            let mut st = g.conn.prepare_cached(
                "SELECT seq, hash, length(data), queued_at, retry_count FROM queue
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let after = sql_seq(after.max(g.released));
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            st.query_map(params![after, limit], |r| {
                Ok(QueuedTx {
                    seq: seq_of(r.get(0)?),
                    hash: r.get(1)?,
                    size: r.get::<_, i64>(2)?.max(0) as u64,
                    queued_at: r.get(3)?,
                    retry_count: r.get(4)?,
                })
            })?
            .collect()
        })();
        self.db(rows)
    }

    /// The bytes of queued entry `seq`, if it is still queued.
    pub fn data(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let g = self.lock();
        if seq <= g.released {
            return Ok(None);
        }
        let seq = sql_seq(seq);
        self.db(g
            .conn
            .prepare_cached("SELECT data FROM queue WHERE seq = ?1")
            .and_then(|mut st| st.query_row([seq], |r| r.get(0)).optional()))
    }

    /// Whether `hash` is queued (dead letters excluded).
    pub fn contains(&self, hash: &str) -> Result<bool> {
        let g = self.lock();
        self.db(seq_for(&g.conn, g.released, hash))
            .map(|s| s.is_some())
    }

    /// Deletes distributed entries in one transaction; unknown (or
    /// already released) `seq`s are ignored. Returns how many rows went.
    pub fn remove(&self, seqs: &[u64]) -> Result<usize> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let mut g = self.lock();
        let released = sql_seq(g.released);
        let tx = self.db(g.conn.transaction())?;
        let mut removed = 0;
        {
            let mut del =
                self.db(tx.prepare_cached("DELETE FROM queue WHERE seq = ?1 AND seq > ?2"))?;
            for &seq in seqs {
                removed += self.db(del.execute([sql_seq(seq), released]))?;
            }
        }
        self.db(tx.commit())?;
        g.len -= removed;
        Ok(removed)
    }

    /// Releases every entry with `seq <= through` (they leave the queue at
    /// once): for a flush in which the whole prefix was distributed (entries
    /// that failed in it go too, so use `remove` when some did). Commits
    /// without a disk sync; see the module comment. Returns how many went.
    pub fn remove_through(&self, through: u64) -> Result<usize> {
        let mut g = self.lock();
        if through <= g.released {
            return Ok(0);
        }
        let released = self.db((|| {
            let removed: i64 = g
                .conn
                .prepare_cached("SELECT COUNT(*) FROM queue WHERE seq > ?1 AND seq <= ?2")?
                .query_row([sql_seq(g.released), sql_seq(through)], |r| r.get(0))?;
            g.lazy()
                .prepare_cached("UPDATE queue_state SET released_through = ?1 WHERE id = 0")?
                .execute([sql_seq(through)])?;
            Ok(removed.max(0) as usize)
        })())?;
        g.released = through;
        g.len -= released;
        Ok(released)
    }

    /// Deletes the rows `remove_through` released (the flush calls it when
    /// it stops). Commits without a disk sync: rows a crash brings back are
    /// still below the watermark, and go at the next start.
    pub fn purge_released(&self) -> Result<()> {
        let g = self.lock();
        self.db(g.purge())
    }
}

/// Applies a batch of `enqueue_batched` calls in one transaction and
/// answers each.
fn commit_pending(inner: &Mutex<Inner>, max_size: usize, label: &str, batch: Vec<Pending>) {
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    let (len, released) = (g.len, g.released);
    let mut added = 0;
    let result = (|| {
        let tx = g.conn.transaction()?;
        let mut answers = Vec::with_capacity(batch.len());
        for p in &batch {
            let placed = place(&tx, released, len + added, max_size, &p.hash, &p.data, p.at)?;
            answers.push(match placed {
                Placed::New(seq) => {
                    added += 1;
                    Ok(seq)
                }
                Placed::Existing(seq) => Ok(seq),
                Placed::Full => Err(Error::QueueFull { max: max_size }),
            });
        }
        tx.commit()?;
        Ok::<_, rusqlite::Error>(answers)
    })();
    match result {
        Ok(answers) => {
            g.len += added;
            for (p, answer) in batch.into_iter().zip(answers) {
                let _ = p.done.send(answer);
            }
        }
        Err(source) => {
            tracing::error!(path = %label, error = %source, "offline queue write failed");
            for p in batch {
                let _ = p.done.send(Err(Error::StoreWrite {
                    path: label.to_owned(),
                    message: source.to_string(),
                }));
            }
        }
    }
}

#[path = "queue_dead_letters.rs"]
mod dead_letters;

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
