//! A client generated from the published document by a standard generator
//! (PyPI's `openapi-python-client`) calls the tools through the executor.

use mcpo_test_support::{everything_stdio, GeneratedClient, TestApp};
use serde_json::json;

use crate::stdio_fixture;

#[tokio::test]
async fn a_generated_python_client_calls_the_tools() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let everything = json!({ "name": "everything", "transport": everything_stdio() });
    assert_eq!(app.register(&everything).await.status(), 201);
    let doc = app
        .wait_for_openapi(|doc| {
            doc["paths"].get("/tools/fx/add").is_some()
                && doc["paths"].get("/tools/everything/echo").is_some()
        })
        .await;

    let client = GeneratedClient::generate(&doc);
    let token = app.token(&["tools:invoke"]);
    let script = format!(
        r#"
from client import AuthenticatedClient
from client.api.fx import fx_add, fx_echo
from client.api.everything import everything_echo
from client.models import EverythingEchoBody, FxAddBody, FxEchoBody, Error

api = AuthenticatedClient(base_url={base:?}, token={token:?})
added = fx_add.sync(client=api, body=FxAddBody(a=2, b=3))
print("sum", added.sum_)  # `sum` is a Python builtin
echoed = fx_echo.sync_detailed(client=api, body=FxEchoBody(message="hello"))
print("echo", echoed.status_code.value, echoed.content.decode())
peer = everything_echo.sync_detailed(client=api, body=EverythingEchoBody(message="peer"))
print("everything", peer.status_code.value, peer.content.decode())
refused = fx_add.sync(client=AuthenticatedClient(base_url={base:?}, token="not-a-token"), body=FxAddBody(a=1, b=1))
print("refused", type(refused).__name__, refused.code if isinstance(refused, Error) else refused)
"#,
        base = app.executor_url,
    );
    let output = client.run(&script);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[0], "sum 5.0", "{output}");
    assert_eq!(lines[1], r#"echo 200 "hello""#, "{output}");
    assert!(
        lines[2].starts_with("everything 200 ") && lines[2].contains("peer"),
        "{output}"
    );
    assert_eq!(lines[3], "refused Error invalid_token", "{output}");
}
