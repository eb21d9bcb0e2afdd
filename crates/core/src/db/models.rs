//! Rows as diesel reads and writes them. Domain code works with the types in
//! `crate::domain`; these stay close to the tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::schema::{api_keys, audit_log, mcp_services, tool_schemas, tools};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = mcp_services, check_for_backend(diesel::pg::Pg))]
pub struct ServiceRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: String,
    pub transport: Value,
    pub server_info: Option<Value>,
    pub protocol_version: Option<String>,
    pub instructions: Option<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub call_timeout_secs: Option<i32>,
    pub session_pool_size: i32,
    pub session_scope: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = mcp_services)]
pub struct NewServiceRow<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub status: &'a str,
    pub transport: &'a Value,
    pub server_info: Option<&'a Value>,
    pub protocol_version: Option<&'a str>,
    pub instructions: Option<&'a str>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub call_timeout_secs: Option<i32>,
    pub session_pool_size: i32,
    pub session_scope: &'a str,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tool_schemas, check_for_backend(diesel::pg::Pg))]
pub struct ToolSchemaRow {
    pub id: Uuid,
    pub schema_type: String,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub content_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = tool_schemas)]
pub struct NewToolSchemaRow<'a> {
    pub id: Uuid,
    pub schema_type: &'a str,
    pub input_schema: &'a Value,
    pub output_schema: Option<&'a Value>,
    pub content_hash: &'a str,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Associations)]
#[diesel(table_name = tools, belongs_to(ServiceRow, foreign_key = service_id), check_for_backend(diesel::pg::Pg))]
pub struct ToolRow {
    pub id: Uuid,
    pub service_id: Uuid,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub endpoint: String,
    pub annotations: Option<Value>,
    pub schema_id: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = tools)]
pub struct NewToolRow<'a> {
    pub id: Uuid,
    pub service_id: Uuid,
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub endpoint: &'a str,
    pub annotations: Option<&'a Value>,
    pub schema_id: Uuid,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub permissions: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub details: Value,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditRow<'a> {
    pub actor: &'a str,
    pub actor_kind: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub details: &'a Value,
}
