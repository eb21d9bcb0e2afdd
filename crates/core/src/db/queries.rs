//! Reads that more than one service needs: a service with its tools and schemas.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{ServiceRow, ToolRow, ToolSchemaRow};
use super::schema::{mcp_services, tool_schemas, tools};
use crate::domain::{ServiceStatus, ServiceView, ToolView, TransportConfig};
use crate::error::CoreError;
use crate::secrets::{secret_values, SecretKeyring};

/// A service with its tools, each with its schemas, as stored.
#[derive(Debug, Clone)]
pub struct ServiceRecord {
    pub service: ServiceRow,
    pub tools: Vec<ToolRecord>,
}

#[derive(Debug, Clone)]
pub struct ToolRecord {
    pub tool: ToolRow,
    pub schema: ToolSchemaRow,
}

impl ServiceRecord {
    /// The transport as stored: env and header values sealed. Open it with
    /// the keyring to connect; redact it to show it.
    pub fn stored_transport(&self) -> Result<TransportConfig, CoreError> {
        serde_json::from_value(self.service.transport.clone()).map_err(|e| {
            CoreError::Internal(format!(
                "stored transport of service {} is unreadable: {e}",
                self.service.name
            ))
        })
    }

    /// The transport with its secrets opened, ready to connect with.
    pub fn transport(&self, keys: Option<&SecretKeyring>) -> Result<TransportConfig, CoreError> {
        let stored = self.stored_transport()?;
        match keys {
            Some(keys) => keys
                .open_transport(&stored)
                .map_err(|e| CoreError::Internal(format!("service {}: {e}", self.service.name))),
            None if secret_values(&stored)
                .iter()
                .any(|v| SecretKeyring::is_sealed(v)) =>
            {
                Err(CoreError::Config(format!(
                    "service {} has sealed secrets but MCPO_SECRET_KEYS is not set",
                    self.service.name
                )))
            }
            None => Ok(stored),
        }
    }

    /// The API view; `endpoint_base` is the executor's public URL.
    pub fn to_view(&self, endpoint_base: &str, with_tools: bool) -> Result<ServiceView, CoreError> {
        let service = &self.service;
        Ok(ServiceView {
            id: service.id,
            name: service.name.clone(),
            description: service.description.clone(),
            status: ServiceStatus::parse(&service.status).unwrap_or(ServiceStatus::Degraded),
            transport: crate::secrets::redact_transport(&self.stored_transport()?),
            server_info: service.server_info.clone(),
            protocol_version: service.protocol_version.clone(),
            revision: service.revision,
            created_at: service.created_at,
            updated_at: service.updated_at,
            last_seen_at: service.last_seen_at,
            last_error: service.last_error.clone(),
            call_timeout_secs: service.call_timeout_secs,
            session_pool_size: service.session_pool_size,
            session_scope: crate::domain::SessionScope::parse(&service.session_scope),
            tools: with_tools.then(|| self.tool_views(endpoint_base)),
        })
    }

    pub fn tool_views(&self, endpoint_base: &str) -> Vec<ToolView> {
        let base = endpoint_base.trim_end_matches('/');
        self.tools
            .iter()
            .map(|record| ToolView {
                name: record.tool.name.clone(),
                title: record.tool.title.clone(),
                description: record.tool.description.clone(),
                endpoint: format!("{base}{}", record.tool.endpoint),
                input_schema: record.schema.input_schema.clone(),
                output_schema: record.schema.output_schema.clone(),
                annotations: record.tool.annotations.clone(),
            })
            .collect()
    }
}

pub async fn find_service(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<Option<ServiceRecord>, CoreError> {
    let service = mcp_services::table
        .filter(mcp_services::name.eq(name))
        .select(ServiceRow::as_select())
        .first(conn)
        .await
        .optional()?;
    match service {
        None => Ok(None),
        Some(service) => {
            let mut records = attach_tools(conn, vec![service]).await?;
            Ok(records.pop())
        }
    }
}

/// Every service with its tools, ordered by name.
pub async fn all_services(conn: &mut AsyncPgConnection) -> Result<Vec<ServiceRecord>, CoreError> {
    let services = mcp_services::table
        .order(mcp_services::name.asc())
        .select(ServiceRow::as_select())
        .load(conn)
        .await?;
    attach_tools(conn, services).await
}

async fn attach_tools(
    conn: &mut AsyncPgConnection,
    services: Vec<ServiceRow>,
) -> Result<Vec<ServiceRecord>, CoreError> {
    let ids: Vec<Uuid> = services.iter().map(|s| s.id).collect();
    let rows: Vec<(ToolRow, ToolSchemaRow)> = tools::table
        .inner_join(tool_schemas::table)
        .filter(tools::service_id.eq_any(&ids))
        .order((tools::service_id, tools::name))
        .select((ToolRow::as_select(), ToolSchemaRow::as_select()))
        .load(conn)
        .await?;
    let mut by_service: HashMap<Uuid, Vec<ToolRecord>> = HashMap::new();
    for (tool, schema) in rows {
        by_service
            .entry(tool.service_id)
            .or_default()
            .push(ToolRecord { tool, schema });
    }
    Ok(services
        .into_iter()
        .map(|service| {
            let tools = by_service.remove(&service.id).unwrap_or_default();
            ServiceRecord { service, tools }
        })
        .collect())
}

/// A page of the service list: filtered by status and by a text that a
/// service name or one of its tool names contains, ordered by name, after
/// `after` (keyset pagination: stable while services come and go).
#[derive(Debug, Clone, Default)]
pub struct ServiceFilter {
    pub status: Option<ServiceStatus>,
    pub text: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

/// The services of one page (without tools) and whether more follow.
pub async fn list_services(
    conn: &mut AsyncPgConnection,
    filter: &ServiceFilter,
) -> Result<(Vec<ServiceRecord>, bool), CoreError> {
    let mut query = mcp_services::table.into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(mcp_services::status.eq(status.as_str()));
    }
    if let Some(after) = &filter.after {
        query = query.filter(mcp_services::name.gt(after));
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let tool_matches = tools::table
            .filter(tools::service_id.eq(mcp_services::id))
            .filter(tools::name.ilike(pattern.clone()));
        query = query.filter(
            mcp_services::name
                .ilike(pattern)
                .or(diesel::dsl::exists(tool_matches)),
        );
    }
    let mut rows: Vec<ServiceRow> = query
        .order(mcp_services::name.asc())
        .limit(filter.limit + 1)
        .select(ServiceRow::as_select())
        .load(conn)
        .await?;
    let more = rows.len() as i64 > filter.limit;
    rows.truncate(filter.limit as usize);
    Ok((
        rows.into_iter()
            .map(|service| ServiceRecord {
                service,
                tools: Vec::new(),
            })
            .collect(),
        more,
    ))
}
