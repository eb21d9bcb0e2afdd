//! Versioned snapshots of each service's configuration, kept in a config
//! store (a directory or S3) as a history that outlives the database.
//!
//! Every registration, update (settings or tools) and delete writes a
//! `config_snapshots` row in its own transaction (the outbox pattern: the
//! change cannot commit without its snapshot); an [`Uploader`] writes pending
//! rows to the store and retries failures with backoff, so a store that is
//! down or misconfigured never costs a registration nor loses a snapshot.
//!
//! Layout under the store's root (a directory, or the S3 prefix):
//! `services/{name}/{service id}/{revision:010}.json`, one per revision,
//! and `services/{name}/latest.json`, the last one written. The service id
//! keeps a service registered again under a freed name from overwriting the
//! history of the old one. A delete writes a tombstone (`"deleted": true`)
//! at the next revision.
//!
//! Content: the configuration as stored, transports with env and header
//! values **sealed** (`mcpo:v1:…`, as in Postgres), never in plaintext; a
//! restore needs a key of `MCPO_SECRET_KEYS` that sealed them. Resealing
//! (key rotation) writes no snapshot, so snapshots sealed with a key that
//! was dropped afterwards can no longer be opened. Tools are listed with the
//! hash of their schemas, not the schemas (discovery finds those again).

mod target;
mod uploader;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mcpo_core::config::ConfigStore;
use mcpo_core::db::models::ServiceRow;
use mcpo_core::db::queries::ServiceRecord;
use mcpo_core::db::schema::config_snapshots;
use mcpo_core::db::DbPool;
use mcpo_core::domain::{ServiceStatus, TransportConfig};
use mcpo_core::secrets::{redact_transport, secret_values, SecretKeyring};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::RegistryError;

pub use uploader::Uploader;

/// Bumped when the snapshot layout changes incompatibly.
const FORMAT: u32 = 1;

/// What a snapshot file holds.
#[derive(Debug, Serialize)]
struct Snapshot<'a> {
    format: u32,
    service_id: Uuid,
    name: &'a str,
    revision: i64,
    deleted: bool,
    recorded_at: DateTime<Utc>,
    #[serde(flatten)]
    config: Option<ServiceConfig<'a>>,
}

#[derive(Debug, Serialize)]
struct ServiceConfig<'a> {
    description: Option<&'a str>,
    enabled: bool,
    transport: TransportConfig,
    call_timeout_secs: Option<i32>,
    session_pool_size: i32,
    session_scope: &'a str,
    protocol_version: Option<&'a str>,
    server_info: Option<&'a serde_json::Value>,
    tools: Vec<ToolEntry<'a>>,
}

#[derive(Debug, Serialize)]
struct ToolEntry<'a> {
    name: &'a str,
    title: Option<&'a str>,
    description: Option<&'a str>,
    /// The path the executor serves it at.
    endpoint: &'a str,
    /// SHA-256 of the canonical input and output schemas.
    schema_hash: &'a str,
}

/// The object key of a revision, relative to the store's root.
fn revision_key(name: &str, service_id: Uuid, revision: i64) -> String {
    format!("services/{name}/{service_id}/{revision:010}.json")
}

/// The key of a service's last written snapshot.
fn latest_key(name: &str) -> String {
    format!("services/{name}/latest.json")
}

/// The transport as stored, which has its secrets sealed. Should a value
/// ever not be sealed, every value is redacted: snapshots leave the
/// database, plaintext secrets must not.
fn stored_secrets_sealed(record: &ServiceRecord) -> Result<TransportConfig, RegistryError> {
    let stored = record.stored_transport()?;
    if secret_values(&stored)
        .iter()
        .all(|v| SecretKeyring::is_sealed(v))
    {
        Ok(stored)
    } else {
        Ok(redact_transport(&stored))
    }
}

/// Stores the snapshot of `record` as it now is; call in the change's transaction.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    record: &ServiceRecord,
) -> Result<(), RegistryError> {
    let service = &record.service;
    let snapshot = Snapshot {
        format: FORMAT,
        service_id: service.id,
        name: &service.name,
        revision: service.revision,
        deleted: false,
        recorded_at: Utc::now(),
        config: Some(ServiceConfig {
            description: service.description.as_deref(),
            enabled: service.status != ServiceStatus::Disabled.as_str(),
            transport: stored_secrets_sealed(record)?,
            call_timeout_secs: service.call_timeout_secs,
            session_pool_size: service.session_pool_size,
            session_scope: &service.session_scope,
            protocol_version: service.protocol_version.as_deref(),
            server_info: service.server_info.as_ref(),
            tools: record
                .tools
                .iter()
                .map(|t| ToolEntry {
                    name: &t.tool.name,
                    title: t.tool.title.as_deref(),
                    description: t.tool.description.as_deref(),
                    endpoint: &t.tool.endpoint,
                    schema_hash: &t.schema.content_hash,
                })
                .collect(),
        }),
    };
    insert(conn, &snapshot).await
}

/// Stores the tombstone of a deleted service, at the revision after its last.
pub async fn enqueue_tombstone(
    conn: &mut AsyncPgConnection,
    deleted: &ServiceRow,
) -> Result<(), RegistryError> {
    let snapshot = Snapshot {
        format: FORMAT,
        service_id: deleted.id,
        name: &deleted.name,
        revision: deleted.revision + 1,
        deleted: true,
        recorded_at: Utc::now(),
        config: None,
    };
    insert(conn, &snapshot).await
}

async fn insert(
    conn: &mut AsyncPgConnection,
    snapshot: &Snapshot<'_>,
) -> Result<(), RegistryError> {
    let content = serde_json::to_value(snapshot)
        .map_err(|e| mcpo_core::CoreError::Internal(format!("snapshot: {e}")))?;
    diesel::insert_into(config_snapshots::table)
        .values((
            config_snapshots::id.eq(Uuid::now_v7()),
            config_snapshots::service_id.eq(snapshot.service_id),
            config_snapshots::service_name.eq(snapshot.name),
            config_snapshots::revision.eq(snapshot.revision),
            config_snapshots::deleted.eq(snapshot.deleted),
            config_snapshots::object_key.eq(revision_key(
                snapshot.name,
                snapshot.service_id,
                snapshot.revision,
            )),
            config_snapshots::content.eq(content),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Which snapshots to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    /// Not written to the store yet (including failed ones).
    Pending,
    /// Not written yet, and the last attempt failed.
    Failed,
    /// Written to the store.
    Uploaded,
}

/// One snapshot and how its upload went.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = config_snapshots, check_for_backend(diesel::pg::Pg))]
pub struct SnapshotEntry {
    pub id: Uuid,
    pub service_id: Uuid,
    pub service_name: String,
    pub revision: i64,
    /// A delete's tombstone.
    pub deleted: bool,
    /// Where it goes, relative to the store's root.
    #[diesel(column_name = object_key)]
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Upload attempts so far.
    pub attempts: i32,
    /// Why the last failed attempt failed (kept after a later success).
    pub last_error: Option<String>,
}

/// The config store's backlog and a page of snapshots, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotReport {
    /// `dir:/path` or `s3://bucket/prefix`.
    pub store: String,
    /// Snapshots not written to the store yet.
    pub pending: i64,
    /// Of those, the ones whose last attempt failed.
    pub failed: i64,
    pub snapshots: Vec<SnapshotEntry>,
}

/// The backlog counts and up to `limit` snapshots with `status`, newest first.
pub async fn report(
    pool: &DbPool,
    store: &ConfigStore,
    status: Option<SnapshotStatus>,
    limit: Option<i64>,
) -> Result<SnapshotReport, RegistryError> {
    let limit = crate::services::page_limit(limit)?;
    let mut conn = pool.get().await?;
    let pending: i64 = config_snapshots::table
        .filter(config_snapshots::uploaded_at.is_null())
        .count()
        .get_result(&mut conn)
        .await?;
    let failed: i64 = config_snapshots::table
        .filter(config_snapshots::uploaded_at.is_null())
        .filter(config_snapshots::last_error.is_not_null())
        .count()
        .get_result(&mut conn)
        .await?;
    let mut query = config_snapshots::table
        .select(SnapshotEntry::as_select())
        .order(config_snapshots::id.desc())
        .limit(limit)
        .into_boxed();
    query = match status {
        None => query,
        Some(SnapshotStatus::Pending) => query.filter(config_snapshots::uploaded_at.is_null()),
        Some(SnapshotStatus::Failed) => query
            .filter(config_snapshots::uploaded_at.is_null())
            .filter(config_snapshots::last_error.is_not_null()),
        Some(SnapshotStatus::Uploaded) => query.filter(config_snapshots::uploaded_at.is_not_null()),
    };
    Ok(SnapshotReport {
        store: store.to_string(),
        pending,
        failed,
        snapshots: query.load(&mut conn).await?,
    })
}
