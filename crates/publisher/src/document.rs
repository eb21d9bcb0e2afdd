//! Builds the OpenAPI 3.1 document of every tool from what the registry
//! stored. A pure function of its input, so it is tested without HTTP.
//!
//! Per tool: `POST {endpoint}`, `operationId` `{service}__{endpoint name}`
//! (unique and stable across rebuilds), one tag per service, the summary
//! from the tool's title, the description from its description plus a
//! sentence naming the hints its annotations give (the annotations
//! themselves under `x-mcp-annotations`), the schemas translated by
//! [`crate::schema`], and every answer the executor gives, errors with the
//! shared `Error` schema.

use std::collections::HashMap;

use mcpo_core::auth::document::add_security;
use mcpo_core::auth::invoke_permission;
use mcpo_core::db::queries::ServiceRecord;
use mcpo_core::error::ErrorCode;
use serde_json::{json, Map, Value};

use crate::schema::{Components, COMPONENT_PREFIX};

pub const OPENAPI_VERSION: &str = "3.1.0";

/// The name of the error body's schema.
pub const ERROR_SCHEMA: &str = "Error";

pub const RESPONSE_PREFIX: &str = "#/components/responses/";

/// Every error answer of the executor: status, name in
/// `components/responses` (shared, so the document does not repeat them for
/// each of thousands of operations), meaning.
const ERROR_RESPONSES: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "The body is not valid JSON, or `X-Session-Key` is malformed."),
    ("401", "Unauthorized", "No credentials (`unauthenticated`), or they were refused (`invalid_token`); see `WWW-Authenticate`."),
    ("403", "Forbidden", "The caller lacks `tools:invoke` or `tools:invoke:{service}` (`permission_denied`)."),
    ("404", "NotFound", "The service or tool is not registered."),
    ("413", "PayloadTooLarge", "The body is larger than the executor accepts."),
    (
        "422",
        "InvalidArguments",
        "The arguments do not match the input schema (`invalid_arguments`, each problem with its JSON pointer), are not a JSON object, or the MCP server refused them.",
    ),
    (
        "429",
        "TooManyRequests",
        "The caller has too many calls in flight (`too_many_requests`); retry after `Retry-After` seconds.",
    ),
    (
        "502",
        "BadGateway",
        "The MCP server is unreachable, broke the protocol, answered outside its output schema, or the tool reported an error.",
    ),
    (
        "503",
        "Unavailable",
        "The service is disabled, its server failed moments ago (`upstream_unavailable`), the executor is at capacity (`overloaded`, with `Retry-After`), or credentials cannot be checked right now (`auth_unavailable`).",
    ),
    ("504", "GatewayTimeout", "The MCP server did not answer in time."),
];

/// Each service's part of the document, as trees, and the parts every
/// document shares.
pub struct Parts {
    /// One per service, in the order given.
    pub services: Vec<ServiceTree>,
    /// The component schemas of every document (the error body).
    pub shared_schemas: Map<String, Value>,
}

/// A service's part of the document: what [`build`] would give for the
/// service alone, unless `renamed`.
pub struct ServiceTree {
    /// Its entry of `tags`.
    pub tag: Value,
    /// Its paths (the endpoints of its tools) and their path items, in the
    /// order of its tools.
    pub paths: Vec<(String, Value)>,
    /// The component schemas its tools' schemas became.
    pub schemas: Map<String, Value>,
    /// The `operationId`s of its operations.
    pub operation_ids: Vec<String>,
    /// Another service took a name it would have alone (an `operationId` or
    /// a component's name, which then gets `_2`…, or a path): its own
    /// document must be built from its record alone.
    pub renamed: bool,
}

/// The whole document as one tree: the reference the renderings a rebuild
/// assembles from pieces (`published`) are tested against.
pub fn build(services: &[ServiceRecord], executor_url: &str) -> Value {
    let parts = parts(services);
    let tags = parts.services.iter().map(|s| s.tag.clone()).collect();
    let mut document = skeleton(tags, executor_url, "");
    let mut paths = Map::new();
    let mut schemas = parts.shared_schemas;
    for service in parts.services {
        paths.extend(service.paths);
        schemas.extend(service.schemas);
    }
    document["paths"] = Value::Object(paths);
    document["components"]["schemas"] = Value::Object(schemas);
    document
}

/// The document without its paths and component schemas (both empty
/// objects): what it has besides the tools of its services.
pub fn skeleton(tags: Vec<Value>, executor_url: &str, version: &str) -> Value {
    let mut document = json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "MCPO tools",
            "version": version,
            "description": "Every tool of every MCP server registered with MCPO, as a REST endpoint of the tool executor."
        },
        "servers": [{ "url": executor_url }],
        "paths": {},
    });
    document["tags"] = Value::Array(tags);
    let mut components = Map::new();
    let mut schemas = Map::new();
    // Present while `add_security` looks, so that it would refer to it.
    schemas.insert(ERROR_SCHEMA.into(), json!({}));
    components.insert("schemas".into(), Value::Object(schemas));
    components.insert("responses".into(), error_responses());
    document["components"] = Value::Object(components);
    // The security schemes; operations declare every answer already.
    add_security(&mut document, ERROR_SCHEMA);
    document["components"]["schemas"] = json!({});
    document
}

/// The component schemas every document has.
pub fn shared_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(ERROR_SCHEMA.into(), error_schema());
    schemas
}

/// Translates every tool of `services`, in order: names (`operationId`s,
/// components) are given in that order, so they are stable across
/// rebuilds.
pub fn parts(services: &[ServiceRecord]) -> Parts {
    let mut names = Names::new();
    let mut trees: Vec<ServiceTree> = services
        .iter()
        .enumerate()
        .map(|(index, record)| service_tree(record, index, &mut names))
        .collect();
    let shared = shared_paths(
        trees
            .iter()
            .map(|t| t.paths.iter().map(|(p, _)| p.as_str())),
    );
    for (tree, shared) in trees.iter_mut().zip(shared) {
        tree.renamed |= shared;
    }
    Parts {
        services: trees,
        shared_schemas: shared_schemas(),
    }
}

/// Which services (by index) have a path another one has too.
pub fn shared_paths<'p, P>(services: impl IntoIterator<Item = P>) -> Vec<bool>
where
    P: IntoIterator<Item = &'p str>,
{
    let mut owners: HashMap<&str, usize> = HashMap::new();
    let mut shared = Vec::new();
    for (index, paths) in services.into_iter().enumerate() {
        shared.push(false);
        for path in paths {
            if let Some(other) = owners.insert(path, index) {
                if other != index {
                    shared[other] = true;
                    shared[index] = true;
                }
            }
        }
    }
    shared
}

/// The names given so far in a document: `operationId`s and component
/// names, each with the service (index) that took it.
pub struct Names {
    components: Components,
    operation_ids: HashMap<String, usize>,
}

impl Default for Names {
    fn default() -> Names {
        Names::new()
    }
}

impl Names {
    /// The names of a document that has no service yet.
    pub fn new() -> Names {
        let mut components = Components::new();
        components.reserve(ERROR_SCHEMA, None);
        Names {
            components,
            operation_ids: HashMap::new(),
        }
    }

    /// Whether one of a service's names is taken already: translated in a
    /// document of its own, here the service would get other names.
    pub fn clash(&self, schemas: &[String], operation_ids: &[String]) -> bool {
        schemas.iter().any(|name| self.components.is_taken(name))
            || operation_ids
                .iter()
                .any(|id| self.operation_ids.contains_key(id))
    }

    /// Takes the names of service `index`, translated elsewhere (none may
    /// be taken here).
    pub fn take(&mut self, schemas: &[String], operation_ids: &[String], index: usize) {
        for name in schemas {
            self.components.reserve(name, Some(index));
        }
        for id in operation_ids {
            self.operation_ids.insert(id.clone(), index);
        }
    }
}

/// Translates the tools of service `index`, taking its names from `names`.
/// Its `renamed` says whether another service's names made its own change;
/// clashing paths are found later ([`shared_paths`]).
pub fn service_tree(record: &ServiceRecord, index: usize, names: &mut Names) -> ServiceTree {
    let Names {
        components,
        operation_ids,
    } = names;
    let service = &record.service;
    components.claim_for(index);
    let tag = json!({
        "name": service.name,
        "description": service.description.clone().unwrap_or_else(|| format!("Tools of the MCP service `{}`", service.name)),
    });
    let mut paths = Vec::with_capacity(record.tools.len());
    let mut ids = Vec::with_capacity(record.tools.len());
    let mut renamed = false;
    for tool_record in &record.tools {
        let tool = &tool_record.tool;
        let schema = &tool_record.schema;
        let endpoint_name = tool.endpoint.rsplit('/').next().unwrap_or(&tool.endpoint);
        let (operation_id, clash) =
            unique_operation_id(&service.name, endpoint_name, index, operation_ids);
        renamed |= clash;
        let prefix = format!("{}_{endpoint_name}", service.name);
        let input = components.translate(&prefix, "Input", &schema.input_schema);
        let output = schema
            .output_schema
            .as_ref()
            .map(|s| components.translate(&prefix, "Output", s));
        let annotations = tool.annotations.as_ref().filter(|a| a.is_object());
        let summary = tool
            .title
            .clone()
            .or_else(|| {
                annotations
                    .and_then(|a| a.get("title"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| tool.name.clone());
        // Schemas are moved in, not through `json!`, which would copy
        // them by serializing: with thousands of tools that is most of
        // the build.
        let mut operation = json!({
            "operationId": operation_id.clone(),
            "tags": [service.name],
            "summary": summary,
            "requestBody": {
                "required": has_required_properties(&input, components),
                "content": { "application/json": {} }
            },
            "x-mcp-tool": tool.name,
            // `tools:invoke` grants it too.
            "security": [
                { "bearer": [invoke_permission(&service.name)] },
                { "api_key": [invoke_permission(&service.name)] }
            ],
        });
        operation["requestBody"]["content"]["application/json"]["schema"] = input;
        operation["responses"] = responses(output);
        let hints = annotations.and_then(hints_sentence);
        let description = match (&tool.description, hints) {
            (Some(description), Some(hints)) => Some(format!("{description}\n\n{hints}")),
            (description, hints) => description.clone().or(hints),
        };
        if let Some(description) = description {
            operation["description"] = Value::String(description);
        }
        if let Some(annotations) = &tool.annotations {
            operation["x-mcp-annotations"] = annotations.clone();
        }
        let mut item = Map::new();
        item.insert("post".into(), operation);
        paths.push((tool.endpoint.clone(), Value::Object(item)));
        ids.push(operation_id);
    }
    ServiceTree {
        tag,
        paths,
        schemas: components.take_schemas(),
        operation_ids: ids,
        renamed: renamed || components.renamed(index),
    }
}

/// What the tool's annotations hint, as a sentence for its description.
/// MCP calls them hints: the server's word, not a guarantee.
fn hints_sentence(annotations: &Value) -> Option<String> {
    let hint = |name: &str| annotations.get(name).and_then(Value::as_bool);
    let mut said = Vec::new();
    match hint("readOnlyHint") {
        Some(true) => said.push("read-only (does not modify its environment)"),
        Some(false) => said.push("may modify its environment"),
        None => {}
    }
    // Meaningful only for a tool that writes.
    if hint("readOnlyHint") != Some(true) {
        match hint("destructiveHint") {
            Some(true) => said.push("may perform destructive updates"),
            Some(false) => said.push("performs only additive updates"),
            None => {}
        }
    }
    match hint("idempotentHint") {
        Some(true) => {
            said.push("idempotent (repeating a call with the same arguments has no further effect)")
        }
        Some(false) => said.push("not idempotent"),
        None => {}
    }
    match hint("openWorldHint") {
        Some(true) => said.push("interacts with an open world of external entities"),
        Some(false) => said.push("works in a closed domain"),
        None => {}
    }
    (!said.is_empty()).then(|| {
        format!(
            "Hints from the MCP server (`x-mcp-annotations`): {}.",
            said.join("; ")
        )
    })
}

fn responses(output_schema: Option<Value>) -> Value {
    let success_schema = output_schema.unwrap_or_else(|| json!({}));
    let mut success = json!({
        "description": "The tool's result (see docs/tool-results.md); with `Accept: text/event-stream`, its progress and result as server-sent events.",
        "content": {
            "application/json": {},
            "text/event-stream": { "schema": { "type": "string" } }
        }
    });
    success["content"]["application/json"]["schema"] = success_schema;
    let mut responses = Map::new();
    responses.insert("200".into(), success);
    for (status, name, _) in ERROR_RESPONSES {
        responses.insert(
            (*status).into(),
            json!({ "$ref": format!("{RESPONSE_PREFIX}{name}") }),
        );
    }
    Value::Object(responses)
}

fn error_responses() -> Value {
    let mut responses = Map::new();
    for (_, name, description) in ERROR_RESPONSES {
        responses.insert(
            (*name).into(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": format!("{COMPONENT_PREFIX}{ERROR_SCHEMA}") } } }
            }),
        );
    }
    Value::Object(responses)
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

/// Whether the body must be sent: the schema (or the component its root
/// refers to) requires a property.
fn has_required_properties(schema: &Value, components: &Components) -> bool {
    let schema = match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(COMPONENT_PREFIX))
    {
        Some(name) => components.get(name).unwrap_or(schema),
        None => schema,
    };
    schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
}

/// `{service}__{endpoint name}` with every character outside `[A-Za-z0-9_]`
/// replaced: stable across rebuilds because it derives from the endpoint.
/// Also says whether another owner (service) had taken a candidate.
fn unique_operation_id(
    service: &str,
    tool: &str,
    owner: usize,
    taken: &mut HashMap<String, usize>,
) -> (String, bool) {
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
    let mut clash = false;
    while let Some(other) = taken.get(&candidate) {
        clash |= *other != owner;
        candidate = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone(), owner);
    (candidate, clash)
}
