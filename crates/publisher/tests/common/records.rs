//! Services as the registry stores them, made in memory for the document
//! builder (shared by the property tests and the benchmark).

use chrono::Utc;
use mcpo_core::db::models::{ServiceRow, ToolRow, ToolSchemaRow};
use mcpo_core::db::queries::{ServiceRecord, ToolRecord};
use serde_json::{json, Value};
use uuid::Uuid;

/// One tool: its name (also its endpoint name), input and output schema.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub input: Value,
    pub output: Option<Value>,
    pub annotations: Option<Value>,
}

pub fn service(name: &str, tools: Vec<Tool>) -> ServiceRecord {
    let now = Utc::now();
    let service_id = Uuid::new_v4();
    ServiceRecord {
        service: ServiceRow {
            id: service_id,
            name: name.to_owned(),
            description: Some(format!("The {name} service")),
            status: "active".into(),
            transport: json!({ "type": "streamable_http", "url": "https://example.com/mcp" }),
            server_info: None,
            protocol_version: None,
            instructions: None,
            revision: 1,
            created_at: now,
            updated_at: now,
            last_seen_at: None,
            last_error: None,
            last_checked_at: None,
            call_timeout_secs: None,
            session_pool_size: 1,
            session_scope: "shared".into(),
        },
        tools: tools
            .into_iter()
            .map(|tool| ToolRecord {
                tool: ToolRow {
                    id: Uuid::new_v4(),
                    service_id,
                    endpoint: format!("/tools/{name}/{}", tool.name),
                    title: Some(format!("The {} tool", tool.name)),
                    description: Some("Does what tools do.".into()),
                    name: tool.name,
                    annotations: tool.annotations,
                    schema_id: Uuid::new_v4(),
                    created_at: now,
                },
                schema: ToolSchemaRow {
                    id: Uuid::new_v4(),
                    schema_type: "json_schema".into(),
                    input_schema: tool.input,
                    output_schema: tool.output,
                    content_hash: String::new(),
                    created_at: now,
                },
            })
            .collect(),
    }
}
