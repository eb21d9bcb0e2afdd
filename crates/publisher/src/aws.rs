//! The API Gateway flavour of the document (`/openapi.aws.json`): OpenAPI
//! 3.0.1, which is what an API Gateway REST API imports, derived from the 3.1
//! document by one pure function.
//!
//! Schemas:
//! - type arrays become one `type` plus `nullable: true`, or an `anyOf` of
//!   one schema per type (each `nullable` when `"null"` was listed); `"null"`
//!   alone becomes `nullable: true, enum: [null]`;
//! - `const` becomes a one-value `enum`, `examples` its first `example`,
//!   numeric `exclusiveMinimum` / `exclusiveMaximum` the boolean form beside
//!   `minimum` / `maximum`, boolean schemas `{}` and `{"not": {}}`;
//! - a `$ref` with siblings (which 3.0 ignores) is wrapped in `allOf`;
//! - keywords 3.0 does not have are dropped (`prefixItems` and
//!   `patternProperties` widen `items` / `additionalProperties` to accept what
//!   they accepted), so the 3.0 schema accepts at least what the 3.1 one
//!   does; a `not` or `oneOf` over a widened schema would then reject too
//!   much, so it is dropped or made an `anyOf`. `readOnly` / `writeOnly`
//!   (unsupported by API Gateway, and meaning something else for requests in
//!   3.0) and numeric `format`s (API Gateway refuses `int32` / `int64`) go too;
//! - component names become alphanumeric (API Gateway model names), e.g.
//!   `fx_tree_Node` → `fxTreeNode`.
//!
//! Operations:
//! - `x-amazon-apigateway-integration`: an HTTP proxy (`http_proxy`, `POST`)
//!   to the executor's public URL + the path, `passthroughBehavior:
//!   when_no_match`, with `X-Request-Id` and `Authorization` mapped to the
//!   integration request (both declared as optional header parameters, which
//!   API Gateway requires of a mapped header);
//! - API Gateway validates bodies and parameters itself: the root names the
//!   `body` validator of `x-amazon-apigateway-request-validators`. Its models
//!   are JSON Schema draft 4, which has no `nullable`: an operation whose
//!   request schema uses it gets the `params` validator instead, so API
//!   Gateway never refuses a `null` the tool accepts (the executor still
//!   checks the body against the tool's own schema);
//! - `x-amazon-apigateway-gateway-responses` give API Gateway's own refusals
//!   MCPO's error body (`{"code", "message"}`) and status.
//!
//! Authentication: with an authorizer configured
//! (`MCPO_APIGATEWAY_AUTHORIZER_URI`), the `bearer` scheme is a Lambda
//! `token` authorizer on `Authorization` (`x-amazon-apigateway-authtype` +
//! `x-amazon-apigateway-authorizer`) and every operation requires it.
//! Without one, operations declare no security for API Gateway to enforce:
//! it passes `Authorization` through and the executor checks the token or
//! key itself, as it does behind any proxy. Either way the `X-Api-Key`
//! scheme is left out: API Gateway would take it for its own API keys; MCPO
//! keys work as `Authorization: Bearer mcpo_…`.

use std::collections::{BTreeSet, HashMap};

use mcpo_core::config::ApiGatewayAuthorizer;
use serde_json::{json, Map, Value};

use crate::document::RESPONSE_PREFIX;
use crate::schema::COMPONENT_PREFIX;
use crate::view::{Members, Part};

pub const OPENAPI_VERSION: &str = "3.0.1";

const REQUEST_ID_HEADER: &str = "X-Request-Id";
const AUTHORIZATION_HEADER: &str = "Authorization";
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Keywords of the OpenAPI 3.0 Schema Object copied as they are.
const KEPT: &[&str] = &[
    "title",
    "description",
    "default",
    "multipleOf",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "deprecated",
    "nullable",
    "discriminator",
    "xml",
    "externalDocs",
    "example",
];

/// `format`s of numbers API Gateway refuses; they only annotate.
const NUMERIC_FORMATS: &[&str] = &["int32", "int64", "float", "double", "decimal"];

/// The 3.0.1 document for API Gateway, from the 3.1 one, as one tree: the
/// reference for the rendering a rebuild assembles from pieces
/// (`published`), which uses the same [`Flavour`].
pub fn convert(doc: &Value, authorizer: Option<&ApiGatewayAuthorizer>) -> Value {
    let no_schemas = Map::new();
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&no_schemas);
    let executor_url = doc
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = model_names(schemas.keys().map(String::as_str));
    let flavour = Flavour::new(
        &names,
        doc.pointer("/components/responses")
            .and_then(Value::as_object),
        executor_url,
        authorizer,
    );
    let models: Map<String, Value> = schemas
        .iter()
        .map(|(name, schema)| {
            (
                model_name(&names, name).to_owned(),
                flavour.model(schema, &names),
            )
        })
        .collect();
    let lookup = |name: &str| models.get(name);
    let mut paths = Members::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        paths.insert(
            path.as_str(),
            flavour.path_item(path, item, &names, &lookup),
        );
    }
    let root = flavour.root(
        &doc["info"],
        doc.get("tags"),
        Part::Owned(Value::Object(models.clone())),
        paths.into(),
    );
    // Keys are strings and values JSON already: this cannot fail.
    serde_json::to_value(root).unwrap_or_default()
}

/// Finds the converted model of a model name (what a converted `$ref`
/// names).
pub type Models<'m> = dyn Fn(&str) -> Option<&'m Value> + 'm;

/// Each component schema's model name.
pub type ModelNames = HashMap<String, String>;

/// The model name of a component schema.
pub fn model_name<'n>(names: &'n ModelNames, name: &'n str) -> &'n str {
    names.get(name).map_or(name, String::as_str)
}

/// What every operation of the 3.0 flavour shares, and the conversions.
pub struct Flavour<'a> {
    authorizer: Option<&'a ApiGatewayAuthorizer>,
    /// The document's shared responses, converted: API Gateway does not
    /// take references to shared responses, each operation gets them
    /// inline.
    responses: Map<String, Value>,
    executor_url: &'a str,
    /// The headers each operation declares.
    parameters: [Value; 2],
    /// Each operation's integration, but for its method and URI.
    integration: Map<String, Value>,
    /// Each operation's, with an authorizer.
    security: Value,
}

impl<'a> Flavour<'a> {
    /// `responses`: the document's shared responses, whose schemas have
    /// the model names `names` gives.
    pub fn new(
        names: &ModelNames,
        responses: Option<&Map<String, Value>>,
        executor_url: &'a str,
        authorizer: Option<&'a ApiGatewayAuthorizer>,
    ) -> Flavour<'a> {
        let converter = Converter { names };
        let responses = responses
            .into_iter()
            .flatten()
            .map(|(name, response)| (name.clone(), converter.with_content(response)))
            .collect();
        let integration = json!({
            "type": "http_proxy",
            "passthroughBehavior": "when_no_match",
            "requestParameters": {
                format!("integration.request.header.{REQUEST_ID_HEADER}"): format!("method.request.header.{REQUEST_ID_HEADER}"),
                format!("integration.request.header.{AUTHORIZATION_HEADER}"): format!("method.request.header.{AUTHORIZATION_HEADER}"),
            }
        });
        Flavour {
            authorizer,
            responses,
            executor_url: executor_url.trim_end_matches('/'),
            parameters: [
                json!({
                    "name": REQUEST_ID_HEADER,
                    "in": "header",
                    "required": false,
                    "description": "Identifies the request in the executor's logs and in `_meta` of the MCP call; made when absent.",
                    "schema": { "type": "string" }
                }),
                json!({
                    "name": AUTHORIZATION_HEADER,
                    "in": "header",
                    "required": false,
                    "description": "`Bearer <access token or MCPO API key>`, passed to the executor.",
                    "schema": { "type": "string" }
                }),
            ],
            integration: match integration {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            security: json!([{ "bearer": [] }]),
        }
    }

    /// A component schema as a model.
    pub fn model(&self, schema: &Value, names: &ModelNames) -> Value {
        Converter { names }.schema(schema).0
    }

    /// A path item's operations (of the methods 3.0 has), converted: its
    /// schemas' references name models by `names`, and `models` finds them.
    pub fn path_item<'s>(
        &'s self,
        path: &str,
        item: &'s Value,
        names: &ModelNames,
        models: &Models<'_>,
    ) -> Part<'s> {
        let converter = Converter { names };
        let mut converted = Members::new();
        for (method, operation) in item.as_object().into_iter().flatten() {
            if METHODS.contains(&method.as_str()) {
                converted.insert(
                    method.as_str(),
                    self.operation(path, method, operation, &converter, models),
                );
            }
        }
        converted.into()
    }

    /// The document: `info` and `tags` are the 3.1 document's, `models`
    /// and `paths` converted.
    pub fn root<'s>(
        &'s self,
        info: &Value,
        tags: Option<&'s Value>,
        models: Part<'s>,
        paths: Part<'s>,
    ) -> Part<'s> {
        let mut info = info.clone();
        if let Some(info) = info.as_object_mut() {
            // 3.1 only.
            info.remove("summary");
            if let Some(license) = info.get_mut("license").and_then(Value::as_object_mut) {
                license.remove("identifier");
            }
        }
        let mut components = Members::new();
        components.insert(
            "securitySchemes",
            Part::Owned(json!({ "bearer": bearer_scheme(self.authorizer) })),
        );
        components.insert("schemas", models);
        let mut document = Members::new();
        document.insert("openapi", Part::Text(OPENAPI_VERSION.into()));
        document.insert("components", components.into());
        document.insert(
            "x-amazon-apigateway-request-validators",
            Part::Owned(json!({
                "body": { "validateRequestBody": true, "validateRequestParameters": true },
                "params": { "validateRequestBody": false, "validateRequestParameters": true }
            })),
        );
        document.insert(
            "x-amazon-apigateway-request-validator",
            Part::Text("body".into()),
        );
        document.insert(
            "x-amazon-apigateway-gateway-responses",
            Part::Owned(gateway_responses()),
        );
        document.insert("info", Part::Owned(info));
        document.insert("paths", paths);
        // No `servers`: callers reach this API at API Gateway's invoke URL,
        // and each integration names the executor itself.
        if let Some(tags) = tags {
            document.insert("tags", Part::Value(tags));
        }
        document.into()
    }

    fn operation<'s>(
        &'s self,
        path: &str,
        method: &str,
        operation: &'s Value,
        converter: &Converter<'_>,
        models: &Models<'_>,
    ) -> Part<'s> {
        let mut out = Members::new();
        let mut nullable = false;
        for (key, value) in operation.as_object().into_iter().flatten() {
            match key.as_str() {
                "requestBody" => {
                    let body = converter.with_content(value);
                    nullable = request_uses_nullable(&body, models);
                    out.insert(key.as_str(), Part::Owned(body));
                }
                "responses" => {
                    let mut responses = Members::new();
                    for (status, answer) in value.as_object().into_iter().flatten() {
                        responses.insert(status.as_str(), self.response(answer, converter));
                    }
                    out.insert(key.as_str(), responses.into());
                }
                "security" => {
                    if self.authorizer.is_some() {
                        out.insert(key.as_str(), Part::Value(&self.security));
                    }
                }
                "parameters" => {}
                _ => out.insert(key.as_str(), Part::Value(value)),
            }
        }
        let mut parameters: Vec<Part<'s>> = operation
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| Part::Owned(converter.with_schema(p)))
            .collect();
        parameters.extend(self.parameters.iter().map(Part::Value));
        out.insert("parameters", Part::Array(parameters));
        if nullable {
            out.insert(
                "x-amazon-apigateway-request-validator",
                Part::Text("params".into()),
            );
        }
        let mut integration = Members::borrowing(&self.integration);
        integration.insert("httpMethod", Part::Text(method.to_ascii_uppercase()));
        integration.insert("uri", Part::Text(format!("{}{path}", self.executor_url)));
        out.insert("x-amazon-apigateway-integration", integration.into());
        out.into()
    }

    /// A response, inline.
    fn response<'s>(&'s self, answer: &Value, converter: &Converter<'_>) -> Part<'s> {
        let shared = answer
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(RESPONSE_PREFIX))
            .and_then(|name| self.responses.get(name));
        match shared {
            Some(response) => Part::Value(response),
            None => Part::Owned(converter.with_content(answer)),
        }
    }
}

fn bearer_scheme(authorizer: Option<&ApiGatewayAuthorizer>) -> Value {
    let mut scheme = json!({ "type": "apiKey", "name": AUTHORIZATION_HEADER, "in": "header" });
    match authorizer {
        Some(authorizer) => {
            let mut settings = json!({
                "type": "token",
                "authorizerUri": authorizer.uri,
                "authorizerResultTtlInSeconds": authorizer.ttl.as_secs(),
                "identitySource": format!("method.request.header.{AUTHORIZATION_HEADER}")
            });
            if let Some(credentials) = &authorizer.credentials {
                settings["authorizerCredentials"] = json!(credentials);
            }
            scheme["x-amazon-apigateway-authtype"] = json!("custom");
            scheme["x-amazon-apigateway-authorizer"] = settings;
            scheme["description"] = json!("`Authorization: Bearer <access token or MCPO API key>`, checked by the Lambda authorizer, then by the executor.");
        }
        None => {
            scheme["description"] = json!("`Authorization: Bearer <access token or MCPO API key>`. API Gateway passes it through; the executor checks it and answers 401 or 403.");
        }
    }
    scheme
}

/// API Gateway's own refusals, in MCPO's error body.
fn gateway_responses() -> Value {
    let mut responses = Map::new();
    for (kind, status, code) in [
        ("BAD_REQUEST_BODY", 422, "invalid_arguments"),
        ("BAD_REQUEST_PARAMETERS", 400, "bad_request"),
        ("UNAUTHORIZED", 401, "unauthenticated"),
        ("ACCESS_DENIED", 403, "permission_denied"),
        ("THROTTLED", 429, "too_many_requests"),
        ("INTEGRATION_TIMEOUT", 504, "upstream_timeout"),
    ] {
        responses.insert(
            kind.into(),
            json!({
                "statusCode": status,
                "responseTemplates": {
                    // `messageString` is the message already quoted.
                    "application/json": format!("{{\"code\":\"{code}\",\"message\":$context.error.messageString}}")
                }
            }),
        );
    }
    Value::Object(responses)
}

/// Whether the (converted) request body's schema, or a model it reaches,
/// says `nullable` (which API Gateway's draft-4 models cannot say).
fn request_uses_nullable(body: &Value, models: &Models<'_>) -> bool {
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return false;
    };
    let mut pending: Vec<&Value> = content.values().filter_map(|m| m.get("schema")).collect();
    let mut seen = BTreeSet::new();
    let mut found = false;
    while let Some(schema) = pending.pop() {
        let mut reached = Vec::new();
        visit(schema, &mut |node| {
            if let Some(map) = node.as_object() {
                found |= map.get("nullable") == Some(&Value::Bool(true));
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix(COMPONENT_PREFIX))
                {
                    if seen.insert(name.to_owned()) {
                        reached.extend(models(name));
                    }
                }
            }
        });
        if found {
            return true;
        }
        pending.extend(reached);
    }
    false
}

/// Alphanumeric model names, stable (taken in name order) and distinct:
/// `fx_tree_Node` → `fxTreeNode`, a clash gets `2`, `3`….
/// `names` come in order (a document's are sorted).
pub fn model_names<'n>(names: impl IntoIterator<Item = &'n str>) -> HashMap<String, String> {
    let mut taken = BTreeSet::new();
    let mut names_by_component = HashMap::new();
    for name in names {
        let mut base = String::with_capacity(name.len());
        let mut upper = false;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                base.push(if upper { c.to_ascii_uppercase() } else { c });
                upper = false;
            } else {
                upper = !base.is_empty();
            }
        }
        if base.is_empty() {
            base.push_str("Schema");
        }
        let mut candidate = base.clone();
        let mut n = 2;
        while !taken.insert(candidate.clone()) {
            candidate = format!("{base}{n}");
            n += 1;
        }
        names_by_component.insert(name.to_owned(), candidate);
    }
    names_by_component
}

struct Converter<'n> {
    /// 3.1 component name → model name.
    names: &'n ModelNames,
}

impl Converter<'_> {
    /// A request body or response with its content's schemas converted.
    fn with_content(&self, value: &Value) -> Value {
        self.replacing(value, "content", |content| match content.as_object() {
            Some(media) => Value::Object(
                media
                    .iter()
                    .map(|(kind, media)| (kind.clone(), self.with_schema(media)))
                    .collect(),
            ),
            None => content.clone(),
        })
    }

    fn with_schema(&self, value: &Value) -> Value {
        self.replacing(value, "schema", |schema| self.schema(schema).0)
    }

    /// `value` with `key`'s value replaced by `f` of it; nothing else is
    /// copied twice.
    fn replacing(&self, value: &Value, key: &str, f: impl Fn(&Value) -> Value) -> Value {
        match value.as_object() {
            Some(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), if k == key { f(v) } else { v.clone() }))
                    .collect(),
            ),
            None => value.clone(),
        }
    }

    /// The 3.0 schema, and whether it accepts more than the 3.1 one did.
    fn schema(&self, node: &Value) -> (Value, bool) {
        match node {
            Value::Bool(true) => (json!({}), false),
            Value::Bool(false) => (json!({ "not": {} }), false),
            Value::Object(map) => self.object(map),
            other => (other.clone(), false),
        }
    }

    fn object(&self, map: &Map<String, Value>) -> (Value, bool) {
        let mut out = Map::new();
        let mut also = Vec::new();
        let mut widened = false;
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let reference = json!({ "$ref": self.rename(reference) });
            // In 3.0 a `$ref` object is only a reference: what stands beside it
            // applies through `allOf`.
            if map.keys().all(|k| k == "$ref") {
                return (reference, false);
            }
            also.push(reference);
        }
        let convert = |schema: &Value, widened: &mut bool| {
            let (schema, wider) = self.schema(schema);
            *widened |= wider;
            schema
        };
        for (key, value) in map {
            let key = key.as_str();
            match key {
                "type" => {
                    let types: Vec<&str> = match value {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    let nullable = types.contains(&"null");
                    let concrete: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
                    match concrete.as_slice() {
                        [] if nullable => {
                            out.insert("nullable".into(), json!(true));
                            also.push(json!({ "enum": [null] }));
                        }
                        [] => {}
                        [one] => {
                            out.insert("type".into(), json!(one));
                            if nullable {
                                out.insert("nullable".into(), json!(true));
                            }
                        }
                        many => {
                            let branches: Vec<Value> = many
                                .iter()
                                .map(|t| {
                                    if nullable {
                                        json!({ "type": t, "nullable": true })
                                    } else {
                                        json!({ "type": t })
                                    }
                                })
                                .collect();
                            also.push(single("anyOf", Value::Array(branches)));
                        }
                    }
                }
                "const" => {
                    if map.contains_key("enum") {
                        also.push(single("enum", Value::Array(vec![value.clone()])));
                    } else {
                        out.insert("enum".into(), Value::Array(vec![value.clone()]));
                    }
                }
                "enum" => match value.as_array() {
                    Some(values) if values.is_empty() => also.push(json!({ "not": {} })),
                    _ => {
                        out.insert(key.into(), value.clone());
                    }
                },
                "examples" => {
                    if let (Some(first), false) = (
                        value.as_array().and_then(|v| v.first()),
                        map.contains_key("example"),
                    ) {
                        out.insert("example".into(), first.clone());
                    }
                }
                "minimum" | "exclusiveMinimum" | "maximum" | "exclusiveMaximum" => {}
                "required" => {
                    if value.as_array().is_some_and(|r| !r.is_empty()) {
                        out.insert(key.into(), value.clone());
                    }
                }
                "format" => {
                    if !value.as_str().is_some_and(|f| NUMERIC_FORMATS.contains(&f)) {
                        out.insert(key.into(), value.clone());
                    }
                }
                "properties" => {
                    let properties: Map<String, Value> = value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, schema)| (name.clone(), convert(schema, &mut widened)))
                        .collect();
                    out.insert(key.into(), Value::Object(properties));
                }
                "additionalProperties" => {
                    // 3.0 takes a boolean here as it is.
                    let converted = if value.is_boolean() {
                        value.clone()
                    } else {
                        convert(value, &mut widened)
                    };
                    out.insert(key.into(), converted);
                }
                "allOf" | "anyOf" => {
                    let branches: Vec<Value> = value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| convert(s, &mut widened))
                        .collect();
                    out.insert(key.into(), Value::Array(branches));
                }
                "oneOf" => {
                    let mut wider = false;
                    let branches: Vec<Value> = value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| convert(s, &mut wider))
                        .collect();
                    // Widened branches may overlap: "exactly one" would refuse
                    // what the original accepted.
                    let key = if wider { "anyOf" } else { "oneOf" };
                    widened |= wider;
                    also.push(single(key, Value::Array(branches)));
                }
                "not" => {
                    let mut wider = false;
                    let negated = convert(value, &mut wider);
                    if wider {
                        widened = true;
                    } else {
                        out.insert(key.into(), negated);
                    }
                }
                "items" | "prefixItems" | "patternProperties" | "$ref" => {}
                _ if key.starts_with("x-") || KEPT.contains(&key) => {
                    out.insert(key.into(), value.clone());
                }
                // Not in 3.0 (`if`, `contains`, `dependentRequired`,
                // `unevaluatedProperties`…): without them the schema accepts more.
                "readOnly" | "writeOnly" | "$comment" | "contentEncoding" | "contentMediaType" => {}
                _ => widened = true,
            }
        }
        bounds(map, &mut out, "minimum", "exclusiveMinimum", |a, b| a >= b);
        bounds(map, &mut out, "maximum", "exclusiveMaximum", |a, b| a <= b);
        self.items(map, &mut out, &mut widened);
        self.pattern_properties(map, &mut out, &mut widened);
        if !also.is_empty() {
            let all = out.entry("allOf").or_insert_with(|| json!([]));
            if let Some(all) = all.as_array_mut() {
                all.extend(also);
            }
        }
        (Value::Object(out), widened)
    }

    /// `prefixItems` has no 3.0 form: `items` accepts what any position did.
    fn items(&self, map: &Map<String, Value>, out: &mut Map<String, Value>, widened: &mut bool) {
        let items = map.get("items");
        let Some(prefix) = map.get("prefixItems").and_then(Value::as_array) else {
            if let Some(items) = items {
                let (items, wider) = self.schema(items);
                *widened |= wider;
                out.insert("items".into(), items);
            }
            return;
        };
        *widened = true;
        let mut branches: Vec<Value> = prefix.iter().map(|s| self.schema(s).0).collect();
        match items {
            Some(Value::Bool(false)) => {
                let most = map
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .map_or(prefix.len() as u64, |m| m.min(prefix.len() as u64));
                out.insert("maxItems".into(), json!(most));
            }
            None | Some(Value::Bool(true)) => branches.push(json!({})),
            Some(schema) => branches.push(self.schema(schema).0),
        }
        let items = if branches.len() == 1 {
            branches.remove(0)
        } else {
            single("anyOf", Value::Array(branches))
        };
        out.insert("items".into(), items);
    }

    /// `patternProperties` has no 3.0 form: names it matched are let through
    /// `additionalProperties`.
    fn pattern_properties(
        &self,
        map: &Map<String, Value>,
        out: &mut Map<String, Value>,
        widened: &mut bool,
    ) {
        let Some(patterns) = map.get("patternProperties").and_then(Value::as_object) else {
            return;
        };
        *widened = true;
        let mut branches: Vec<Value> = patterns.values().map(|s| self.schema(s).0).collect();
        match map.get("additionalProperties") {
            None | Some(Value::Bool(true)) => return,
            Some(Value::Bool(false)) => {}
            Some(schema) => branches.push(self.schema(schema).0),
        }
        let additional = if branches.len() == 1 {
            branches.remove(0)
        } else {
            single("anyOf", Value::Array(branches))
        };
        out.insert("additionalProperties".into(), additional);
    }

    fn rename(&self, reference: &str) -> String {
        match reference
            .strip_prefix(COMPONENT_PREFIX)
            .and_then(|name| self.names.get(name))
        {
            Some(model) => format!("{COMPONENT_PREFIX}{model}"),
            None => reference.to_owned(),
        }
    }
}

/// `{key: value}`, without copying `value` as `json!` would.
fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.into(), value);
    Value::Object(map)
}

/// The 3.0 bound from a 3.1 inclusive and exclusive one: the tighter wins.
fn bounds(
    map: &Map<String, Value>,
    out: &mut Map<String, Value>,
    inclusive: &str,
    exclusive: &str,
    tighter: fn(f64, f64) -> bool,
) {
    let inclusive_value = map.get(inclusive).filter(|v| v.is_number());
    let exclusive_value = map.get(exclusive).filter(|v| v.is_number());
    match (inclusive_value, exclusive_value) {
        (Some(limit), Some(strict)) => {
            let (l, s) = (
                limit.as_f64().unwrap_or(0.0),
                strict.as_f64().unwrap_or(0.0),
            );
            if tighter(s, l) {
                out.insert(inclusive.into(), strict.clone());
                out.insert(exclusive.into(), json!(true));
            } else {
                out.insert(inclusive.into(), limit.clone());
            }
        }
        (None, Some(strict)) => {
            out.insert(inclusive.into(), strict.clone());
            out.insert(exclusive.into(), json!(true));
        }
        (Some(limit), None) => {
            out.insert(inclusive.into(), limit.clone());
        }
        (None, None) => {}
    }
}

/// Calls `f` on every object and array in `value`, depth first.
fn visit<'v>(value: &'v Value, f: &mut impl FnMut(&'v Value)) {
    f(value);
    match value {
        Value::Object(map) => map.values().for_each(|v| visit(v, f)),
        Value::Array(items) => items.iter().for_each(|v| visit(v, f)),
        _ => {}
    }
}

#[cfg(test)]
#[path = "aws_tests.rs"]
mod tests;
