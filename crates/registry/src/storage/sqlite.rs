//! The embedded SQLite back end: one file `registry.db` in the data directory, WAL, synchronous=NORMAL.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use super::sql::sql_storage;
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
    /// Reads only: WAL lets these run beside the writer without waiting for it.
    pool: SqlitePool,
    /// One connection, so writers queue in process instead of meeting SQLITE_BUSY, whose busy
    /// handler sleeps for milliseconds at a time and turned write contention into 100 ms tails.
    writer: SqlitePool,
    /// Bumped after every write; see [`Storage::data_version`].
    version: Arc<AtomicU64>,
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
            // WAL lets readers run beside the single writer. NORMAL writes each commit to the WAL
            // before it returns but syncs only at checkpoints: an acknowledged write survives the
            // registry crashing or being killed (kill -9), and the file stays consistent on power
            // loss, but an OS crash or power cut may roll back the last commits since a sync.
            // FULL (an fsync per commit) capped heartbeats below 1,000/s on one writer.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Other processes (token administration) may still hold the write lock briefly.
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(err)?;
        let storage = Self {
            pool,
            writer,
            version: Arc::new(AtomicU64::new(0)),
        };
        storage.migrate(MIGRATIONS).await?;
        Ok(storage)
    }

    /// SQLite has one writer at a time; taking the write lock up front (IMMEDIATE) avoids a
    /// read-then-write transaction failing with SQLITE_BUSY when another process wrote first.
    async fn begin_write(&self, _key: &str) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Where single-statement writes go.
    fn writes(&self) -> &SqlitePool {
        &self.writer
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
