//! Dead letters: queue entries that failed `MaxRetries` times, kept with
//! their bytes until an operator requeues them (nothing is dropped).
use rusqlite::{OptionalExtension, params};

use super::{OfflineQueue, Placed, place, sql_seq};
use crate::{Error, Result};

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

impl OfflineQueue {
    /// Counts a failed distribution of `seq`. The entry keeps its place
    /// until its `retry_count` reaches `MaxRetries`; then it moves to
    /// `dead_letters` in the same transaction (replacing an older dead
    /// letter of the same hash).
    pub fn record_failure(&self, seq: u64, error: &str, now: i64) -> Result<Retry> {
        let mut g = self.lock();
        if seq <= g.released {
            return Ok(Retry::NotQueued);
        }
        let seq = sql_seq(seq);
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
        let (len, released) = (g.len, g.released);
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
        let added = match self.db(place(
            &tx,
            released,
            len,
            self.max_size,
            hash,
            &data,
            queued_at,
        ))? {
            Placed::Existing(_) => 0,
            Placed::New(_) => 1,
            Placed::Full => return Err(Error::QueueFull { max: self.max_size }),
        };
        self.db(tx.execute("DELETE FROM dead_letters WHERE hash = ?1", [hash]))?;
        self.db(tx.commit())?;
        g.len += added;
        Ok(true)
    }
}
