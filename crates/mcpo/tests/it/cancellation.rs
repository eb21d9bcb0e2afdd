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
