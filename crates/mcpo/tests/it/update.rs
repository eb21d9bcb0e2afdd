//! `PATCH /api/v1/mcpo/services/{name}`: settings, transport and the enabled
//! flag, with optimistic concurrency through `ETag` / `If-Match`.

use mcpo_test_support::{closed_port, eventually, FixtureHttp, TestApp, ToolsFile};
use serde_json::{json, Value};

use crate::stdio_fixture;

async fn patch(
    app: &TestApp,
    name: &str,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app
        .http
        .patch(format!("{}/api/v1/mcpo/services/{name}", app.registry_url))
        .json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_overwrites_nothing() {
    let app = TestApp::spawn().await;
    let registered = app.register(&stdio_fixture("fx", None)).await;
    assert_eq!(registered.headers()["etag"], "\"1\"");
    let got = app.registry_get("/api/v1/mcpo/services/fx").await;
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"1\"");

    let first = patch(&app, "fx", Some(&etag), &json!({ "description": "first" })).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["etag"], "\"2\"");
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["description"], "first");
    assert_eq!(body["revision"], 2);

    // A second writer still holding revision 1 is told, not silently applied.
    let stale = patch(&app, "fx", Some(&etag), &json!({ "description": "second" })).await;
    assert_eq!(stale.status(), 412);
    let error: Value = stale.json().await.unwrap();
    assert_eq!(error["code"], "precondition_failed");
    assert_eq!(error["details"]["revision"], 2);
    let now: Value = app
        .registry_get("/api/v1/mcpo/services/fx")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["description"], "first");

    // `*` and weak tags match; null clears; an empty patch changes nothing.
    let cleared = patch(&app, "fx", Some("W/\"2\""), &json!({ "description": null })).await;
    assert_eq!(
        cleared.json::<Value>().await.unwrap()["description"],
        Value::Null
    );
    let same = patch(&app, "fx", Some("*"), &json!({})).await;
    assert_eq!(same.json::<Value>().await.unwrap()["revision"], 3);
}

#[tokio::test]
async fn disabling_stops_calls_and_enabling_brings_them_back() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let args = json!({ "message": "x" });
    assert_eq!(app.call_tool("fx", "echo", &args).await.status(), 200);

    let disabled = patch(&app, "fx", None, &json!({ "enabled": false })).await;
    assert_eq!(
        disabled.json::<Value>().await.unwrap()["status"],
        "disabled"
    );
    let refused = app
        .wait_for_call_error("fx", "echo", &args, "service_disabled")
        .await;
    assert!(refused["message"].as_str().unwrap().contains("disabled"));
    assert_eq!(app.call_tool("fx", "echo", &args).await.status(), 503);

    let enabled = patch(&app, "fx", None, &json!({ "enabled": true })).await;
    assert_eq!(enabled.json::<Value>().await.unwrap()["status"], "active");
    eventually("calls work again", async || {
        let status = app.call_tool("fx", "echo", &args).await.status();
        if status == 200 {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_transport_is_discovered_before_it_is_stored() {
    let app = TestApp::spawn().await;
    let tools_file = ToolsFile::new(&["echo"]);
    assert_eq!(
        app.register(&stdio_fixture("fx", Some(&tools_file.path)))
            .await
            .status(),
        201
    );

    // Unreachable: 502, and the service is as it was.
    let port = closed_port();
    let dead = json!({ "transport": { "type": "streamable_http", "url": format!("http://127.0.0.1:{port}/mcp") } });
    let refused = patch(&app, "fx", None, &dead).await;
    assert_eq!(refused.status(), 502);
    let unchanged: Value = app
        .registry_get("/api/v1/mcpo/services/fx")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["transport"]["type"], "stdio");
    assert_eq!(unchanged["revision"], 1);

    // Reachable: the transport and its tools are stored together.
    let fixture = FixtureHttp::start(None).await;
    let moved = patch(
        &app,
        "fx",
        Some("\"1\""),
        &json!({ "transport": fixture.transport() }),
    )
    .await;
    assert_eq!(moved.status(), 200);
    let service: Value = moved.json().await.unwrap();
    assert_eq!(service["transport"]["type"], "streamable_http");
    assert_eq!(service["revision"], 2);
    assert_eq!(service["tools"].as_array().unwrap().len(), 4);

    // The executor follows: `add` exists now and goes over HTTP.
    eventually("`add` answers over HTTP", async || {
        let answer: Value = app
            .call_tool("fx", "add", &json!({ "a": 1, "b": 1 }))
            .await
            .json()
            .await
            .unwrap();
        if answer == json!({ "sum": 2.0 }) {
            Ok(())
        } else {
            Err(answer)
        }
    })
    .await;
}

#[tokio::test]
async fn bad_patches_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let unknown = patch(&app, "fx", None, &json!({ "name": "renamed" })).await;
    assert_eq!(unknown.status(), 422);
    assert!(unknown.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("name"));
    let bad_url = patch(
        &app,
        "fx",
        None,
        &json!({ "transport": { "type": "streamable_http", "url": "file:///etc/passwd" } }),
    )
    .await;
    assert_eq!(bad_url.status(), 422);
    assert_eq!(
        bad_url.json::<Value>().await.unwrap()["details"]["field"],
        "transport.url"
    );
    let long = patch(
        &app,
        "fx",
        None,
        &json!({ "description": "x".repeat(5000) }),
    )
    .await;
    assert_eq!(
        long.json::<Value>().await.unwrap()["details"]["field"],
        "description"
    );
    let ghost = patch(&app, "ghost", None, &json!({ "enabled": false })).await;
    assert_eq!(ghost.status(), 404);
    let unchanged: Value = app
        .registry_get("/api/v1/mcpo/services/fx")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["revision"], 1);
}
