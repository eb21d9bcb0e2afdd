//! The platform the benchmark and the memory measurement build for: 1,000
//! services of 10 tools each. Schemas are like real ones: a few properties,
//! enums, nullable fields, and every third tool with `$defs` and a recursive
//! `$ref`.

use super::records::{service, Tool};
use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::queries::ServiceRecord;
use serde_json::{json, Value};

pub const SERVICES: usize = 1_000;
pub const TOOLS: usize = 10;

fn input_schema(service: usize, tool: usize) -> Value {
    let mut schema = json!({
        "type": "object",
        "properties": {
            "query": { "type": "string", "description": "What to look for", "minLength": 1 },
            "limit": { "type": "integer", "minimum": 1, "maximum": 100, "default": 10 },
            "order": { "enum": ["asc", "desc"] },
            "cursor": { "type": ["string", "null"] },
            "tags": { "type": "array", "items": { "type": "string" }, "uniqueItems": true },
            "options": {
                "type": "object",
                "additionalProperties": { "type": "boolean" }
            },
            "variant": { "const": format!("v{tool}") }
        },
        "required": ["query"],
        "additionalProperties": false
    });
    if (service + tool).is_multiple_of(3) {
        schema["$defs"] = json!({
            "filter": {
                "anyOf": [
                    { "type": "object", "properties": { "field": { "type": "string" }, "equals": {} }, "required": ["field", "equals"] },
                    { "type": "object", "properties": { "all": { "type": "array", "items": { "$ref": "#/$defs/filter" } } }, "required": ["all"] }
                ]
            },
            "page": { "type": "object", "properties": { "size": { "type": "integer" }, "next": { "$ref": "#/$defs/page" } } }
        });
        schema["properties"]["filter"] = json!({ "$ref": "#/$defs/filter" });
        schema["properties"]["page"] = json!({ "$ref": "#/$defs/page" });
    }
    schema
}

fn output_schema(tool: usize) -> Option<Value> {
    tool.is_multiple_of(2).then(|| {
        json!({
            "type": "object",
            "properties": {
                "items": { "type": "array", "items": { "type": "object", "properties": { "id": { "type": "string" }, "score": { "type": "number" } } } },
                "next": { "type": ["string", "null"] }
            },
            "required": ["items"]
        })
    })
}

pub fn platform() -> Vec<ServiceRecord> {
    (0..SERVICES)
        .map(|s| {
            let tools = (0..TOOLS)
                .map(|t| Tool {
                    name: format!("tool_{t}"),
                    input: input_schema(s, t),
                    output: output_schema(t),
                    annotations: Some(
                        json!({ "readOnlyHint": t.is_multiple_of(2), "idempotentHint": true }),
                    ),
                })
                .collect();
            service(&format!("service-{s:04}"), tools)
        })
        .collect()
}

pub const EXECUTOR_URL: &str = "https://tools.example.com";

pub fn authorizer() -> ApiGatewayAuthorizer {
    ApiGatewayAuthorizer {
        uri: "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:auth/invocations".into(),
        credentials: None,
        ttl: std::time::Duration::from_secs(300),
    }
}
