//! The audit trail: one row per change to the registry, written in the
//! change's own transaction (a change without its audit row cannot commit),
//! never updated or deleted (a trigger refuses both).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mcpo_core::auth::Actor;
use mcpo_core::db::models::{AuditRow, NewAuditRow};
use mcpo_core::db::schema::audit_log;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::RegistryError;

/// What changed, by whom.
pub struct AuditRecord<'a> {
    pub actor: &'a Actor,
    /// `service.registered`, `service.updated`, `api_key.created`, …
    pub action: &'static str,
    pub target: &'a str,
    /// What changed; never secrets (transports are recorded redacted).
    pub details: Value,
}

pub async fn record(
    conn: &mut AsyncPgConnection,
    entry: &AuditRecord<'_>,
) -> Result<(), RegistryError> {
    diesel::insert_into(audit_log::table)
        .values(NewAuditRow {
            actor: &entry.actor.subject,
            actor_kind: entry.actor.kind,
            action: entry.action,
            target: Some(entry.target),
            request_id: entry.actor.request_id.as_deref(),
            client_addr: entry.actor.client_addr.as_deref(),
            details: &entry.details,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// One audit row as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    /// The token's subject, `api-key:{name}`, or who ran MCPO locally.
    pub actor: String,
    /// `user`, `api_key`, `system` or `development`.
    pub actor_kind: String,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub details: Value,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            id: row.id,
            occurred_at: row.occurred_at,
            actor: row.actor,
            actor_kind: row.actor_kind,
            action: row.action,
            target: row.target,
            request_id: row.request_id,
            client_addr: row.client_addr,
            details: row.details,
        }
    }
}

/// Newest first, `limit` rows older than `before` (an id), optionally only
/// those about `target`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    target: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, RegistryError> {
    let mut query = audit_log::table
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(target) = target {
        query = query.filter(audit_log::target.eq(target));
    }
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    Ok(query
        .load(conn)
        .await?
        .into_iter()
        .map(AuditEntry::from)
        .collect())
}
