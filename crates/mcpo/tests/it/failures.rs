//! Registrations that must fail cleanly: the right status and code, and
//! nothing stored.

use mcpo_test_support::{closed_port, TestApp};
use serde_json::{json, Value};

use crate::stdio_fixture;

async fn assert_nothing_stored(app: &TestApp) {
    let listed: Value = app
        .registry_get("/api/v1/mcpo/services")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["services"], json!([]));
}

async fn expect(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body:#}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

#[tokio::test]
async fn unreachable_url_is_a_bad_gateway_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let port = closed_port();
    let body = json!({ "name": "down", "transport": { "type": "streamable_http", "url": format!("http://127.0.0.1:{port}/mcp") } });
    expect(app.register(&body).await, 502, "upstream_unreachable").await;
    // A token in the query string stays out of the answer.
    let with_token = json!({ "name": "down", "transport": { "type": "streamable_http", "url": format!("http://127.0.0.1:{port}/mcp?token=s3cret") } });
    let answer = expect(app.register(&with_token).await, 502, "upstream_unreachable").await;
    assert!(!answer.to_string().contains("s3cret"), "{answer}");
    let userinfo = json!({ "name": "down", "transport": { "type": "streamable_http", "url": format!("http://me:s3cret@127.0.0.1:{port}/mcp") } });
    let refused = expect(app.register(&userinfo).await, 422, "invalid_request").await;
    assert!(!refused.to_string().contains("s3cret"), "{refused}");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn commands_that_fail_are_bad_gateways_and_store_nothing() {
    let app = TestApp::spawn().await;
    let exits_at_once = json!({ "name": "exits", "transport": { "type": "stdio", "command": "sh", "args": ["-c", "exit 3"] } });
    expect(
        app.register(&exits_at_once).await,
        502,
        "upstream_unreachable",
    )
    .await;
    let missing = json!({ "name": "missing", "transport": { "type": "stdio", "command": "/nonexistent/mcp-server" } });
    let body = expect(app.register(&missing).await, 502, "upstream_unreachable").await;
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/mcp-server"));
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_command_that_never_speaks_mcp_times_out_and_stores_nothing() {
    let app = TestApp::spawn_with(|settings| {
        settings.mcp_connect_timeout = std::time::Duration::from_secs(2)
    })
    .await;
    let not_mcp = json!({ "name": "notmcp", "transport": { "type": "stdio", "command": "sh", "args": ["-c", "echo hello; sleep 30"] } });
    expect(app.register(&not_mcp).await, 504, "upstream_timeout").await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn duplicate_name_is_a_conflict() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    expect(
        app.register(&stdio_fixture("fx", None)).await,
        409,
        "service_name_taken",
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_name_what_is_wrong() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/v1/mcpo/services", app.registry_url);
    let post_raw = |body: &'static str| {
        app.http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    expect(post_raw("{\"name\": ").await.unwrap(), 400, "invalid_json").await;

    let missing = expect(
        post_raw("{\"name\": \"x\"}").await.unwrap(),
        422,
        "invalid_request",
    )
    .await;
    assert!(
        missing["message"].as_str().unwrap().contains("transport"),
        "{missing}"
    );

    let unknown = json!({ "name": "x", "transport": { "type": "stdio", "command": "true" }, "colour": "red" });
    let body = expect(app.register(&unknown).await, 422, "invalid_request").await;
    assert!(body["message"].as_str().unwrap().contains("colour"));

    let bad_type = json!({ "name": "x", "transport": { "type": "carrier_pigeon" } });
    expect(app.register(&bad_type).await, 422, "invalid_request").await;

    let bad_name =
        json!({ "name": "Not A Slug", "transport": { "type": "stdio", "command": "true" } });
    let body = expect(app.register(&bad_name).await, 422, "invalid_request").await;
    assert_eq!(body["details"]["field"], "name");

    let empty_command = json!({ "name": "x", "transport": { "type": "stdio", "command": " " } });
    let body = expect(app.register(&empty_command).await, 422, "invalid_request").await;
    assert_eq!(body["details"]["field"], "transport.command");

    let ftp = json!({ "name": "x", "transport": { "type": "streamable_http", "url": "ftp://example.com/mcp" } });
    let body = expect(app.register(&ftp).await, 422, "invalid_request").await;
    assert_eq!(body["details"]["field"], "transport.url");

    let not_json_type = app.http.post(&url).body("{}").send().await.unwrap();
    expect(not_json_type, 400, "invalid_json").await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn unknown_services_and_routes_are_json_404s() {
    let app = TestApp::spawn().await;
    expect(
        app.registry_get("/api/v1/mcpo/services/ghost").await,
        404,
        "service_not_found",
    )
    .await;
    expect(
        app.registry_get("/api/v1/mcpo/services/ghost/tools").await,
        404,
        "service_not_found",
    )
    .await;
    let refresh = app
        .http
        .post(format!(
            "{}/api/v1/mcpo/services/ghost/refresh",
            app.registry_url
        ))
        .send()
        .await
        .unwrap();
    expect(refresh, 404, "service_not_found").await;
    expect(app.registry_get("/no/such/route").await, 404, "not_found").await;
}

/// Postgres refuses NUL in text; names that can never be registered must be a
/// 404 before they get that far, not a 500.
#[tokio::test]
async fn names_with_nul_or_junk_are_not_found_not_server_errors() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/mcpo/services/a%00b",
        "/api/v1/mcpo/services/%00/tools",
        "/api/v1/mcpo/services/UPPER",
    ] {
        expect(app.registry_get(path).await, 404, "service_not_found").await;
    }
    let deleted = app
        .http
        .delete(format!("{}/api/v1/mcpo/services/a%00b", app.registry_url))
        .send()
        .await
        .unwrap();
    expect(deleted, 404, "service_not_found").await;
    let call = app
        .http
        .post(format!("{}/tools/a%00b/echo", app.executor_url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect(call, 404, "service_not_found").await;
    let nul_description = json!({ "name": "x", "description": "a\u{0}b", "transport": { "type": "stdio", "command": "true" } });
    let body = expect(app.register(&nul_description).await, 422, "invalid_request").await;
    assert_eq!(body["details"]["field"], "description");
    let nul_env = json!({ "name": "x", "transport": { "type": "stdio", "command": "true", "env": { "K": "a\u{0}" } } });
    let body = expect(app.register(&nul_env).await, 422, "invalid_request").await;
    assert_eq!(body["details"]["field"], "transport.env.K");
    let search = app.registry_get("/api/v1/mcpo/services?q=a%00b").await;
    let body = expect(search, 422, "invalid_request").await;
    assert_eq!(body["details"]["field"], "q");
}
