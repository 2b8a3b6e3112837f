//! Large transactions as files, each written once.
//!
//! A transaction above `IN_FILE_ABOVE` bytes lives in
//! `<DataDirectory>/transactions.files/<hash>`; its row keeps the metadata
//! and an empty `data`. In the table its bytes crossed SQLite's overflow
//! pages and were written twice, to the WAL and again by the checkpoint
//! into the database file (with a sync of that file). On the gossip
//! benchmark, where 100 nodes share one disk and two cores, those writes
//! were a quarter of all CPU time in the 1 MiB row (see README "Stop 15").
//! SQLite's own measurement ("Internal Versus External BLOBs") puts the
//! point where a separate file reads faster at about 100 KB; writes gain
//! below that. At 100 KiB, files took the benchmark's light-load p99 to
//! every peer from 566 ms to about 100 ms.
//!
//! Ordering keeps a committed row's file whole: the writer thread writes
//! the file before the commit that adds its row (syncing both when the
//! commit is synced), and removes it only after the commit that deleted
//! the row. What a crash leaves between the two is settled when the store
//! opens (`TxFiles::check`).
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::store::{TxHash, parse_hex, to_hex};
use crate::{Error, Result};

pub const FILES_DIR: &str = "transactions.files";

/// Transactions larger than this are stored as files.
pub const IN_FILE_ABOVE: u64 = 64 * 1024;

pub struct TxFiles {
    dir: PathBuf,
}

impl TxFiles {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(FILES_DIR);
        fs::create_dir_all(&dir).map_err(|source| Error::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, hash: &TxHash) -> PathBuf {
        self.dir.join(to_hex(hash))
    }

    fn err(&self, hash: &TxHash) -> impl Fn(std::io::Error) -> Error + '_ {
        let path = self.path(hash);
        move |source| Error::StoreFile {
            path: path.display().to_string(),
            source,
        }
    }

    /// Writes the file of `hash`; with `sync`, its bytes are on the disk
    /// when this returns (its directory entry after `sync_dir`).
    pub fn write(&self, hash: &TxHash, data: &[u8], sync: bool) -> Result<()> {
        let mut f = File::create(self.path(hash)).map_err(self.err(hash))?;
        f.write_all(data).map_err(self.err(hash))?;
        if sync {
            f.sync_all().map_err(self.err(hash))?;
        }
        Ok(())
    }

    /// Makes the files created so far survive power loss.
    pub fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::StoreFile {
                path: self.dir.display().to_string(),
                source,
            })
    }

    /// The bytes of `hash`; None if its file is gone (pruned meanwhile).
    pub fn read(&self, hash: &TxHash) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(hash)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(hash)(e)),
        }
    }

    /// Removes the file of a deleted row. A failure leaves an orphan that
    /// the next `check` removes.
    pub fn remove(&self, hash: &TxHash) {
        if let Err(e) = fs::remove_file(self.path(hash))
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(file = %self.path(hash).display(), error = %e, "cannot remove transaction file");
        }
    }

    /// Settles what a crash left, when the store opens: removes files no
    /// row names (written before a commit that never happened, or left by
    /// a prune), and returns the rows (`(hash, size)` in `rows`) whose file
    /// is missing or short. Those were relayed copies committed without a
    /// sync and cut by a power loss; the store drops them, and
    /// anti-entropy fetches them again.
    pub fn check(&self, rows: &[(TxHash, u64)]) -> Result<HashSet<TxHash>> {
        let named: HashMap<TxHash, u64> = rows.iter().copied().collect();
        let listing = fs::read_dir(&self.dir).map_err(|source| Error::StoreFile {
            path: self.dir.display().to_string(),
            source,
        })?;
        let mut whole = HashSet::new();
        for entry in listing.flatten() {
            let name = entry.file_name();
            let hash = name.to_str().and_then(parse_hex);
            let len = entry.metadata().map(|m| m.len()).ok();
            match hash {
                Some(h) if named.get(&h).is_some_and(|&size| Some(size) == len) => {
                    whole.insert(h);
                }
                _ => {
                    if let Err(e) = fs::remove_file(entry.path()) {
                        tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove stray transaction file");
                    }
                }
            }
        }
        Ok(rows
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| !whole.contains(h))
            .collect())
    }
}
