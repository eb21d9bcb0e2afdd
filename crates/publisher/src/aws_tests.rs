use std::time::Duration;

use serde_json::json;

use super::*;

fn document(input: Value) -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "MCPO tools", "version": "7", "summary": "3.1 only" },
        "servers": [{ "url": "https://tools.example.com/" }],
        "tags": [{ "name": "fx" }],
        "paths": {
            "/tools/fx/tree": { "post": {
                "operationId": "fx__tree",
                "requestBody": { "required": true, "content": { "application/json": { "schema": input } } },
                "responses": {
                    "200": { "description": "ok", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/fx_tree_Output" } } } },
                    "422": { "$ref": "#/components/responses/InvalidArguments" }
                },
                "security": [{ "bearer": ["tools:invoke:fx"] }, { "api_key": ["tools:invoke:fx"] }]
            } }
        },
        "components": {
            "schemas": {
                "Error": { "type": "object", "properties": { "code": { "type": "string", "examples": ["a", "b"] } } },
                "fx_tree_Output": { "type": ["object", "null"], "properties": { "next": { "$ref": "#/components/schemas/fx_tree_Output" } } },
                "fx_tree_Node": { "type": "object", "properties": { "label": { "type": "string" } } }
            },
            "responses": {
                "InvalidArguments": { "description": "no", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            },
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" }, "api_key": { "type": "apiKey", "in": "header", "name": "x-api-key" } }
        }
    })
}

fn authorizer() -> ApiGatewayAuthorizer {
    ApiGatewayAuthorizer {
        uri: "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:1:function:auth/invocations".into(),
        credentials: Some("arn:aws:iam::1:role/invoke-auth".into()),
        ttl: Duration::from_secs(60),
    }
}

fn converted(schema: Value) -> Value {
    let converter = Converter {
        names: &HashMap::new(),
    };
    converter.schema(&schema).0
}

#[test]
fn schemas_say_in_3_0_what_they_said_in_3_1() {
    assert_eq!(
        converted(json!({ "type": ["string", "null"], "minLength": 1 })),
        json!({ "type": "string", "nullable": true, "minLength": 1 })
    );
    assert_eq!(
        converted(json!({ "type": ["string", "integer", "null"] })),
        json!({ "allOf": [{ "anyOf": [{ "type": "string", "nullable": true }, { "type": "integer", "nullable": true }] }] })
    );
    assert_eq!(
        converted(json!({ "type": "null" })),
        json!({ "nullable": true, "allOf": [{ "enum": [null] }] })
    );
    assert_eq!(converted(json!({ "const": "x" })), json!({ "enum": ["x"] }));
    assert_eq!(
        converted(json!({ "const": "x", "enum": ["x", "y"] })),
        json!({ "enum": ["x", "y"], "allOf": [{ "enum": ["x"] }] })
    );
    assert_eq!(
        converted(json!({ "type": "string", "examples": ["a", "b"] })),
        json!({ "type": "string", "example": "a" })
    );
    assert_eq!(
        converted(json!({ "exclusiveMinimum": 0, "maximum": 10, "exclusiveMaximum": 12 })),
        json!({ "minimum": 0, "exclusiveMinimum": true, "maximum": 10 })
    );
    assert_eq!(
        converted(json!({ "minimum": 5, "exclusiveMinimum": 0 })),
        json!({ "minimum": 5 })
    );
    assert_eq!(
        converted(
            json!({ "properties": { "a": true, "b": false }, "additionalProperties": false, "required": [] })
        ),
        json!({ "properties": { "a": {}, "b": { "not": {} } }, "additionalProperties": false })
    );
    assert_eq!(
        converted(json!({ "$ref": "#/components/schemas/X", "description": "d" })),
        json!({ "description": "d", "allOf": [{ "$ref": "#/components/schemas/X" }] })
    );
    assert_eq!(
        converted(
            json!({ "type": "integer", "format": "int64", "readOnly": true, "$comment": "c" })
        ),
        json!({ "type": "integer" })
    );
}

#[test]
fn what_3_0_cannot_say_is_widened_never_narrowed() {
    assert_eq!(
        converted(
            json!({ "type": "array", "prefixItems": [{ "type": "string" }, { "type": "integer" }], "items": false })
        ),
        json!({ "type": "array", "items": { "anyOf": [{ "type": "string" }, { "type": "integer" }] }, "maxItems": 2 })
    );
    assert_eq!(
        converted(
            json!({ "patternProperties": { "^x-": { "type": "string" } }, "additionalProperties": false })
        ),
        json!({ "additionalProperties": { "type": "string" } })
    );
    // Widened branches may overlap, so "exactly one" becomes "any".
    assert_eq!(
        converted(
            json!({ "oneOf": [{ "type": "object", "if": { "required": ["a"] } }, { "type": "string" }] })
        ),
        json!({ "allOf": [{ "anyOf": [{ "type": "object" }, { "type": "string" }] }] })
    );
    assert_eq!(
        converted(json!({ "oneOf": [{ "type": "object" }, { "type": "string" }] })),
        json!({ "allOf": [{ "oneOf": [{ "type": "object" }, { "type": "string" }] }] })
    );
    // Refusing what a widened schema accepts would refuse too much.
    assert_eq!(
        converted(json!({ "type": "object", "not": { "contains": { "const": 1 } } })),
        json!({ "type": "object" })
    );
    assert_eq!(
        converted(json!({ "not": { "type": "string" } })),
        json!({ "not": { "type": "string" } })
    );
}

#[test]
fn operations_proxy_to_the_executor_and_api_gateway_validates() {
    let doc = convert(
        &document(json!({ "$ref": "#/components/schemas/fx_tree_Node" })),
        None,
    );
    assert_eq!(doc["openapi"], "3.0.1");
    assert_eq!(
        doc["info"],
        json!({ "title": "MCPO tools", "version": "7" })
    );
    assert!(
        doc.get("servers").is_none(),
        "callers use API Gateway's URL"
    );
    assert_eq!(doc["tags"], json!([{ "name": "fx" }]));
    let operation = &doc["paths"]["/tools/fx/tree"]["post"];
    assert_eq!(
        operation["x-amazon-apigateway-integration"],
        json!({
            "type": "http_proxy",
            "httpMethod": "POST",
            "uri": "https://tools.example.com/tools/fx/tree",
            "passthroughBehavior": "when_no_match",
            "requestParameters": {
                "integration.request.header.X-Request-Id": "method.request.header.X-Request-Id",
                "integration.request.header.Authorization": "method.request.header.Authorization"
            }
        })
    );
    let headers: Vec<&str> = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(headers, ["X-Request-Id", "Authorization"]);
    assert_eq!(doc["x-amazon-apigateway-request-validator"], "body");
    assert_eq!(
        doc["x-amazon-apigateway-request-validators"]["body"],
        json!({ "validateRequestBody": true, "validateRequestParameters": true })
    );
    assert_eq!(
        operation["responses"]["422"],
        json!({ "description": "no", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        "shared responses are inline for API Gateway"
    );
    assert!(doc["components"].get("responses").is_none());
    assert!(
        operation
            .get("x-amazon-apigateway-request-validator")
            .is_none(),
        "the body validator applies"
    );
    assert_eq!(
        operation["requestBody"]["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/fxTreeNode" })
    );
    let models: Vec<&String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(models, ["Error", "fxTreeNode", "fxTreeOutput"]);
    assert_eq!(
        doc["components"]["schemas"]["fxTreeOutput"]["properties"]["next"],
        json!({ "$ref": "#/components/schemas/fxTreeOutput" })
    );
    assert_eq!(
        doc["components"]["schemas"]["Error"]["properties"]["code"],
        json!({ "type": "string", "example": "a" })
    );
    // Without an authorizer API Gateway enforces nothing: the executor checks.
    assert!(operation.get("security").is_none());
    assert_eq!(
        doc["components"]["securitySchemes"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["bearer"]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"]
        .get("x-amazon-apigateway-authorizer")
        .is_none());
    assert_eq!(
        doc["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"],
        json!({
            "statusCode": 422,
            "responseTemplates": { "application/json": "{\"code\":\"invalid_arguments\",\"message\":$context.error.messageString}" }
        })
    );
}

#[test]
fn an_authorizer_guards_every_operation() {
    let doc = convert(&document(json!({ "type": "object" })), Some(&authorizer()));
    assert_eq!(
        doc["paths"]["/tools/fx/tree"]["post"]["security"],
        json!([{ "bearer": [] }])
    );
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["name"], "Authorization");
    assert_eq!(scheme["x-amazon-apigateway-authtype"], "custom");
    assert_eq!(
        scheme["x-amazon-apigateway-authorizer"],
        json!({
            "type": "token",
            "authorizerUri": authorizer().uri,
            "authorizerCredentials": "arn:aws:iam::1:role/invoke-auth",
            "authorizerResultTtlInSeconds": 60,
            "identitySource": "method.request.header.Authorization"
        })
    );
}

#[test]
fn nullable_request_bodies_are_left_to_the_executor() {
    // Directly, and through a model.
    for input in [
        json!({ "type": "object", "properties": { "a": { "type": ["string", "null"] } } }),
        json!({ "type": "object", "properties": { "next": { "$ref": "#/components/schemas/fx_tree_Output" } } }),
    ] {
        let doc = convert(&document(input), None);
        assert_eq!(
            doc["paths"]["/tools/fx/tree"]["post"]["x-amazon-apigateway-request-validator"],
            "params"
        );
    }
}

#[test]
fn model_names_are_alphanumeric_and_distinct() {
    let schemas: Map<String, Value> = [
        "fx_tree_Node",
        "fx-tree-Node",
        "fxTreeNode",
        "_",
        "service-0001_tool_3_filter",
    ]
    .into_iter()
    .map(|n| (n.to_owned(), json!({})))
    .collect();
    let names = model_names(schemas.keys().map(String::as_str));
    assert_eq!(
        names["service-0001_tool_3_filter"],
        "service0001Tool3Filter"
    );
    assert_eq!(names["_"], "Schema");
    let mut tree: Vec<&str> = ["fx-tree-Node", "fx_tree_Node", "fxTreeNode"]
        .iter()
        .map(|n| names[*n].as_str())
        .collect();
    tree.sort();
    assert_eq!(tree, ["fxTreeNode", "fxTreeNode2", "fxTreeNode3"]);
}
