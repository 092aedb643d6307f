//! The SQL implementation of [`Storage`](super::Storage), shared by SQLite and PostgreSQL.
//!
//! Both back ends accept the same statements (`$N` parameters, `RETURNING`, partial indexes), so one
//! macro expands the same code for each pool type instead of a generic impl with long trait bounds.
//! Each back end supplies `self.pool` (reads), `writer(durability)` (a connection for one
//! single-statement write), `begin_write(key)` (a durable transaction serialising writers on an
//! optional key), `versioned` (wraps every write) and `current_version`.

/// Whether a write must survive power loss once acknowledged, or may be lost with the last
/// moments before one (SQLite skips the sync for those; see its module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Catalogue, instance registrations and deregistrations, tokens: synced before acknowledged.
    Durable,
    /// Heartbeats and probe bookkeeping, superseded within an interval: written, not synced.
    Ephemeral,
}

/// Columns of `servers` in the order every query selects them.
macro_rules! server_columns {
    () => {
        "name, version, server_json, status, status_message, status_changed_at, published_at, updated_at, is_latest"
    };
}
pub(crate) use server_columns;

/// Columns of `instances` in the order every query selects them.
macro_rules! instance_columns {
    () => {
        "id, server_name, version, endpoint, labels_json, registered_at, last_heartbeat_at"
    };
}
pub(crate) use instance_columns;

/// Instances joined with their last probe, so reads show the probe result without a second query.
macro_rules! instance_select {
    () => {
        concat!(
            "SELECT i.id, i.server_name, i.version, i.endpoint, i.labels_json, i.registered_at, ",
            "i.last_heartbeat_at, p.probed_at, p.ok, p.latency_us, p.error, p.consecutive_failures ",
            "FROM instances i LEFT JOIN instance_probes p ON p.instance_id = i.id"
        )
    };
}
pub(crate) use instance_select;

/// An instance's health state as SQL over `instance_select!()`; `$T` placeholders are cutoffs
/// bound by the caller in the order gone-before, unhealthy-before, failure threshold.
macro_rules! health_case {
    ($gone:literal, $unhealthy:literal, $threshold:literal) => {
        concat!(
            "CASE WHEN i.last_heartbeat_at < ",
            $gone,
            " THEN 'gone' ",
            "WHEN i.last_heartbeat_at < ",
            $unhealthy,
            " OR COALESCE(p.consecutive_failures, 0) >= ",
            $threshold,
            " THEN 'unhealthy' ELSE 'healthy' END"
        )
    };
}
pub(crate) use health_case;

macro_rules! sql_storage {
    // `$skip_locked` makes concurrent lease claims pass over rows another claim holds instead of
    // waiting for them (PostgreSQL); SQLite serialises writers, so it passes "".
    ($storage:ty, $row:ty, $skip_locked:literal) => {
        impl $storage {
            /// Applies every migration newer than the database in one transaction, holding the
            /// write lock so replicas starting together do not race.
            async fn migrate(&self, migrations: &[(i64, &[&'static str])]) -> Result<(), RegistryError> {
                let fail = |version| move |source| RegistryError::Migration { version, source };
                let mut tx = self.begin_write(Some("schema_migrations")).await.map_err(fail(0))?;
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await
                .map_err(fail(0))?;
                let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(fail(0))?;
                let applied = applied.unwrap_or(0);
                for &(version, statements) in migrations.iter().filter(|(v, _)| *v > applied) {
                    for &statement in statements {
                        sqlx::query(statement).execute(&mut *tx).await.map_err(fail(version))?;
                    }
                    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                        .bind(version)
                        .bind(crate::storage::to_micros(time::OffsetDateTime::now_utc()))
                        .execute(&mut *tx)
                        .await
                        .map_err(fail(version))?;
                }
                tx.commit().await.map_err(fail(applied))?;
                Ok(())
            }
        }

        fn server_from_row(row: &$row) -> Result<ServerRecord, RegistryError> {
            use sqlx::Row;
            let get = |source| RegistryError::Storage { operation: "decode_server", source };
            let json: String = row.try_get("server_json").map_err(get)?;
            let status: String = row.try_get("status").map_err(get)?;
            Ok(ServerRecord {
                name: row.try_get("name").map_err(get)?,
                version: row.try_get("version").map_err(get)?,
                server: crate::storage::parse_json("server_json", &json)?,
                status: crate::storage::parse_status(&status)?,
                status_message: row.try_get("status_message").map_err(get)?,
                status_changed_at: crate::storage::from_micros(row.try_get("status_changed_at").map_err(get)?)?,
                published_at: crate::storage::from_micros(row.try_get("published_at").map_err(get)?)?,
                updated_at: crate::storage::from_micros(row.try_get("updated_at").map_err(get)?)?,
                is_latest: row.try_get("is_latest").map_err(get)?,
            })
        }

        fn instance_from_row(row: &$row) -> Result<InstanceRecord, RegistryError> {
            use sqlx::Row;
            let get = |source| RegistryError::Storage { operation: "decode_instance", source };
            let labels: String = row.try_get("labels_json").map_err(get)?;
            Ok(InstanceRecord {
                id: row.try_get("id").map_err(get)?,
                server_name: row.try_get("server_name").map_err(get)?,
                version: row.try_get("version").map_err(get)?,
                endpoint: row.try_get("endpoint").map_err(get)?,
                labels: crate::storage::parse_json("labels_json", &labels)?,
                registered_at: crate::storage::from_micros(row.try_get("registered_at").map_err(get)?)?,
                last_heartbeat_at: crate::storage::from_micros(row.try_get("last_heartbeat_at").map_err(get)?)?,
                probe: probe_from_row(row)?,
            })
        }

        /// The probe columns of `instance_select!()`; NULL until the first probe is recorded.
        fn probe_from_row(row: &$row) -> Result<Option<crate::storage::ProbeRecord>, RegistryError> {
            use sqlx::Row;
            let get = |source| RegistryError::Storage { operation: "decode_probe", source };
            let Some(at) = row.try_get::<Option<i64>, _>("probed_at").map_err(get)? else {
                return Ok(None);
            };
            let latency: Option<i64> = row.try_get("latency_us").map_err(get)?;
            let failures: i64 = row.try_get("consecutive_failures").map_err(get)?;
            Ok(Some(crate::storage::ProbeRecord {
                at: crate::storage::from_micros(at)?,
                ok: row.try_get::<Option<bool>, _>("ok").map_err(get)?.unwrap_or(false),
                latency: latency.map(|us| std::time::Duration::from_micros(u64::try_from(us).unwrap_or(0))),
                error: row.try_get("error").map_err(get)?,
                consecutive_failures: u32::try_from(failures).unwrap_or(u32::MAX),
            }))
        }

        /// Escapes LIKE wildcards so a search for `a_b` matches that text only.
        fn like_pattern(search: &str) -> String {
            let mut out = String::with_capacity(search.len() + 2);
            out.push('%');
            for c in search.to_lowercase().chars() {
                if matches!(c, '%' | '_' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('%');
            out
        }

        #[async_trait]
        impl Storage for $storage {
            async fn ping(&self) -> Result<(), RegistryError> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(|source| RegistryError::Storage { operation: "ping", source })
            }

            async fn data_version(&self) -> Result<Option<DataVersion>, RegistryError> {
                self.current_version().await
            }

            async fn publish(
                &self,
                name: &str,
                version: &str,
                server: &Value,
                now: OffsetDateTime,
            ) -> Result<ServerRecord, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "publish", source };
                    let mut tx = self.begin_write(Some(name)).await.map_err(err)?;
                    let exists: Option<String> =
                        sqlx::query_scalar("SELECT version FROM servers WHERE name = $1 AND version = $2")
                            .bind(name)
                            .bind(version)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(err)?;
                    if exists.is_some() {
                        return Err(RegistryError::Conflict(format!(
                            "{name} version {version} is already published and versions are immutable; publish a new version"
                        )));
                    }
                    let current: Option<(String, i64)> =
                        sqlx::query_as("SELECT version, published_at FROM servers WHERE name = $1 AND is_latest = $2")
                            .bind(name)
                            .bind(true)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(err)?;
                    let is_latest = match &current {
                        None => true,
                        Some((current, at)) => crate::storage::is_newer(
                            version,
                            now,
                            current,
                            crate::storage::from_micros(*at)?,
                        ),
                    };
                    if is_latest {
                        sqlx::query("UPDATE servers SET is_latest = $2 WHERE name = $1 AND is_latest = $3")
                            .bind(name)
                            .bind(false)
                            .bind(true)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    let at = crate::storage::to_micros(now);
                    let row = sqlx::query(concat!(
                        "INSERT INTO servers (", crate::storage::sql::server_columns!(), ") ",
                        "VALUES ($1, $2, $3, $4, NULL, $5, $5, $5, $6) RETURNING ",
                        crate::storage::sql::server_columns!()
                    ))
                    .bind(name)
                    .bind(version)
                    .bind(server.to_string())
                    .bind(Status::Active.as_str())
                    .bind(at)
                    .bind(is_latest)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                    let record = server_from_row(&row)?;
                    tx.commit().await.map_err(err)?;
                    Ok(record)
                }).await
            }

            async fn list_servers(&self, query: &ServerQuery) -> Result<Vec<ServerRecord>, RegistryError> {
                let (after_name, after_version) = match &query.after {
                    Some((n, v)) => (Some(n.as_str()), Some(v.as_str())),
                    None => (None, None),
                };
                let rows = sqlx::query(concat!(
                    "SELECT ", crate::storage::sql::server_columns!(), " FROM servers WHERE ",
                    "($1 IS NULL OR name > $1 OR (name = $1 AND version > $2)) ",
                    "AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\') ",
                    "AND ($4 IS NULL OR updated_at > $4) ",
                    "AND (NOT $5 OR is_latest) ",
                    "AND ($6 IS NULL OR version = $6) ",
                    "AND ($7 OR status <> 'deleted') ",
                    "ORDER BY name, version LIMIT $8"
                ))
                .bind(after_name)
                .bind(after_version)
                .bind(query.search.as_deref().map(like_pattern))
                .bind(query.updated_since.map(crate::storage::to_micros))
                .bind(query.latest_only)
                .bind(query.exact_version.as_deref())
                .bind(query.include_deleted)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "list_servers", source })?;
                rows.iter().map(server_from_row).collect()
            }

            async fn server_versions(
                &self,
                name: &str,
                include_deleted: bool,
            ) -> Result<Vec<ServerRecord>, RegistryError> {
                let rows = sqlx::query(concat!(
                    "SELECT ", crate::storage::sql::server_columns!(), " FROM servers ",
                    "WHERE name = $1 AND ($2 OR status <> 'deleted') ",
                    "ORDER BY published_at DESC, version DESC"
                ))
                .bind(name)
                .bind(include_deleted)
                .fetch_all(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "server_versions", source })?;
                rows.iter().map(server_from_row).collect()
            }

            async fn server_version(
                &self,
                name: &str,
                version: VersionSelector<'_>,
            ) -> Result<Option<ServerRecord>, RegistryError> {
                let (latest, exact) = match version {
                    VersionSelector::Latest => (true, None),
                    VersionSelector::Exact(v) => (false, Some(v)),
                };
                let row = sqlx::query(concat!(
                    "SELECT ", crate::storage::sql::server_columns!(), " FROM servers ",
                    "WHERE name = $1 AND (($2 AND is_latest) OR version = $3)"
                ))
                .bind(name)
                .bind(latest)
                .bind(exact)
                .fetch_optional(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "server_version", source })?;
                row.as_ref().map(server_from_row).transpose()
            }

            async fn set_status(
                &self,
                name: &str,
                version: Option<&str>,
                status: Status,
                message: Option<&str>,
                now: OffsetDateTime,
            ) -> Result<Vec<ServerRecord>, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "set_status", source };
                    let mut tx = self.begin_write(Some(name)).await.map_err(err)?;
                    let rows = sqlx::query(concat!(
                        "UPDATE servers SET ",
                        "status_changed_at = CASE WHEN status <> $3 THEN $5 ELSE status_changed_at END, ",
                        "status = $3, status_message = $4, updated_at = $5 ",
                        "WHERE name = $1 AND ($2 IS NULL OR version = $2) RETURNING ",
                        crate::storage::sql::server_columns!()
                    ))
                    .bind(name)
                    .bind(version)
                    .bind(status.as_str())
                    .bind(message)
                    .bind(crate::storage::to_micros(now))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    let mut records = rows.iter().map(server_from_row).collect::<Result<Vec<_>, _>>()?;
                    records.sort_by(|a, b| b.published_at.cmp(&a.published_at).then_with(|| b.version.cmp(&a.version)));
                    Ok(records)
                }).await
            }

            async fn insert_token(&self, token: &TokenRecord, now: OffsetDateTime) -> Result<(), RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "insert_token", source };
                    let mut writer = self.writer(crate::storage::sql::Durability::Durable).await.map_err(err)?;
                    sqlx::query(
                        "INSERT INTO tokens (id, hash, role, namespace, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
                    )
                    .bind(&token.id)
                    .bind(&token.hash)
                    .bind(token.role.as_str())
                    .bind(token.namespace.as_deref())
                    .bind(crate::storage::to_micros(now))
                    .execute(&mut *writer)
                    .await
                    .map(|_| ())
                    .map_err(err)
                }).await
            }

            async fn find_token(&self, id: &str) -> Result<Option<TokenRecord>, RegistryError> {
                let row: Option<(String, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT id, hash, role, namespace FROM tokens WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "find_token", source })?;
                row.map(|(id, hash, role, namespace)| {
                    Ok(TokenRecord { id, hash, role: crate::storage::parse_role(&role)?, namespace })
                })
                .transpose()
            }

            async fn revoke_token(&self, id: &str, now: OffsetDateTime) -> Result<bool, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "revoke_token", source };
                    let mut writer = self.writer(crate::storage::sql::Durability::Durable).await.map_err(err)?;
                    let done = sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                        .bind(id)
                        .bind(crate::storage::to_micros(now))
                        .execute(&mut *writer)
                        .await
                        .map_err(err)?;
                    Ok(done.rows_affected() > 0)
                }).await
            }

            async fn register_instance(&self, instance: &InstanceRecord) -> Result<(), RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "register_instance", source };
                    let mut tx = self.begin_write(None).await.map_err(err)?;
                    sqlx::query(concat!(
                        "INSERT INTO instances (", crate::storage::sql::instance_columns!(), ") ",
                        "VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    ))
                    .bind(&instance.id)
                    .bind(&instance.server_name)
                    .bind(&instance.version)
                    .bind(&instance.endpoint)
                    .bind(crate::storage::labels_json(&instance.labels))
                    .bind(crate::storage::to_micros(instance.registered_at))
                    .bind(crate::storage::to_micros(instance.last_heartbeat_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    // A lease row that is already due, so a new instance is probed on the next round.
                    sqlx::query("INSERT INTO instance_probes (instance_id, lease_expires_at, consecutive_failures) VALUES ($1, 0, 0)")
                        .bind(&instance.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)
                }).await
            }

            async fn heartbeat(
                &self,
                id: &str,
                now: OffsetDateTime,
            ) -> Result<Option<(InstanceRecord, OffsetDateTime)>, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "heartbeat", source };
                    let mut writer = self.writer(crate::storage::sql::Durability::Ephemeral).await.map_err(err)?;
                    // One statement: SET reads the old row, so the previous heartbeat moves aside in
                    // the same atomic write, and the probe columns come back by primary-key lookups.
                    let row = sqlx::query(concat!(
                        "UPDATE instances SET previous_heartbeat_at = last_heartbeat_at, last_heartbeat_at = $2 ",
                        "WHERE id = $1 RETURNING ", crate::storage::sql::instance_columns!(), ", previous_heartbeat_at, ",
                        "(SELECT probed_at FROM instance_probes WHERE instance_id = $1) AS probed_at, ",
                        "(SELECT ok FROM instance_probes WHERE instance_id = $1) AS ok, ",
                        "(SELECT latency_us FROM instance_probes WHERE instance_id = $1) AS latency_us, ",
                        "(SELECT error FROM instance_probes WHERE instance_id = $1) AS error, ",
                        "(SELECT consecutive_failures FROM instance_probes WHERE instance_id = $1) AS consecutive_failures"
                    ))
                    .bind(id)
                    .bind(crate::storage::to_micros(now))
                    .fetch_optional(&mut *writer)
                    .await
                    .map_err(err)?;
                    drop(writer);
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let previous: i64 = sqlx::Row::try_get(&row, "previous_heartbeat_at").map_err(err)?;
                    Ok(Some((instance_from_row(&row)?, crate::storage::from_micros(previous)?)))
                }).await
            }

            async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, RegistryError> {
                let row = sqlx::query(concat!(crate::storage::sql::instance_select!(), " WHERE i.id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "instance", source })?;
                row.as_ref().map(instance_from_row).transpose()
            }

            async fn deregister_instance(&self, id: &str) -> Result<bool, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "deregister_instance", source };
                    let mut writer = self.writer(crate::storage::sql::Durability::Durable).await.map_err(err)?;
                    let done = sqlx::query("DELETE FROM instances WHERE id = $1")
                        .bind(id)
                        .execute(&mut *writer)
                        .await
                        .map_err(err)?;
                    Ok(done.rows_affected() > 0)
                }).await
            }

            async fn list_instances(&self, query: &InstanceQuery) -> Result<Vec<InstanceRecord>, RegistryError> {
                let (state, cutoffs) = match &query.health {
                    Some((state, cutoffs)) => (Some(state.as_str()), *cutoffs),
                    None => (None, crate::instances::Cutoffs::default()),
                };
                let rows = sqlx::query(concat!(
                    crate::storage::sql::instance_select!(), " WHERE ",
                    "($1 IS NULL OR i.server_name = $1) AND ($2 IS NULL OR i.id > $2) ",
                    "AND ($3 IS NULL OR ", crate::storage::sql::health_case!("$4", "$5", "$6"), " = $3) ",
                    "ORDER BY i.id LIMIT $7"
                ))
                .bind(query.server_name.as_deref())
                .bind(query.after.as_deref())
                .bind(state)
                .bind(crate::storage::to_micros(cutoffs.gone_before))
                .bind(crate::storage::to_micros(cutoffs.unhealthy_before))
                .bind(i64::from(cutoffs.probe_failures))
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "list_instances", source })?;
                rows.iter().map(instance_from_row).collect()
            }

            async fn instance_summary(
                &self,
                cutoffs: &crate::instances::Cutoffs,
            ) -> Result<InstanceSummary, RegistryError> {
                let (healthy, unhealthy, gone, oldest): (i64, i64, i64, Option<i64>) = sqlx::query_as(concat!(
                    "SELECT ",
                    "COALESCE(SUM(CASE WHEN state = 'healthy' THEN 1 ELSE 0 END), 0), ",
                    "COALESCE(SUM(CASE WHEN state = 'unhealthy' THEN 1 ELSE 0 END), 0), ",
                    "COALESCE(SUM(CASE WHEN state = 'gone' THEN 1 ELSE 0 END), 0), ",
                    "MIN(CASE WHEN state <> 'gone' THEN last_heartbeat_at END) ",
                    "FROM (SELECT i.last_heartbeat_at, ", crate::storage::sql::health_case!("$1", "$2", "$3"), " AS state ",
                    "FROM instances i LEFT JOIN instance_probes p ON p.instance_id = i.id) AS s"
                ))
                .bind(crate::storage::to_micros(cutoffs.gone_before))
                .bind(crate::storage::to_micros(cutoffs.unhealthy_before))
                .bind(i64::from(cutoffs.probe_failures))
                .fetch_one(&self.pool)
                .await
                .map_err(|source| RegistryError::Storage { operation: "instance_summary", source })?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok(InstanceSummary {
                    healthy: count(healthy),
                    unhealthy: count(unhealthy),
                    gone: count(gone),
                    oldest_live_heartbeat: oldest.map(crate::storage::from_micros).transpose()?,
                })
            }

            async fn claim_probes(
                &self,
                holder: &str,
                now: OffsetDateTime,
                lease_until: OffsetDateTime,
                live_since: OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<crate::storage::ProbeTarget>, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "claim_probes", source };
                    let until = crate::storage::to_micros(lease_until);
                    let mut writer = self.writer(crate::storage::sql::Durability::Ephemeral).await.map_err(err)?;
                    // The outer `lease_expires_at <= $3` is re-checked against the newest row version
                    // when a concurrent claim updated it first, so a lease is never granted twice.
                    sqlx::query(concat!(
                        "UPDATE instance_probes SET lease_holder = $1, lease_expires_at = $2 ",
                        "WHERE lease_expires_at <= $3 AND instance_id IN (",
                        "SELECT p.instance_id FROM instance_probes p JOIN instances i ON i.id = p.instance_id ",
                        // Only plain-HTTP endpoints: the prober has no TLS client (https ones are judged
                        // by heartbeats alone).
                        "WHERE p.lease_expires_at <= $3 AND i.last_heartbeat_at >= $4 AND i.endpoint LIKE 'http://%' ",
                        "ORDER BY p.lease_expires_at LIMIT $5", $skip_locked, ")"
                    ))
                    .bind(holder)
                    .bind(until)
                    .bind(crate::storage::to_micros(now))
                    .bind(crate::storage::to_micros(live_since))
                    .bind(i64::from(limit))
                    .execute(&mut *writer)
                    .await
                    .map_err(err)?;
                    drop(writer);
                    // The holder is unique per prober and `until` per claim, so this reads back exactly
                    // the rows this call won.
                    let rows: Vec<(String, String)> = sqlx::query_as(concat!(
                        "SELECT i.id, i.endpoint FROM instances i JOIN instance_probes p ON p.instance_id = i.id ",
                        "WHERE p.lease_holder = $1 AND p.lease_expires_at = $2 ORDER BY i.id"
                    ))
                    .bind(holder)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(id, endpoint)| crate::storage::ProbeTarget { id, endpoint })
                        .collect())
                }).await
            }

            async fn record_probe(
                &self,
                id: &str,
                at: OffsetDateTime,
                ok: bool,
                latency: Option<std::time::Duration>,
                error: Option<&str>,
            ) -> Result<bool, RegistryError> {
                self.versioned(async {
                    let err = |source| RegistryError::Storage { operation: "record_probe", source };
                    let mut writer = self.writer(crate::storage::sql::Durability::Ephemeral).await.map_err(err)?;
                    let done = sqlx::query(concat!(
                        "UPDATE instance_probes SET probed_at = $2, ok = $3, latency_us = $4, error = $5, ",
                        "consecutive_failures = CASE WHEN $3 THEN 0 ELSE consecutive_failures + 1 END ",
                        "WHERE instance_id = $1"
                    ))
                    .bind(id)
                    .bind(crate::storage::to_micros(at))
                    .bind(ok)
                    .bind(latency.map(|l| i64::try_from(l.as_micros()).unwrap_or(i64::MAX)))
                    .bind(error)
                    .execute(&mut *writer)
                    .await
                    .map_err(err)?;
                    Ok(done.rows_affected() > 0)
                }).await
            }
        }
    };
}
pub(crate) use sql_storage;
