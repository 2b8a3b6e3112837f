//! The store's writer thread: the only connection that writes, committing
//! each batch the group-commit thread hands it as one SQLite transaction.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::store::TxHash;
use super::store_files::{IN_FILE_ABOVE, TxFiles};
use super::store_index::{Changes, Entry, HashIndex};
use crate::{Error, Result};

/// Work for the writer thread. Only it writes, so no caller ever waits on
/// SQLite's write lock (a blocked async worker would stall the node).
pub enum Write {
    Insert {
        hash: TxHash,
        data: Bytes,
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

/// Commits made, by whether they were synced to the disk.
#[derive(Debug, Default)]
pub struct Commits {
    pub synced: AtomicU64,
    pub unsynced: AtomicU64,
}

/// The writer thread's connection and its current sync mode.
pub struct Writer {
    pub conn: Connection,
    /// Whether `synchronous` is FULL now (it is switched per commit).
    pub synced: bool,
    pub commits: Arc<Commits>,
    pub index: Arc<HashIndex>,
    pub files: Arc<TxFiles>,
}

/// What one batch's SQL did, before its commit.
#[derive(Default)]
struct Staged<'a> {
    /// Per insert, whether it was new.
    fresh: Vec<bool>,
    changes: Changes,
    /// New large transactions, to be written as files before the commit.
    to_write: Vec<(TxHash, &'a [u8])>,
    /// Files of rows the batch deleted, to be removed after the commit.
    unlink: Vec<TxHash>,
}

impl Writer {
    /// Commits one batch, publishes it to the index, then answers its
    /// inserts (so a caller that was told "stored" finds it at once).
    pub fn write_batch(&mut self, batch: Vec<Write>, label: &str) {
        let result = self.apply(&batch, label);
        let inserts = batch.into_iter().filter_map(|w| match w {
            Write::Insert { done, .. } => Some(done),
            _ => None,
        });
        match result {
            Ok((fresh, changes)) => {
                self.index.apply(changes);
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
    /// insert, whether it was new, and the batch's index changes. Files of
    /// large transactions are written before the commit that adds their
    /// rows (synced with it), and removed after the one that deletes them.
    fn apply(&mut self, batch: &[Write], label: &str) -> Result<(Vec<bool>, Changes)> {
        let sql = |source| Error::Store {
            path: label.to_owned(),
            source,
        };
        let sync = batch
            .iter()
            .any(|w| matches!(w, Write::Insert { relayed: false, .. }));
        if sync != self.synced {
            let mode = if sync { "FULL" } else { "NORMAL" };
            self.conn
                .pragma_update(None, "synchronous", mode)
                .map_err(sql)?;
            self.synced = sync;
        }
        let tx = self.conn.transaction().map_err(sql)?;
        let staged = stage(&tx, &self.index, batch).map_err(sql)?;
        let files = &self.files;
        let committed = staged
            .to_write
            .iter()
            .try_for_each(|(hash, data)| files.write(hash, data, sync))
            .and_then(|()| {
                if sync && !staged.to_write.is_empty() {
                    files.sync_dir()?;
                }
                tx.commit().map_err(sql)
            });
        if let Err(e) = committed {
            // Rows never committed: their files go too, unless the
            // rolled-back batch had pruned a row that still names one.
            for (hash, _) in &staged.to_write {
                if !self.index.get(hash).is_some_and(|e| e.in_file) {
                    files.remove(hash);
                }
            }
            return Err(e);
        }
        for hash in &staged.unlink {
            files.remove(hash);
        }
        let counter = if sync {
            &self.commits.synced
        } else {
            &self.commits.unsynced
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok((staged.fresh, staged.changes))
    }
}

/// Runs the batch's SQL in `tx` (not yet committed).
fn stage<'a>(
    tx: &rusqlite::Transaction<'_>,
    index: &HashIndex,
    batch: &'a [Write],
) -> rusqlite::Result<Staged<'a>> {
    let mut st = Staged::default();
    let changes = &mut st.changes;
    let mut insert = tx.prepare_cached(
        "INSERT INTO transactions(hash, data, size, received_at, distributed) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut mark = tx.prepare_cached("UPDATE transactions SET distributed = 1 WHERE id = ?1")?;
    let mut prune = tx.prepare_cached(
        "DELETE FROM transactions WHERE received_at < ?1 RETURNING hash, length(data) = 0",
    )?;
    for w in batch {
        match w {
            Write::Insert {
                hash,
                data,
                received_at,
                relayed,
                ..
            } => match changes.get(index, hash) {
                // Already stored as an undistributed submission and now
                // back from a peer: it is out in the network.
                Some(stored) => {
                    if *relayed && !stored.distributed {
                        mark.execute([stored.id])?;
                        changes.add(
                            *hash,
                            Entry {
                                distributed: true,
                                ..stored
                            },
                        );
                    }
                    st.fresh.push(false);
                }
                None => {
                    let size = data.len() as u64;
                    let in_file = size > IN_FILE_ABOVE;
                    if in_file {
                        st.to_write.push((*hash, data));
                        // Pruned earlier in this batch and back: the new
                        // row owns the file now.
                        st.unlink.retain(|h| h != hash);
                    }
                    let row_data: &[u8] = if in_file { &[] } else { data };
                    insert.execute(params![
                        &hash[..],
                        row_data,
                        size as i64,
                        received_at,
                        relayed
                    ])?;
                    changes.add(
                        *hash,
                        Entry {
                            id: tx.last_insert_rowid(),
                            size,
                            received_at: *received_at,
                            distributed: *relayed,
                            in_file,
                        },
                    );
                    st.fresh.push(true);
                }
            },
            Write::MarkDistributed(hashes) => {
                for hash in hashes {
                    if let Some(stored) = changes.get(index, hash)
                        && !stored.distributed
                    {
                        mark.execute([stored.id])?;
                        changes.add(
                            *hash,
                            Entry {
                                distributed: true,
                                ..stored
                            },
                        );
                    }
                }
            }
            Write::Prune { before } => {
                let gone = prune.query_map([before], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?))
                })?;
                for row in gone {
                    let (raw, in_file) = row?;
                    if let Ok(hash) = TxHash::try_from(raw.as_slice()) {
                        changes.remove(hash);
                        if in_file {
                            st.unlink.push(hash);
                        }
                    }
                }
            }
        }
    }
    Ok(st)
}
