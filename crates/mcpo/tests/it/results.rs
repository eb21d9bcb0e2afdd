//! Results beyond JSON text: raw bytes when the client asks for them, and
//! structured content held to the tool's output schema.

use mcpo_test_support::{TestApp, ToolsFile};
use serde_json::Value;

#[tokio::test]
async fn an_image_comes_as_bytes_when_accept_names_its_type_and_as_json_otherwise() {
    let app = TestApp::spawn().await;
    let tools = ToolsFile::new(&["echo", "image"]);
    assert_eq!(
        app.register(&crate::stdio_fixture("pics", Some(&tools.path)))
            .await
            .status(),
        201
    );
    let url = format!("{}/tools/pics/image", app.executor_url);

    let raw = app
        .http
        .post(&url)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "image/png");
    let bytes = raw.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    let json: Value = app
        .http
        .post(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["type"], "image");
    assert_eq!(json["mimeType"], "image/png");
    assert_eq!(json["data"], mcpo_fixture::tools::PIXEL_PNG);
}

#[tokio::test]
async fn structured_content_that_breaks_the_output_schema_is_a_bad_gateway() {
    let app = TestApp::spawn().await;
    let tools = ToolsFile::new(&["add", "bad_output"]);
    assert_eq!(
        app.register(&crate::stdio_fixture("strict", Some(&tools.path)))
            .await
            .status(),
        201
    );
    let answer = app
        .call_tool("strict", "bad_output", &serde_json::json!({}))
        .await;
    assert_eq!(answer.status(), 502);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "upstream_protocol_error", "{body}");
    assert_eq!(body["details"]["errors"][0]["pointer"], "/sum");
    // A tool that keeps to its schema answers as before.
    let sum = app
        .call_tool("strict", "add", &serde_json::json!({ "a": 1, "b": 2 }))
        .await;
    assert_eq!(
        sum.json::<Value>().await.unwrap(),
        serde_json::json!({ "sum": 3.0 })
    );
}
