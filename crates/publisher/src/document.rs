//! Builds the OpenAPI 3.1 document of every tool from what the registry
//! stored. A pure function of its input, so it is tested without HTTP.

use std::collections::HashSet;

use mcpo_core::auth::document::add_security;
use mcpo_core::auth::invoke_permission;
use mcpo_core::db::queries::ServiceRecord;
use mcpo_core::error::ErrorCode;
use serde_json::{json, Map, Value};

pub const OPENAPI_VERSION: &str = "3.1.0";

pub fn build(services: &[ServiceRecord], executor_url: &str) -> Value {
    let mut paths = Map::new();
    let mut tags = Vec::new();
    let mut operation_ids = HashSet::new();
    for record in services {
        let service = &record.service;
        tags.push(json!({
            "name": service.name,
            "description": service.description.clone().unwrap_or_else(|| format!("Tools of the MCP service `{}`", service.name)),
        }));
        for tool_record in &record.tools {
            let tool = &tool_record.tool;
            let schema = &tool_record.schema;
            let operation_id =
                unique_operation_id(&service.name, &tool.endpoint, &mut operation_ids);
            let mut operation = json!({
                "operationId": operation_id,
                "tags": [service.name],
                "summary": tool.title.clone().unwrap_or_else(|| tool.name.clone()),
                "requestBody": {
                    "required": has_required_properties(&schema.input_schema),
                    "content": { "application/json": { "schema": schema.input_schema } }
                },
                "responses": responses(schema.output_schema.as_ref()),
                "x-mcp-tool": tool.name,
                // `tools:invoke` grants it too.
                "security": [
                    { "bearer": [invoke_permission(&service.name)] },
                    { "api_key": [invoke_permission(&service.name)] }
                ],
            });
            if let Some(description) = &tool.description {
                operation["description"] = json!(description);
            }
            if let Some(annotations) = &tool.annotations {
                operation["x-mcp-annotations"] = annotations.clone();
            }
            paths.insert(tool.endpoint.clone(), json!({ "post": operation }));
        }
    }
    let mut document = json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "MCPO tools",
            // Set by the publisher: the number of the stored version.
            "version": "",
            "description": "Every tool of every MCP server registered with MCPO, as a REST endpoint of the tool executor."
        },
        "servers": [{ "url": executor_url }],
        "tags": tags,
        "paths": paths,
        "components": { "schemas": { "Error": error_schema() } }
    });
    add_security(&mut document, "Error");
    document
}

fn responses(output_schema: Option<&Value>) -> Value {
    let success_schema = output_schema.cloned().unwrap_or_else(|| json!({}));
    let error = json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut responses = json!({
        "200": {
            "description": "The tool's result: its structured content, or its content (see docs/tool-results.md).",
            "content": { "application/json": { "schema": success_schema } }
        }
    });
    for (status, description) in [
        ("400", "The body is not valid JSON."),
        ("404", "The service or tool is not registered."),
        ("413", "The body is larger than the executor accepts."),
        (
            "422",
            "The arguments do not match the input schema (`invalid_arguments`, each problem with its JSON pointer), are not a JSON object, or the MCP server refused them.",
        ),
        (
            "502",
            "The MCP server is unreachable, broke the protocol, or the tool reported an error.",
        ),
        ("503", "The service is disabled."),
        ("504", "The MCP server did not answer in time."),
    ] {
        let mut answer = error.clone();
        answer["description"] = json!(description);
        responses[status] = answer;
    }
    responses
}

fn error_schema() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
    json!({
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": { "type": "string", "description": "Stable machine-readable error code.", "examples": codes },
            "message": { "type": "string" },
            "details": { "type": "object" }
        }
    })
}

fn has_required_properties(schema: &Value) -> bool {
    schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
}

/// `{service}__{endpoint name}` with every character outside `[A-Za-z0-9_]`
/// replaced: stable across rebuilds because it derives from the endpoint.
fn unique_operation_id(service: &str, endpoint: &str, taken: &mut HashSet<String>) -> String {
    let tool = endpoint.rsplit('/').next().unwrap_or(endpoint);
    let base: String = format!("{service}__{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut candidate = base.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}
