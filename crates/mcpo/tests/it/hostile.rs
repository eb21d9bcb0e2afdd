//! Servers that break the protocol: MCPO answers with a clear error in
//! bounded time, stores nothing it should not, and other services go on.

use std::time::Duration;

use mcpo_test_support::TestApp;
use serde_json::{json, Value};

/// A stdio MCP server in Python that initializes and lists one tool
/// properly, then answers every tool call with a line that is not JSON.
const GARBLING_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    method, ident = message.get("method"), message.get("id")
    if ident is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"],
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": "garbler", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        sys.stdout.write('{"jsonrpc": "2.0", "id": ' + json.dumps(ident) + ', "result": {oops\n')
        sys.stdout.flush()
        continue
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": ident, "result": result}) + "\n")
    sys.stdout.flush()
"#;

#[tokio::test]
async fn a_server_that_answers_calls_with_malformed_json_gets_a_clear_error_in_bounded_time() {
    let app = TestApp::spawn_with(|settings| {
        settings.tool_call_timeout = Duration::from_secs(2);
    })
    .await;
    let script = std::env::temp_dir().join(format!("mcpo-garbler-{}.py", uuid::Uuid::new_v4()));
    std::fs::write(&script, GARBLING_SERVER).unwrap();
    let registered = app
        .register(&json!({
            "name": "garbler",
            "transport": { "type": "stdio", "command": "python3", "args": [script] }
        }))
        .await;
    assert_eq!(registered.status(), 201);
    assert_eq!(
        app.register(&crate::stdio_fixture("fine", None))
            .await
            .status(),
        201
    );

    for _ in 0..3 {
        let answer = app.call_tool("garbler", "echo", &json!({})).await;
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap();
        // Unparseable: either the session breaks (502) or the answer never
        // comes (504); never a 500, never a hang.
        assert!([502, 504].contains(&status), "{status} {body}");
        assert!(
            [
                "upstream_protocol_error",
                "upstream_unreachable",
                "upstream_timeout"
            ]
            .contains(&body["code"].as_str().unwrap()),
            "{body}"
        );
        let fine = app
            .call_tool("fine", "echo", &json!({ "message": "hi" }))
            .await;
        assert_eq!(fine.status(), 200);
    }
    let _ = std::fs::remove_file(&script);
}

#[tokio::test]
async fn a_server_that_speaks_no_json_at_all_is_refused_at_registration() {
    let app = TestApp::spawn_with(|settings| {
        settings.mcp_connect_timeout = Duration::from_secs(3);
    })
    .await;
    let answer = app
        .register(&json!({
            "name": "noise",
            "transport": {
                "type": "stdio",
                "command": "/bin/sh",
                "args": ["-c", "while read line; do echo 'this is not json'; done"]
            }
        }))
        .await;
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    assert!([502, 504].contains(&status), "{status} {body}");
    assert_eq!(
        app.registry_get("/api/v1/mcpo/services/noise")
            .await
            .status(),
        404
    );
}
