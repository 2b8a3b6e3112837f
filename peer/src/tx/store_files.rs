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
//! Files from `DIRECT_FROM` up are written with direct I/O (`O_DIRECT`)
//! where the filesystem allows it. Through the page cache, 100 nodes
//! writing 500 MB/s spent most of their time in the kernel (page-cache
//! copies, reclaim once RAM filled, writeback): on the gossip benchmark's
//! 200 × 1 MiB row, 74% of the CPU was system time, and every peer stored
//! each transaction after 25–39 s (p50). With direct I/O it was 0.17 s,
//! and CPU per transaction (all peers) fell from ~505 to ~300 ms. Reads
//! still go through the page cache, which direct writes keep coherent. A
//! filesystem that refuses direct I/O (tmpfs on older kernels, some
//! overlays) gets buffered writes. Below 256 KiB the page cache wins: A/B
//! on 60 light-load transactions, CPU per transaction at 100 KiB 88–109 ms
//! buffered against 111–117 ms direct; at 256 KiB 171–207 against 148–161.
//!
//! Ordering keeps a committed row's file whole: the writer thread writes
//! the file before the commit that adds its row (syncing both when the
//! commit is synced), and removes it only after the commit that deleted
//! the row. What a crash leaves between the two is settled when the store
//! opens (`TxFiles::check`).
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use aligned_vec::{AVec, ConstAlign};

use super::store::{TxHash, parse_hex, to_hex};
use crate::{Error, Result};

pub const FILES_DIR: &str = "transactions.files";

/// Transactions larger than this are stored as files.
pub const IN_FILE_ABOVE: u64 = 64 * 1024;

/// Direct I/O moves whole blocks from block-aligned memory. 4 KiB is a
/// multiple of every logical block size in use (512 B, 4 KiB).
const BLOCK: usize = 4096;

/// Files this large or larger are written with direct I/O.
pub const DIRECT_FROM: usize = 256 * 1024;

pub struct TxFiles {
    dir: PathBuf,
    /// Still trying direct I/O (cleared once the filesystem refuses it).
    direct: AtomicBool,
}

impl TxFiles {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(FILES_DIR);
        fs::create_dir_all(&dir).map_err(|source| Error::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self {
            dir,
            direct: AtomicBool::new(true),
        })
    }

    /// Writes through the page cache only (what a filesystem without
    /// direct I/O gets).
    #[cfg(test)]
    fn buffered(mut self) -> Self {
        self.direct = AtomicBool::new(false);
        self
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
        let path = self.path(hash);
        let direct = data.len() >= DIRECT_FROM && self.direct.load(Ordering::Relaxed);
        let written = if direct {
            match write_direct(&path, data) {
                Ok(f) => Some(f),
                // Alignment is ours to get right, so EINVAL means the
                // filesystem does not do direct I/O.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct.store(false, Ordering::Relaxed);
                    tracing::info!(dir = %self.dir.display(), "the filesystem refuses direct I/O; large transactions are written through the page cache");
                    None
                }
                Err(e) => return Err(self.err(hash)(e)),
            }
        } else {
            None
        };
        let f = match written {
            Some(f) => f,
            None => {
                let mut f = File::create(&path).map_err(self.err(hash))?;
                f.write_all(data).map_err(self.err(hash))?;
                f
            }
        };
        if sync {
            f.sync_all().map_err(self.err(hash))?;
        }
        Ok(())
    }

    /// Whether files are still written with direct I/O.
    #[cfg(test)]
    fn direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
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

/// Writes `data` to a new file at `path` bypassing the page cache: padded
/// to whole blocks from an aligned copy, then cut to its length.
fn write_direct(path: &Path, data: &[u8]) -> std::io::Result<File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let padded = data.len().next_multiple_of(BLOCK);
    let mut blocks: AVec<u8, ConstAlign<BLOCK>> = AVec::with_capacity(BLOCK, padded);
    blocks.extend_from_slice(data);
    blocks.resize(padded, 0);
    (&f).write_all(&blocks)?;
    f.set_len(data.len() as u64)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_read_back_exactly_with_direct_io_or_without() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let both = [
            TxFiles::open(dirs[0].path()).unwrap(),
            TxFiles::open(dirs[1].path()).unwrap().buffered(),
        ];
        for files in &both {
            let mut rows = Vec::new();
            let direct = [DIRECT_FROM - 1, DIRECT_FROM, DIRECT_FROM + 1, (1 << 20) + 3];
            for (n, len) in [1, BLOCK - 1, BLOCK, BLOCK + 1, 65_537]
                .into_iter()
                .chain(direct)
                .enumerate()
            {
                let hash = [n as u8 + 1; 32];
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
                files.write(&hash, &data, n % 2 == 0).unwrap();
                assert_eq!(files.read(&hash).unwrap().as_deref(), Some(&data[..]));
                rows.push((hash, len as u64));
            }
            assert!(
                files.check(&rows).unwrap().is_empty(),
                "every file has its row's length (direct: {})",
                files.direct()
            );
        }
        assert!(!both[1].direct());
    }

    #[test]
    fn rewriting_a_shorter_copy_leaves_no_stale_tail() {
        let dir = tempfile::tempdir().unwrap();
        let files = TxFiles::open(dir.path()).unwrap();
        let hash = [9; 32];
        files.write(&hash, &[1u8; DIRECT_FROM + 5], false).unwrap();
        files.write(&hash, &[2u8; 10], false).unwrap();
        assert_eq!(files.read(&hash).unwrap(), Some(vec![2u8; 10]));
    }
}
