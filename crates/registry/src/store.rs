//! Registry writes. Each public function is one transaction, so a failure
//! leaves nothing half-written.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mcpo_core::db::models::{NewServiceRow, NewToolRow, NewToolSchemaRow, ServiceRow};
use mcpo_core::db::queries::{self, ServiceRecord};
use mcpo_core::db::schema::{mcp_services, tool_schemas, tools};
use mcpo_core::domain::naming::{endpoint_names, endpoint_path};
use mcpo_core::domain::schema_hash::schema_pair_hash;
use mcpo_core::domain::{
    DiscoveredServer, DiscoveredTool, ServiceStatus, SessionScope, TransportConfig,
};
use mcpo_core::events::EventEnvelope;
use mcpo_core::outbox;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{self, AuditRecord};
use crate::error::RegistryError;
use crate::snapshots;

const SCHEMA_TYPE: &str = "json_schema";

pub struct NewService<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub transport: &'a TransportConfig,
    pub call_timeout_secs: Option<i32>,
    pub session_pool_size: i32,
    pub session_scope: SessionScope,
}

pub async fn service_exists(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<bool, RegistryError> {
    let found: i64 = mcp_services::table
        .filter(mcp_services::name.eq(name))
        .count()
        .get_result(conn)
        .await?;
    Ok(found > 0)
}

/// Stores a service with everything discovery found.
/// Builds the events of a change from the stored result; they are written to
/// the outbox in the change's transaction.
pub type EventsFor<'a> = &'a (dyn Fn(&ServiceRecord) -> Vec<EventEnvelope> + Sync);

pub async fn insert_service(
    conn: &mut AsyncPgConnection,
    new: &NewService<'_>,
    discovered: &DiscoveredServer,
    events: EventsFor<'_>,
    audit: &AuditRecord<'_>,
) -> Result<ServiceRecord, RegistryError> {
    let transport = serde_json::to_value(new.transport)
        .map_err(|e| mcpo_core::CoreError::Internal(e.to_string()))?;
    let name = new.name.to_owned();
    conn.transaction(async |conn| {
        let id = Uuid::now_v7();
        let inserted = diesel::insert_into(mcp_services::table)
            .values(NewServiceRow {
                id,
                name: new.name,
                description: new.description,
                status: ServiceStatus::Active.as_str(),
                transport: &transport,
                server_info: Some(&discovered.server_info),
                protocol_version: Some(&discovered.protocol_version),
                instructions: discovered.instructions.as_deref(),
                // Discovery just reached it.
                last_seen_at: Some(chrono::Utc::now()),
                call_timeout_secs: new.call_timeout_secs,
                session_pool_size: new.session_pool_size,
                session_scope: new.session_scope.as_str(),
            })
            .execute(conn)
            .await;
        match inserted {
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                return Err(RegistryError::NameTaken(name.clone()));
            }
            other => other?,
        };
        insert_tools(conn, id, new.name, &discovered.tools).await?;
        let record = load(conn, new.name).await?;
        outbox::enqueue(conn, &events(&record)).await?;
        snapshots::enqueue(conn, &record).await?;
        audit::record(conn, audit).await?;
        Ok(record)
    })
    .await
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct ServiceChange<'a> {
    pub description: Option<Option<&'a str>>,
    pub transport: Option<&'a TransportConfig>,
    pub status: Option<ServiceStatus>,
    /// A fresh discovery; the tools are replaced when they differ.
    pub discovered: Option<&'a DiscoveredServer>,
    pub call_timeout_secs: Option<Option<i32>>,
    pub session_pool_size: Option<i32>,
    pub session_scope: Option<SessionScope>,
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub service: bool,
    pub tools: bool,
}

#[derive(AsChangeset)]
#[diesel(table_name = mcp_services)]
struct ServiceChangeset<'a> {
    description: Option<Option<&'a str>>,
    transport: Option<Value>,
    status: Option<&'a str>,
    server_info: Option<&'a Value>,
    protocol_version: Option<&'a str>,
    instructions: Option<Option<&'a str>>,
    last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    call_timeout_secs: Option<Option<i32>>,
    session_pool_size: Option<i32>,
    session_scope: Option<&'a str>,
    revision: i64,
}

/// Applies a change guarded by the revision `current` was read at: when
/// someone else changed the service meanwhile nothing is written and the
/// answer is `ConcurrentChange` (or `ServiceNotFound` after a delete). Bumps
/// the revision when anything changed; `events` are stored in the same
/// transaction.
pub async fn update_service(
    conn: &mut AsyncPgConnection,
    current: &ServiceRecord,
    change: &ServiceChange<'_>,
    events: &(dyn Fn(&ServiceRecord, Changed) -> Vec<EventEnvelope> + Sync),
    audit: &AuditRecord<'_>,
) -> Result<(ServiceRecord, Changed), RegistryError> {
    let stored_transport = current.stored_transport()?;
    let changed = Changed {
        service: change
            .description
            .is_some_and(|d| d != current.service.description.as_deref())
            || change.transport.is_some_and(|t| *t != stored_transport)
            || change
                .status
                .is_some_and(|s| s.as_str() != current.service.status)
            || change
                .call_timeout_secs
                .is_some_and(|t| t != current.service.call_timeout_secs)
            || change
                .session_pool_size
                .is_some_and(|s| s != current.service.session_pool_size)
            || change
                .session_scope
                .is_some_and(|s| s.as_str() != current.service.session_scope),
        tools: change
            .discovered
            .is_some_and(|d| !same_tools(current, &d.tools)),
    };
    if !changed.service && !changed.tools {
        return Ok((current.clone(), changed));
    }
    let transport = change
        .transport
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| mcpo_core::CoreError::Internal(e.to_string()))?;
    let discovered = change.discovered;
    let changeset = ServiceChangeset {
        description: change.description,
        transport,
        status: change.status.map(ServiceStatus::as_str),
        server_info: discovered.map(|d| &d.server_info),
        protocol_version: discovered.map(|d| d.protocol_version.as_str()),
        instructions: discovered.map(|d| d.instructions.as_deref()),
        last_seen_at: discovered.map(|_| chrono::Utc::now()),
        call_timeout_secs: change.call_timeout_secs,
        session_pool_size: change.session_pool_size,
        session_scope: change.session_scope.map(SessionScope::as_str),
        revision: current.service.revision + 1,
    };
    let service_id = current.service.id;
    let name = current.service.name.clone();
    let revision = current.service.revision;
    conn.transaction(async |conn| {
        let updated = diesel::update(mcp_services::table)
            .filter(
                mcp_services::id
                    .eq(service_id)
                    .and(mcp_services::revision.eq(revision)),
            )
            .set((&changeset, mcp_services::updated_at.eq(diesel::dsl::now)))
            .execute(conn)
            .await?;
        if updated == 0 {
            return Err(match service_exists(conn, &name).await? {
                true => RegistryError::ConcurrentChange(name.clone()),
                false => RegistryError::ServiceNotFound(name.clone()),
            });
        }
        if let (true, Some(discovered)) = (changed.tools, discovered) {
            diesel::delete(tools::table.filter(tools::service_id.eq(service_id)))
                .execute(conn)
                .await?;
            insert_tools(conn, service_id, &name, &discovered.tools).await?;
        }
        let record = load(conn, &name).await?;
        outbox::enqueue(conn, &events(&record, changed)).await?;
        snapshots::enqueue(conn, &record).await?;
        let mut details = audit.details.clone();
        if let Value::Object(fields) = &mut details {
            fields.insert("revision".into(), record.service.revision.into());
            fields.insert("tools_changed".into(), changed.tools.into());
        }
        audit::record(conn, &AuditRecord { details, ..*audit }).await?;
        Ok((record, changed))
    })
    .await
}

/// Deletes a service and its tools, with the events `events` makes of the
/// deleted row; returns the row.
pub async fn delete_service(
    conn: &mut AsyncPgConnection,
    name: &str,
    events: &(dyn Fn(&ServiceRow) -> Vec<EventEnvelope> + Sync),
    audit: &AuditRecord<'_>,
) -> Result<ServiceRow, RegistryError> {
    conn.transaction(async |conn| {
        let deleted = diesel::delete(mcp_services::table.filter(mcp_services::name.eq(name)))
            .returning(ServiceRow::as_returning())
            .get_result(conn)
            .await
            .optional()?
            .ok_or_else(|| RegistryError::ServiceNotFound(name.to_owned()))?;
        outbox::enqueue(conn, &events(&deleted)).await?;
        snapshots::enqueue_tombstone(conn, &deleted).await?;
        audit::record(conn, audit).await?;
        Ok(deleted)
    })
    .await
}

async fn load(conn: &mut AsyncPgConnection, name: &str) -> Result<ServiceRecord, RegistryError> {
    queries::find_service(conn, name)
        .await?
        .ok_or_else(|| RegistryError::ServiceNotFound(name.to_owned()))
}

async fn insert_tools(
    conn: &mut AsyncPgConnection,
    service_id: Uuid,
    service_name: &str,
    discovered: &[DiscoveredTool],
) -> Result<(), RegistryError> {
    let names = endpoint_names(discovered.iter().map(|t| t.name.as_str()));
    for (tool, endpoint_name) in discovered.iter().zip(names) {
        let schema_id =
            upsert_schema(conn, &tool.input_schema, tool.output_schema.as_ref()).await?;
        let endpoint = endpoint_path(service_name, &endpoint_name);
        diesel::insert_into(tools::table)
            .values(NewToolRow {
                id: Uuid::now_v7(),
                service_id,
                name: &tool.name,
                title: tool.title.as_deref(),
                description: tool.description.as_deref(),
                endpoint: &endpoint,
                annotations: tool.annotations.as_ref(),
                schema_id,
            })
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Returns the id of the stored schema pair, inserting it when new. The no-op
/// update makes `RETURNING` give the existing row's id on conflict.
async fn upsert_schema(
    conn: &mut AsyncPgConnection,
    input: &Value,
    output: Option<&Value>,
) -> Result<Uuid, RegistryError> {
    let hash = schema_pair_hash(SCHEMA_TYPE, input, output);
    let id = diesel::insert_into(tool_schemas::table)
        .values(NewToolSchemaRow {
            id: Uuid::now_v7(),
            schema_type: SCHEMA_TYPE,
            input_schema: input,
            output_schema: output,
            content_hash: &hash,
        })
        .on_conflict(tool_schemas::content_hash)
        .do_update()
        .set(tool_schemas::content_hash.eq(excluded(tool_schemas::content_hash)))
        .returning(tool_schemas::id)
        .get_result(conn)
        .await?;
    Ok(id)
}

fn same_tools(current: &ServiceRecord, discovered: &[DiscoveredTool]) -> bool {
    if current.tools.len() != discovered.len() {
        return false;
    }
    let mut stored: Vec<_> = current.tools.iter().collect();
    stored.sort_by(|a, b| a.tool.name.cmp(&b.tool.name));
    let mut fresh: Vec<_> = discovered.iter().collect();
    fresh.sort_by(|a, b| a.name.cmp(&b.name));
    stored.iter().zip(fresh).all(|(s, f)| {
        s.tool.name == f.name
            && s.tool.title == f.title
            && s.tool.description == f.description
            && s.tool.annotations == f.annotations
            && s.schema.content_hash
                == schema_pair_hash(SCHEMA_TYPE, &f.input_schema, f.output_schema.as_ref())
    })
}

/// Stores the same transport sealed anew (key rotation). The revision is
/// kept: what the service does has not changed. `false` when the service
/// changed meanwhile (the caller reads it again).
pub async fn replace_sealed_transport(
    conn: &mut AsyncPgConnection,
    current: &ServiceRecord,
    sealed: &TransportConfig,
    audit: &AuditRecord<'_>,
) -> Result<bool, RegistryError> {
    let transport =
        serde_json::to_value(sealed).map_err(|e| mcpo_core::CoreError::Internal(e.to_string()))?;
    let (id, revision) = (current.service.id, current.service.revision);
    conn.transaction(async |conn| {
        let updated = diesel::update(mcp_services::table)
            .filter(
                mcp_services::id
                    .eq(id)
                    .and(mcp_services::revision.eq(revision)),
            )
            .set(mcp_services::transport.eq(&transport))
            .execute(conn)
            .await?;
        if updated == 1 {
            audit::record(conn, audit).await?;
        }
        Ok(updated == 1)
    })
    .await
}
