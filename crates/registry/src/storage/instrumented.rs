//! A [`Storage`] wrapper that times every operation and counts failures.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use super::{
    DataVersion, InstanceQuery, InstanceRecord, InstanceSummary, ProbeTarget, ServerQuery,
    ServerRecord, Status, Storage, VersionSelector,
};
use crate::auth::TokenRecord;
use crate::error::RegistryError;
use crate::instances::Cutoffs;
use crate::metrics::RegistryMetrics;

/// Wraps any back end so metrics are recorded the same way for all of them.
pub struct Instrumented {
    inner: Arc<dyn Storage>,
    metrics: RegistryMetrics,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Storage>, metrics: RegistryMetrics) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let start = Instant::now();
        let result = call.await;
        // Conflicts are the client's fault, not the database's: only storage failures count.
        let failed = matches!(
            result,
            Err(RegistryError::Storage { .. } | RegistryError::Corrupt(_))
        );
        self.metrics
            .observe_storage(operation, start.elapsed().as_secs_f64(), failed);
        result
    }
}

#[async_trait]
impl Storage for Instrumented {
    async fn ping(&self) -> Result<(), RegistryError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn data_version(&self) -> Result<Option<DataVersion>, RegistryError> {
        self.timed("data_version", self.inner.data_version()).await
    }

    async fn publish(
        &self,
        name: &str,
        version: &str,
        server: &Value,
        now: OffsetDateTime,
    ) -> Result<ServerRecord, RegistryError> {
        self.timed("publish", self.inner.publish(name, version, server, now))
            .await
    }

    async fn list_servers(&self, query: &ServerQuery) -> Result<Vec<ServerRecord>, RegistryError> {
        self.timed("list_servers", self.inner.list_servers(query))
            .await
    }

    async fn server_versions(
        &self,
        name: &str,
        include_deleted: bool,
    ) -> Result<Vec<ServerRecord>, RegistryError> {
        self.timed(
            "server_versions",
            self.inner.server_versions(name, include_deleted),
        )
        .await
    }

    async fn server_version(
        &self,
        name: &str,
        version: VersionSelector<'_>,
    ) -> Result<Option<ServerRecord>, RegistryError> {
        self.timed("server_version", self.inner.server_version(name, version))
            .await
    }

    async fn set_status(
        &self,
        name: &str,
        version: Option<&str>,
        status: Status,
        message: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<ServerRecord>, RegistryError> {
        self.timed(
            "set_status",
            self.inner.set_status(name, version, status, message, now),
        )
        .await
    }

    async fn insert_token(
        &self,
        token: &TokenRecord,
        now: OffsetDateTime,
    ) -> Result<(), RegistryError> {
        self.timed("insert_token", self.inner.insert_token(token, now))
            .await
    }

    async fn find_token(&self, id: &str) -> Result<Option<TokenRecord>, RegistryError> {
        self.timed("find_token", self.inner.find_token(id)).await
    }

    async fn revoke_token(&self, id: &str, now: OffsetDateTime) -> Result<bool, RegistryError> {
        self.timed("revoke_token", self.inner.revoke_token(id, now))
            .await
    }

    async fn register_instance(&self, instance: &InstanceRecord) -> Result<(), RegistryError> {
        self.timed("register_instance", self.inner.register_instance(instance))
            .await
    }

    async fn heartbeat(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(InstanceRecord, OffsetDateTime)>, RegistryError> {
        self.timed("heartbeat", self.inner.heartbeat(id, now)).await
    }

    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, RegistryError> {
        self.timed("instance", self.inner.instance(id)).await
    }

    async fn deregister_instance(&self, id: &str) -> Result<bool, RegistryError> {
        self.timed("deregister_instance", self.inner.deregister_instance(id))
            .await
    }

    async fn list_instances(
        &self,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, RegistryError> {
        self.timed("list_instances", self.inner.list_instances(query))
            .await
    }

    async fn instance_summary(&self, cutoffs: &Cutoffs) -> Result<InstanceSummary, RegistryError> {
        self.timed("instance_summary", self.inner.instance_summary(cutoffs))
            .await
    }

    async fn claim_probes(
        &self,
        holder: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        live_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ProbeTarget>, RegistryError> {
        self.timed(
            "claim_probes",
            self.inner
                .claim_probes(holder, now, lease_until, live_since, limit),
        )
        .await
    }

    async fn record_probe(
        &self,
        id: &str,
        at: OffsetDateTime,
        ok: bool,
        latency: Option<std::time::Duration>,
        error: Option<&str>,
    ) -> Result<bool, RegistryError> {
        self.timed(
            "record_probe",
            self.inner.record_probe(id, at, ok, latency, error),
        )
        .await
    }
}
