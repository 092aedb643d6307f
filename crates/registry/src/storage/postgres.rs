//! The PostgreSQL back end, for replicas sharing one database.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::sql::{Durability, sql_storage};
use super::{
    DataVersion, InstanceQuery, InstanceRecord, InstanceSummary, ServerQuery, ServerRecord, Status,
    Storage, VersionSelector,
};
use crate::auth::TokenRecord;
use crate::error::RegistryError;

// Text keys use the "C" collation so keyset pagination compares bytes, as SQLite does.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            r#"CREATE TABLE servers (
            name TEXT COLLATE "C" NOT NULL,
            version TEXT COLLATE "C" NOT NULL,
            server_json TEXT NOT NULL,
            status TEXT NOT NULL,
            status_message TEXT,
            status_changed_at BIGINT NOT NULL,
            published_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            is_latest BOOLEAN NOT NULL,
            PRIMARY KEY (name, version)
        )"#,
            "CREATE UNIQUE INDEX servers_one_latest ON servers (name) WHERE is_latest",
            "CREATE INDEX servers_updated_at ON servers (updated_at)",
            "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            role TEXT NOT NULL,
            namespace TEXT,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        )",
            r#"CREATE TABLE instances (
            id TEXT COLLATE "C" PRIMARY KEY,
            server_name TEXT NOT NULL,
            version TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            labels_json TEXT NOT NULL,
            registered_at BIGINT NOT NULL,
            last_heartbeat_at BIGINT NOT NULL
        )"#,
            "CREATE INDEX instances_server ON instances (server_name, id)",
        ],
    ),
    (
        2,
        &[
            r#"CREATE TABLE instance_probes (
            instance_id TEXT COLLATE "C" PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
            lease_holder TEXT,
            lease_expires_at BIGINT NOT NULL,
            probed_at BIGINT,
            ok BOOLEAN,
            latency_us BIGINT,
            error TEXT,
            consecutive_failures BIGINT NOT NULL
        )"#,
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
            "ALTER TABLE instances ADD COLUMN previous_heartbeat_at BIGINT",
        ],
    ),
];

/// Storage in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
}

impl PostgresStorage {
    /// Connects to `url` (e.g. `postgres://user@host/db`) and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, RegistryError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await
            .map_err(|source| RegistryError::Storage {
                operation: "connect",
                source,
            })?;
        let storage = Self { pool };
        storage.migrate(MIGRATIONS).await?;
        Ok(storage)
    }

    /// Serialises writers on `key` (a server name), when given, with a transaction-scoped
    /// advisory lock, so concurrent publishes agree on which version is latest. Every commit is
    /// durable (PostgreSQL's default `synchronous_commit`).
    async fn begin_write(
        &self,
        key: Option<&str>,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if let Some(key) = key {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// A connection for one single-statement write; every commit is durable here, so the kind
    /// of write makes no difference.
    async fn writer(
        &self,
        _durability: Durability,
    ) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// Replicas share the database, so the version must come from it, not from this process.
    async fn versioned<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        write.await
    }

    /// The current snapshot (`xmin:xmax:in-progress`): equal snapshots see the same committed
    /// transactions, hence the same data, and a transaction committed (so acknowledged) before
    /// this call is in it. Any commit in the cluster changes it, so it errs towards misses.
    async fn current_version(&self) -> Result<Option<DataVersion>, RegistryError> {
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&self.pool)
            .await
            .map_err(|source| RegistryError::Storage {
                operation: "data_version",
                source,
            })?;
        Ok(Some(DataVersion::Snapshot(snapshot)))
    }
}

sql_storage!(PostgresStorage, PgRow, " FOR UPDATE OF p SKIP LOCKED");
