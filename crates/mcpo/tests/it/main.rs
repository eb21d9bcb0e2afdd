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
