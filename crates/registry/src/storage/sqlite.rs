//! The embedded SQLite back end: one file `registry.db` in the data directory, WAL, fully synced.

use std::path::Path;
use std::str::FromStr;
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
    InstanceQuery, InstanceRecord, InstanceSummary, ServerQuery, ServerRecord, Status, Storage,
    VersionSelector,
};
use crate::auth::TokenRecord;
use crate::error::RegistryError;

/// The database file inside the data directory.
pub const DB_FILE: &str = "registry.db";

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
];

/// Storage in an embedded SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating if needed) `data_dir/registry.db` and migrates it.
    pub async fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(data_dir).map_err(|source| RegistryError::Io {
            action: "create data directory",
            path: data_dir.display().to_string(),
            source,
        })?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| RegistryError::Storage {
                operation: "open",
                source,
            })?
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            // WAL lets readers run beside the single writer; FULL syncs the WAL on every commit
            // so an acknowledged write survives kill -9 and power loss.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| RegistryError::Storage {
                operation: "open",
                source,
            })?;
        let storage = Self { pool };
        storage.migrate(MIGRATIONS).await?;
        Ok(storage)
    }

    /// SQLite has one writer at a time; taking the write lock up front (IMMEDIATE) avoids a
    /// read-then-write transaction failing with SQLITE_BUSY when another writer got there first.
    async fn begin_write(&self, _key: &str) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

sql_storage!(SqliteStorage, SqliteRow, "");
