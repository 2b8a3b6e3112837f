//! SQLite persistence (rusqlite, bundled library): the design's `peers`
//! table and the node's own identity, in `<DataDirectory>/peers.db`.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::discovery::membership::{Capabilities, PeerRecord};
use crate::{Error, Result};

/// The design's schema, verbatim, plus a key/value table for node identity.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS peers (
  peer_id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  port INTEGER NOT NULL,
  supported_protocols TEXT,  -- JSON array
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  failure_count INTEGER DEFAULT 0,
  capabilities TEXT,  -- JSON object
  is_bootstrap BOOLEAN DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_last_seen ON peers(last_seen);
CREATE INDEX IF NOT EXISTS idx_is_bootstrap ON peers(is_bootstrap);
CREATE TABLE IF NOT EXISTS node_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
";

pub const PEERS_DB: &str = "peers.db";

pub struct Store {
    path: PathBuf,
    // One connection behind a mutex: every statement is short and the
    // writes of a discovery round are batched in one transaction.
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(PEERS_DB);
        let conn = Self::init(&path).map_err(store_err(&path))?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn init(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(conn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(store_err(&self.path))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM node_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO node_meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
    }

    /// The configured id if any (remembered for next time), else the
    /// persisted one, else a fresh one that is persisted before use.
    pub fn node_id(&self, configured: Option<&str>) -> Result<String> {
        if let Some(id) = configured {
            self.set_meta("node_id", id)?;
            return Ok(id.to_owned());
        }
        if let Some(id) = self.meta("node_id")? {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.set_meta("node_id", &id)?;
        Ok(id)
    }

    pub fn load_peers(&self) -> Result<Vec<PeerRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT peer_id, address, port, supported_protocols, first_seen, last_seen,
                        failure_count, capabilities, is_bootstrap
                 FROM peers ORDER BY last_seen DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                let protocols: Option<String> = r.get(3)?;
                let caps: Option<String> = r.get(7)?;
                Ok(PeerRecord {
                    peer_id: r.get(0)?,
                    address: r.get(1)?,
                    port: r.get(2)?,
                    supported_protocols: protocols
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default(),
                    first_seen: r.get(4)?,
                    last_seen: r.get(5)?,
                    failure_count: r.get(6)?,
                    capabilities: caps
                        .and_then(|s| serde_json::from_str::<Capabilities>(&s).ok())
                        .unwrap_or_default(),
                    is_bootstrap: r.get(8)?,
                    responsive: false,
                })
            })?;
            rows.collect()
        })
    }

    /// Writes a batch of upserts and removals in one transaction.
    pub fn apply(&self, upserts: &[PeerRecord], removals: &[String]) -> Result<()> {
        if upserts.is_empty() && removals.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM peers WHERE peer_id = ?1")?;
                for id in removals {
                    del.execute([id])?;
                }
                let mut up = tx.prepare_cached(
                    "INSERT INTO peers(peer_id, address, port, supported_protocols, first_seen,
                                       last_seen, failure_count, capabilities, is_bootstrap)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(peer_id) DO UPDATE SET
                       address = excluded.address, port = excluded.port,
                       supported_protocols = excluded.supported_protocols,
                       last_seen = excluded.last_seen, failure_count = excluded.failure_count,
                       capabilities = excluded.capabilities, is_bootstrap = excluded.is_bootstrap",
                )?;
                for p in upserts {
                    up.execute(params![
                        p.peer_id,
                        p.address,
                        p.port,
                        serde_json::to_string(&p.supported_protocols).unwrap_or_default(),
                        p.first_seen,
                        p.last_seen,
                        p.failure_count,
                        serde_json::to_string(&p.capabilities).unwrap_or_default(),
                        p.is_bootstrap,
                    ])?;
                }
            }
            tx.commit()
        })
    }
}

fn store_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Store {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_peer(id: &str) -> PeerRecord {
        PeerRecord {
            peer_id: id.into(),
            address: "127.0.0.1".into(),
            port: 7001,
            supported_protocols: vec!["grpc".into(), "rest".into()],
            first_seen: 10,
            last_seen: 20,
            failure_count: 2,
            capabilities: Capabilities {
                supports_streaming: true,
                supports_transaction_distribution: false,
                max_transaction_size: 42,
            },
            is_bootstrap: true,
            responsive: true,
        }
    }

    #[test]
    fn peers_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.apply(&[mk_peer("a"), mk_peer("b")], &[]).unwrap();
            s.apply(&[], &["b".into()]).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let rows = s.load_peers().unwrap();
        let mut want = mk_peer("a");
        want.responsive = false;
        assert_eq!(rows, vec![want]);
    }

    #[test]
    fn generated_node_id_is_persisted_and_configured_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap().node_id(None).unwrap();
        assert_eq!(
            Store::open(dir.path()).unwrap().node_id(None).unwrap(),
            first
        );
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.node_id(Some("fixed")).unwrap(), "fixed");
        assert_eq!(s.node_id(None).unwrap(), "fixed");
    }

    #[test]
    fn design_schema_and_indexes_exist() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let names: Vec<String> = s
            .with(|c| {
                let mut st = c.prepare(
                    "SELECT name FROM sqlite_master WHERE tbl_name = 'peers' ORDER BY name",
                )?;
                st.query_map([], |r| r.get(0))?.collect()
            })
            .unwrap();
        assert_eq!(
            names,
            vec![
                "idx_is_bootstrap",
                "idx_last_seen",
                "peers",
                "sqlite_autoindex_peers_1"
            ]
        );
    }
}
