//! Results beyond JSON text: raw bytes when the client asks for them, and
//! structured content held to the tool's output schema.

use mcpo_test_support::{TestApp, ToolsFile};
use serde_json::Value;

/// Registers the fixture over stdio as `name` with `tools`.
async fn register_with(app: &TestApp, name: &str, tools: &[&str]) -> ToolsFile {
    let tools = ToolsFile::new(tools);
    assert_eq!(
        app.register(&crate::stdio_fixture(name, Some(&tools.path)))
            .await
            .status(),
        201
    );
    tools
}

/// Calls `service`'s argument-less `tool`, sending `accept` when given.
async fn call_accepting(
    app: &TestApp,
    service: &str,
    tool: &str,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/tools/{service}/{tool}", app.executor_url));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    answer
}

#[tokio::test]
async fn an_image_comes_as_bytes_when_accept_names_its_type_and_as_json_otherwise() {
    let app = TestApp::spawn().await;
    let _tools = register_with(&app, "pics", &["echo", "image"]).await;

    let raw = call_accepting(&app, "pics", "image", Some("image/png")).await;
    assert_eq!(raw.headers()["content-type"], "image/png");
    let bytes = raw.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    let json: Value = call_accepting(&app, "pics", "image", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["type"], "image");
    assert_eq!(json["mimeType"], "image/png");
    assert_eq!(json["data"], mcpo_fixture::tools::PIXEL_PNG);
}

#[tokio::test]
async fn audio_comes_as_bytes_when_accept_names_it_and_resources_as_their_mcp_objects() {
    use mcpo_fixture::tools::{EMBEDDED_TEXT, EMBEDDED_URI, LINKED_URI, SILENCE_WAV};
    let app = TestApp::spawn().await;
    let _tools = register_with(&app, "media", &["audio", "resources"]).await;

    // `audio/*` names the clip's type.
    let raw = call_accepting(&app, "media", "audio", Some("audio/*")).await;
    assert_eq!(raw.headers()["content-type"], "audio/wav");
    let bytes = raw.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");

    // Accept naming another type, or `*/*`: the block as JSON.
    for accept in ["image/png", "*/*"] {
        let json: Value = call_accepting(&app, "media", "audio", Some(accept))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(json["type"], "audio", "{accept}: {json}");
        assert_eq!(json["mimeType"], "audio/wav");
        assert_eq!(json["data"], SILENCE_WAV);
    }

    // Two blocks: an array of their MCP objects, embedded resource first.
    let blocks: Value = call_accepting(&app, "media", "resources", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(blocks.as_array().map(Vec::len), Some(2), "{blocks}");
    assert_eq!(blocks[0]["type"], "resource");
    assert_eq!(blocks[0]["resource"]["uri"], EMBEDDED_URI);
    assert_eq!(blocks[0]["resource"]["text"], EMBEDDED_TEXT);
    assert_eq!(blocks[0]["resource"]["mimeType"], "text/plain");
    assert_eq!(blocks[1]["type"], "resource_link");
    assert_eq!(blocks[1]["uri"], LINKED_URI);
    assert_eq!(blocks[1]["name"], "report.pdf");
    assert_eq!(blocks[1]["mimeType"], "application/pdf");
}

#[tokio::test]
async fn structured_content_that_breaks_the_output_schema_is_a_bad_gateway() {
    let app = TestApp::spawn().await;
    let _tools = register_with(&app, "strict", &["add", "bad_output"]).await;
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

/// The events of a `text/event-stream` answer, as (name, data).
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            (
                field("event:"),
                serde_json::from_str(&field("data:")).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn progress_streams_as_server_sent_events_before_the_result() {
    let app = TestApp::spawn().await;
    let tools = ToolsFile::new(&["echo", "countdown"]);
    assert_eq!(
        app.register(&crate::stdio_fixture("steps", Some(&tools.path)))
            .await
            .status(),
        201
    );
    let stream = |body: Value| {
        app.http
            .post(format!("{}/tools/steps/countdown", app.executor_url))
            .header("accept", "text/event-stream")
            .json(&body)
            .send()
    };

    let answer = stream(serde_json::json!({ "steps": 3 })).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let seen = events(&answer.text().await.unwrap());
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["progress", "progress", "progress", "result"]);
    assert_eq!(
        seen[0].1,
        serde_json::json!({ "progress": 1.0, "total": 3.0, "message": "step 1 of 3" })
    );
    assert_eq!(seen[3].1, "counted 3");

    // An error once the call is under way is the last event, with its status.
    let refused = stream(serde_json::json!({ "steps": 0 })).await.unwrap();
    let seen = events(&refused.text().await.unwrap());
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "error");
    assert_eq!(seen[0].1["status"], 422);
    assert_eq!(seen[0].1["code"], "invalid_arguments");

    // Without the header, the same call answers plain JSON.
    let plain = app
        .call_tool("steps", "countdown", &serde_json::json!({ "steps": 2 }))
        .await;
    assert_eq!(plain.json::<Value>().await.unwrap(), "counted 2");
}
