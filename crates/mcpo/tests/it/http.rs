use mcpo_test_support::TestApp;
use serde_json::Value;

#[tokio::test]
async fn every_service_answers_health_and_readiness() {
    let app = TestApp::spawn().await;
    for base in [&app.registry_url, &app.executor_url, &app.publisher_url] {
        let health = app
            .http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let ready = app.http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{base}");
        assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    }
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_returned() {
    let app = TestApp::spawn().await;
    for base in [&app.registry_url, &app.executor_url, &app.publisher_url] {
        let given = app
            .http
            .get(format!("{base}/healthz"))
            .header("x-request-id", "req-42")
            .send()
            .await
            .unwrap();
        assert_eq!(given.headers()["x-request-id"], "req-42");
        let made = app
            .http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        // An id with spaces or control characters is replaced, not echoed.
        let odd = app
            .http
            .get(format!("{base}/healthz"))
            .header("x-request-id", "a b")
            .send()
            .await
            .unwrap();
        assert_ne!(odd.headers()["x-request-id"], "a b");
    }
}

#[tokio::test]
async fn the_request_id_reaches_the_mcp_server_in_meta() {
    let app = TestApp::spawn().await;
    let tools = mcpo_test_support::ToolsFile::new(&["request_meta"]);
    assert_eq!(
        app.register(&crate::stdio_fixture("fx", Some(&tools.path)))
            .await
            .status(),
        201
    );
    let url = format!("{}/tools/fx/request_meta", app.executor_url);

    let given = app
        .http
        .post(&url)
        .header("x-request-id", "trace-me-1")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), 200);
    let body: Value = given.json().await.unwrap();
    assert_eq!(body["meta"]["mcpo/requestId"], "trace-me-1", "{body:#}");

    let made = app.http.post(&url).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = made.json().await.unwrap();
    assert_eq!(body["meta"]["mcpo/requestId"], id.as_str());
}
