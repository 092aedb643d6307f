//! The embedded SQLite back end: `registry.db` in the data directory, WAL, synced by kind of write.
//!
//! # What survives a crash
//!
//! Every write goes to the write-ahead log (WAL) before it is acknowledged, so an acknowledged
//! write of any kind survives the registry crashing or being killed (`kill -9`): the log lives in
//! the operating system's page cache, and the next open replays it. Surviving an operating-system
//! crash or a power cut needs the log on the disk (an fsync), which is where the two kinds differ:
//!
//! - **Durable writes** — catalogue publishes and status changes (including deletion), instance
//!   registration and deregistration, token creation and revocation, schema migrations — commit
//!   on a connection with `synchronous=FULL`, which syncs the WAL before the commit returns. Once
//!   acknowledged they survive power loss. The sync covers the whole log file, so it also makes
//!   every write committed before it durable, whatever its kind.
//! - **Ephemeral writes** — heartbeats, probe lease claims and probe results — commit on a
//!   connection with `synchronous=NORMAL`, which appends to the WAL without syncing it. They reach
//!   the disk with the next sync: the next durable commit, or the next checkpoint (SQLite's
//!   automatic checkpoint runs once the log holds 1,000 pages, under a second at 2,000 heartbeats
//!   a second, minutes on a quiet registry; the kernel's own write-back usually comes sooner). A
//!   power cut may roll back the ephemeral writes committed since that sync. That is acceptable
//!   because each is superseded within an interval anyway: an instance whose last beats were lost
//!   looks as old as its last synced beat until its agent's next heartbeat (every few seconds)
//!   rewrites it, which a registry that was down for the power cut has to wait for in any case; a
//!   lost lease only lets an instance be probed again early; a lost probe result is rewritten by
//!   the next probe (a lost failure delays an unhealthy verdict by one probe interval).
//!
//! What power loss can never do is leave a later write without an earlier one: the WAL is replayed
//! up to its first incomplete frame, so the database comes back as a prefix of the commit order
//! (no heartbeat survives its instance's registration being lost, no deletion is half applied).
//! FULL on every commit capped heartbeats below 1,000/s; syncing only the writes that need it
//! keeps the heartbeat rate of NORMAL.
//!
//! The two writer connections never write at once: an in-process gate (a fair async mutex) lets
//! one writer in at a time, so writers queue in order instead of meeting `SQLITE_BUSY`, whose
//! busy handler sleeps for milliseconds at a time and turned write contention into 100 ms tails.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::sql::{Durability, sql_storage};
use super::{
    DataVersion, InstanceQuery, InstanceRecord, InstanceSummary, ServerQuery, ServerRecord, Status,
    Storage, VersionSelector,
};
use crate::auth::TokenRecord;
use crate::error::RegistryError;

/// The database file inside the data directory.
pub const DB_FILE: &str = "registry.db";

/// Reader connections: more than the cores so a slow page does not hold up point reads.
const READERS: u32 = 8;

const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE servers (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            server_json TEXT NOT NULL,
            status TEXT NOT NULL,
            status_message TEXT,
            status_changed_at INTEGER NOT NULL,
            published_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            is_latest INTEGER NOT NULL,
            PRIMARY KEY (name, version)
        )",
            // At most one latest version per server, whatever a buggy writer attempts.
            "CREATE UNIQUE INDEX servers_one_latest ON servers (name) WHERE is_latest",
            "CREATE INDEX servers_updated_at ON servers (updated_at)",
            "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            role TEXT NOT NULL,
            namespace TEXT,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        )",
            "CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            server_name TEXT NOT NULL,
            version TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            labels_json TEXT NOT NULL,
            registered_at INTEGER NOT NULL,
            last_heartbeat_at INTEGER NOT NULL
        )",
            "CREATE INDEX instances_server ON instances (server_name, id)",
        ],
    ),
    (
        2,
        &[
            // Probe leases and results live beside instances so probes never contend with heartbeats.
            "CREATE TABLE instance_probes (
            instance_id TEXT PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
            lease_holder TEXT,
            lease_expires_at INTEGER NOT NULL,
            probed_at INTEGER,
            ok INTEGER,
            latency_us INTEGER,
            error TEXT,
            consecutive_failures INTEGER NOT NULL
        )",
            "CREATE INDEX instance_probes_due ON instance_probes (lease_expires_at)",
            "CREATE INDEX instance_probes_holder ON instance_probes (lease_holder, lease_expires_at)",
            "INSERT INTO instance_probes (instance_id, lease_expires_at, consecutive_failures) SELECT id, 0, 0 FROM instances",
        ],
    ),
    (
        3,
        &[
            // The heartbeat before the last, written by the same UPDATE that moves the last one
            // (SET expressions read the old row), so a heartbeat is one statement, not a transaction.
            "ALTER TABLE instances ADD COLUMN previous_heartbeat_at INTEGER",
        ],
    ),
];

/// Storage in an embedded SQLite database, owned by one registry process.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    /// Reads only: WAL lets these run beside the writers without waiting for them.
    pool: SqlitePool,
    /// One connection with synchronous=FULL, for the writes that must survive power loss.
    durable: SqlitePool,
    /// One connection with synchronous=NORMAL, for heartbeats and probe bookkeeping.
    ephemeral: SqlitePool,
    /// Held for every write, so the two writer connections take turns in process (see the
    /// module documentation).
    gate: Arc<Mutex<()>>,
    /// Bumped after every write; see [`Storage::data_version`].
    version: Arc<AtomicU64>,
}

/// A connection (or transaction) that holds the write gate until it is dropped.
struct Gated<C> {
    // Fields drop in order: an unfinished transaction (a cancelled request) queues its rollback
    // before the gate opens. The rollback runs on the connection's thread a moment later; a write
    // let in before that waits in SQLite's busy handler, so the race costs time, never a write.
    inner: C,
    _gate: OwnedMutexGuard<()>,
}

/// A durable write transaction, holding the write gate until it ends.
type SqliteWrite = Gated<Transaction<'static, Sqlite>>;
/// A writer connection for one autocommit statement, holding the write gate until it is dropped.
type SqliteWriter = Gated<PoolConnection<Sqlite>>;

impl SqliteWrite {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }
}

impl<C: DerefMut<Target = SqliteConnection>> Deref for Gated<C> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.inner
    }
}

impl<C: DerefMut<Target = SqliteConnection>> DerefMut for Gated<C> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) `data_dir/registry.db` and migrates it.
    pub async fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(data_dir).map_err(|source| RegistryError::Io {
            action: "create data directory",
            path: data_dir.display().to_string(),
            source,
        })?;
        let err = |source| RegistryError::Storage {
            operation: "open",
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(err)?
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            // WAL lets readers run beside the writer, and lets a commit skip the sync (NORMAL)
            // without risking corruption; see the module documentation for what each level keeps.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Other processes (token administration, a second storage in tests) may hold the
            // write lock briefly.
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = |synchronous| {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone().synchronous(synchronous))
        };
        let durable = writer(SqliteSynchronous::Full).await.map_err(err)?;
        let ephemeral = writer(SqliteSynchronous::Normal).await.map_err(err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(err)?;
        let storage = Self {
            pool,
            durable,
            ephemeral,
            gate: Arc::new(Mutex::new(())),
            version: Arc::new(AtomicU64::new(0)),
        };
        storage.migrate(MIGRATIONS).await?;
        Ok(storage)
    }

    /// The writer connection for writes of `durability`.
    fn writer_pool(&self, durability: Durability) -> &SqlitePool {
        match durability {
            Durability::Durable => &self.durable,
            Durability::Ephemeral => &self.ephemeral,
        }
    }

    /// A durable transaction. SQLite has one writer at a time; taking the write lock up front
    /// (IMMEDIATE) avoids a read-then-write transaction failing with SQLITE_BUSY when another
    /// process wrote first. Writers of one process are serialised by the gate, so no key is needed.
    async fn begin_write(&self, _key: Option<&str>) -> Result<SqliteWrite, sqlx::Error> {
        let gate = self.gate.clone().lock_owned().await;
        let tx = self.durable.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Gated {
            inner: tx,
            _gate: gate,
        })
    }

    /// A writer connection for one autocommit statement of `durability`.
    async fn writer(&self, durability: Durability) -> Result<SqliteWriter, sqlx::Error> {
        let gate = self.gate.clone().lock_owned().await;
        let conn = self.writer_pool(durability).acquire().await?;
        Ok(Gated {
            inner: conn,
            _gate: gate,
        })
    }

    /// Runs a write, then bumps the data version whether or not it failed: a failure may come
    /// after the commit (decoding what it returned), and a needless bump costs only a cache miss.
    async fn versioned<T>(&self, write: impl Future<Output = T>) -> T {
        let result = write.await;
        self.version.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Writes bump the counter after they commit, so a version read after an acknowledged write
    /// differs from every version read before it. Only this process's writes count: the data
    /// directory belongs to one registry process (token administration touches tokens only).
    async fn current_version(&self) -> Result<Option<DataVersion>, RegistryError> {
        Ok(Some(DataVersion::Counter(
            self.version.load(Ordering::SeqCst),
        )))
    }
}

sql_storage!(SqliteStorage, SqliteRow, "");

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::pin::Pin;

    use serde_json::json;

    use super::*;
    use crate::auth::Role;

    async fn synchronous(conn: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn each_writer_connection_syncs_as_its_writes_need() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path()).await.unwrap();
        // PRAGMA synchronous reads 2 for FULL and 1 for NORMAL.
        let mut tx = storage.begin_write(None).await.unwrap();
        assert_eq!(synchronous(&mut tx).await, 2, "durable transactions");
        tx.commit().await.unwrap();
        let mut durable = storage.writer(Durability::Durable).await.unwrap();
        assert_eq!(synchronous(&mut durable).await, 2, "durable statements");
        drop(durable);
        let mut ephemeral = storage.writer(Durability::Ephemeral).await.unwrap();
        assert_eq!(synchronous(&mut ephemeral).await, 1, "ephemeral statements");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *ephemeral)
            .await
            .unwrap();
        // Skipping the sync is only safe from corruption with a write-ahead log.
        assert_eq!(mode, "wal");
    }

    type Write = for<'a> fn(&'a SqliteStorage) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    fn instance(id: &str) -> InstanceRecord {
        let now = OffsetDateTime::now_utc();
        InstanceRecord {
            id: id.to_owned(),
            server_name: "io.example/routed".to_owned(),
            version: "1.0.0".to_owned(),
            endpoint: "http://127.0.0.1:9/mcp".to_owned(),
            labels: BTreeMap::new(),
            registered_at: now,
            last_heartbeat_at: now,
            probe: None,
        }
    }

    /// Every write waits for the writer connection of its kind and for no other: holding that
    /// connection stalls it, and it finishes while the other writer connection is held.
    #[tokio::test]
    async fn every_write_commits_on_the_connection_of_its_kind() {
        use Durability::{Durable, Ephemeral};
        let writes: [(&str, Durability, Write); 9] = [
            ("publish", Durable, |s| {
                Box::pin(async {
                    let doc = json!({"name": "io.example/routed", "version": "1.0.0"});
                    let at = OffsetDateTime::now_utc();
                    s.publish("io.example/routed", "1.0.0", &doc, at)
                        .await
                        .unwrap();
                })
            }),
            ("set_status (deletion)", Durable, |s| {
                Box::pin(async {
                    let at = OffsetDateTime::now_utc();
                    let name = "io.example/routed";
                    let changed = s.set_status(name, None, Status::Deleted, None, at);
                    assert_eq!(changed.await.unwrap().len(), 1);
                })
            }),
            ("insert_token", Durable, |s| {
                Box::pin(async {
                    let token = TokenRecord {
                        id: "t1".to_owned(),
                        hash: "h".to_owned(),
                        role: Role::Admin,
                        namespace: None,
                    };
                    s.insert_token(&token, OffsetDateTime::now_utc())
                        .await
                        .unwrap();
                })
            }),
            ("revoke_token", Durable, |s| {
                Box::pin(async {
                    assert!(
                        s.revoke_token("t1", OffsetDateTime::now_utc())
                            .await
                            .unwrap()
                    );
                })
            }),
            ("register_instance", Durable, |s| {
                Box::pin(async { s.register_instance(&instance("i1")).await.unwrap() })
            }),
            ("heartbeat", Ephemeral, |s| {
                Box::pin(async {
                    let beat = s.heartbeat("i1", OffsetDateTime::now_utc()).await.unwrap();
                    assert!(beat.is_some());
                })
            }),
            ("claim_probes", Ephemeral, |s| {
                Box::pin(async {
                    let at = OffsetDateTime::now_utc();
                    let until = at + time::Duration::seconds(10);
                    let since = at - time::Duration::seconds(60);
                    let claimed = s.claim_probes("h", at, until, since, 10).await.unwrap();
                    assert_eq!(claimed.len(), 1);
                })
            }),
            ("record_probe", Ephemeral, |s| {
                Box::pin(async {
                    let at = OffsetDateTime::now_utc();
                    assert!(s.record_probe("i1", at, true, None, None).await.unwrap());
                })
            }),
            ("deregister_instance", Durable, |s| {
                Box::pin(async { assert!(s.deregister_instance("i1").await.unwrap()) })
            }),
        ];
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path()).await.unwrap();
        for (why, durability, write) in writes {
            let other = match durability {
                Durable => Ephemeral,
                Ephemeral => Durable,
            };
            let held_other = storage.writer_pool(other).acquire().await.unwrap();
            let held_own = storage.writer_pool(durability).acquire().await.unwrap();
            let mut running = write(&storage);
            // Correct routing can never finish here; a write on another connection would.
            let early = tokio::time::timeout(Duration::from_millis(100), &mut running).await;
            assert!(
                early.is_err(),
                "{why} finished without its {durability:?} connection"
            );
            drop(held_own);
            let done = tokio::time::timeout(Duration::from_secs(10), running).await;
            assert!(done.is_ok(), "{why} waited for the {other:?} connection");
            drop(held_other);
        }
    }
}
