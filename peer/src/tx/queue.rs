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
//! one `remove_through` (one statement) per batch.
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

/// A transaction that failed `MaxRetries` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub hash: String,
    /// Bytes of the transaction.
    pub size: u64,
    pub queued_at: i64,
    pub failed_at: i64,
    pub retry_count: u32,
    pub last_error: Option<String>,
}

/// What `record_failure` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Still queued at its place; this many failures so far.
    Again { retry_count: u32 },
    /// Reached `MaxRetries`: moved to `dead_letters`.
    DeadLettered,
    /// No such `seq` in the queue (already removed); nothing changed.
    NotQueued,
}

struct Inner {
    conn: Connection,
    /// Rows in `queue`, kept here so the capacity check on every enqueue
    /// does not count a 100,000-row table. This connection is the only
    /// writer, so the figure cannot drift.
    len: usize,
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

fn seq_for(conn: &Connection, hash: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT seq FROM queue WHERE hash = ?1")?
        .query_row([hash], |r| r.get::<_, i64>(0))
        .optional()
        .map(|s| s.map(seq_of))
}

/// Where an enqueue ended up.
enum Placed {
    New(u64),
    /// The hash was queued already, at this `seq`.
    Existing(u64),
    Full,
}

/// One enqueue on `conn` with `len` rows queued: a hash already queued
/// keeps its place (even when the queue is full).
fn place(
    conn: &Connection,
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
    Ok(match seq_for(conn, hash)? {
        Some(seq) => Placed::Existing(seq),
        None => Placed::Full,
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
        let len = Self::init(&conn).map_err(store_err)?;
        let inner = Arc::new(Mutex::new(Inner { conn, len }));
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

    fn init(conn: &Connection) -> rusqlite::Result<usize> {
        // WAL + synchronous=FULL: a returned `enqueue` has reached the disk,
        // so it survives kill -9 and power loss alike. Bulk paths
        // (`enqueue_many`, `remove`) pay one sync per batch, not per row.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
        Ok(n.max(0) as usize)
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
        match self.db(place(&g.conn, g.len, self.max_size, hash, data, now))? {
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
        let len = g.len;
        let tx = self.db(g.conn.transaction())?;
        let mut seqs = Vec::with_capacity(items.len());
        let mut added = 0;
        for (hash, data) in items {
            let seq = match self.db(insert_new(&tx, hash, data, now))? {
                Some(seq) => {
                    added += 1;
                    if len + added > self.max_size {
                        // Dropping `tx` rolls back what this call inserted.
                        return Err(Error::QueueFull { max: self.max_size });
                    }
                    seq
                }
                None => self.db(seq_for(&tx, hash))?.unwrap_or_default(),
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
            let after = i64::try_from(after).unwrap_or(i64::MAX);
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
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.db(g
            .conn
            .prepare_cached("SELECT data FROM queue WHERE seq = ?1")
            .and_then(|mut st| st.query_row([seq], |r| r.get(0)).optional()))
    }

    /// Whether `hash` is queued (dead letters excluded).
    pub fn contains(&self, hash: &str) -> Result<bool> {
        let g = self.lock();
        self.db(seq_for(&g.conn, hash)).map(|s| s.is_some())
    }

    /// Deletes distributed entries in one transaction; unknown `seq`s are
    /// ignored. Returns how many rows went.
    pub fn remove(&self, seqs: &[u64]) -> Result<usize> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let mut g = self.lock();
        let tx = self.db(g.conn.transaction())?;
        let mut removed = 0;
        {
            let mut del = self.db(tx.prepare_cached("DELETE FROM queue WHERE seq = ?1"))?;
            for &seq in seqs {
                let seq = i64::try_from(seq).unwrap_or(i64::MAX);
                removed += self.db(del.execute([seq]))?;
            }
        }
        self.db(tx.commit())?;
        g.len -= removed;
        Ok(removed)
    }

    /// Deletes every entry with `seq <= through`: for a flush in which the
    /// whole prefix was distributed (entries that failed in it go too, so
    /// use `remove` when some did).
    pub fn remove_through(&self, through: u64) -> Result<usize> {
        let mut g = self.lock();
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        let removed = self.db(g
            .conn
            .execute("DELETE FROM queue WHERE seq <= ?1", [through]))?;
        g.len -= removed;
        Ok(removed)
    }

    /// Counts a failed distribution of `seq`. The entry keeps its place
    /// until its `retry_count` reaches `MaxRetries`; then it moves to
    /// `dead_letters` in the same transaction (replacing an older dead
    /// letter of the same hash).
    pub fn record_failure(&self, seq: u64, error: &str, now: i64) -> Result<Retry> {
        let mut g = self.lock();
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let tx = self.db(g.conn.transaction())?;
        let count = self.db(tx
            .query_row(
                "UPDATE queue SET retry_count = retry_count + 1, last_error = ?2
                 WHERE seq = ?1 RETURNING retry_count",
                params![seq, error],
                |r| r.get::<_, u32>(0),
            )
            .optional())?;
        let retry = match count {
            None => Retry::NotQueued,
            Some(n) if n < self.max_retries => Retry::Again { retry_count: n },
            Some(_) => {
                self.db(tx.execute(
                    "INSERT OR REPLACE INTO dead_letters
                       (hash, data, queued_at, failed_at, retry_count, last_error)
                     SELECT hash, data, queued_at, ?2, retry_count, last_error
                     FROM queue WHERE seq = ?1",
                    params![seq, now],
                ))?;
                self.db(tx.execute("DELETE FROM queue WHERE seq = ?1", [seq]))?;
                Retry::DeadLettered
            }
        };
        self.db(tx.commit())?;
        if retry == Retry::DeadLettered {
            g.len -= 1;
        }
        Ok(retry)
    }

    /// The oldest `limit` dead letters (by failure time), without their data.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let g = self.lock();
        let rows = (|| {
            let mut st = g.conn.prepare_cached(
                "SELECT hash, length(data), queued_at, failed_at, retry_count, last_error
                 FROM dead_letters ORDER BY failed_at, hash LIMIT ?1",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            st.query_map([limit], |r| {
                Ok(DeadLetter {
                    hash: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    queued_at: r.get(2)?,
                    failed_at: r.get(3)?,
                    retry_count: r.get(4)?,
                    last_error: r.get(5)?,
                })
            })?
            .collect()
        })();
        self.db(rows)
    }

    pub fn dead_letter_count(&self) -> Result<usize> {
        let g = self.lock();
        let n: i64 = self.db(g
            .conn
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0)))?;
        Ok(n.max(0) as usize)
    }

    /// Admin retry: moves a dead letter back to the tail of the queue with
    /// `retry_count` 0 (keeping its original `queued_at`). `Ok(false)` if
    /// there is no such dead letter; `QueueFull` leaves it where it is. If
    /// the hash was queued again meanwhile, the dead letter is just dropped.
    pub fn requeue_dead_letter(&self, hash: &str) -> Result<bool> {
        let mut g = self.lock();
        let len = g.len;
        let tx = self.db(g.conn.transaction())?;
        let row = self.db(tx
            .query_row(
                "SELECT data, queued_at FROM dead_letters WHERE hash = ?1",
                [hash],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional())?;
        let Some((data, queued_at)) = row else {
            return Ok(false);
        };
        let added = if self.db(seq_for(&tx, hash))?.is_some() {
            0
        } else if len >= self.max_size {
            return Err(Error::QueueFull { max: self.max_size });
        } else {
            self.db(insert_new(&tx, hash, &data, queued_at))?;
            1
        };
        self.db(tx.execute("DELETE FROM dead_letters WHERE hash = ?1", [hash]))?;
        self.db(tx.commit())?;
        g.len += added;
        Ok(true)
    }
}

/// Applies a batch of `enqueue_batched` calls in one transaction and
/// answers each.
fn commit_pending(inner: &Mutex<Inner>, max_size: usize, label: &str, batch: Vec<Pending>) {
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    let len = g.len;
    let mut added = 0;
    let result = (|| {
        let tx = g.conn.transaction()?;
        let mut answers = Vec::with_capacity(batch.len());
        for p in &batch {
            answers.push(
                match place(&tx, len + added, max_size, &p.hash, &p.data, p.at)? {
                    Placed::New(seq) => {
                        added += 1;
                        Ok(seq)
                    }
                    Placed::Existing(seq) => Ok(seq),
                    Placed::Full => Err(Error::QueueFull { max: max_size }),
                },
            );
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

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
