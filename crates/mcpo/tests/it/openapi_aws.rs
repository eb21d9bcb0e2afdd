//! The published documents of real servers, held to the specification:
//! `/openapi.json` as OpenAPI 3.1 and its API Gateway flavour
//! `/openapi.aws.json` as 3.0.1, both for the fixture (with a tool whose
//! schema uses `$defs` and recursive `$ref`s) and for server-everything,
//! every tool of which must appear with its full schema.

use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_test_support::openapi::validate_openapi_version;
use mcpo_test_support::{everything_stdio, TestApp, ToolsFile};
use serde_json::{json, Value};

const AUTHORIZER_URI: &str = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:mcpo-auth/invocations";

#[tokio::test]
async fn both_documents_of_the_fixture_and_server_everything_are_valid_and_complete() {
    let app = TestApp::spawn_with(|settings| {
        settings.apigateway_authorizer = Some(ApiGatewayAuthorizer {
            uri: AUTHORIZER_URI.into(),
            credentials: Some("arn:aws:iam::123456789012:role/apigateway-invokes-auth".into()),
            ttl: std::time::Duration::from_secs(120),
        });
    })
    .await;
    let tools = ToolsFile::new(&["echo", "add", "tree"]);
    assert_eq!(
        app.register(&crate::stdio_fixture("fx", Some(&tools.path)))
            .await
            .status(),
        201
    );
    let registered = app
        .register(&json!({ "name": "everything", "transport": everything_stdio() }))
        .await;
    assert_eq!(registered.status(), 201);
    let everything: Value = registered.json().await.unwrap();
    let stored = everything["tools"].as_array().unwrap().clone();
    assert!(stored.len() > 5, "{everything:#}");

    let doc = app
        .wait_for_openapi(|doc| {
            doc["paths"].get("/tools/fx/tree").is_some()
                && doc["paths"].get("/tools/everything/echo").is_some()
        })
        .await;
    validate_openapi_version(&doc, "3.1");

    // The fixture's `$defs` and recursive `$ref`s, as components.
    let tree = &doc["paths"]["/tools/fx/tree"]["post"];
    assert_eq!(
        tree["requestBody"]["content"]["application/json"]["schema"],
        json!({
            "type": "object",
            "properties": { "root": { "$ref": "#/components/schemas/fx_tree_node" } },
            "required": ["root"]
        })
    );
    let node = &doc["components"]["schemas"]["fx_tree_node"];
    assert_eq!(
        node["properties"]["children"]["items"],
        json!({ "$ref": "#/components/schemas/fx_tree_node" })
    );
    assert_eq!(
        node["properties"]["weight"]["type"],
        json!(["number", "null"])
    );
    assert_eq!(
        doc["components"]["schemas"]["fx_tree_depths"]["properties"]["children"]["items"],
        json!({ "$ref": "#/components/schemas/fx_tree_depths" })
    );
    assert_eq!(tree["summary"], "Tree");
    assert!(
        tree["description"]
            .as_str()
            .unwrap()
            .contains("read-only (does not modify its environment)"),
        "{tree:#}"
    );
    assert_eq!(tree["x-mcp-annotations"]["idempotentHint"], true);

    // Every tool of server-everything, with the schemas the registry stored
    // (they declare draft-07, which OpenAPI 3.1's dialect replaces).
    let without_dialect = |schema: &Value| {
        let mut schema = schema.clone();
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
        }
        schema
    };
    let everything_paths = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/tools/everything/"))
        .count();
    assert_eq!(everything_paths, stored.len());
    for tool in &stored {
        let path = tool["endpoint"]
            .as_str()
            .unwrap()
            .strip_prefix(&app.executor_url)
            .unwrap();
        let operation = &doc["paths"][path]["post"];
        assert_eq!(operation["x-mcp-tool"], tool["name"], "{path}");
        assert_eq!(
            operation["requestBody"]["content"]["application/json"]["schema"],
            without_dialect(&tool["input_schema"]),
            "{path}"
        );
        match tool.get("output_schema").filter(|s| !s.is_null()) {
            Some(output) => assert_eq!(
                operation["responses"]["200"]["content"]["application/json"]["schema"],
                without_dialect(output),
                "{path}"
            ),
            None => assert_eq!(
                operation["responses"]["200"]["content"]["application/json"]["schema"],
                json!({}),
                "{path}"
            ),
        }
    }

    // The API Gateway flavour of the same version.
    let response = app.publisher_get("/openapi.aws.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let aws: Value = response.json().await.unwrap();
    validate_openapi_version(&aws, "3.0");
    assert_eq!(aws["openapi"], "3.0.1");
    assert_eq!(aws["info"]["version"], doc["info"]["version"]);
    assert_eq!(
        aws["paths"].as_object().unwrap().keys().collect::<Vec<_>>(),
        doc["paths"].as_object().unwrap().keys().collect::<Vec<_>>()
    );
    for (path, item) in aws["paths"].as_object().unwrap() {
        let operation = &item["post"];
        let integration = &operation["x-amazon-apigateway-integration"];
        assert_eq!(integration["type"], "http_proxy", "{path}");
        assert_eq!(integration["uri"], format!("{}{path}", app.executor_url));
        assert_eq!(
            integration["requestParameters"]["integration.request.header.X-Request-Id"],
            "method.request.header.X-Request-Id"
        );
        assert_eq!(operation["security"], json!([{ "bearer": [] }]), "{path}");
    }
    let authorizer =
        &aws["components"]["securitySchemes"]["bearer"]["x-amazon-apigateway-authorizer"];
    assert_eq!(authorizer["authorizerUri"], AUTHORIZER_URI);
    assert_eq!(authorizer["authorizerResultTtlInSeconds"], 120);
    assert_eq!(aws["x-amazon-apigateway-request-validator"], "body");
    let aws_tree = &aws["paths"]["/tools/fx/tree"]["post"];
    assert_eq!(
        aws_tree["x-amazon-apigateway-request-validator"], "params",
        "`weight` may be null, which API Gateway's draft-4 models cannot say"
    );
    assert_eq!(
        aws["components"]["schemas"]["fxTreeNode"]["properties"]["weight"],
        json!({ "type": "number", "nullable": true })
    );
    assert!(
        aws["paths"]["/tools/everything/echo"]["post"]
            .get("x-amazon-apigateway-request-validator")
            .is_none(),
        "API Gateway checks echo's body itself"
    );

    let cached = app
        .http
        .get(format!("{}/openapi.aws.json", app.publisher_url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // The per-service documents hold to 3.1 too.
    for service in ["fx", "everything"] {
        let one: Value = app
            .publisher_get(&format!("/services/{service}/openapi.json"))
            .await
            .json()
            .await
            .unwrap();
        validate_openapi_version(&one, "3.1");
    }
}

#[tokio::test]
async fn the_api_gateway_document_needs_openapi_read() {
    let app = TestApp::spawn().await;
    let url = format!("{}/openapi.aws.json", app.publisher_url);
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let invoker = app
        .client_with(&["tools:invoke"])
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(invoker.status(), 403);
    let body: Value = invoker.json().await.unwrap();
    assert_eq!(body["details"]["required"], "openapi:read");
    let reader = app
        .client_with(&["openapi:read"])
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(reader.status(), 200);
    let doc: Value = reader.json().await.unwrap();
    // No authorizer configured: API Gateway passes `Authorization` through.
    assert_eq!(doc["paths"], json!({}));
    assert!(doc["components"]["securitySchemes"]["bearer"]
        .get("x-amazon-apigateway-authorizer")
        .is_none());
    validate_openapi_version(&doc, "3.0");
}
