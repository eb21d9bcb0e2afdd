//! A call that ends early, because the caller went away or the timeout
//! passed, is cancelled upstream too: the server is told, and stops.

use std::time::Duration;

use mcpo_test_support::{eventually, TestApp};
use serde_json::json;

use crate::MCPO;

/// The fixture over stdio, writing the name of every cancelled call to `file`.
fn recording_fixture(name: &str, file: &std::path::Path) -> serde_json::Value {
    json!({
        "name": name,
        "transport": {
            "type": "stdio",
            "command": MCPO,
            "args": ["fixture", "stdio", "--cancellations-file", file],
        }
    })
}

async fn cancelled_calls(file: &std::path::Path) -> Result<String, String> {
    match tokio::fs::read_to_string(file).await {
        Ok(text) if !text.is_empty() => Ok(text),
        other => Err(format!("{other:?}")),
    }
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_upstream_call() {
    let app = TestApp::spawn().await;
    let file = std::env::temp_dir().join(format!("mcpo-cancelled-{}", uuid::Uuid::new_v4()));
    assert_eq!(
        app.register(&recording_fixture("fx", &file)).await.status(),
        201
    );

    // The client gives up long before the tool would answer.
    let gave_up = app
        .http
        .post(format!("{}/tools/fx/slow", app.executor_url))
        .json(&json!({ "ms": 600_000 }))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));

    let cancelled = eventually("the server hears of the cancellation", async || {
        cancelled_calls(&file).await
    })
    .await;
    assert_eq!(cancelled.trim(), "slow");
    // The session is still good for the next caller.
    let answer = app
        .call_tool("fx", "echo", &json!({ "message": "hi" }))
        .await;
    assert_eq!(answer.status(), 200);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_call_past_its_timeout_answers_504_and_is_cancelled_upstream() {
    let app = TestApp::spawn_with(|settings| {
        settings.tool_call_timeout = Duration::from_secs(1);
    })
    .await;
    let file = std::env::temp_dir().join(format!("mcpo-cancelled-{}", uuid::Uuid::new_v4()));
    assert_eq!(
        app.register(&recording_fixture("fx", &file)).await.status(),
        201
    );

    let answer = app.call_tool("fx", "slow", &json!({ "ms": 600_000 })).await;
    assert_eq!(answer.status(), 504);
    let cancelled = eventually("the server hears of the cancellation", async || {
        cancelled_calls(&file).await
    })
    .await;
    assert_eq!(cancelled.trim(), "slow");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_service_can_have_a_call_timeout_of_its_own() {
    let app = TestApp::spawn().await;
    let file = std::env::temp_dir().join(format!("mcpo-cancelled-{}", uuid::Uuid::new_v4()));
    let mut quick = recording_fixture("quick", &file);
    quick["call_timeout_secs"] = json!(1);
    let registered: serde_json::Value = app.register(&quick).await.json().await.unwrap();
    assert_eq!(registered["call_timeout_secs"], 1);

    // The default here is 20 s; this service gives up after 1.
    let answer = app
        .call_tool("quick", "slow", &json!({ "ms": 600_000 }))
        .await;
    assert_eq!(answer.status(), 504);
    // The answer names the timeout that fired: the service's, not the default.
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "upstream_timeout");
    assert_eq!(
        body["message"], "the MCP server did not answer within 1s",
        "{body}"
    );
    eventually("the server hears of the cancellation", async || {
        cancelled_calls(&file).await
    })
    .await;

    // Out of range is refused, naming the field; `null` goes back to the default.
    let patch = |body: serde_json::Value| {
        app.http
            .patch(format!("{}/api/v1/mcpo/services/quick", app.registry_url))
            .json(&body)
            .send()
    };
    let refused = patch(json!({ "call_timeout_secs": 0 })).await.unwrap();
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["details"]["field"], "call_timeout_secs");
    let cleared: serde_json::Value = patch(json!({ "call_timeout_secs": null }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["call_timeout_secs"], serde_json::Value::Null);
    assert_eq!(cleared["revision"], 2);
    let _ = std::fs::remove_file(&file);
}
