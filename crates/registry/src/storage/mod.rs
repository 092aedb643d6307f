//! The storage trait shared by the SQLite and PostgreSQL back ends, and the records it moves.

mod instrumented;
mod postgres;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::TokenRecord;
use crate::error::RegistryError;
use crate::instances::{Cutoffs, HealthState};

pub use instrumented::Instrumented;
pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

/// Where the registry keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// Embedded SQLite in `DIR/registry.db`; the directory is created if missing.
    Sqlite { data_dir: PathBuf },
    /// A PostgreSQL database shared by all replicas, e.g. `postgres://user@host/db`.
    Postgres { url: String },
}

/// Opens the configured back end and brings its schema up to date.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Storage>, RegistryError> {
    Ok(match config {
        StorageConfig::Sqlite { data_dir } => Arc::new(SqliteStorage::open(data_dir).await?),
        StorageConfig::Postgres { url } => Arc::new(PostgresStorage::connect(url).await?),
    })
}

/// The lifecycle status of one published version, set by the status endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Deprecated,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "deprecated" => Some(Self::Deprecated),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// One published version of a server with the registry's own metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecord {
    pub name: String,
    pub version: String,
    /// The `server.json` document exactly as validated at publish time.
    pub server: Value,
    pub status: Status,
    pub status_message: Option<String>,
    pub status_changed_at: OffsetDateTime,
    pub published_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub is_latest: bool,
}

/// Which version of a server to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector<'a> {
    Latest,
    Exact(&'a str),
}

/// A page request over all server versions, ordered by (name, version).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerQuery {
    /// Keyset position: only rows strictly after this (name, version).
    pub after: Option<(String, String)>,
    pub limit: u32,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Only rows updated strictly after this instant.
    pub updated_since: Option<OffsetDateTime>,
    pub latest_only: bool,
    pub exact_version: Option<String>,
    pub include_deleted: bool,
}

/// A live instance of a server, registered by the agent that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: String,
    pub server_name: String,
    pub version: String,
    pub endpoint: String,
    pub labels: BTreeMap<String, String>,
    pub registered_at: OffsetDateTime,
    pub last_heartbeat_at: OffsetDateTime,
    /// The last active probe; `None` until a prober has finished one (and when writing a record).
    pub probe: Option<ProbeRecord>,
}

/// The outcome of the last active probe of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    pub at: OffsetDateTime,
    pub ok: bool,
    /// Round trip of the MCP `ping` request; `None` when the probe failed before it.
    pub latency: Option<std::time::Duration>,
    /// Why the probe failed, for people reading the instance list.
    pub error: Option<String>,
    /// Failed probes since the last successful one.
    pub consecutive_failures: u32,
}

/// An instance a prober has leased for one interval: only it probes the instance until the lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub id: String,
    pub endpoint: String,
}

/// A page request over instances, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceQuery {
    pub server_name: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
    /// Only instances in this health state under these cutoffs.
    pub health: Option<(HealthState, Cutoffs)>,
}

/// Instance counts by health for the fleet gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceSummary {
    pub healthy: u64,
    pub unhealthy: u64,
    pub gone: u64,
    /// The oldest heartbeat among instances that are not gone.
    pub oldest_live_heartbeat: Option<OffsetDateTime>,
}

/// Identifies what a back end's data looked like at one moment: two equal versions read the same
/// data, and a version read after an acknowledged write differs from every one read before it.
/// Lets callers cache what they derive from reads (see [`Storage::data_version`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataVersion {
    /// A count of this process's writes (SQLite, owned by one process).
    Counter(u64),
    /// A database snapshot shared by every replica (PostgreSQL).
    Snapshot(String),
}

/// Everything the registry persists. Implementations must make each method atomic and durable
/// before returning: replicas are stateless and a returned write is acknowledged to a client.
/// Durable means it survives the registry process dying; PostgreSQL also survives the machine
/// dying, SQLite (WAL, synchronous=NORMAL) may lose the last commits to an OS crash or power cut.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), RegistryError>;

    /// The current [`DataVersion`], or `None` when this back end cannot tell. Read it before the
    /// data it keys: whatever is read afterwards is at least as new as the version.
    async fn data_version(&self) -> Result<Option<DataVersion>, RegistryError>;

    /// Stores a new version, moving `is_latest` to it when it is newer by [`is_newer`].
    /// A (name, version) that exists already is a [`RegistryError::Conflict`].
    async fn publish(
        &self,
        name: &str,
        version: &str,
        server: &Value,
        now: OffsetDateTime,
    ) -> Result<ServerRecord, RegistryError>;

    /// At most `query.limit` rows in (name, version) order.
    async fn list_servers(&self, query: &ServerQuery) -> Result<Vec<ServerRecord>, RegistryError>;

    /// All versions of one server, newest publication first.
    async fn server_versions(
        &self,
        name: &str,
        include_deleted: bool,
    ) -> Result<Vec<ServerRecord>, RegistryError>;

    /// One version, deleted ones included (callers decide whether to show them).
    async fn server_version(
        &self,
        name: &str,
        version: VersionSelector<'_>,
    ) -> Result<Option<ServerRecord>, RegistryError>;

    /// Sets the status of one version (`Some`) or all versions (`None`); returns the updated rows.
    async fn set_status(
        &self,
        name: &str,
        version: Option<&str>,
        status: Status,
        message: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<ServerRecord>, RegistryError>;

    async fn insert_token(
        &self,
        token: &TokenRecord,
        now: OffsetDateTime,
    ) -> Result<(), RegistryError>;

    /// A token that has not been revoked.
    async fn find_token(&self, id: &str) -> Result<Option<TokenRecord>, RegistryError>;

    /// Returns false when no live token has this id.
    async fn revoke_token(&self, id: &str, now: OffsetDateTime) -> Result<bool, RegistryError>;

    async fn register_instance(&self, instance: &InstanceRecord) -> Result<(), RegistryError>;

    /// Moves the heartbeat to `now`; returns the updated record and the previous heartbeat.
    async fn heartbeat(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(InstanceRecord, OffsetDateTime)>, RegistryError>;

    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, RegistryError>;

    /// Returns false when there was no such instance.
    async fn deregister_instance(&self, id: &str) -> Result<bool, RegistryError>;

    async fn list_instances(
        &self,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, RegistryError>;

    /// Counts instances by health state under `cutoffs` (see [`crate::HealthPolicy`]).
    async fn instance_summary(&self, cutoffs: &Cutoffs) -> Result<InstanceSummary, RegistryError>;

    /// Atomically leases up to `limit` instances whose lease ended at or before `now` and that
    /// are not gone (heartbeat at or after `live_since`) to `holder` until `lease_until`.
    /// Concurrent callers on one database never receive the same instance for one lease.
    async fn claim_probes(
        &self,
        holder: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        live_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ProbeTarget>, RegistryError>;

    /// Stores a probe's outcome, counting consecutive failures; false when the instance is gone.
    async fn record_probe(
        &self,
        id: &str,
        at: OffsetDateTime,
        ok: bool,
        latency: Option<std::time::Duration>,
        error: Option<&str>,
    ) -> Result<bool, RegistryError>;
}

/// Whether a version published at `candidate_at` should replace the current latest.
///
/// Follows the official registry: when both versions are semantic versions their precedence
/// decides; otherwise the later publication wins (so a non-semver publish always becomes latest).
pub fn is_newer(
    candidate: &str,
    candidate_at: OffsetDateTime,
    current: &str,
    current_at: OffsetDateTime,
) -> bool {
    match (
        semver::Version::parse(candidate),
        semver::Version::parse(current),
    ) {
        (Ok(a), Ok(b)) => match a.cmp_precedence(&b) {
            std::cmp::Ordering::Equal => candidate_at >= current_at,
            ordering => ordering.is_gt(),
        },
        _ => candidate_at >= current_at,
    }
}

/// Microseconds since the Unix epoch: the stored form of every instant, the same in both back ends.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, RegistryError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| RegistryError::Corrupt(format!("timestamp {micros}: {e}")))
}

pub(crate) fn parse_status(s: &str) -> Result<Status, RegistryError> {
    Status::parse(s).ok_or_else(|| RegistryError::Corrupt(format!("unknown status '{s}'")))
}

pub(crate) fn parse_role(s: &str) -> Result<crate::auth::Role, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::Corrupt(format!("unknown role '{s}'")))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, RegistryError> {
    serde_json::from_str(s).map_err(|e| RegistryError::Corrupt(format!("{what}: {e}")))
}

/// Labels serialize as a JSON object; a BTreeMap of strings cannot fail to serialize.
pub(crate) fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn latest_ordering() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let t1 = t0 + Duration::seconds(1);
        let cases = [
            (
                "1.10.0",
                t1,
                "1.9.0",
                t0,
                true,
                "semver beats lexical order",
            ),
            (
                "1.0.1",
                t1,
                "2.0.0",
                t0,
                false,
                "an older semver published later is not latest",
            ),
            (
                "2.0.0-rc.1",
                t1,
                "2.0.0",
                t0,
                false,
                "prerelease sorts below release",
            ),
            (
                "1.0.0+b",
                t1,
                "1.0.0+a",
                t0,
                true,
                "build metadata ties go to the later publish",
            ),
            (
                "main",
                t1,
                "9.9.9",
                t0,
                true,
                "non-semver candidate wins by time",
            ),
            (
                "1.0.0",
                t1,
                "snapshot",
                t0,
                true,
                "semver after non-semver wins by time",
            ),
            (
                "a",
                t0,
                "b",
                t1,
                false,
                "non-semver published earlier loses",
            ),
        ];
        for (cand, cat, cur, curat, want, why) in cases {
            assert_eq!(is_newer(cand, cat, cur, curat), want, "{why}");
        }
    }

    #[test]
    fn micros_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + Duration::microseconds(123);
        assert_eq!(from_micros(to_micros(t)).unwrap(), t);
    }
}
