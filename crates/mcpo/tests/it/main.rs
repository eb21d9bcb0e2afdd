//! End-to-end tests of MCPO: the three services in-process against real
//! Postgres, NATS and MCP servers (the fixture and server-everything).

mod auth;
mod backpressure;
mod cancellation;
mod client_generation;
mod events;
mod executor;
mod failures;
mod hostile;
mod http;
mod import;
mod listing;
mod openapi_aws;
mod outbox;
mod processes;
mod publish_targets;
mod publisher;
mod rbac;
mod registry;
mod replicas;
mod results;
mod rotation;
mod security;
mod sessions;
mod snapshots;
mod sse;
mod status;
mod up;
mod update;

pub const MCPO: &str = env!("CARGO_BIN_EXE_mcpo");

pub fn stdio_fixture(name: &str, tools_file: Option<&std::path::Path>) -> serde_json::Value {
    serde_json::json!({ "name": name, "transport": mcpo_test_support::fixture_stdio(MCPO, tools_file) })
}

/// Registers the fixture over stdio as `name` and waits until the published
/// document has its tools; returns that document.
pub async fn register_published(app: &mcpo_test_support::TestApp, name: &str) -> serde_json::Value {
    assert_eq!(app.register(&stdio_fixture(name, None)).await.status(), 201);
    let echo = format!("/tools/{name}/echo");
    app.wait_for_openapi(|doc| doc["paths"].get(&echo).is_some())
        .await
}

/// Refreshes `name`, which must succeed; returns the registry's answer.
pub async fn refresh(app: &mcpo_test_support::TestApp, name: &str) -> serde_json::Value {
    let (status, body) = mcpo_test_support::answer(app.refresh(name).await).await;
    assert_eq!(status, 200, "{body:#}");
    body
}

/// Nothing was stored under `name`, and the registry lists nothing by that name.
pub async fn assert_not_stored(app: &mcpo_test_support::TestApp, name: &str) {
    use mcpo_test_support::{answer, SERVICES};
    let (status, body) = answer(app.registry_get(&format!("{SERVICES}/{name}")).await).await;
    assert_eq!(status, 404, "{name} was stored: {body:#}");
    let (_, listed) = answer(app.registry_get(SERVICES).await).await;
    let names: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(!names.contains(&name), "{name} is listed: {listed:#}");
}

/// The tool names of a registered server-everything, which has `echo`
/// among many.
pub fn assert_everything_tools(service: &serde_json::Value) -> Vec<String> {
    let names = mcpo_test_support::tool_names(service);
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(
        names.len() > 5,
        "server-everything has many tools: {names:?}"
    );
    names
}
