//! Backpressure: calls beyond a service's, a caller's or the executor's
//! bounds are refused at once, and a service that is full or dead does not
//! slow the others.

use mcpo_test_support::TestApp;
use serde_json::{json, Value};

/// Starts `limit + 1` calls of `slow` that outlast the test; `limit` of them
/// get in and stay, so the one that answers is the refused one, and once it
/// has, the places are known to be full. Returns its status and body.
async fn fill(client: &reqwest::Client, url: String, limit: usize) -> (u16, Value) {
    let calls: Vec<_> = (0..=limit)
        .map(|_| {
            let request = client.post(&url).json(&json!({ "ms": 600_000 }));
            tokio::spawn(async move {
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                (status, answer.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (first, _, running) = futures::future::select_all(calls).await;
    // Dropping a handle detaches its call, which keeps its place.
    drop(running);
    first.unwrap()
}

#[tokio::test]
async fn a_full_service_answers_503_at_once_while_others_answer() {
    let app = TestApp::spawn_with(|settings| {
        settings.call_limits.per_service = 2;
        settings.call_limits.per_service_queue = 0;
    })
    .await;
    for name in ["busy", "calm"] {
        assert_eq!(
            app.register(&crate::stdio_fixture(name, None))
                .await
                .status(),
            201
        );
    }
    let (status, refused) = fill(
        &app.http,
        format!("{}/tools/busy/slow", app.executor_url),
        2,
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["code"], "overloaded", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("busy"));

    // Both places stay taken: the next call is refused at once too.
    let answer = app
        .call_tool("busy", "echo", &json!({ "message": "hi" }))
        .await;
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");

    // The other service is not affected.
    for _ in 0..5 {
        let answer = app
            .call_tool("calm", "echo", &json!({ "message": "hi" }))
            .await;
        assert_eq!(answer.status(), 200);
    }
}

#[tokio::test]
async fn one_caller_cannot_take_every_place() {
    let app = TestApp::spawn_with(|settings| {
        settings.call_limits.per_caller = 2;
    })
    .await;
    assert_eq!(
        app.register(&crate::stdio_fixture("fx", None))
            .await
            .status(),
        201
    );
    let greedy = app.client_with(&["tools:invoke"]);
    let (status, refused) = fill(&greedy, format!("{}/tools/fx/slow", app.executor_url), 2).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["code"], "too_many_requests", "{refused}");
    let again = greedy
        .post(format!("{}/tools/fx/echo", app.executor_url))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 429);

    // Another caller (another token subject) still gets through.
    let answer = app
        .call_tool("fx", "echo", &json!({ "message": "hi" }))
        .await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn a_flood_on_a_dead_service_does_not_touch_a_live_one() {
    let app = TestApp::spawn().await;
    let fixture = mcpo_test_support::FixtureHttp::start(None).await;
    assert_eq!(
        app.register(&json!({ "name": "doomed", "transport": fixture.transport() }))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.register(&crate::stdio_fixture("alive", None))
            .await
            .status(),
        201
    );
    drop(fixture);

    let flood: Vec<_> = (0..64)
        .map(|_| {
            let request = app
                .http
                .post(format!("{}/tools/doomed/echo", app.executor_url))
                .json(&json!({ "message": "hi" }));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for _ in 0..10 {
        let answer = app
            .call_tool("alive", "echo", &json!({ "message": "hi" }))
            .await;
        assert_eq!(answer.status(), 200);
    }
    for call in flood {
        let status = call.await.unwrap().unwrap();
        // Unreachable, or refused fast by the circuit breaker: never a 2xx or a 500.
        assert!([502, 503].contains(&status), "{status}");
    }
}
