//! Rebuilding the platform document for 1,000 services of 10 tools each:
//! the 3.1 document, then its API Gateway flavour, then the bytes served.
//! Schemas are like real ones: a few properties, enums, nullable fields,
//! and every third tool with `$defs` and a recursive `$ref`.

#[path = "../tests/common/records.rs"]
mod records;

use criterion::{criterion_group, criterion_main, Criterion};
use mcpo_core::db::queries::ServiceRecord;
use records::{service, Tool};
use serde_json::{json, Value};

const SERVICES: usize = 1_000;
const TOOLS: usize = 10;

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

fn platform() -> Vec<ServiceRecord> {
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

fn rebuild(c: &mut Criterion) {
    let services = platform();
    let url = "https://tools.example.com";
    let authorizer = mcpo_core::config::ApiGatewayAuthorizer {
        uri: "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:auth/invocations".into(),
        credentials: None,
        ttl: std::time::Duration::from_secs(300),
    };

    // One build outside the timings: the size of what is built and served.
    let doc = mcpo_publisher::document::build(&services, url);
    let aws = mcpo_publisher::aws::convert(&doc, Some(&authorizer));
    let json = serde_json::to_vec_pretty(&doc).unwrap();
    let aws_json = serde_json::to_vec_pretty(&aws).unwrap();
    eprintln!(
        "{} paths, {} component schemas; 3.1 document {} bytes, API Gateway document {} bytes",
        doc["paths"].as_object().unwrap().len(),
        doc["components"]["schemas"].as_object().unwrap().len(),
        json.len(),
        aws_json.len()
    );

    let mut group = c.benchmark_group("1000 services x 10 tools");
    group.sample_size(10);
    group.bench_function("openapi 3.1 document", |b| {
        b.iter(|| mcpo_publisher::document::build(&services, url))
    });
    group.bench_function("api gateway flavour from 3.1", |b| {
        b.iter(|| mcpo_publisher::aws::convert(&doc, Some(&authorizer)))
    });
    // What `Publisher::rebuild` does besides reading Postgres: the platform
    // document as JSON and YAML, its API Gateway flavour, and one document
    // per service.
    group.bench_function("full rebuild (every document, rendered)", |b| {
        b.iter(|| {
            let doc = mcpo_publisher::document::build(&services, url);
            let aws = mcpo_publisher::aws::convert(&doc, Some(&authorizer));
            let by_service: Vec<Vec<u8>> = services
                .iter()
                .map(|s| {
                    let one = mcpo_publisher::document::build(std::slice::from_ref(s), url);
                    serde_json::to_vec_pretty(&one).unwrap()
                })
                .collect();
            (
                serde_json::to_vec_pretty(&doc).unwrap(),
                serde_yaml_ng::to_string(&doc).unwrap(),
                serde_json::to_vec_pretty(&aws).unwrap(),
                by_service,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
